/**
 * Read-only catalog access for the dashboard and run reports: opening an existing catalog directory without
 * creating anything (no `--allow-write` needed), and the catalog a run reads (`data.catalogDir`).
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { Catalog, defaultCatalogDir } from "../ursa/catalog.ts";
import { loadLanceDb } from "../ursa/lancedb_module.ts";

/** Opens the catalog in `dir` when the directory exists; null otherwise. Never creates files. */
export async function openExistingCatalog(dir: string): Promise<Catalog | null> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) return null;
  } catch {
    return null;
  }
  const lancedb = await loadLanceDb();
  return new Catalog(dir, await lancedb.connect(dir));
}

/**
 * The catalog directory of a run: its config's `data.catalogDir` (relative paths against `cwd`), else
 * `fallback`, else the default catalog (`$ORION_HOME/catalog` or `./.orion/catalog`, against `cwd`).
 */
export function runCatalogDir(
  config: Record<string, unknown> | null,
  cwd: string,
  fallback?: string,
): string {
  const data = config?.data as { catalogDir?: unknown } | undefined;
  const dir = typeof data?.catalogDir === "string" ? data.catalogDir : fallback ?? defaultCatalogDir();
  return isAbsolute(dir) ? dir : resolve(cwd, dir);
}

/** Runs `read` on the catalog in `dir` (fresh connection, closed after); `fallback` when there is none. */
export async function withExistingCatalog<T>(
  dir: string,
  fallback: T,
  read: (catalog: Catalog) => Promise<T>,
): Promise<T> {
  const catalog = await openExistingCatalog(dir);
  if (!catalog) return fallback;
  try {
    return await read(catalog);
  } finally {
    catalog.close();
  }
}
