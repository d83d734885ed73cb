/**
 * POYO against the f64 reference: logits and loss, and gradients against central finite differences
 * of the reference loss (sampled entries of every parameter).
 */
import assert from "node:assert/strict";
import { testGpu } from "../ops/op_harness.ts";
import { POYO, uploadBatch } from "../../src/models/poyo.ts";
import { syntheticBatch } from "../../src/train/synthetic_batch.ts";
import { backward } from "../../src/tensor/autograd.ts";
import { Scope } from "../../src/tensor/tensor.ts";
import { assertClose, REDUCTION } from "../reference/compare.ts";
import { refPoyoLoss } from "../reference/poyo.ts";
import { tinyKwargs, tinyShape, tinyVocab } from "../train/tiny_setup.ts";

Deno.test({
  name: "POYO forward, loss and every parameter's gradient match the f64 reference (tiny shape)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const kwargs = { ...tinyKwargs, depth: 2 };
    const model = new POYO(gpu, kwargs, tinyVocab, { seed: 3 });
    const batch = syntheticBatch({ ...tinyShape, batchSize: 4 }, 9);
    const scope = Scope.begin();
    try {
      const dev = uploadBatch(gpu, model, batch);
      const { loss, logits } = model.loss(dev, { training: false });
      backward(loss);
      const gotLogits = await logits.toArray();
      const gotLoss = (await loss.toArray())[0];
      const weights = new Map(
        [...(await model.params.readValues())].map(([k, v]) => [k, Float64Array.from(v)]),
      );
      const grads = await model.params.readGrads();
      const ref = refPoyoLoss(kwargs, tinyVocab, weights, batch);
      assertClose("POYO logits", gotLogits, ref.logits, REDUCTION);
      assertClose("POYO loss", [gotLoss], [ref.loss], REDUCTION);
      // Gradients: 3 sampled entries of every parameter vs central differences of the f64 loss.
      let checked = 0;
      for (const slot of model.params.slots) {
        const w = weights.get(slot.name)!;
        const g = grads.get(slot.name)!;
        let scale = 0;
        for (const v of g) scale = Math.max(scale, Math.abs(v));
        const picks = [0, Math.floor(slot.size / 2), slot.size - 1];
        // Embedding tables: pick rows that the batch uses so the gradient is nonzero.
        if (slot.name === "unit_emb.weight") {
          picks.splice(0, 3, batch.unit[0] * slot.rowWidth, batch.unit[5] * slot.rowWidth + 1);
        }
        if (slot.name === "session_emb.weight") picks.splice(0, 3, batch.querySession[0] * slot.rowWidth + 2);
        for (const i of picks) {
          const x0 = w[i];
          const h = 1e-5 * Math.max(1, Math.abs(x0));
          w[i] = x0 + h;
          const lp = refPoyoLoss(kwargs, tinyVocab, weights, batch).loss;
          w[i] = x0 - h;
          const lm = refPoyoLoss(kwargs, tinyVocab, weights, batch).loss;
          w[i] = x0;
          const fd = (lp - lm) / (2 * h);
          const err = Math.abs(g[i] - fd);
          const bound = 2e-4 * (Math.abs(fd) + scale) + 1e-8;
          assert.ok(
            err <= bound,
            `gradient of ${slot.name}[${i}]: GPU ${g[i]} vs finite differences ${fd} (err ${
              err.toExponential(3)
            } > ${bound.toExponential(3)})`,
          );
          checked++;
        }
      }
      assert.ok(checked > 80, `checked ${checked} gradient entries`);
    } finally {
      scope.end();
    }
  },
});
