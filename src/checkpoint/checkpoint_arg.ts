/**
 * A checkpoint named on the command line: its directory, or its hash (or a unique prefix of at least 6 hex
 * digits) looked up in the catalog's `checkpoints` table.
 *
 * @module
 */
import { resolve } from "node:path";
import { UsageError } from "../cli/cli_errors.ts";
import { defaultCatalogDir, openCatalog } from "../ursa/catalog.ts";
import { CheckpointLookupError, type CheckpointRow, findCheckpointByHash } from "../train/run_queries.ts";
import { MANIFEST_FILE } from "./checkpoint_manifest.ts";

/** A resolved checkpoint argument. */
export interface ResolvedCheckpointArg {
  dir: string;
  /** The catalog row when the argument was a hash. */
  row: CheckpointRow | null;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Resolves `arg` (a directory, else a hash looked up in the catalog at `catalogDir`, default
 * `$ORION_HOME/catalog` or `./.orion/catalog`, relative to `cwd`).
 *
 * @throws {UsageError} naming what was tried when it is neither, or when the hash's directory is gone.
 * @example
 * ```ts ignore
 * const { dir } = await resolveCheckpointArg("4819e8eb72", Deno.cwd());
 * ```
 */
export async function resolveCheckpointArg(
  arg: string,
  cwd: string,
  catalogDir?: string,
): Promise<ResolvedCheckpointArg> {
  const asPath = resolve(cwd, arg);
  if (await isDirectory(asPath)) return { dir: asPath, row: null };
  if (!/^[0-9a-fA-F]{6,64}$/.test(arg)) {
    throw new UsageError(
      `Cannot find checkpoint ${
        JSON.stringify(arg)
      } as ${asPath} is not a directory and it is not a checkpoint hash (6 to 64 hex digits)`,
    );
  }
  const catalogPath = resolve(cwd, catalogDir ?? defaultCatalogDir());
  if (!(await isDirectory(catalogPath))) {
    throw new UsageError(
      `Cannot look up checkpoint hash ${arg} as the catalog ${catalogPath} does not exist: pass --catalog <dir> or the checkpoint directory`,
    );
  }
  const catalog = await openCatalog(catalogPath);
  let row: CheckpointRow;
  try {
    row = await findCheckpointByHash(catalog, arg);
  } catch (e) {
    if (e instanceof CheckpointLookupError) throw new UsageError(e.message);
    throw e;
  } finally {
    catalog.close();
  }
  try {
    await Deno.stat(resolve(row.path, MANIFEST_FILE));
  } catch {
    throw new UsageError(
      `Cannot open checkpoint ${row.checkpoint_hash} (${row.run_name} step ${row.step}) as its directory ${row.path} is gone: ` +
        "retention or `orion ckpt gc` deleted it (pin checkpoints you need with --pin, or keepBestK/keepEveryNSteps)",
    );
  }
  return { dir: row.path, row };
}
