/** The contract's numerics dump: names, shapes, metadata, and values consistent with the model. */
import assert from "node:assert/strict";
import { testGpu } from "../ops/op_harness.ts";
import { POYO } from "../../src/models/poyo.ts";
import { numericsDump } from "../../src/train/numerics_dump.ts";
import { parseSafetensors, serializeSafetensors } from "../../src/checkpoint/safetensors.ts";
import { syntheticBatch } from "../../src/train/synthetic_batch.ts";
import { refPoyoLoss } from "../reference/poyo.ts";
import { tinyKwargs, tinyShape, tinyVocab } from "./tiny_setup.ts";

Deno.test({
  name: "numerics dump: weights, batch.*, out.* and grad.* for every parameter, kwargs in __metadata__",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const model = new POYO(gpu, tinyKwargs, tinyVocab, { seed: 1 });
    const batch = syntheticBatch({ ...tinyShape, batchSize: 3 }, 4);
    const { tensors, metadata } = await numericsDump(model, batch);
    const parsed = parseSafetensors(serializeSafetensors(tensors, metadata));
    for (const s of model.params.slots) {
      assert.deepEqual(parsed.tensors[s.name].shape, s.shape);
      assert.deepEqual(parsed.tensors[`grad.${s.name}`].shape, s.shape);
    }
    for (
      const k of [
        "value",
        "unit",
        "modality",
        "time",
        "kv_len",
        "latent_time",
        "query_session",
        "query_time",
        "label",
        "weight",
      ]
    ) {
      assert.ok(parsed.tensors[`batch.${k}`], `batch.${k}`);
    }
    assert.deepEqual(parsed.tensors["out.logits"].shape, [3, 1, 3]);
    assert.deepEqual(parsed.tensors["out.loss"].shape, []);
    const kwargs = JSON.parse(parsed.metadata.kwargs);
    assert.equal(kwargs.dim_head, tinyKwargs.dimHead);
    assert.equal(parsed.metadata["kwarg.num_latents"], String(tinyKwargs.numLatents));
    assert.deepEqual(JSON.parse(parsed.metadata.modalities), tinyVocab.modalities);
    // The dumped loss is the model's loss (dropout off) on the dumped weights and batch.
    const weights = new Map(
      model.params.slots.map((s) => [s.name, Float64Array.from(parsed.tensors[s.name].data as Float32Array)]),
    );
    const ref = refPoyoLoss(tinyKwargs, tinyVocab, weights, batch);
    const loss = (parsed.tensors["out.loss"].data as Float32Array)[0];
    assert.ok(
      Math.abs(loss - ref.loss) <= 1e-4 * Math.abs(ref.loss),
      `dumped loss ${loss} vs reference ${ref.loss}`,
    );
  },
});
