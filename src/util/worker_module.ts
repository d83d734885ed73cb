/**
 * Where a Worker's entry module lives, from source and from a single-file bundle.
 *
 * From source the entry is the `.ts` module beside its caller. A `deno bundle` output inlines every module
 * into one file, so Worker entries cannot be found relative to their source: `scripts/build_bundle.ts`
 * bundles each entry of {@linkcode WORKER_ENTRIES} separately and writes it beside the main bundle as
 * `<name>.js`. A `deno compile` binary carries neither, so callers fall back to their own thread.
 *
 * @module
 */

/** Worker entry modules by bundle name (paths relative to the repository root). */
export const WORKER_ENTRIES: Record<string, string> = {
  checkpoint_write_worker: "src/checkpoint/checkpoint_write_worker.ts",
  loader_worker: "src/data/loader_worker.ts",
  ring_stripe_worker: "src/distributed/ring_stripe_worker.ts",
};

/**
 * The URL to start a Worker with, or null when this process cannot start it (a compiled binary, or a
 * bundle without the worker file beside it).
 *
 * @param callerUrl `import.meta.url` of the module that starts the worker.
 * @param sourceRelative the entry's path relative to the caller when running from source (`"./x.ts"`).
 * @param bundleName the entry's name in {@linkcode WORKER_ENTRIES} (`"x"` → `x.js` beside a bundle).
 *
 * @example
 * ```ts ignore
 * const url = workerModuleUrl(import.meta.url, "./checkpoint_write_worker.ts", "checkpoint_write_worker");
 * const worker = url ? new Worker(url, { type: "module" }) : null;
 * ```
 */
export function workerModuleUrl(
  callerUrl: string,
  sourceRelative: string,
  bundleName: string,
): string | null {
  if (Deno.build.standalone) return null;
  if (callerUrl.endsWith(".ts")) return new URL(sourceRelative, callerUrl).href;
  const bundled = new URL(`./${bundleName}.js`, callerUrl);
  if (bundled.protocol !== "file:") return bundled.href; // served next to the bundle: let the Worker fail loudly
  try {
    return Deno.statSync(bundled).isFile ? bundled.href : null;
  } catch {
    return null; // absent, or no read permission: run on the caller's thread
  }
}
