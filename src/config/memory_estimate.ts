/**
 * Memory estimate of a POYO training process (one GPU), from the model contract's parameter table
 * (`../shared/spec/poyo.md`): parameters, gradients, optimizer state, EMA, activations kept for the backward
 * pass, the attention workspace of the largest layer, the input batch, and the largest single buffer (which
 * must fit the adapter's `maxStorageBufferBindingSize`; parameters, gradients and optimizer moments each sit in
 * one flat buffer, as `src/tensor/parameters.ts` lays them out).
 *
 * The activation and workspace figures are upper-bound estimates: attention scores are counted as a full
 * `[B, heads, queries, keys]` f32 matrix per layer (a flash-style kernel needs less), one layer at a time.
 * Attention layers that take the materialized path (src/ops/attention_selection.ts: the score matrix is at
 * most `MATERIALIZED_ATTENTION_MAX_BYTES`) also keep their probabilities P for the backward pass, and the
 * backward allocates dP/dS of the same size; both are counted for every such layer
 * (`attentionProbabilities`), since a step's buffers return to the pool only when the step ends.
 *
 * @module
 */
import { attentionScoreBytes, chooseAttentionImplementation } from "../ops/attention_selection.ts";

/** One parameter tensor of the contract (safetensors name and shape). */
export interface ParameterTensor {
  /** Safetensors name. */
  name: string;
  /** Shape. */
  shape: number[];
}

/** POYO kwargs the estimate reads (camelCase contract names; `latentStep` resolved). */
export interface PoyoSizeKwargs {
  /** Model width D. */
  dim: number;
  /** Latent self-attention layers. */
  depth: number;
  /** Per-head width. */
  dimHead: number;
  /** Cross-attention heads. */
  crossHeads: number;
  /** Self-attention heads. */
  selfHeads: number;
  /** Latents per latent step M. */
  numLatents: number;
  /** Latent spacing, seconds. */
  latentStep: number;
  /** Samples per token P. */
  patch: number;
  /** Readout width C (default: from the data layout). */
  numClasses?: number;
}

/** Sizes that come from the data (vocabularies, modalities, tokens per window, classes). */
export interface DataLayout {
  /** Padded tokens per window N. */
  tokensPerWindow: number;
  /** Channel vocabulary size V_u (including the padding row 0). */
  unitVocabSize: number;
  /** Session vocabulary size V_s (including the padding row 0). */
  sessionVocabSize: number;
  /** Modality names (one `value_map.<modality>` each). */
  modalities: string[];
  /** Readout width C. */
  numClasses: number;
  /** Queries per window Q. */
  numQueries: number;
}

/**
 * The parameter tensors of POYO, exactly as the contract's table lists them.
 *
 * @example
 * ```ts
 * import { poyoParameterTable } from "./memory_estimate.ts";
 * const t = poyoParameterTable(
 *   { dim: 64, depth: 6, dimHead: 64, crossHeads: 2, selfHeads: 8, numLatents: 16, latentStep: 0.125, patch: 16 },
 *   { tokensPerWindow: 64, unitVocabSize: 1, sessionVocabSize: 1, modalities: [], numClasses: 1, numQueries: 1 },
 * );
 * console.log(t.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0)); // ≈ 1.25M
 * ```
 */
export function poyoParameterTable(k: PoyoSizeKwargs, layout: DataLayout): ParameterTensor[] {
  const D = k.dim, dh = k.dimHead, hc = k.crossHeads, hs = k.selfHeads, P = k.patch;
  const C = k.numClasses ?? layout.numClasses;
  const t: ParameterTensor[] = [];
  const add = (name: string, ...shape: number[]) => t.push({ name, shape });
  const norm = (prefix: string) => {
    add(`${prefix}.weight`, D);
    add(`${prefix}.bias`, D);
  };
  const ffn = (prefix: string) => {
    norm(`${prefix}.norm`);
    add(`${prefix}.w1.weight`, 8 * D, D);
    add(`${prefix}.w1.bias`, 8 * D);
    add(`${prefix}.w2.weight`, D, 4 * D);
    add(`${prefix}.w2.bias`, D);
  };
  const cross = (prefix: string) => {
    norm(`${prefix}.norm`);
    norm(`${prefix}.norm_context`);
    add(`${prefix}.to_q.weight`, hc * dh, D);
    add(`${prefix}.to_kv.weight`, 2 * hc * dh, D);
    add(`${prefix}.to_out.weight`, D, hc * dh);
    add(`${prefix}.to_out.bias`, D);
  };
  add("unit_emb.weight", layout.unitVocabSize, D / 2);
  for (const m of [...layout.modalities].sort()) {
    add(`value_map.${m}.weight`, D / 2, P);
    add(`value_map.${m}.bias`, D / 2);
  }
  add("session_emb.weight", layout.sessionVocabSize, D);
  add("latent_emb.weight", k.numLatents, D);
  cross("enc_atn");
  ffn("enc_ffn");
  for (let i = 0; i < k.depth; i++) {
    norm(`proc.${i}.atn.norm`);
    add(`proc.${i}.atn.to_qkv.weight`, 3 * hs * dh, D);
    add(`proc.${i}.atn.to_out.weight`, D, hs * dh);
    add(`proc.${i}.atn.to_out.bias`, D);
    ffn(`proc.${i}.ffn`);
  }
  cross("dec_atn");
  ffn("dec_ffn");
  add("readout.weight", C, D);
  add("readout.bias", C);
  return t;
}

