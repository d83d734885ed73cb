/**
 * `orion pipeline` killed with SIGKILL during stage 2 (a real subprocess, after stage 2's first checkpoint)
 * and run again: stage 1 is skipped, stage 2 resumes from its latest valid checkpoint and finishes.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { listCheckpointDirs, readCheckpoint } from "../../src/checkpoint/checkpoint_reader.ts";
import { readRunRecord } from "../../src/train/run_record.ts";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import { recordingIO } from "../../src/cli/cli_io.ts";
import { main } from "../../src/cli/main.ts";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function pipelineModule(root: string): string {
  const mod = pathToFileURL(join(REPO, "mod.ts")).href;
  return `import { FinetuneFrom, POYO, RunConfig, TrainingPipeline } from ${JSON.stringify(mod)};
const catalogDir = ${JSON.stringify(join(root, "catalog"))};
const model = { cls: POYO, kwargs: { dim: 32, depth: 1, dimHead: 8, numLatents: 4, crossHeads: 1, selfHeads: 2 } };
const infra = { accelerator: "cpu-software" };
const pre = RunConfig({
  name: "pre", model, infra,
  data: { catalogDir, ursaQuery: { participants: "*", excludeParticipants: ["p006"] }, trainWindow: 2 },
  training: { batchSize: 4, maxSteps: 4, valEveryNSteps: 2, ckptEveryNSteps: 2, logEveryNSteps: 1 },
});
const ft = RunConfig({
  name: "ft", model, infra,
  data: { catalogDir, ursaQuery: { participants: ["p006"] }, trainWindow: 2 },
  initFrom: FinetuneFrom({ run: pre, checkpoint: "last", weightOverrides: ["readout"] }),
  training: { batchSize: 4, maxSteps: 40, valEveryNSteps: null, keepBestK: 0, ckptEveryNSteps: 2, logEveryNSteps: 1 },
});
export default TrainingPipeline({ name: "killed", stages: [pre, ft] });
`;
}

Deno.test({
  name: "pipeline: SIGKILL during stage 2, then a rerun skips stage 1 and resumes stage 2",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "orion_pipeline_kill_" });
    try {
      const catalog = await openCatalog(join(root, "catalog"));
      await generateDemoCorpus(catalog, { participants: 6, minutes: 1, filesDir: join(root, "files") });
      catalog.close();
      const file = join(root, "pipeline.ts");
      await Deno.writeTextFile(file, pipelineModule(root));
      const ftDir = join(root, "runs", "ft");

      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-ffi",
          "--allow-sys",
          "--allow-run",
          "--config",
          join(REPO, "deno.json"),
          join(REPO, "mod.ts"),
          "pipeline",
          file,
        ],
        cwd: root,
        env: { XDG_RUNTIME_DIR: "/tmp" },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const decoder = new TextDecoder();
      let output = "";
      const drain = async (stream: ReadableStream<Uint8Array>) => {
        for await (const chunk of stream) output += decoder.decode(chunk);
      };
      const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
      let exited = false;
      const status = child.status.then((s) => (exited = true, s));
      const deadline = Date.now() + 240_000;
      while (!exited && Date.now() < deadline) {
        const written = (await listCheckpointDirs(ftDir)).filter((e) => e.step >= 2);
        if (written.length > 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.ok(!exited, `the pipeline ended before stage 2 wrote a checkpoint:\n${output}`);
      child.kill("SIGKILL");
      assert.equal((await status).signal, "SIGKILL");
      await drained;

      const killed = await readRunRecord(ftDir);
      assert.ok(
        killed && killed.status === "running" && killed.step < 40,
        `stage 2 was not mid-run: ${JSON.stringify(killed)}`,
      );
      assert.equal((await readRunRecord(join(root, "runs", "pre")))?.status, "finished");

      const io = recordingIO();
      const code = await main(["pipeline", file], { cwd: root, io });
      const text = io.text();
      assert.equal(code, 0, text);
      assert.match(text, /stage 1\/2 pre: finished at step 4 with the same config: skipped/);
      assert.match(
        text,
        /stage 2\/2 ft: running at step \d+ with the same config: resumes from its latest valid checkpoint/,
      );
      assert.match(text, /resume plan: run ft from ckpt-step0+[1-9]\d*/);
      assert.match(text, /pipeline killed: all 2 stage\(s\) finished/);
      const done = await readRunRecord(ftDir);
      assert.equal(done?.status, "finished");
      assert.equal(done?.step, 40);
      const last = await readCheckpoint((await listCheckpointDirs(ftDir))[0].dir);
      assert.equal(last.step, 40);
      assert.equal(last.state.lineage.parentRun, "pre");
      assert.equal(last.state.lineage.stepsConsumed, 44);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
