import { Gpu } from "../src/gpu/gpu.ts";
import { Trainer } from "../src/train/trainer.ts";
import { syntheticBatch } from "../src/train/synthetic_batch.ts";
import { tinyKwargs, tinySettings, tinyShape, tinyVocab } from "../test/train/tiny_setup.ts";
const gpu = await Gpu.create();
const t = new Trainer(gpu, tinyKwargs, tinyVocab, tinySettings());
const batch = syntheticBatch(tinyShape, 1);
console.log("params", t.model.params.count, "tokens", batch.numTokens);
const t0 = performance.now();
for (let i = 0; i < 30; i++) await t.trainStep([batch]);
const m = await t.flushMetrics();
console.log(m.map((x) => x.loss.toFixed(3)).join(" "));
console.log(
  "ms/step",
  (performance.now() - t0) / 30,
  "dispatches/step",
  gpu.counters.dispatchesLastSubmit,
  "kernels",
  gpu.pipelines.size,
);
