/**
 * The real environment behind pre-flight: file-system probes, the WebGPU adapter probe, the local launcher's
 * capacity, plus whatever other subsystems register (the catalog resolver, the bench-suite registry, ...).
 *
 * Other modules plug in with {@link registerPreflightProvider}, e.g. the data layer:
 * `registerPreflightProvider({ resolveQuery: async (data) => ({ windowsTrain, windowsVal, problems }) })`.
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { AdapterDescription, LauncherCapacity, PreflightContext } from "./preflight.ts";
import type { InfraConfig } from "./infra_config.ts";

const providers: Partial<PreflightContext>[] = [];

/** Adds capabilities to the default pre-flight context (later registrations win for the same member). */
export function registerPreflightProvider(provider: Partial<PreflightContext>): void {
  providers.push(provider);
}

/** The nearest existing ancestor of `dir` (itself when it exists). */
export async function nearestExistingDir(dir: string): Promise<string> {
  let d = resolve(dir);
  for (;;) {
    try {
      const info = await Deno.stat(d);
      if (info.isDirectory) return d;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const parent = dirname(d);
    if (parent === d) return d;
    d = parent;
  }
}

/** Whether `<runsDir>/<name>` exists. */
export async function runDirectoryExists(name: string, runsDir: string): Promise<boolean> {
  try {
    await Deno.stat(join(runsDir, name));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Whether new files can be created in `dir` or, when it does not exist yet, in its nearest existing ancestor
 * (where `mkdir -p` would start). Probes by creating and removing one empty temporary file; creates no
 * directories.
 */
export async function directoryIsWritable(dir: string): Promise<boolean> {
  const existing = await nearestExistingDir(dir);
  try {
    const probe = await Deno.makeTempFile({ dir: existing, prefix: ".orion-preflight-" });
    await Deno.remove(probe);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable) throw e;
    return false;
  }
}

/**
 * Free bytes on the file system of `dir` (nearest existing ancestor): `statfs` when Deno may call it
 * (`--allow-sys`), else `df` when Deno may run programs (`--allow-run`), else null (unknown).
 */
export async function freeDiskBytesOf(dir: string): Promise<number | null> {
  const existing = await nearestExistingDir(dir);
  if (
    Deno.permissions.querySync({ name: "sys", kind: "statfs" } as Deno.PermissionDescriptor).state ===
      "granted"
  ) {
    const s = await statfs(existing);
    return Number(s.bavail) * Number(s.bsize);
  }
  if (Deno.permissions.querySync({ name: "run", command: "df" }).state === "granted") {
    try {
      const out = await new Deno.Command("df", { args: ["-Pk", existing], stdout: "piped", stderr: "null" })
        .output();
      const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
      const availableKiB = Number(line.split(/\s+/)[3]);
      return out.success && Number.isFinite(availableKiB) ? availableKiB * 1024 : null;
    } catch {
      return null;
    }
  }
  return null;
}

function systemMemoryBytes(): number | null {
  if (
    Deno.permissions.querySync({ name: "sys", kind: "systemMemoryInfo" } as Deno.PermissionDescriptor)
      .state !==
      "granted"
  ) return null;
  return Deno.systemMemoryInfo().total;
}

/**
 * Requests the WebGPU adapter for an accelerator and reads its limits and features. Creates no device and
 * allocates nothing. `cpu-software` asks for the fallback (software) adapter, whose memory is system memory.
 */
export async function probeWebGpuAdapter(
  accelerator: InfraConfig["accelerator"],
): Promise<AdapterDescription | null> {
  const gpu = (navigator as { gpu?: GPU }).gpu;
  if (!gpu) return null;
  const adapter = await gpu.requestAdapter(
    accelerator === "cpu-software" ? { forceFallbackAdapter: true } : { powerPreference: "high-performance" },
  );
  if (!adapter) return null;
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const isFallbackAdapter = info?.isFallbackAdapter ?? false;
  return {
    maxBufferSize: adapter.limits.maxBufferSize,
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    features: [...adapter.features],
    description: info?.description || info?.device || info?.vendor || undefined,
    isFallbackAdapter,
    deviceMemoryBytes: isFallbackAdapter ? systemMemoryBytes() : null,
  };
}

/** The local launcher starts processes on this machine only. */
export function builtinLauncherCapacity(infra: InfraConfig): LauncherCapacity | undefined {
  if (infra.backend === "local") return { maxNodes: 1, description: "local launcher: this machine only" };
  return undefined;
}

/**
 * The pre-flight context of this process: built-in probes, then registered providers, then `overrides`
 * (e.g. from tests or the CLI).
 *
 * @example
 * ```ts
 * import { defaultPreflightContext } from "./preflight_environment.ts";
 * import { preflightRunConfig } from "./preflight.ts";
 * import { POYO } from "../models/poyo.ts";
 * const report = await preflightRunConfig({ name: "demo", model: { cls: POYO } }, defaultPreflightContext());
 * ```
 */
export function defaultPreflightContext(overrides: Partial<PreflightContext> = {}): PreflightContext {
  return Object.assign(
    {
      runExists: runDirectoryExists,
      isWritable: directoryIsWritable,
      freeDiskBytes: freeDiskBytesOf,
      probeAdapter: probeWebGpuAdapter,
      launcherCapacity: builtinLauncherCapacity,
    } satisfies PreflightContext,
    ...providers,
    overrides,
  );
}
