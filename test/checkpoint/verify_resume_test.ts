/**
 * `verify-resume` itself: the kill plan, the metrics-log check, usage errors, and that a real difference
 * between the runs is reported (exit 1) — so the bit-exact verdict of `test/train/resume_test.ts` can fail.
 */
import assert from "node:assert/strict";
import { main, recordingIO } from "../../mod.ts";
import {
  checkResumedMetrics,
  planKills,
  verifyResume,
  type VerifyResumeReport,
} from "../../src/checkpoint/verify_resume.ts";
import { tinyRunSetup } from "./fixtures/tiny_run.ts";

Deno.test("planKills: distinct increasing steps in [1, N-1], at least one during a checkpoint write, seeded", () => {
  for (let seed = 0; seed < 50; seed++) {
    const plan = planKills(20, 4, seed);
    assert.equal(plan.length, 4);
    assert.ok(plan.every((k, i) => k.step >= 1 && k.step <= 19 && (i === 0 || k.step > plan[i - 1].step)));
    assert.ok(plan.some((k) => k.mode === "checkpoint-write"));
    assert.ok(plan.every((k) => k.timeFraction > 0 && k.timeFraction < 1));
    assert.deepEqual(planKills(20, 4, seed), plan, "deterministic in the seed");
  }
  assert.notDeepEqual(planKills(50, 3, 1), planKills(50, 3, 2));
  assert.deepEqual(planKills(5, 4, 0).map((k) => k.step), [1, 2, 3, 4]);
  assert.throws(() => planKills(5, 5, 0), /Cannot plan 5 kills in a run of 5 steps/);
});

Deno.test("checkResumedMetrics: duplicates, gaps, repeated validations and changed values are found", () => {
  const ref = [1, 2, 3].map((step) => ({ step, loss: step / 10, grad_norm: 1, lr: 0.1 }));
  assert.deepEqual(checkResumedMetrics(ref, [...ref, { step: 3, val_loss: 1 }], 3), {
    duplicateSteps: [],
    missingSteps: [],
    duplicateValSteps: [],
    mismatchedSteps: [],
  });
  const bad = [
    ref[0],
    ref[1],
    ref[1],
    { step: 2, val_loss: 1 },
    { step: 2, val_loss: 1 },
    { ...ref[2], loss: 0.30000001 },
  ];
  const check = checkResumedMetrics(ref, bad, 4);
  assert.deepEqual(check.duplicateSteps, [2]);
  assert.deepEqual(check.missingSteps, [4]);
  assert.deepEqual(check.duplicateValSteps, [2]);
  assert.deepEqual(check.mismatchedSteps, [3]);
});

Deno.test("orion verify-resume: usage errors exit 2 before anything runs", async () => {
  for (
    const [args, pattern] of [
      [["verify-resume", "x.ts"], /without --steps N/],
      [["verify-resume", "x.ts", "--steps", "1"], /--steps as it must be an integer ≥ 2/],
      [["verify-resume", "x.ts", "--steps", "4", "--kills", "4"], /Cannot plan 4 kills in 4 steps/],
      [["verify-resume", "--steps", "4"], /exactly one config file/],
    ] as const
  ) {
    const io = recordingIO();
    assert.equal(await main([...args], { cwd: Deno.cwd(), io }), 2, io.text());
    assert.match(io.text(), pattern);
  }
});

Deno.test({
  name: "verify-resume reports a real difference: the interrupted run trained with another learning rate",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    Deno.env.set("XDG_RUNTIME_DIR", Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp");
    const { root, config } = await tinyRunSetup("orion_verify_resume_diff_");
    try {
      const report: VerifyResumeReport = await verifyResume({
        config,
        steps: 6,
        kills: 0,
        cwd: root,
        setInterruptedOnly: ["training.lr=0.002"],
      });
      assert.equal(report.identical, false);
      assert.ok(
        report.differingFiles.includes("model/weights.safetensors"),
        report.differingFiles.join(", "),
      );
      assert.notEqual(report.reference.weightsSha256, report.resumed.weightsSha256);
      assert.ok(
        report.differingTensors.some((t) => t.file === "model/weights.safetensors" && t.maxAbsDiff > 0),
      );
      assert.ok(report.metrics.mismatchedSteps.length > 0, "the logged losses/lr differ too");
      assert.equal(report.workDir, null, "the work directory is removed without --keep");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
