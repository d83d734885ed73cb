/**
 * POYO for continuous signals — exactly the contract of `../shared/spec/poyo.md`: value-patch tokens with
 * channel embeddings, latents laid out in time, a rotary cross-attention encoder, `depth` rotary
 * self-attention layers, session-embedding decoder queries, GEGLU feed-forwards and a linear readout.
 *
 * @module
 */
import type { Gpu } from "../gpu/gpu.ts";
import type { PoyoBatch } from "../data/batch.ts";
import { registerModelClass } from "./model_class.ts";
import { PoyoKwargsSchema, type ResolvedPoyoKwargs } from "./poyo_kwargs.ts";
import { type ParameterSpec, ParameterStore } from "../tensor/parameters.ts";
import { currentScope, type HalfDType, type Scope, Tensor } from "../tensor/tensor.ts";
import { noGrad } from "../tensor/autograd.ts";
import { castTo } from "../ops/cast.ts";
import {
  add,
  concat,
  crossEntropy,
  dropout,
  embedding,
  type EmbeddingIndices,
  gatherIndex,
  geglu,
  layerNorm,
  linear,
  mul,
  reshape,
} from "../ops/mod.ts";
import { rotaryAttention } from "../ops/attention.ts";

/** Vocabularies stored beside the weights; index 0 of each is the padding word. */
export interface PoyoVocabulary {
  /** Channel words such as `p042/Fz`. */
  channels: string[];
  /** Session words. */
  sessions: string[];
  /** Sorted modality names (`value_map.<modality>`). */
  modalities: string[];
}

/** The batch on the GPU, uploaded once per step by {@linkcode uploadBatch}. */
export interface DeviceBatch {
  batchSize: number;
  numTokens: number;
  numQueries: number;
  numLatents: number; // L
  value: Tensor; // [B·N, P]
  unit: EmbeddingIndices; // [B·N]
  modalityMask: Tensor[]; // per modality: [B·N, 1]
  time: Tensor; // [B, N]
  kvLen: Tensor; // [B] i32
  latentTime: Tensor; // [L]
  latentIndex: EmbeddingIndices; // [B·L]: j mod M
  latentKvLen: Tensor; // [B] i32 = L
  querySession: EmbeddingIndices; // [B·Q]
  queryTime: Tensor; // [B, Q]
  label: Tensor; // [B·Q] i32
  weight: Tensor; // [B·Q] f32
}

/** Forward options. */
export interface ForwardOptions {
  /** Dropout on (training) or off (evaluation, numerics dump). */
  training: boolean;
  /**
   * Index of the micro-batch within an optimizer step (gradient accumulation): part of every dropout
   * mask's stream, so micro-batches of one step draw different masks. Default 0.
   */
  microBatch?: number;
}

