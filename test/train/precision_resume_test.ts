/**
 * Bit-exact resume of a 16-mixed run end to end (`orion verify-resume`, a checkpoint every step, a kill
 * and `orion resume`): the grad scaler's state goes through `grad_scaler/state.json` and the final weights
 * match an uninterrupted run byte for byte. Also checks the metrics log carries `loss_scale` and
 * `skipped_steps`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { main, recordingIO } from "../../mod.ts";
import { readMetrics } from "../../src/checkpoint/metrics_log.ts";
import type { VerifyResumeReport } from "../../src/checkpoint/verify_resume.ts";
import { tinyRunSetup } from "../checkpoint/fixtures/tiny_run.ts";

for (const precision of ["16-mixed", "bf16-mixed"] as const) {
  Deno.test({
    name:
      `${precision} resume: kill and resume → bit-identical final weights (grad scaler state checkpointed)`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      Deno.env.set("XDG_RUNTIME_DIR", Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp");
      const { root, config } = await tinyRunSetup("orion_precision_resume_test_");
      try {
        const work = join(root, "work");
        const io = recordingIO();
        const code = await main(
          [
            "verify-resume",
            config,
            "--steps",
            "6",
            "--kills",
            "2",
            "--seed",
            "6", // kills: after step 3, then during the checkpoint write of step 5
            "--ckpt-every",
            "1",
            "--keep",
          ]
            .concat(["--set", `training.precision=${precision}`, "--work-dir", work, "--json"])
            // 16-mixed: the configured scaler grows the scale after 4 clean steps, so the kills land
            // before and after a growth (bf16-mixed ignores the scaler settings).
            .concat([
              "--set",
              "training.gradScaler.growthInterval=4",
              "--set",
              "training.gradScaler.initScale=1024",
            ]),
          { cwd: root, io },
        );
        const report: VerifyResumeReport = JSON.parse(io.stdout.join("\n"));
        assert.equal(code, 0, `verify-resume reported a difference: ${io.text()}`);
        assert.equal(report.identical, true);
        const summary = report.resumed.attempts.map((a) =>
          `${a.kill?.mode ?? "-"}@${a.kill?.step ?? "-"}: ${
            a.killed ? "killed" : `exit ${a.exitCode}`
          } from ${a.resumedFromStep ?? "scratch"}`
        ).join("; ");
        console.log(`${precision} verify-resume: ${summary}`);
        assert.ok(report.killsPerformed >= 1, `a kill landed: ${summary}`);
        assert.ok(
          report.resumed.attempts.some((a) => a.resumedFromStep !== null && a.resumedFromStep > 0),
          `a process resumed from a checkpoint: ${summary}`,
        );
        const { entries } = await readMetrics(report.resumed.runDir);
        const train = entries.filter((e) => typeof e.loss === "number");
        assert.equal(train.length, 6);
        if (precision === "bf16-mixed") {
          assert.ok(
            !report.comparedFiles.includes("grad_scaler/state.json"),
            "bf16-mixed has no loss scaling",
          );
          assert.ok(train.every((e) => e.loss_scale === undefined));
          return;
        }
        assert.ok(
          report.comparedFiles.includes("grad_scaler/state.json"),
          "the grad scaler state is compared",
        );
        const state = JSON.parse(
          await Deno.readTextFile(
            join(report.resumed.runDir, "ckpt-step000000006", "grad_scaler", "state.json"),
          ),
        );
        // initScale 1024 from the config, ×2 after the 4th clean step, 2 clean steps since.
        assert.equal(state.scale, 2048);
        assert.equal(state.skippedSteps, 0);
        assert.equal(state.growthTracker, 2);
        assert.equal(state.growthInterval, 4);
        assert.deepEqual(
          train.map((e) => [e.step, e.loss_scale, e.skipped_steps]),
          [[1, 1024, 0], [2, 1024, 0], [3, 1024, 0], [4, 2048, 0], [5, 2048, 0], [6, 2048, 0]],
        );
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    },
  });
}
