/**
 * `deno task compile`: builds `dist/orion`, a standalone `orion` executable (`deno compile`) with the
 * permissions the CLI needs, the WGSL shaders (text modules, embedded automatically) and the worker modules
 * (found in the sources and passed with `--include`).
 *
 * `deno compile` writes the program onto Deno's runtime base binary, `denort`, which it downloads for the
 * running Deno version unless `DENORT_BIN` names a local copy (offline machines, clusters without internet):
 *
 *   DENORT_BIN=/opt/deno/denort-2.9.6 deno task compile
 *
 * `DENORT_BIN` must be the `denort` of the same Deno version (the `denort-<target>.zip` release asset); the
 * `deno` CLI itself is not a base binary (its output would start as plain `deno`), so it is refused here.
 *
 * Usage: deno run -A scripts/compile.ts [--out dist/orion] [--target x86_64-unknown-linux-gnu]
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CLI_PERMISSIONS } from "./build_bundle.ts";
import { WORKER_ENTRIES } from "../src/util/worker_module.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Worker modules, relative to the root: those the sources start with `new Worker(new URL("…",
 * import.meta.url))` and the entries of `WORKER_ENTRIES` (src/util/worker_module.ts).
 */
export async function workerModules(srcDir: string = join(root, "src")): Promise<string[]> {
  const found = new Set<string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) await walk(path);
      else if (e.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(path);
        for (const m of text.matchAll(/Worker\(\s*new URL\(\s*"([^"]+\.ts)"\s*,\s*import\.meta\.url\s*\)/g)) {
          found.add(relative(root, resolve(dirname(path), m[1])));
        }
      }
    }
  };
  await walk(srcDir);
  // Entries started through src/util/worker_module.ts (`workerModuleUrl`).
  if (srcDir === join(root, "src")) { for (const entry of Object.values(WORKER_ENTRIES)) found.add(entry); }
  return [...found].sort();
}

async function sha256File(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

/**
 * Checks `DENORT_BIN` when set: it must exist and must not be the `deno` CLI.
 *
 * @throws naming the variable and the fix.
 */
export async function checkDenortBin(path: string | undefined): Promise<void> {
  if (!path) return;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw new Error(
      `Cannot compile with DENORT_BIN=${path} as the file does not exist: download denort-<target>.zip of Deno ${Deno.version.deno} and point DENORT_BIN at the unpacked denort`,
    );
  }
  const deno = Deno.execPath();
  if (info.size === (await Deno.stat(deno)).size && (await sha256File(path)) === (await sha256File(deno))) {
    throw new Error(
      `Cannot compile with DENORT_BIN=${path} as it is the deno CLI, not the denort runtime: the output would run as plain deno and ignore the program; use denort-<target> of Deno ${Deno.version.deno}`,
    );
  }
}

/**
 * npm packages the lockfile resolves that Orion never loads: LanceDB's optional embedding functions
 * (`@huggingface/transformers` with ONNX Runtime and sharp, ~400 MB) and the musl build of its native addon
 * on glibc targets. `deno compile` would embed them; they are excluded by their npm-cache directories.
 */
export const UNUSED_NPM_PACKAGES: readonly RegExp[] = [
  /^@huggingface\//,
  /^onnxruntime-/,
  /^sharp$/,
  /^@img\//,
  /^@lancedb\/lancedb-linux-x64-musl$/,
];

/** `--exclude` arguments for {@link UNUSED_NPM_PACKAGES}, from `deno.lock` and Deno's npm cache. */
export async function unusedNpmExcludes(): Promise<string[]> {
  const lock = JSON.parse(await Deno.readTextFile(join(root, "deno.lock")));
  const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
    .output();
  const npmCache = JSON.parse(new TextDecoder().decode(info.stdout)).npmCache as string;
  const out: string[] = [];
  for (const key of Object.keys(lock.npm ?? {}).sort()) {
    const at = key.indexOf("@", 1);
    const name = key.slice(0, at), version = key.slice(at + 1).split("_")[0];
    if (UNUSED_NPM_PACKAGES.some((p) => p.test(name))) {
      out.push("--exclude", join(npmCache, "registry.npmjs.org", name, version));
    }
  }
  return out;
}

/** The `deno compile` arguments for `out`. */
export async function compileArgs(out: string, target?: string): Promise<string[]> {
  return [
    "compile",
    "--node-modules-dir=none", // embed npm packages from Deno's cache: only what the program reaches
    "--exclude-unused-npm",
    ...CLI_PERMISSIONS,
    ...(await workerModules()).flatMap((m) => ["--include", m]),
    ...(await unusedNpmExcludes()),
    ...(target ? ["--target", target] : []),
    "--output",
    out,
    "mod.ts",
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string", default: "dist/orion" }, target: { type: "string" } },
  });
  const denort = Deno.env.get("DENORT_BIN");
  try {
    await checkDenortBin(denort);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const out = resolve(root, values.out!);
  await Deno.mkdir(dirname(out), { recursive: true });
  const args = await compileArgs(out, values.target);
  console.error(`deno ${args.join(" ")}${denort ? `  (DENORT_BIN=${denort})` : ""}`);
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  if (!result.success) {
    console.error(
      `Cannot compile ${out}: deno compile failed (exit ${result.code}).` +
        (denort
          ? ""
          : ` Without internet it cannot download its runtime base binary: set DENORT_BIN to a local denort of Deno ${Deno.version.deno} (see docs/library.md)`),
    );
    Deno.exit(1);
  }
}
