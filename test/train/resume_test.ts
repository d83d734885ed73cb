/**
 * Bit-exact resume, end to end: `orion verify-resume` trains a tiny config on a demo catalog for 12 steps
 * without interruption, then again SIGKILLed at random points (random steps, random times and during
 * checkpoint writes; a checkpoint every step) and continued with `orion resume <run>` after each kill. The
 * test checks the report and re-checks the kept runs itself: the final weights file byte for byte, and
 * every training step logged exactly once. Resuming the finished run afterwards changes nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { main, recordingIO } from "../../mod.ts";
import { readMetrics } from "../../src/checkpoint/metrics_log.ts";
import type { VerifyResumeReport } from "../../src/checkpoint/verify_resume.ts";
import { tinyRunSetup } from "../checkpoint/fixtures/tiny_run.ts";

Deno.test({
  name:
    "resume: kill -9 at random steps, random times and during checkpoint writes → bit-identical final weights",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    Deno.env.set("XDG_RUNTIME_DIR", Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp");
    const { root, config } = await tinyRunSetup("orion_resume_test_");
    try {
      const work = join(root, "work");
      const io = recordingIO();
      const code = await main(
        [
          "verify-resume",
          config,
          "--steps",
          "12",
          "--kills",
          "3",
          "--seed",
          "5",
          "--ckpt-every",
          "1",
          "--keep",
        ]
          .concat(["--work-dir", work, "--json"]),
        { cwd: root, io },
      );
      const report: VerifyResumeReport = JSON.parse(io.stdout.join("\n"));
      const summary = report.resumed.attempts.map((a) =>
        `${a.command} ${a.kill?.mode ?? "-"}@${a.kill?.step ?? "-"}: ${
          a.killed ? "killed" : `exit ${a.exitCode}`
        }${a.killedDuringCheckpointWrite ? " mid-write" : ""} from ${
          a.resumedFromStep ?? "scratch"
        } reached ${a.lastStepReported}`
      ).join("; ");
      console.log(`verify-resume: ${summary}`);
      assert.equal(code, 0, `verify-resume reported a difference: ${io.text()}`);
      assert.equal(report.identical, true);
      assert.ok(report.killsPerformed >= 2, `only ${report.killsPerformed} kill(s) landed: ${summary}`);
      assert.ok(
        report.killsDuringCheckpointWrite >= 1,
        `no kill landed during a checkpoint write: ${summary}`,
      );
      assert.ok(
        report.resumed.attempts.some((a) => a.resumedFromStep !== null && a.resumedFromStep > 0),
        `no process resumed from a checkpoint: ${summary}`,
      );
      assert.ok(report.comparedFiles.includes("model/ema.safetensors"), "the EMA is compared too");

      // Re-check independently of the report: final weights byte for byte, each step logged once.
      const final = (runDir: string) => join(runDir, "ckpt-step000000012", "model", "weights.safetensors");
      const [a, b] = await Promise.all([
        Deno.readFile(final(report.reference.runDir)),
        Deno.readFile(final(report.resumed.runDir)),
      ]);
      assert.equal(a.byteLength, b.byteLength);
      assert.ok(a.every((x, i) => x === b[i]), "final weights.safetensors differ byte-wise");
      const { entries } = await readMetrics(report.resumed.runDir);
      const trainSteps = entries.filter((e) => typeof e.loss === "number").map((e) => e.step);
      assert.deepEqual(
        trainSteps,
        Array.from({ length: 12 }, (_, i) => i + 1),
        "each step logged once, in order",
      );
      const valSteps = entries.filter((e) => typeof e.val_loss === "number").map((e) => e.step);
      assert.deepEqual(valSteps, [5, 10, 12]);

      // Resuming the finished run is a no-op: no new step, no new checkpoint, metrics unchanged.
      const before = await Deno.readTextFile(join(report.resumed.runDir, "metrics.jsonl"));
      const again = recordingIO();
      assert.equal(await main(["resume", report.resumed.runDir], { cwd: root, io: again }), 0, again.text());
      assert.match(again.text(), /already finished at step 12/);
      assert.equal(await Deno.readTextFile(join(report.resumed.runDir, "metrics.jsonl")), before);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
