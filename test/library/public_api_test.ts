/**
 * The public API stays publishable: `deno doc --lint mod.ts` is clean (JSDoc on every export, no private
 * types in public signatures), `deno publish --dry-run` passes (name, version, license, exports, no slow
 * types), and the examples of the library, dashboard and public entry type-check (`deno check --doc-only`).
 */
import assert from "node:assert/strict";

const repo = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

async function deno(args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: repo,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: decoder.decode(r.stdout) + decoder.decode(r.stderr) };
}

Deno.test("public API: deno doc --lint mod.ts is clean", async () => {
  const r = await deno(["doc", "--lint", "mod.ts"]);
  assert.equal(r.code, 0, r.out);
  assert.doesNotMatch(r.out, /error\[/);
});

Deno.test("public API: deno publish --dry-run passes (no slow types)", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${repo}deno.json`));
  assert.ok(
    config.name && config.version && config.license && config.exports,
    "name, version, license, exports",
  );
  assert.ok(
    !JSON.stringify(config.lint ?? {}).includes("no-slow-types"),
    "the no-slow-types lint rule is on",
  );
  const r = await deno(["publish", "--dry-run", "--allow-dirty"]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Dry run complete/);
  assert.doesNotMatch(r.out, /error\[/);
});

Deno.test("public API: the examples of the library, dashboard and mod.ts type-check", async () => {
  const files = ["mod.ts"];
  for (const dir of ["src/api", "src/dashboard"]) {
    for (const e of Deno.readDirSync(`${repo}${dir}`)) {
      if (e.name.endsWith(".ts")) files.push(`${dir}/${e.name}`);
    }
  }
  const r = await deno(["check", "--doc-only", ...files.sort()]);
  assert.equal(r.code, 0, r.out);
});
