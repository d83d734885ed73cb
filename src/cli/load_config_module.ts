/**
 * Loading a config file: a TypeScript module whose default export is a `RunConfig` or `TrainingPipeline`.
 *
 * @module
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { rawConfigOf } from "../config/config_builder.ts";
import { ConfigError, problem } from "../config/problem.ts";
import { isPermissionError } from "./cli_errors.ts";

/** A loaded config module. */
export interface LoadedConfigModule {
  /** Absolute path of the file. */
  file: string;
  /** Its default export (a built config, an invalid-config placeholder, or a plain object). */
  value: unknown;
  /** True when the export looks like a pipeline (has `stages`). */
  isPipeline: boolean;
}

/**
 * Imports a config module by file path (relative to `cwd`) and returns its default export. Throws a
 * `ConfigError` (exit 2) when the file is missing, fails to import, or has no default export.
 */
export async function loadConfigModule(path: string, cwd: string): Promise<LoadedConfigModule> {
  const file = resolve(cwd, path);
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) {
      throw new ConfigError(path, [
        problem("", path, `Cannot load config ${path} as it is not a file`, "pass a .ts config file"),
      ]);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(path, [problem(
        "",
        path,
        `Cannot load config ${path} as ${file} does not exist`,
        "check the path (e.g. configs/run.ts)",
      )]);
    }
    throw e;
  }
  let module: Record<string, unknown>;
  try {
    module = await import(pathToFileURL(file).href);
  } catch (e) {
    if (isPermissionError(e) || e instanceof ConfigError) throw e;
    const error = new ConfigError(path, [problem(
      "",
      path,
      `Cannot load config ${path} as importing it failed: ${(e as Error)?.message ?? String(e)}`,
      "fix the error in the config module (set ORION_DEBUG=1 for the stack trace)",
    )]);
    (error as { cause?: unknown }).cause = e;
    throw error;
  }
  if (!("default" in module) || module.default === undefined) {
    throw new ConfigError(path, [problem(
      "",
      Object.keys(module),
      `Cannot use ${path} as a config as it has no default export`,
      "end the file with `export default RunConfig({ ... })` (or a TrainingPipeline)",
    )]);
  }
  const value = module.default;
  const isPipeline = isPipelineLike(value);
  return { file, value, isPipeline };
}

function isPipelineLike(value: unknown): boolean {
  const raw = rawConfigOf(value);
  return raw !== null && typeof raw === "object" && !Array.isArray(raw) && "stages" in raw;
}
