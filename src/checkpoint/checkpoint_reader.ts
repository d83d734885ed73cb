/**
 * Reading checkpoints: full verification against the manifest, decoding back into a
 * {@link CheckpointState}, and finding the newest valid checkpoint of a run for resume.
 *
 * Verification refuses a checkpoint (naming the file) when `manifest.json` is missing or malformed, when
 * a listed file is missing, has a different size or a different sha256, when a file is present but not
 * listed, when anything in it is a symlink or special file, or when a file's content is malformed.
 *
 * @module
 */
import { basename, join } from "node:path";
import type { CheckpointLineage, CheckpointState, JsonObject } from "./checkpoint_state.ts";
import type { CodeVersion } from "./code_version.ts";
import { CheckpointIntegrityError, type CheckpointProblem } from "./checkpoint_integrity_error.ts";
import {
  type CheckpointManifest,
  CheckpointManifestError,
  MANIFEST_FILE,
  parseCheckpointManifest,
} from "./checkpoint_manifest.ts";
import { decodeCheckpointFiles, parseCheckpointDirName } from "./checkpoint_layout.ts";
import { sha256Bytes } from "./durable_fs.ts";
import { cleanStaleScratchDirs } from "./scratch_dirs.ts";

/** A verified, decoded checkpoint. */
export interface LoadedCheckpoint {
  dir: string;
  name: string;
  step: number;
  /** The checkpoint hash. */
  hash: string;
  manifest: CheckpointManifest;
  /** Everything needed to resume; `benchmarks` is always present (empty when none were written). */
  state: CheckpointState & {
    benchmarks: NonNullable<CheckpointState["benchmarks"]>;
    lineage: CheckpointLineage & { parentCheckpointHash: string | null };
  };
  codeVersion: CodeVersion;
  /** The `deno.lock` bytes the checkpoint was written with. */
  envLock: Uint8Array;
}

/** Outcome of {@link verifyCheckpoint}. */
export type CheckpointVerification =
  | { ok: true; dir: string; manifest: CheckpointManifest }
  | { ok: false; dir: string; problems: CheckpointProblem[] };

/** Lists every regular file under `root` (relative POSIX paths); non-regular entries become problems. */
async function listFiles(root: string, problems: CheckpointProblem[]): Promise<string[]> {
  const out: string[] = [];
  const pending = [""];
  while (pending.length > 0) {
    const rel = pending.pop() as string;
    for await (const entry of Deno.readDir(rel === "" ? root : join(root, rel))) {
      const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (entry.isSymlink) {
        problems.push({ file: path, reason: "is a symbolic link (checkpoints hold only regular files)" });
      } else if (entry.isDirectory) pending.push(path);
      else if (entry.isFile) out.push(path);
      else problems.push({ file: path, reason: "is not a regular file" });
    }
  }
  return out.sort();
}

