/**
 * `deno task compile` (scripts/compile.ts). Producing a runnable binary needs Deno's runtime base binary
 * (`denort`), which `deno compile` downloads — impossible offline — unless `DENORT_BIN` names a local copy.
 * This test checks everything up to that point: the worker modules found in the sources, the refusal of a
 * wrong `DENORT_BIN`, and a real `deno compile` run with the script's arguments (with the `deno` CLI standing
 * in for denort, which `deno compile` accepts) whose embedded files must hold the shaders and workers and
 * leave out the npm packages Orion never loads. With `ORION_DENORT_BIN` set to a real denort of this Deno
 * version, it also builds the binary and runs `orion --help` with it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkDenortBin, compileArgs, workerModules } from "../../scripts/compile.ts";

const repo = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

Deno.test("compile: worker modules are found and included", async () => {
  const workers = await workerModules();
  assert.ok(workers.includes("src/ursa/ursa_worker.ts"), workers.join(", "));
  assert.ok(workers.includes("src/checkpoint/checkpoint_write_worker.ts"), workers.join(", "));
  const args = await compileArgs("/tmp/x");
  for (const w of workers) assert.ok(args.join(" ").includes(`--include ${w}`));
  for (const p of ["--allow-read", "--allow-write", "--allow-ffi", "--allow-net", "--allow-run"]) {
    assert.ok(args.includes(p), p);
  }
});

Deno.test("compile: DENORT_BIN must exist and must not be the deno CLI", async () => {
  await assert.rejects(() => checkDenortBin("/nonexistent/denort"), /does not exist/);
  await assert.rejects(() => checkDenortBin(Deno.execPath()), /is the deno CLI, not the denort runtime/);
  await checkDenortBin(undefined);
});

Deno.test({
  name:
    "compile: deno compile with the script's arguments embeds shaders and workers, not unused npm packages",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "orion_compile_" });
    try {
      const compile = async (denort: string, out: string) =>
        await new Deno.Command(Deno.execPath(), {
          args: await compileArgs(out),
          cwd: repo,
          env: { DENORT_BIN: denort, NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
      const built = await compile(Deno.execPath(), join(dir, "orion-on-deno-cli"));
      const listing = decoder.decode(built.stdout) + decoder.decode(built.stderr);
      assert.equal(built.code, 0, listing);
      assert.match(listing, /shaders\/\*/);
      assert.match(listing, /ursa_worker\.ts/);
      assert.match(listing, /checkpoint_write_worker\.ts/);
      assert.match(listing, /lancedb-linux-x64-gnu/);
      // Only the embedded-file listing counts (a warning before it may name ignored build scripts).
      const embedded = listing.slice(Math.max(0, listing.indexOf("Embedded Files")));
      assert.ok(embedded.length < listing.length || listing.startsWith("Embedded Files"), listing);
      assert.doesNotMatch(embedded, /onnxruntime-node|transformers\/\*/);
      const size = (await Deno.stat(join(dir, "orion-on-deno-cli"))).size;
      assert.ok(size < 400e6, `binary size ${(size / 1e6).toFixed(0)} MB`);

      const denort = Deno.env.get("ORION_DENORT_BIN");
      if (!denort) {
        console.warn("compile: ORION_DENORT_BIN unset — the standalone binary itself was not built or run");
        return;
      }
      const binary = join(dir, "orion");
      const real = await compile(denort, binary);
      assert.equal(real.code, 0, decoder.decode(real.stderr));
      const help = await new Deno.Command(binary, { args: ["--help"], stdout: "piped", stderr: "piped" })
        .output();
      assert.equal(help.code, 0, decoder.decode(help.stderr));
      assert.match(decoder.decode(help.stdout), /dashboard/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
