/**
 * Matmul autotuning in training (`InfraConfig.autotune`, src/train/step_autotune.ts): a run tuned after its
 * first step, one that loaded the cache it wrote, and one with tuning off give bitwise-identical weights;
 * tuning collects the first step's shapes, installs them, and the step is captured again and replayed.
 */
import assert from "node:assert/strict";
import { testGpu } from "../ops/op_harness.ts";
import { Trainer } from "../../src/train/trainer.ts";
import type { AutotuneMode } from "../../src/train/step_autotune.ts";
import { syntheticBatch } from "../../src/train/synthetic_batch.ts";
import { autotuneCachePath } from "../../src/ops/autotune.ts";
import { matmulConfigName, setMatmulTuning, tileConfig } from "../../src/ops/matmul_codegen.ts";
import { trainerSettings } from "../../src/train/train_run.ts";
import { InfraConfig, InfraConfigSchema } from "../../src/config/infra_config.ts";
import { tinyKwargs, tinySettings, tinyShape, tinyVocab } from "./tiny_setup.ts";

/** A tuning-only candidate (never a default) so the tuned run really runs other kernels. */
const SMALL_TILE = tileConfig(32, 32, 16, 4, 4, { buffers: 1 });

async function train(mode: AutotuneMode, home: string, steps = 6) {
  const gpu = await testGpu();
  const lines: string[] = [];
  const trainer = new Trainer(
    gpu,
    tinyKwargs,
    tinyVocab,
    tinySettings({
      seed: 11,
      autotune: {
        mode,
        // Fast on the software adapter: two kernels, ~1 ms targets.
        options: { home, candidates: [SMALL_TILE], targetMs: 1, warmupMs: 1 },
        log: (line) => lines.push(line),
      },
    }),
  );
  const replayed: boolean[] = [];
  for (let i = 0; i < steps; i++) {
    await trainer.trainStep([syntheticBatch(tinyShape, 200 + i)]);
    replayed.push(trainer.lastStepReplayed);
  }
  await trainer.flushMetrics();
  const weights = new Float32Array(
    await gpu.read(trainer.model.params.values, 0, trainer.model.params.totalElements * 4),
  );
  return { weights, report: trainer.autotuneReport, lines, replayed, gpu };
}

Deno.test({
  name: "autotune: tuned after the first step, loaded from the cache, and off → bitwise-identical weights",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const home = await Deno.makeTempDir({ prefix: "orion_step_autotune_" });
    const gpu = await testGpu();
    try {
      setMatmulTuning(gpu, null);
      const off = await train("off", home);
      assert.equal(off.report.loadedShapes, 0);
      assert.equal(off.report.tunedAfterStep, null);
      assert.ok(off.report.stepShapes! > 0, "the first step's shapes are reported in every mode");
      assert.equal(off.lines.length, 0);
      await assert.rejects(Deno.stat(autotuneCachePath(gpu, home)), Deno.errors.NotFound);

      const tuned = await train("tune", home);
      const r = tuned.report;
      assert.equal(r.tunedAfterStep, 1);
      assert.equal(r.timedShapes, r.stepShapes);
      assert.ok(r.timedShapes > 0);
      assert.equal(Object.keys(r.chosen).length, r.stepShapes);
      for (const best of Object.values(r.chosen)) {
        assert.ok([matmulConfigName(SMALL_TILE), "general"].includes(best), best);
      }
      assert.match(
        tuned.lines.join("\n"),
        /autotune: step 1 issues \d+ matmul shapes; timed \d+ \(0 cached\)/,
      );
      // The capture made before tuning is dropped: steps 2–4 record, capture and verify again, then replay.
      assert.deepEqual(tuned.replayed, [false, false, false, false, true, true]);
      const cache = JSON.parse(await Deno.readTextFile(autotuneCachePath(gpu, home)));
      assert.equal(Object.keys(cache.matmul).length, r.stepShapes);

      setMatmulTuning(gpu, null);
      const cached = await train("cached", home);
      assert.equal(cached.report.loadedShapes, r.stepShapes);
      assert.deepEqual(cached.report.chosen, r.chosen, "the cached table runs the tuned kernels");
      assert.match(cached.lines[0], /autotune: loaded \d+ tuned matmul shapes from /);

      // "tune" again: everything is cached, nothing is timed.
      setMatmulTuning(gpu, null);
      const again = await train("tune", home, 2);
      assert.equal(again.report.timedShapes, 0);

      for (const [name, run] of [["tune", tuned], ["cached", cached]] as const) {
        assert.equal(run.weights.length, off.weights.length);
        const differ = run.weights.filter((x, i) => !Object.is(x, off.weights[i])).length;
        assert.equal(differ, 0, `${name}: ${differ} weights differ bitwise from the run with autotune off`);
      }
    } finally {
      setMatmulTuning(gpu, null);
      await Deno.remove(home, { recursive: true });
    }
  },
});

Deno.test("autotune: infra.autotune defaults to cached and reaches the trainer settings", () => {
  assert.equal(InfraConfig().autotune, "cached");
  assert.equal(InfraConfig({ autotune: "tune" }).autotune, "tune");
  assert.equal(InfraConfigSchema.safeParse({ autotune: "always" }).success, false);
  const settings = trainerSettings({
    infra: InfraConfig({ autotune: "off" }),
    training: {
      optimizer: "adamw",
      betas: [0.9, 0.999],
      eps: null,
      weightDecay: 0,
      gradClipNorm: null,
      emaDecay: null,
      scheduler: "constant",
      lr: 1e-3,
      maxSteps: 1,
      warmupSteps: 0,
      seed: 0,
      logEveryNSteps: 1,
      precision: "32-true",
      freezeUntilStep: 0,
    },
  } as never);
  assert.deepEqual(settings.autotune, { mode: "off" });
});

Deno.test({
  name: "autotune: an unreadable cache is moved aside with a warning and training goes on (cached and tune)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    for (const mode of ["cached", "tune"] as const) {
      const home = await Deno.makeTempDir({ prefix: "orion_step_autotune_bad_" });
      try {
        const probe = await testGpu();
        setMatmulTuning(probe, null);
        const path = autotuneCachePath(probe, home);
        await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
        await Deno.writeTextFile(path, "{ not json");
        const run = await train(mode, home, 2);
        assert.ok(
          run.lines.some((l) =>
            l.includes("warning: cannot use the autotune cache") && l.includes("not valid JSON")
          ),
          run.lines.join("\n"),
        );
        assert.equal(run.report.loadedShapes, 0);
        const names = [...Deno.readDirSync(path.slice(0, path.lastIndexOf("/")))].map((e) => e.name);
        assert.ok(names.some((n) => n.includes(".json.unreadable-")), `kept aside: ${names}`);
        if (mode === "tune") {
          // A fresh cache was written by the tuning after the first step.
          assert.ok(JSON.parse(await Deno.readTextFile(path)).matmul, "fresh cache");
        } else {
          await assert.rejects(() => Deno.stat(path), Deno.errors.NotFound);
        }
        setMatmulTuning(run.gpu, null);
      } finally {
        await Deno.remove(home, { recursive: true });
      }
    }
  },
});