async function readVerifiedFiles(
  dir: string,
): Promise<{ manifest: CheckpointManifest; files: Map<string, Uint8Array> }> {
  const problems: CheckpointProblem[] = [];
  const refuse = (): never => {
    throw new CheckpointIntegrityError(dir, problems);
  };
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      problems.push({ file: ".", reason: "the checkpoint directory does not exist" });
      return refuse();
    }
    throw e;
  }
  if (!info.isDirectory) {
    problems.push({ file: ".", reason: "is not a directory" });
    return refuse();
  }
  let manifestBytes: Uint8Array;
  try {
    const manifestInfo = await Deno.lstat(join(dir, MANIFEST_FILE));
    if (!manifestInfo.isFile) {
      problems.push({ file: MANIFEST_FILE, reason: "is not a regular file" });
      return refuse();
    }
    if (manifestInfo.size > 64 << 20) {
      problems.push({ file: MANIFEST_FILE, reason: `is implausibly large (${manifestInfo.size} bytes)` });
      return refuse();
    }
    manifestBytes = await Deno.readFile(join(dir, MANIFEST_FILE));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      problems.push({ file: MANIFEST_FILE, reason: "is missing (the checkpoint write did not complete)" });
      return refuse();
    }
    throw e;
  }
  let manifest: CheckpointManifest;
  try {
    manifest = parseCheckpointManifest(manifestBytes);
  } catch (e) {
    if (!(e instanceof CheckpointManifestError)) throw e;
    problems.push({ file: MANIFEST_FILE, reason: e.reason });
    return refuse();
  }
  const dirStep = parseCheckpointDirName(basename(dir));
  if (dirStep !== null && dirStep !== manifest.step) {
    problems.push({
      file: MANIFEST_FILE,
      reason: `field step says ${manifest.step} but the directory name says ${dirStep}`,
    });
  }
  const listed = new Map(manifest.files.map((f) => [f.path, f]));
  const present = (await listFiles(dir, problems)).filter((p) => p !== MANIFEST_FILE);
  for (const path of present) {
    if (!listed.has(path)) {
      problems.push({ file: path, reason: "is not listed in the manifest (extra file)" });
    }
  }
  const presentSet = new Set(present);
  const files = new Map<string, Uint8Array>();
  for (const entry of manifest.files) {
    if (!presentSet.has(entry.path)) {
      problems.push({ file: entry.path, reason: "is listed in the manifest but missing" });
      continue;
    }
    const path = join(dir, entry.path);
    const size = (await Deno.lstat(path)).size;
    if (size !== entry.bytes) {
      problems.push({
        file: entry.path,
        reason: `has ${size} bytes but the manifest says ${entry.bytes} (${
          size < entry.bytes ? "truncated" : "extended"
        })`,
      });
      continue;
    }
    const bytes = await Deno.readFile(path);
    const digest = sha256Bytes(bytes);
    if (digest.bytes !== entry.bytes || digest.sha256 !== entry.sha256) {
      problems.push({
        file: entry.path,
        reason: `content does not match the manifest: sha256 is ${digest.sha256}, expected ${entry.sha256}`,
      });
      continue;
    }
    files.set(entry.path, bytes);
  }
  if (problems.length > 0) refuse();
  return { manifest, files };
}

/**
 * Verifies every file of a checkpoint against its manifest and decodes it.
 *
 * @throws {CheckpointIntegrityError} listing every problem found, each naming its file.
 * @example
 * ```ts
 * import { readCheckpoint } from "./checkpoint_reader.ts";
 * const ckpt = await readCheckpoint("runs/demo/ckpt-step000000100");
 * console.log(ckpt.step, ckpt.hash, ckpt.state.model.weights);
 * ```
 */
export async function readCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const { manifest, files } = await readVerifiedFiles(dir);
  const decoded = decodeCheckpointFiles(files, dir);
  if (!decoded.ok) throw new CheckpointIntegrityError(dir, decoded.problems);
  return {
    dir,
    name: basename(dir),
    step: manifest.step,
    hash: manifest.checkpointHash,
    manifest,
    state: { ...decoded.value.state, benchmarks: decoded.value.state.benchmarks ?? {} },
    codeVersion: decoded.value.codeVersion,
    envLock: decoded.value.envLock,
  };
}

/**
 * Like {@link readCheckpoint} but returns the outcome instead of throwing on an invalid checkpoint.
 *
 * @example
 * ```ts
 * import { verifyCheckpoint } from "./checkpoint_reader.ts";
 * const v = await verifyCheckpoint("runs/demo/ckpt-step000000100");
 * if (!v.ok) for (const p of v.problems) console.log(p.file, p.reason);
 * ```
 */
export async function verifyCheckpoint(dir: string): Promise<CheckpointVerification> {
  try {
    const ckpt = await readCheckpoint(dir);
    return { ok: true, dir, manifest: ckpt.manifest };
  } catch (e) {
    if (e instanceof CheckpointIntegrityError) return { ok: false, dir, problems: e.problems };
    throw e;
  }
}

/** A checkpoint directory of a run (by name only; not yet verified). */
export interface CheckpointDirEntry {
  name: string;
  dir: string;
  step: number;
}