/** Parameter declarations of the contract, in a fixed order. */
export function poyoParameterSpecs(k: ResolvedPoyoKwargs, vocab: PoyoVocabulary): ParameterSpec[] {
  const d = k.dim;
  const linearSpec = (name: string, out: number, inF: number, bias = true): ParameterSpec[] => {
    const bound = 1 / Math.sqrt(inF);
    const specs: ParameterSpec[] = [{
      name: `${name}.weight`,
      shape: [out, inF],
      init: { kind: "uniform", bound },
    }];
    if (bias) specs.push({ name: `${name}.bias`, shape: [out], init: { kind: "uniform", bound } });
    return specs;
  };
  const norm = (name: string): ParameterSpec[] => [
    { name: `${name}.weight`, shape: [d], init: { kind: "ones" } },
    { name: `${name}.bias`, shape: [d], init: { kind: "zeros" } },
  ];
  const ffn = (name: string): ParameterSpec[] => [
    ...norm(`${name}.norm`),
    ...linearSpec(`${name}.w1`, 8 * d, d),
    ...linearSpec(`${name}.w2`, d, 4 * d),
  ];
  const crossAttn = (name: string, heads: number): ParameterSpec[] => [
    ...norm(`${name}.norm`),
    ...norm(`${name}.norm_context`),
    ...linearSpec(`${name}.to_q`, heads * k.dimHead, d, false),
    ...linearSpec(`${name}.to_kv`, 2 * heads * k.dimHead, d, false),
    ...linearSpec(`${name}.to_out`, d, heads * k.dimHead),
  ];
  const specs: ParameterSpec[] = [
    {
      name: "unit_emb.weight",
      shape: [vocab.channels.length, d / 2],
      init: { kind: "normal", std: 0.02, zeroRow0: true },
      sparse: true,
    },
  ];
  for (const m of vocab.modalities) {
    specs.push({
      name: `value_map.${m}.weight`,
      shape: [d / 2, k.patch],
      init: { kind: "truncNormal", std: 0.02 },
    });
    specs.push({ name: `value_map.${m}.bias`, shape: [d / 2], init: { kind: "zeros" } });
  }
  specs.push(
    {
      name: "session_emb.weight",
      shape: [vocab.sessions.length, d],
      init: { kind: "normal", std: 0.02, zeroRow0: true },
      sparse: true,
    },
    { name: "latent_emb.weight", shape: [k.numLatents, d], init: { kind: "normal", std: 0.02 } },
    ...crossAttn("enc_atn", k.crossHeads),
    ...ffn("enc_ffn"),
  );
  for (let i = 0; i < k.depth; i++) {
    specs.push(
      ...norm(`proc.${i}.atn.norm`),
      ...linearSpec(`proc.${i}.atn.to_qkv`, 3 * k.selfHeads * k.dimHead, d, false),
      ...linearSpec(`proc.${i}.atn.to_out`, d, k.selfHeads * k.dimHead),
      ...ffn(`proc.${i}.ffn`),
    );
  }
  specs.push(
    ...crossAttn("dec_atn", k.crossHeads),
    ...ffn("dec_ffn"),
    ...linearSpec("readout", k.numClasses, d),
  );
  return specs;
}

/**
 * The POYO model: parameters in flat GPU storage and a forward pass built from Orion's ops.
 *
 * @example
 * ```ts ignore
 * const model = new POYO(gpu, kwargs, vocab, { seed: 0 });
 * const batch = uploadBatch(gpu, model, poyoBatch);
 * const loss = model.loss(batch, { training: true });
 * ```
 */
export class POYO {
  /** Name stored in serialized configs. */
  static readonly modelName = "POYO";
  /** Schema of `ModelConfig.kwargs` for POYO. */
  static readonly kwargsSchema = PoyoKwargsSchema;

  readonly gpu: Gpu;
  readonly kwargs: ResolvedPoyoKwargs;
  readonly vocab: PoyoVocabulary;
  readonly params: ParameterStore;
  /** Appended to dropout site names: the micro-batch of the forward pass in progress. */
  #siteSuffix = "";
  /**
   * Mixed precision: every linear layer multiplies 16-bit copies of its input and weight (f32 output;
   * see `src/ops/matmul.ts`); null = f32 throughout.
   */
  readonly autocast: HalfDType | null;
  /** 16-bit weight copies of the current scope (a training step): each weight is cast once per step. */
  #casts = new Map<string, Tensor>();
  #castScope: Scope | null = null;

  constructor(
    gpu: Gpu,
    kwargs: ResolvedPoyoKwargs,
    vocab: PoyoVocabulary,
    options: { seed: number; autocast?: HalfDType | null },
  ) {
    if (vocab.channels[0] !== "<pad>" || vocab.sessions[0] !== "<pad>") {
      throw new Error('Cannot build POYO as its vocabularies must start with the padding word "<pad>"');
    }
    this.gpu = gpu;
    this.kwargs = kwargs;
    this.vocab = vocab;
    this.autocast = options.autocast ?? null;
    this.params = new ParameterStore(gpu, poyoParameterSpecs(kwargs, vocab), options.seed);
  }