/**
 * Elements of a tensor shape.
 *
 * @example
 * ```ts
 * import { numel } from "./memory_estimate.ts";
 * console.log(numel([64, 3, 16])); // 3072
 * ```
 */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** What the estimate needs from a resolved run config. */
export interface MemoryEstimateInput {
  /** Model size. */
  kwargs: PoyoSizeKwargs;
  /** Data layout (tokens, vocabularies, classes). */
  layout: DataLayout;
  /** Window length S, seconds. */
  trainWindow: number;
  /** Windows per micro-batch per GPU. */
  batchSize: number;
  /** Numeric precision. */
  precision: "32-true" | "16-mixed" | "bf16-mixed";
  /** Optimizer (moments and LAMB scratch). */
  optimizer: "adamw" | "lamb" | "sparse_lamb";
  /** EMA decay; null = no EMA copy. */
  emaDecay: number | null;
  /** FFN dropout (masks kept for the backward pass). */
  ffnDropout?: number;
}

/** Byte counts of one training process. */
export interface MemoryEstimate {
  /** Number of parameters. */
  parameters: number;
  /** Latents L = numLatents × ceil(trainWindow / latentStep). */
  latents: number;
  /** Bytes per component. */
  bytes: {
    /** f32 master weights. */
    parameters: number;
    /** 16-bit weight copy for mixed precision (0 for 32-true). */
    halfPrecisionCopy: number;
    /** f32 gradients. */
    gradients: number;
    /** Optimizer moments (m, v) plus LAMB's per-tensor update scratch. */
    optimizerState: number;
    /** EMA copy of the weights (0 when off). */
    ema: number;
    /**
     * Activations kept for the backward pass, for the whole batch: f32 in every precision (activations live
     * until the end of the step), plus under 16-mixed/bf16-mixed the 16-bit copies of every linear layer's
     * input that the backward matmuls read.
     */
    activations: number;
    /** Attention score matrix of the largest layer (transient, one layer at a time). */
    attentionWorkspace: number;
    /**
     * Score-sized buffers of the attention layers on the materialized path: the saved probabilities P and
     * the backward's dP/dS, 2 · B·heads·queries·keys·4 bytes per layer (0 for layers on the flash path).
     */
    attentionProbabilities: number;
    /** The batch tensors of the contract. */
    inputBatch: number;
    /** Sum of the above. */
    total: number;
  };
  /** Bytes that do not scale with the batch size (weights, gradients, optimizer, EMA). */
  fixedBytes: number;
  /** Bytes per window of batch (activations, workspace, inputs). */
  perSampleBytes: number;
  /** The largest single GPU buffer and what it holds. */
  largestBuffer: { name: string; bytes: number; perSampleBytes: number };
  /** Bytes of one checkpoint on disk (weights, optimizer moments, EMA). */
  checkpointBytes: number;
}

/**
 * Estimates the memory of one POYO training process.
 *
 * @example
 * ```ts
 * import { estimatePoyoMemory, formatBytes } from "./memory_estimate.ts";
 * const e = estimatePoyoMemory({
 *   kwargs: { dim: 64, depth: 2, dimHead: 16, crossHeads: 1, selfHeads: 2, numLatents: 16, latentStep: 0.5, patch: 16 },
 *   layout: { tokensPerWindow: 256, unitVocabSize: 130, sessionVocabSize: 9, modalities: ["eeg"], numClasses: 3, numQueries: 1 },
 *   trainWindow: 4, batchSize: 16, precision: "32-true", optimizer: "adamw", emaDecay: null,
 * });
 * console.log(formatBytes(e.bytes.total));
 * ```
 */
