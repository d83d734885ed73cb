/**
 * `CodeVersion`: which code produced a checkpoint — Orion's version, the git commit and dirty flag,
 * the Deno/V8/TypeScript versions and the resolved dependency versions from `deno.lock`. Collected once
 * per process (the loaded code cannot change under a running process) and written to
 * `code_version.json`; `deno.lock` itself is copied to `env.lock`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import orionPackage from "../../deno.json" with { type: "json" };

/** The content of `code_version.json`. */
export interface CodeVersion {
  orion: { name: string | null; version: string | null };
  git: {
    /** `git rev-parse HEAD`, or null when git or the repository is unavailable (`error` says why). */
    commit: string | null;
    /** True when `git status --porcelain` lists any change (tracked or untracked, not ignored). */
    dirty: boolean | null;
    /** Why commit/dirty are null. */
    error?: string;
  };
  deno: string;
  v8: string;
  typescript: string;
  /** Resolved version of every specifier in `deno.lock`, e.g. `{"npm:zod@4.1.12": "4.1.12"}`. */
  dependencies: Record<string, string>;
  /** sha256 of `deno.lock` (the bytes of `env.lock`), or null when there is no lock file. */
  lockfileSha256: string | null;
}

/** A code version plus the lock file bytes that become `env.lock`. */
export interface CodeSnapshot {
  version: CodeVersion;
  /** Exact bytes of `deno.lock`; empty when the project has no lock file (then `lockfileSha256` is null). */
  envLock: Uint8Array;
}

/** Where to look for `deno.json`, `deno.lock` and the git repository. */
export interface CollectCodeVersionOptions {
  /** Project root (default: two levels above this module, i.e. the Orion checkout). */
  root?: string;
  /** Set false to skip the git subprocess (commit/dirty become null). */
  git?: boolean;
}

/** The checkout this module runs from; null when it is imported over HTTP or bundled into one file. */
function defaultRoot(): string | null {
  if (!import.meta.url.endsWith("/checkpoint/code_version.ts")) return null;
  const url = new URL("../../", import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : null;
}

async function readOptional(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function runGit(root: string, args: string[]): Promise<string> {
  const out = await new Deno.Command("git", { args: ["-C", root, ...args], stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(new TextDecoder().decode(out.stderr).trim() || `git ${args.join(" ")} failed`);
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Parses the resolved versions out of a `deno.lock` (v3–v5: the `specifiers` map).
 *
 * @example
 * ```ts
 * import { lockfileDependencies } from "./code_version.ts";
 * lockfileDependencies('{"version":"5","specifiers":{"npm:zod@4.1.12":"4.1.12"}}'); // {"npm:zod@4.1.12": "4.1.12"}
 * ```
 */
export function lockfileDependencies(lockText: string): Record<string, string> {
  let lock: unknown;
  try {
    lock = JSON.parse(lockText);
  } catch {
    return {};
  }
  const specifiers = (lock as { specifiers?: unknown })?.specifiers;
  const out: Record<string, string> = {};
  if (specifiers && typeof specifiers === "object") {
    for (const key of Object.keys(specifiers).sort()) {
      const value = (specifiers as Record<string, unknown>)[key];
      if (typeof value === "string") out[key] = value;
    }
  }
  return out;
}

/**
 * Collects the code version of the running Orion checkout.
 *
 * @example
 * ```ts
 * import { collectCodeVersion } from "./code_version.ts";
 * const { version } = await collectCodeVersion();
 * console.log(version.git.commit, version.git.dirty);
 * ```
 */
export async function collectCodeVersion(options: CollectCodeVersionOptions = {}): Promise<CodeSnapshot> {
  const root = options.root ?? defaultRoot();
  // Name and version travel with the code (a JSON module), so bundles and URL imports know them too.
  let name: string | null = options.root === undefined ? orionPackage.name : null;
  let version: string | null = options.root === undefined ? orionPackage.version : null;
  let envLock: Uint8Array | null = null;
  if (root !== null) {
    const denoJson = await readOptional(`${root}/deno.json`);
    if (denoJson !== null) {
      try {
        const parsed = JSON.parse(new TextDecoder().decode(denoJson));
        name = typeof parsed.name === "string" ? parsed.name : null;
        version = typeof parsed.version === "string" ? parsed.version : null;
      } catch {
        // An unparsable deno.json leaves name/version unknown; Deno itself would refuse to start.
      }
    }
    envLock = await readOptional(`${root}/deno.lock`);
  }
  const git: CodeVersion["git"] = { commit: null, dirty: null };
  if (options.git === false) git.error = "git lookup disabled";
  else if (root === null) {
    git.error = `Orion is not loaded from a source checkout (${import.meta.url})`;
  } else {
    try {
      git.commit = (await runGit(root, ["rev-parse", "HEAD"])).trim();
      git.dirty = (await runGit(root, ["status", "--porcelain"])).trim().length > 0;
    } catch (e) {
      git.commit = null;
      git.dirty = null;
      git.error = e instanceof Error ? e.message : String(e);
    }
  }
  return {
    version: {
      orion: { name, version },
      git,
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      typescript: Deno.version.typescript,
      dependencies: envLock === null ? {} : lockfileDependencies(new TextDecoder().decode(envLock)),
      lockfileSha256: envLock === null ? null : createHash("sha256").update(envLock).digest("hex"),
    },
    envLock: envLock ?? new Uint8Array(0),
  };
}

/**
 * Lists how two code versions differ, one readable line per difference (empty when identical), for
 * resume plans.
 *
 * @example
 * ```ts
 * import { codeVersionDifferences } from "./code_version.ts";
 * // ["git commit: abc → def", "dependency npm:zod@4.1.12: 4.1.12 → 4.1.13"]
 * ```
 */
export function codeVersionDifferences(saved: CodeVersion, current: CodeVersion): string[] {
  const out: string[] = [];
  const cmp = (label: string, a: unknown, b: unknown) => {
    if (a !== b) out.push(`${label}: ${a ?? "unknown"} → ${b ?? "unknown"}`);
  };
  cmp("orion version", saved.orion?.version, current.orion.version);
  cmp("git commit", saved.git?.commit, current.git.commit);
  cmp("git dirty", saved.git?.dirty, current.git.dirty);
  cmp("deno", saved.deno, current.deno);
  cmp("v8", saved.v8, current.v8);
  cmp("typescript", saved.typescript, current.typescript);
  const deps = new Set([...Object.keys(saved.dependencies ?? {}), ...Object.keys(current.dependencies)]);
  for (const dep of [...deps].sort()) {
    cmp(`dependency ${dep}`, saved.dependencies?.[dep], current.dependencies[dep]);
  }
  return out;
}