/** Lists `ckpt-step*` directories of a run, newest step first. A missing run directory lists nothing. */
export async function listCheckpointDirs(runDir: string): Promise<CheckpointDirEntry[]> {
  const out: CheckpointDirEntry[] = [];
  try {
    for await (const entry of Deno.readDir(runDir)) {
      const step = parseCheckpointDirName(entry.name);
      if (step !== null && entry.isDirectory) {
        out.push({ name: entry.name, dir: join(runDir, entry.name), step });
      }
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return out;
    throw e;
  }
  return out.sort((a, b) => b.step - a.step);
}

/** A checkpoint skipped by {@link findLatestValidCheckpoint}, and why. */
export interface SkippedCheckpoint {
  dir: string;
  step: number;
  problems: CheckpointProblem[];
}

/** Options of {@link findLatestValidCheckpoint}. */
export interface FindLatestOptions {
  /** Receives the warning about skipped checkpoints (default `console.warn`). */
  onWarning?: (message: string) => void;
  /** Remove leftover `.tmp-ckpt-*`/`.trash-ckpt-*` directories first (default true). */
  cleanStale?: boolean;
}

/**
 * Finds and loads the newest checkpoint of a run that verifies. Newer checkpoints that fail are skipped
 * with one warning listing each and why.
 *
 * @returns the checkpoint and what was skipped, or null when the run has no valid checkpoint.
 * @example
 * ```ts
 * import { findLatestValidCheckpoint } from "./checkpoint_reader.ts";
 * const found = await findLatestValidCheckpoint("runs/demo");
 * if (found) console.log(`resuming from step ${found.checkpoint.step}`);
 * ```
 */
export async function findLatestValidCheckpoint(
  runDir: string,
  options: FindLatestOptions = {},
): Promise<{ checkpoint: LoadedCheckpoint; skipped: SkippedCheckpoint[] } | null> {
  if (options.cleanStale ?? true) {
    await cleanStaleScratchDirs(runDir);
  }
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  const skipped: SkippedCheckpoint[] = [];
  const report = (chosen: string | null) => {
    if (skipped.length === 0) return;
    const lines = skipped.map((s) =>
      `  ${s.dir}: ${s.problems.slice(0, 3).map((p) => `${p.file}: ${p.reason}`).join("; ")}${
        s.problems.length > 3 ? `; and ${s.problems.length - 3} more` : ""
      }`
    );
    warn(
      `Skipped ${skipped.length} newer checkpoint(s) that fail verification; ${
        chosen === null ? "no valid checkpoint remains" : `using ${chosen}`
      }:\n${lines.join("\n")}`,
    );
  };
  for (const entry of await listCheckpointDirs(runDir)) {
    try {
      const checkpoint = await readCheckpoint(entry.dir);
      report(entry.dir);
      return { checkpoint, skipped };
    } catch (e) {
      if (!(e instanceof CheckpointIntegrityError)) throw e;
      skipped.push({ dir: entry.dir, step: entry.step, problems: e.problems });
    }
  }
  report(null);
  return null;
}

/** Cheap facts about a checkpoint for listings and retention (manifest and small JSON files, no hashing). */
export interface CheckpointSummary extends CheckpointDirEntry {
  /** Null when the manifest is missing or malformed (`problem` says why). */
  manifest: CheckpointManifest | null;
  metrics: JsonObject | null;
  lineage: JsonObject | null;
  problem?: string;
}

async function readJsonObject(path: string): Promise<JsonObject | null> {
  try {
    const value = JSON.parse(await Deno.readTextFile(path));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** Reads a checkpoint's manifest, metrics snapshot and lineage without verifying file hashes. */
export async function summarizeCheckpoint(entry: CheckpointDirEntry): Promise<CheckpointSummary> {
  let manifest: CheckpointManifest | null = null;
  let problem: string | undefined;
  try {
    manifest = parseCheckpointManifest(await Deno.readFile(join(entry.dir, MANIFEST_FILE)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) problem = `${MANIFEST_FILE} is missing`;
    else if (e instanceof CheckpointManifestError) problem = `${MANIFEST_FILE}: ${e.reason}`;
    else throw e;
  }
  return {
    ...entry,
    manifest,
    metrics: await readJsonObject(join(entry.dir, "metrics", "snapshot.json")),
    lineage: await readJsonObject(join(entry.dir, "lineage.json")),
    ...(problem === undefined ? {} : { problem }),
  };
}