  #p(name: string): Tensor {
    return this.params.get(name).value;
  }

  #linear(x: Tensor, name: string, bias = true): Tensor {
    const weight = this.#p(`${name}.weight`);
    const b = bias ? this.#p(`${name}.bias`) : undefined;
    const dtype = this.autocast;
    if (!dtype) return linear(x, weight, b);
    return linear(x, weight, b, { dtype, castB: this.#halfWeight(`${name}.weight`, weight, dtype) });
  }

  /**
   * The 16-bit copy of a weight, cast from the f32 master weight at its first use in the current scope (the
   * training step: its commands, casts included, are what a captured step replays).
   */
  #halfWeight(name: string, weight: Tensor, dtype: HalfDType): Tensor {
    const scope = currentScope();
    if (scope !== this.#castScope) {
      this.#castScope = scope;
      this.#casts.clear();
    }
    let h = this.#casts.get(name);
    if (!h) {
      h = noGrad(() => castTo(weight, dtype));
      if (scope) this.#casts.set(name, h);
    }
    return h;
  }

  #norm(x: Tensor, name: string): Tensor {
    return layerNorm(x, this.#p(`${name}.weight`), this.#p(`${name}.bias`));
  }

  #ffn(x: Tensor, name: string, training: boolean): Tensor {
    const h = geglu(this.#linear(this.#norm(x, `${name}.norm`), `${name}.w1`));
    const hd = training ? dropout(h, this.kwargs.ffnDropout, `${name}.dropout${this.#siteSuffix}`) : h;
    return this.#linear(hd, `${name}.w2`);
  }

  #crossAttn(
    name: string,
    query: Tensor,
    context: Tensor,
    times: { query: Tensor; key: Tensor; kvLen: Tensor },
    rotateValue: boolean,
    training: boolean,
  ): Tensor {
    const k = this.kwargs;
    const q = this.#linear(this.#norm(query, `${name}.norm`), `${name}.to_q`, false);
    const kv = this.#linear(this.#norm(context, `${name}.norm_context`), `${name}.to_kv`, false);
    const width = k.crossHeads * k.dimHead;
    const a = rotaryAttention({
      q: { tensor: q, colOffset: 0 },
      k: { tensor: kv, colOffset: 0 },
      v: { tensor: kv, colOffset: width },
      heads: k.crossHeads,
      dimHead: k.dimHead,
      qTime: times.query,
      kTime: times.key,
      kvLen: times.kvLen,
      rotateValue,
      tMin: k.tMin,
      tMax: k.tMax,
      atnDropout: this.#attentionDropout(training),
    });
    return this.#linear(a, `${name}.to_out`);
  }

  #attentionDropout(training: boolean): undefined {
    if (training && this.kwargs.atnDropout > 0) {
      throw new Error(
        `Cannot train POYO with atnDropout = ${this.kwargs.atnDropout}: attention dropout is not implemented ` +
          "by the attention kernels yet; set model.kwargs.atnDropout to 0 (the contract's default)",
      );
    }
    return undefined;
  }

  #selfAttn(i: number, z: Tensor, batch: DeviceBatch, training: boolean): Tensor {
    const k = this.kwargs;
    const name = `proc.${i}.atn`;
    const qkv = this.#linear(this.#norm(z, `${name}.norm`), `${name}.to_qkv`, false);
    const width = k.selfHeads * k.dimHead;
    const a = rotaryAttention({
      q: { tensor: qkv, colOffset: 0 },
      k: { tensor: qkv, colOffset: width },
      v: { tensor: qkv, colOffset: 2 * width },
      heads: k.selfHeads,
      dimHead: k.dimHead,
      qTime: batch.latentTime,
      kTime: batch.latentTime,
      kvLen: batch.latentKvLen,
      rotateValue: true,
      tMin: k.tMin,
      tMax: k.tMax,
      atnDropout: this.#attentionDropout(training),
    });
    return this.#linear(a, `${name}.to_out`);
  }

  /** Logits [B, Q, C] for a batch. */
  forward(batch: DeviceBatch, options: ForwardOptions): Tensor {
    const k = this.kwargs;
    const { batchSize: b, numTokens: n, numQueries: q, numLatents: l } = batch;
    const training = options.training;
    this.#siteSuffix = options.microBatch ? `#${options.microBatch}` : "";
    // Tokens: concat(value_map[m_n](x_n), unit_emb[u_n]).
    let valueEmb: Tensor | null = null;
    this.vocab.modalities.forEach((m, mi) => {
      const projected = mul(this.#linear(batch.value, `value_map.${m}`), batch.modalityMask[mi]);
      valueEmb = valueEmb ? add(valueEmb, projected) : projected;
    });
    const unitEmb = embedding(this.#p("unit_emb.weight"), batch.unit, { paddingIdx: 0 });
    const tokens = reshape(concat([valueEmb!, unitEmb], -1), [b, n, k.dim]);
    let z = reshape(embedding(this.#p("latent_emb.weight"), batch.latentIndex), [b, l, k.dim]);
    let y = reshape(embedding(this.#p("session_emb.weight"), batch.querySession, { paddingIdx: 0 }), [
      b,
      q,
      k.dim,
    ]);

    z = add(
      z,
      this.#crossAttn(
        "enc_atn",
        z,
        tokens,
        { query: batch.latentTime, key: batch.time, kvLen: batch.kvLen },
        true,
        training,
      ),
    );
    z = add(z, this.#ffn(z, "enc_ffn", training));
    for (let i = 0; i < k.depth; i++) {
      const a = this.#selfAttn(i, z, batch, training);
      z = add(z, training ? dropout(a, k.linDropout, `proc.${i}.atn.lin_dropout${this.#siteSuffix}`) : a);
      const f = this.#ffn(z, `proc.${i}.ffn`, training);
      z = add(z, training ? dropout(f, k.linDropout, `proc.${i}.ffn.lin_dropout${this.#siteSuffix}`) : f);
    }
    y = add(
      y,
      this.#crossAttn(
        "dec_atn",
        y,
        z,
        { query: batch.queryTime, key: batch.latentTime, kvLen: batch.latentKvLen },
        false,
        training,
      ),
    );
    y = add(y, this.#ffn(y, "dec_ffn", training));
    return this.#linear(y, "readout");
  }

  /** The contract's loss: weighted-mean cross-entropy of the logits against the labels → [1]. */
  loss(batch: DeviceBatch, options: ForwardOptions): { loss: Tensor; logits: Tensor } {
    const logits = this.forward(batch, options);
    const flat = reshape(logits, [batch.batchSize * batch.numQueries, this.kwargs.numClasses]);
    return { loss: crossEntropy(flat, batch.label, batch.weight), logits };
  }
}
registerModelClass(POYO);

/** Latent time-grid indices `j mod M` for L latents, repeated over B rows. */
function latentIndexHost(b: number, l: number, m: number): Int32Array {
  const out = new Int32Array(b * l);
  for (let i = 0; i < b; i++) for (let j = 0; j < l; j++) out[i * l + j] = j % m;
  return out;
}

const constantArrays = new WeakMap<POYO, Map<string, Int32Array>>();

/** Arrays that depend only on the batch shape (latent indices and their CSR, latent kv lengths), cached. */
function shapeConstant(model: POYO, key: string, make: () => Int32Array): Int32Array {
  let m = constantArrays.get(model);
  if (!m) constantArrays.set(model, m = new Map());
  let a = m.get(key);
  if (!a) m.set(key, a = make());
  return a;
}

/**
 * The host arrays of a batch in the exact order {@linkcode uploadBatch} uploads them (a captured training
 * step replays its uploads from this list).
 */
export function batchUploadArrays(model: POYO, batch: PoyoBatch): ArrayBufferView[] {
  const cached = uploadArrayCache.get(batch);
  if (cached && cached.model === model) return cached.arrays;
  const arrays = computeBatchUploadArrays(model, batch);
  uploadArrayCache.set(batch, { model, arrays });
  return arrays;
}

/** Prepared upload arrays per batch object (a loader's prefetch fills it; the step reuses them). */
const uploadArrayCache = new WeakMap<PoyoBatch, { model: POYO; arrays: ArrayBufferView[] }>();

function computeBatchUploadArrays(model: POYO, batch: PoyoBatch): ArrayBufferView[] {
  const { batchSize: b, numTokens: n } = batch;
  const k = model.kwargs;
  const l = batch.latentTime.length;
  const vocabChannels = model.vocab.channels.length;
  // Index arrays the loader computed with the batch (src/data/upload_index.ts), when made for these sizes.
  const pre = batch.uploadIndex;
  const ready = pre !== undefined && pre.numModalities === model.vocab.modalities.length &&
    pre.numChannels === vocabChannels && pre.numSessions === model.vocab.sessions.length;
  const masks = ready ? pre.modalityMasks : model.vocab.modalities.map((_, mi) => {
    const mask = new Float32Array(b * n);
    const mod = batch.modality, unit = batch.unit;
    for (let i = 0; i < b * n; i++) mask[i] = mod[i] === mi && unit[i] !== 0 ? 1 : 0;
    return mask;
  });
  const latentHost = shapeConstant(model, `latent:${b}:${l}`, () => latentIndexHost(b, l, k.numLatents));
  return [
    ...masks,
    batch.value,
    batch.unit,
    ready ? pre.unitInverse : gatherIndex(batch.unit, vocabChannels),
    batch.time,
    batch.kvLen,
    batch.latentTime,
    latentHost,
    shapeConstant(model, `latentCsr:${b}:${l}`, () => gatherIndex(latentHost, k.numLatents)),
    shapeConstant(model, `latentKv:${b}:${l}`, () => new Int32Array(b).fill(l)),
    batch.querySession,
    ready ? pre.sessionInverse : gatherIndex(batch.querySession, model.vocab.sessions.length),
    batch.queryTime,
    batch.label,
    batch.weight,
  ];
}

/** Uploads a loader batch into GPU tensors of the current scope. */
export function uploadBatch(gpu: Gpu, model: POYO, batch: PoyoBatch): DeviceBatch {
  const { batchSize: b, numTokens: n, patch: p, numQueries: q } = batch;
  const k = model.kwargs;
  if (p !== k.patch) {
    throw new RangeError(`Cannot feed a batch of patch ${p} to a POYO model built with patch ${k.patch}`);
  }
  const l = batch.latentTime.length;
  const arrays = batchUploadArrays(model, batch);
  let i = 0;
  const next = (shape: number[]) => Tensor.fromArray(gpu, arrays[i++] as Float32Array | Int32Array, shape);
  const modalityMask = model.vocab.modalities.map(() => next([b * n, 1]));
  const value = next([b * n, p]);
  const unitIdx = next([b * n]);
  const unitCsr = next([model.vocab.channels.length + 1 + b * n]);
  const time = next([b, n]);
  const kvLen = next([b]);
  const latentTime = next([l]);
  const latentIdx = next([b * l]);
  const latentCsr = next([k.numLatents + 1 + b * l]);
  const latentKvLen = next([b]);
  const sessionIdx = next([b * q]);
  const sessionCsr = next([model.vocab.sessions.length + 1 + b * q]);
  const queryTime = next([b, q]);
  const label = next([b * q]);
  const weight = next([b * q]);
  return {
    batchSize: b,
    numTokens: n,
    numQueries: q,
    numLatents: l,
    value,
    unit: { indices: unitIdx, host: batch.unit, csr: unitCsr },
    modalityMask,
    time,
    kvLen,
    latentTime,
    latentIndex: {
      indices: latentIdx,
      host: arrays[6 + model.vocab.modalities.length] as Int32Array,
      csr: latentCsr,
    },
    latentKvLen,
    querySession: { indices: sessionIdx, host: batch.querySession, csr: sessionCsr },
    queryTime,
    label,
    weight,
  };
}