export function estimatePoyoMemory(input: MemoryEstimateInput): MemoryEstimate {
  const k = input.kwargs;
  const { tokensPerWindow: N, numQueries: Q } = input.layout;
  const D = k.dim, dh = k.dimHead, hc = k.crossHeads, hs = k.selfHeads, P = k.patch;
  const C = k.numClasses ?? input.layout.numClasses;
  const L = k.numLatents * Math.ceil(input.trainWindow / k.latentStep - 1e-9);
  const B = input.batchSize;
  const table = poyoParameterTable(k, input.layout);
  const parameters = table.reduce((n, p) => n + numel(p.shape), 0);
  const largestTensor = table.reduce((a, p) => (numel(p.shape) > numel(a.shape) ? p : a), table[0]);
  const mixed = input.precision !== "32-true";
  const act = 4; // activations stay f32 in every precision (src/ops/matmul.ts autocast adds 16-bit copies)

  const ffnElems = (rows: number) => rows * 18 * D; // LN, w1 out (8D), a⊙gelu(g) (4D), dropout mask (4D), w2 out
  const crossElems = (queries: number, keys: number) =>
    keys * (D + 2 * hc * dh) + queries * (D + 2 * hc * dh + hc + D);
  const selfElems = L * (D + 3 * hs * dh + hs * dh + hs + 2 * D);
  const perSampleActivationElems = N * (P + D) + crossElems(L, N) + ffnElems(L) +
    k.depth * (selfElems + ffnElems(L) + L * D) + crossElems(Q, L) + ffnElems(Q) + Q * C;
  // Linear-layer inputs (autocast keeps their 16-bit copies): value maps (P per token and modality), cross
  // attention (normed queries and context, attention output), FFNs (normed input D, gated hidden 4D), self
  // attention (normed input, attention output), readout.
  const M = Math.max(1, input.layout.modalities.length);
  const crossInputs = (queries: number, keys: number) => queries * (D + hc * dh) + keys * D;
  const ffnInputs = (rows: number) => rows * 5 * D;
  const perSampleLinearInputs = N * P * M + crossInputs(L, N) + ffnInputs(L) +
    k.depth * (L * (D + hs * dh) + ffnInputs(L)) + crossInputs(Q, L) + ffnInputs(Q) + Q * D;
  const workspaces = [
    { name: "encoder cross-attention scores [B, crossHeads, L, N] f32", perSample: hc * L * N * 4 },
    {
      name: "latent self-attention scores [B, selfHeads, L, L] f32",
      perSample: k.depth > 0 ? hs * L * L * 4 : 0,
    },
    { name: "decoder cross-attention scores [B, crossHeads, Q, L] f32", perSample: hc * Q * L * 4 },
  ];
  const workspace = workspaces.reduce((a, w) => (w.perSample > a.perSample ? w : a));
  // Every attention layer of one forward: encoder cross-attention, `depth` latent self-attentions, decoder.
  const layers = [
    { heads: hc, lq: L, lk: N, count: 1 },
    { heads: hs, lq: L, lk: L, count: k.depth },
    { heads: hc, lq: Q, lk: L, count: 1 },
  ];
  const attentionProbabilities = layers.reduce((sum, l) => {
    const shape = { batch: B, heads: l.heads, lq: l.lq, lk: l.lk };
    const materialized = chooseAttentionImplementation(shape) === "materialized";
    return sum + (materialized ? 2 * attentionScoreBytes(shape) * l.count : 0);
  }, 0);
  // value f32 + unit, modality, time (4 bytes each) per token; kv_len; per query: session, time, label, weight.
  const inputPerSample = N * (P * 4 + 12) + 4 + Q * 16;

  const bytes = {
    parameters: parameters * 4,
    halfPrecisionCopy: mixed ? parameters * 2 : 0,
    gradients: parameters * 4,
    optimizerState: parameters * 8 + (input.optimizer === "adamw" ? 0 : numel(largestTensor.shape) * 4),
    ema: input.emaDecay === null ? 0 : parameters * 4,
    activations: B * perSampleActivationElems * act + (mixed ? B * perSampleLinearInputs * 2 : 0),
    attentionWorkspace: B * workspace.perSample,
    attentionProbabilities,
    inputBatch: B * inputPerSample,
    total: 0,
  };
  bytes.total = Object.values(bytes).reduce((a, b) => a + b, 0);
  const fixedBytes = bytes.parameters + bytes.halfPrecisionCopy + bytes.gradients + bytes.optimizerState +
    bytes.ema;

  const buffers = [
    // Parameters, gradients and optimizer moments each live in one flat buffer (src/tensor/parameters.ts).
    { name: "flat parameter buffer (every parameter) f32", bytes: parameters * 4, perSampleBytes: 0 },
    {
      name: `parameter ${largestTensor.name} [${largestTensor.shape.join(", ")}] f32`,
      bytes: numel(largestTensor.shape) * 4,
      perSampleBytes: 0,
    },
    { name: workspace.name, bytes: B * workspace.perSample, perSampleBytes: workspace.perSample },
    { name: "input values [B, N, P] f32", bytes: B * N * P * 4, perSampleBytes: N * P * 4 },
    { name: `token activations [B, N, ${D}]`, bytes: B * N * D * act, perSampleBytes: N * D * act },
    {
      name: `encoder keys/values [B, N, ${2 * hc * dh}]`,
      bytes: B * N * 2 * hc * dh * act,
      perSampleBytes: N * 2 * hc * dh * act,
    },
    { name: `FFN hidden [B, L, ${8 * D}]`, bytes: B * L * 8 * D * act, perSampleBytes: L * 8 * D * act },
  ];
  const largestBuffer = buffers.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  return {
    parameters,
    latents: L,
    bytes,
    fixedBytes,
    perSampleBytes: B > 0 ? (bytes.total - fixedBytes) / B : 0,
    largestBuffer,
    checkpointBytes: bytes.parameters + parameters * 8 + bytes.ema,
  };
}

/**
 * Human-readable bytes (binary units), e.g. `1.50 GiB`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./memory_estimate.ts";
 * console.log(formatBytes(3 * 1024 ** 3)); // "3.00 GiB"
 * ```
 */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(2)} ${units[u]}`;
}
