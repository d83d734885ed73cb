/**
 * The contract's numerics dump: one forward/backward of a batch (dropout off, f32) written as one
 * safetensors file with the weights under their contract names, the batch, the logits, the loss and
 * every gradient — what `scripts/reference/poyo_torch.py compare` checks against PyTorch.
 *
 * @module
 */
import { type SafetensorsTensorInput, serializeSafetensors } from "../checkpoint/safetensors.ts";
import type { PoyoBatch } from "../data/batch.ts";
import { type POYO, uploadBatch } from "../models/poyo.ts";
import { backward } from "../tensor/autograd.ts";
import { Scope } from "../tensor/tensor.ts";

const SNAKE: Record<string, string> = {
  dim: "dim",
  depth: "depth",
  dimHead: "dim_head",
  crossHeads: "cross_heads",
  selfHeads: "self_heads",
  numLatents: "num_latents",
  latentStep: "latent_step",
  patch: "patch",
  tMin: "t_min",
  tMax: "t_max",
  ffnDropout: "ffn_dropout",
  linDropout: "lin_dropout",
  atnDropout: "atn_dropout",
  numClasses: "num_classes",
};

/** The dump's tensors and metadata (gradients are computed into the model's gradient buffer, then cleared). */
export async function numericsDump(
  model: POYO,
  batch: PoyoBatch,
): Promise<{ tensors: Record<string, SafetensorsTensorInput>; metadata: Record<string, string> }> {
  const gpu = model.gpu;
  const store = model.params;
  const tensors: Record<string, SafetensorsTensorInput> = {};
  const weights = await store.readValues();
  store.zeroGrads();
  const scope = Scope.begin();
  let logits: Float32Array, loss: Float32Array;
  try {
    const dev = uploadBatch(gpu, model, batch);
    const out = model.loss(dev, { training: false });
    backward(out.loss);
    logits = (await out.logits.toArray()) as Float32Array;
    loss = (await out.loss.toArray()) as Float32Array;
  } finally {
    scope.end();
  }
  const grads = await store.readGrads();
  store.zeroGrads();
  gpu.submit();
  for (const s of store.slots) {
    tensors[s.name] = { dtype: "F32", shape: s.shape, data: weights.get(s.name)! };
    tensors[`grad.${s.name}`] = { dtype: "F32", shape: s.shape, data: grads.get(s.name)! };
  }
  const { batchSize: b, numTokens: n, patch: p, numQueries: q } = batch;
  const put = (name: string, dtype: "F32" | "I32", shape: number[], data: ArrayBufferView) =>
    tensors[name] = { dtype, shape, data };
  put("batch.value", "F32", [b, n, p], batch.value);
  put("batch.unit", "I32", [b, n], batch.unit);
  put("batch.modality", "I32", [b, n], batch.modality);
  put("batch.time", "F32", [b, n], batch.time);
  put("batch.kv_len", "I32", [b], batch.kvLen);
  put("batch.latent_time", "F32", [batch.latentTime.length], batch.latentTime);
  put("batch.query_session", "I32", [b, q], batch.querySession);
  put("batch.query_time", "F32", [b, q], batch.queryTime);
  put("batch.label", "I32", [b, q], batch.label);
  put("batch.weight", "F32", [b, q], batch.weight);
  put("out.logits", "F32", [b, q, model.kwargs.numClasses], logits);
  put("out.loss", "F32", [], loss.subarray(0, 1));
  const snake: Record<string, unknown> = {};
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(model.kwargs)) {
    const name = SNAKE[k] ?? k;
    snake[name] = v;
    metadata[`kwarg.${name}`] = String(v);
  }
  metadata.kwargs = JSON.stringify(snake);
  metadata.modalities = JSON.stringify(model.vocab.modalities);
  metadata.channel_vocabulary = JSON.stringify(model.vocab.channels);
  metadata.session_vocabulary = JSON.stringify(model.vocab.sessions);
  metadata.format = "orion.numerics_dump.v1";
  return { tensors, metadata };
}

/** Writes {@linkcode numericsDump} to `path`. */
export async function writeNumericsDump(path: string, model: POYO, batch: PoyoBatch): Promise<void> {
  const { tensors, metadata } = await numericsDump(model, batch);
  await Deno.writeFile(path, serializeSafetensors(tensors, metadata));
}
