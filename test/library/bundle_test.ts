/**
 * The single-file bundle (`deno task bundle`, scripts/build_bundle.ts) is self-contained: built into a
 * temporary directory with no repository files around it, it builds a demo catalog, trains a tiny POYO from a
 * config module that imports the bundle's own exports, and resumes the run from a checkpoint — with file
 * access limited to that directory (so nothing of the repository can be read), npm packages from Deno's cache
 * (`--cached-only`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const repo = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

async function run(cwd: string, args: string[]): Promise<{ code: number; out: string }> {
  const child = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: {
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: child.code, out: decoder.decode(child.stdout) + decoder.decode(child.stderr) };
}

Deno.test({
  name: "bundle: dist/orion.js trains and resumes from a directory with no repository files",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "orion_bundle_" });
    try {
      const build = await run(repo, [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        "--allow-env",
        "scripts/build_bundle.ts",
        "--out",
        join(dir, "orion.js"),
      ]);
      assert.equal(build.code, 0, build.out);
      const bundle = await Deno.readTextFile(join(dir, "orion.js"));
      assert.match(bundle, /^#!\/usr\/bin\/env -S deno run /);
      assert.match(
        bundle,
        /import\("npm:@lancedb\/lancedb@0\.31\.0"\)/,
        "LanceDB is imported by its pinned npm specifier",
      );
      assert.doesNotMatch(bundle, /from "zod"|from "apache-arrow"/, "no import-map alias is left");
      assert.match(bundle, /@compute @workgroup_size/, "the WGSL shaders are inlined");
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
        "checkpoint_write_worker.js", // worker entries beside the bundle (src/util/worker_module.ts)
        "loader_worker.js",
        "orion.js",
        "ring_stripe_worker.js",
      ]);

      await Deno.writeTextFile(
        join(dir, "tiny.ts"),
        `import { DataConfig, InfraConfig, ModelConfig, POYO, QuerySpec, RunConfig, TrainingConfig } from "./orion.js";
export default RunConfig({
  name: "tiny",
  data: DataConfig({ ursaQuery: QuerySpec({ participants: "*" }), trainWindow: 2, catalogDir: "catalog" }),
  model: ModelConfig({ cls: POYO, kwargs: { dim: 32, depth: 1, dimHead: 8, crossHeads: 1, selfHeads: 2, numLatents: 4 } }),
  training: TrainingConfig({ batchSize: 4, maxSteps: 6, ckptEveryNSteps: 3, valEveryNSteps: 3, logEveryNSteps: 1 }),
  infra: InfraConfig({ accelerator: "cpu-software" }),
});
`,
      );
      const orion = (...args: string[]) =>
        run(dir, [
          "run",
          "--no-config",
          "--cached-only",
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
          "--allow-env",
          "--allow-ffi",
          "--allow-sys",
          "--allow-run",
          "orion.js",
          ...args,
        ]);
      const help = await orion("--help");
      assert.equal(help.code, 0, help.out);
      for (const command of ["train", "resume", "eval", "dashboard", "data"]) {
        assert.match(help.out, new RegExp(`\\b${command}\\b`));
      }

      const demo = await orion(
        "data",
        "demo",
        "--participants",
        "6",
        "--minutes",
        "1",
        "--catalog",
        "catalog",
      );
      assert.equal(demo.code, 0, demo.out);
      assert.match(demo.out, /36 recordings/);

      const trained = await orion("train", "tiny.ts");
      assert.equal(trained.code, 0, trained.out);
      assert.match(trained.out, /finished tiny at step 6/);
      const runDir = join(dir, "runs", "tiny");
      const last = join(runDir, "ckpt-step000000006");
      const firstHash = JSON.parse(await Deno.readTextFile(join(last, "manifest.json"))).checkpointHash;
      const code = JSON.parse(await Deno.readTextFile(join(last, "code_version.json")));
      assert.equal(code.orion.version, JSON.parse(await Deno.readTextFile(join(repo, "deno.json"))).version);
      assert.match(code.git.error, /not loaded from a source checkout/);
      assert.ok((await Deno.stat(join(runDir, "report.html"))).isFile);

      // Resume from step 3: drop the last checkpoint and continue the run by name.
      await Deno.remove(last, { recursive: true });
      const resumed = await orion("resume", "tiny");
      assert.equal(resumed.code, 0, resumed.out);
      assert.match(resumed.out, /resume plan: run tiny from ckpt-step000000003 \(step 3/);
      assert.match(resumed.out, /finished tiny at step 6/);
      const steps = (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).trim().split("\n").map((l) =>
        JSON.parse(l)
      )
        .filter((m) => "loss" in m).map((m) => m.step);
      assert.deepEqual(steps, [1, 2, 3, 4, 5, 6], "every step logged once across the resume");
      const againHash = JSON.parse(await Deno.readTextFile(join(last, "manifest.json"))).checkpointHash;
      assert.equal(againHash, firstHash, "the resumed run ends in the same checkpoint (bit-exact resume)");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
