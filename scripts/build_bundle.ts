/**
 * `deno task bundle`: builds `dist/orion.js`, Orion — the `orion` CLI and the public API — as one JavaScript
 * file that runs with a pinned Deno and nothing else from this repository:
 *
 *   deno bundle --platform deno --external zod --external apache-arrow ... -o dist/orion.js mod.ts
 *
 * Every npm package of `deno.json` stays outside the bundle and its import is rewritten from the import-map
 * alias to the pinned `npm:` specifier (`"zod"` → `"npm:zod@4.1.12"`), so Deno loads the same versions from
 * npm (or its cache, `deno install --entrypoint orion.js` fills it) wherever the bundle runs. That is
 * required for LanceDB, a native (napi) addon with a platform-specific binary that cannot be inlined, and
 * keeps CommonJS interop (apache-arrow's tslib) to Deno's own npm loader instead of the bundler's shims. The
 * WGSL shaders are text modules and are inlined. Worker modules cannot be inlined: each entry of
 * `WORKER_ENTRIES` (src/util/worker_module.ts) is bundled beside it as `<name>.js`, where the code looks for
 * it (without that file it runs the work on the calling thread). The file starts with a `deno run` shebang carrying the
 * permissions the CLI needs.
 *
 * Usage: deno run --allow-read --allow-write --allow-run --allow-env scripts/build_bundle.ts [--out dist/orion.js]
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { WORKER_ENTRIES } from "../src/util/worker_module.ts";

/** The import-map aliases of npm packages (`deno.json` imports whose target starts with `npm:`). */
export function npmAliases(imports: Record<string, string>): string[] {
  return Object.entries(imports).filter(([, target]) => target.startsWith("npm:")).map(([alias]) => alias)
    .sort();
}

/** Permissions of the `orion` CLI (training, catalog FFI, GPU adapter info, side processes, dashboard). */
export const CLI_PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run",
  "--allow-net",
] as const;

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Replaces each npm alias imported by bundled code with its pinned `npm:` specifier. */
export function pinExternalImports(code: string, imports: Record<string, string>): string {
  let out = code;
  for (const name of npmAliases(imports)) {
    const target = imports[name];
    if (!target?.startsWith("npm:")) {
      throw new Error(
        `Cannot pin ${name} in the bundle as deno.json imports has no npm: entry for it: current value is ${
          JSON.stringify(target)
        }`,
      );
    }
    // The package itself and its subpaths (`"msgpackr"`, `"msgpackr/pack"`).
    const pattern = (q: string) =>
      new RegExp(`(import\\(\\s*|from\\s*)${q}${name.replace(/[/@]/g, "\\$&")}(/[^${q}]*)?${q}`, "g");
    out = out.replace(pattern('"'), `$1"${target}$2"`).replace(pattern("'"), `$1'${target}$2'`);
    if (pattern('"').test(out) || pattern("'").test(out)) {
      throw new Error(
        `Cannot pin ${name} in the bundle as it is still imported by its bare name after rewriting`,
      );
    }
  }
  return out;
}

/**
 * Bundles `entry` into `out` (written atomically) with every npm package external and pinned; `header` is
 * prepended (after dropping a shebang the bundler kept).
 */
async function bundleModule(entry: string, out: string, imports: Record<string, string>, header = "") {
  const tmp = `${out}.tmp`;
  const bundle = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "deno",
      ...npmAliases(imports).flatMap((p) => ["--external", p, "--external", `${p}/*`]),
      "-o",
      tmp,
      join(root, entry),
    ],
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!bundle.success) {
    console.error(`Cannot build ${out} as deno bundle failed (exit ${bundle.code}); see the messages above`);
    Deno.exit(1);
  }
  const code = pinExternalImports(await Deno.readTextFile(tmp), imports);
  await Deno.writeTextFile(tmp, header + code.replace(/^#!.*\n/, ""), { mode: header ? 0o755 : 0o644 });
  await Deno.rename(tmp, out);
  console.log(`wrote ${out} (${((await Deno.stat(out)).size / 1e6).toFixed(2)} MB)`);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string", default: "dist/orion.js" } },
  });
  const out = resolve(root, values.out!);
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
  const imports = config.imports ?? {};
  await Deno.mkdir(dirname(out), { recursive: true });
  const header = `#!/usr/bin/env -S deno run ${CLI_PERMISSIONS.join(" ")}\n` +
    `// ${config.name}@${config.version}: the orion CLI bundled by scripts/build_bundle.ts with Deno ${Deno.version.deno}.\n` +
    `// Run: deno run ${
      CLI_PERMISSIONS.join(" ")
    } orion.js <command> …  (npm packages load from npm or Deno's cache; see docs/library.md)\n`;
  await bundleModule("mod.ts", out, imports, header);
  // Worker entries beside the bundle, where src/util/worker_module.ts looks for them.
  for (const [name, entry] of Object.entries(WORKER_ENTRIES)) {
    await bundleModule(entry, join(dirname(out), `${name}.js`), imports);
  }
}
