/**
 * Scratch directories of a run directory: `.tmp-ckpt-*` (writes in progress) and `.trash-ckpt-*`
 * (deletions in progress). A crash can leave them behind; they are removed by the next write, by resume
 * and by `ckpt gc`, except those of operations in flight in this process. One process writes to a run
 * directory at a time.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { CHECKPOINT_DIR_PREFIX, isScratchDirName, TRASH_DIR_PREFIX } from "./checkpoint_layout.ts";
import { fsyncDirectory, randomHex } from "./durable_fs.ts";

const inFlight = new Set<string>();

/** Marks a scratch directory as owned by an operation in flight in this process (never cleaned). */
export function claimScratchDir(path: string): void {
  inFlight.add(path);
}

/** Ends the claim of {@link claimScratchDir}. */
export function releaseScratchDir(path: string): void {
  inFlight.delete(path);
}

/**
 * Removes leftover scratch directories of crashed writes/deletions, except those in flight in this process.
 *
 * @returns the names removed.
 */
export async function cleanStaleScratchDirs(runDir: string): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(runDir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return removed;
    throw e;
  }
  for (const entry of entries) {
    if (!isScratchDirName(entry.name)) continue;
    const path = join(runDir, entry.name);
    if (inFlight.has(path)) continue;
    await Deno.remove(path, { recursive: true });
    removed.push(entry.name);
  }
  if (removed.length > 0) await fsyncDirectory(runDir);
  return removed;
}

/**
 * Removes a checkpoint directory so that a crash midway never leaves a half-deleted checkpoint under a
 * valid name: it is first renamed to `.trash-ckpt-*` (atomic), then deleted.
 */
export async function removeCheckpointDir(dir: string): Promise<void> {
  const runDir = dirname(dir);
  const trash = join(
    runDir,
    `${TRASH_DIR_PREFIX}${basename(dir).slice(CHECKPOINT_DIR_PREFIX.length)}-${randomHex(6)}`,
  );
  claimScratchDir(trash);
  try {
    await Deno.rename(dir, trash);
    await fsyncDirectory(runDir);
    await Deno.remove(trash, { recursive: true });
  } finally {
    releaseScratchDir(trash);
  }
}
