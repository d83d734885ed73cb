/**
 * Orion imported by URL from another Deno project: the repository is served over HTTP on loopback, a
 * temporary project (its own deno.json with the npm import map of docs/library.md, no access to the
 * repository's files) imports `http://127.0.0.1:<port>/mod.ts`, builds a small demo catalog, trains a tiny
 * POYO for a few steps and queries the catalog. npm packages come from Deno's npm cache: the test checks that
 * Deno downloaded nothing but the served modules.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serveDirectory } from "./static_server.ts";

const repo = new URL("../../", import.meta.url).pathname;

async function denoInfo(): Promise<{ npmCache: string }> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The consumer's import map: the npm entries of the repository's deno.json (what docs/library.md lists). */
async function npmImportMap(): Promise<Record<string, string>> {
  const config = JSON.parse(await Deno.readTextFile(join(repo, "deno.json")));
  return Object.fromEntries(
    Object.entries(config.imports as Record<string, string>).filter(([alias, target]) =>
      target.startsWith("npm:") && alias !== "playwright-core"
    ),
  );
}

Deno.test({
  name: "library by URL: a separate project imports http://127.0.0.1:<port>/mod.ts and trains a few steps",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const server = await serveDirectory(repo);
    const project = await Deno.makeTempDir({ prefix: "orion_url_import_" });
    try {
      // A DENO_DIR of its own (remote modules are cached per URL) whose npm cache is the machine's.
      const denoDir = join(project, ".deno_dir");
      await Deno.mkdir(denoDir);
      await Deno.symlink((await denoInfo()).npmCache, join(denoDir, "npm"));
      await Deno.writeTextFile(
        join(project, "deno.json"),
        JSON.stringify({ imports: await npmImportMap(), nodeModulesDir: "none", lock: false }, null, 2),
      );
      const mod = `${server.origin}/mod.ts`;
      await Deno.writeTextFile(
        join(project, "main.ts"),
        `import {
  buildDemoCatalog, DataConfig, InfraConfig, ModelConfig, POYO, QuerySpec, queryCheckpoints, queryRuns, RunConfig,
  train, TrainingConfig,
} from "${mod}";
const catalogDir = "${project}/catalog";
const demo = await buildDemoCatalog({ catalogDir, participants: 6, minutes: 1 });
const outcome = await train(RunConfig({
  name: "by_url",
  runsDir: "runs",
  data: DataConfig({ ursaQuery: QuerySpec({ participants: "*" }), trainWindow: 2, catalogDir }),
  model: ModelConfig({ cls: POYO, kwargs: { dim: 32, depth: 1, dimHead: 8, crossHeads: 1, selfHeads: 2, numLatents: 4 } }),
  training: TrainingConfig({ batchSize: 4, maxSteps: 4, ckptEveryNSteps: 2, valEveryNSteps: 2, logEveryNSteps: 1 }),
  infra: InfraConfig({ accelerator: "cpu-software" }),
}), { quiet: true });
const runs = await queryRuns({ catalogDir });
const checkpoints = await queryCheckpoints({ catalogDir, run: "by_url" });
console.log(JSON.stringify({ demo, outcome, runs, checkpoints }));
`,
      );
      const child = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          `--allow-import=${new URL(server.origin).host}`,
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-ffi",
          "--allow-sys",
          "--allow-run",
          "main.ts",
        ],
        cwd: project,
        env: {
          DENO_DIR: denoDir,
          XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
          DENO_NO_UPDATE_CHECK: "1",
          NO_COLOR: "1",
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(child.stdout), stderr = new TextDecoder().decode(child.stderr);
      assert.equal(child.code, 0, `consumer failed:\n${stderr}\n${stdout}`);
      const downloads = stderr.split("\n").filter((l) => /Download\s/.test(l));
      assert.ok(downloads.length > 0, "the modules were fetched over HTTP");
      assert.deepEqual(
        downloads.filter((l) => !l.includes(server.origin)),
        [],
        "nothing came from elsewhere (npm: cache)",
      );
      const result = JSON.parse(stdout.trim().split("\n").pop()!);
      assert.equal(result.demo.recordings, 36);
      assert.equal(result.outcome.status, "finished");
      assert.equal(result.outcome.step, 4);
      assert.equal(result.outcome.runDir, join(project, "runs", "by_url"));
      assert.ok(
        Number.isFinite(result.outcome.metrics.loss) && Number.isFinite(result.outcome.metrics.val_loss),
      );
      assert.deepEqual(result.runs.map((r: { name: string; status: string }) => [r.name, r.status]), [
        ["by_url", "finished"],
      ]);
      assert.deepEqual(result.checkpoints.map((c: { step: number }) => c.step), [2, 4]);
      // The run record is complete, including the static report, and the code version says where Orion came from.
      const runDir = join(project, "runs", "by_url");
      const report = await Deno.readTextFile(join(runDir, "report.html"));
      assert.match(report, /data-chart="loss" data-points="4"/);
      const code = JSON.parse(
        await Deno.readTextFile(join(result.outcome.checkpoint.dir, "code_version.json")),
      );
      assert.equal(code.orion.name, "@orion/orion");
      assert.match(code.git.error, new RegExp(`not loaded from a source checkout \\(${server.origin}/`));
      // Everything came over HTTP: modules, shaders and deno.json; nothing outside the package was asked for.
      assert.ok(server.requested.includes("/mod.ts"));
      assert.ok(server.requested.some((p) => p.startsWith("/shaders/") && p.endsWith(".wgsl")));
      assert.ok(server.requested.includes("/deno.json"));
      const outside = server.requested.filter((p) =>
        !/^\/(mod\.ts|deno\.json|src\/.+\.ts|shaders\/.+\.wgsl)$/.test(p)
      );
      assert.deepEqual(outside, [], "only modules, shaders and deno.json are fetched");
    } finally {
      await server.close();
      await Deno.remove(project, { recursive: true });
    }
  },
});
