/**
 * Loads `@lancedb/lancedb` with its Rust logger quietened.
 *
 * LanceDB's native module logs through `env_logger` configured by the `LANCEDB_LOG` variable and prints
 * WARN lines (for example "No existing dataset ..., it will be created") on every table creation. The
 * variable is read once when the native module loads, so it is set here, before the dynamic import, unless
 * the user already chose a level.
 *
 * @module
 */

/** The LanceDB module type. */
export type LanceDbModule = typeof import("@lancedb/lancedb");

let loading: Promise<LanceDbModule> | undefined;

/**
 * Imports LanceDB once, with `LANCEDB_LOG=error` unless the environment already sets it.
 *
 * @example
 * ```ts
 * const lancedb = await loadLanceDb();
 * const db = await lancedb.connect("/tmp/example");
 * ```
 */
export function loadLanceDb(): Promise<LanceDbModule> {
  if (!loading) {
    try {
      if (Deno.env.get("LANCEDB_LOG") === undefined) Deno.env.set("LANCEDB_LOG", "error");
    } catch {
      // Without --allow-env the logger keeps its default level; nothing else depends on it.
    }
    loading = import("@lancedb/lancedb");
  }
  return loading;
}
