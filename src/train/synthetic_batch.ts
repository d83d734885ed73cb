/**
 * Synthetic batches with the exact shapes of a data configuration, for benchmarks (which must run where
 * no catalog exists, e.g. the GPU machine) and tests. Deterministic in `seed`.
 *
 * @module
 */
import type { PoyoBatch } from "../data/batch.ts";
import type { PoyoVocabulary } from "../models/poyo.ts";

/** Shape of synthetic batches. */
export interface SyntheticBatchShape {
  batchSize: number;
  /** Window length in seconds. */
  window: number;
  /** Channels per modality and their sampling rates (after derivation), e.g. eeg 32 @ 128 Hz. */
  channels: { modality: string; count: number; rate: number }[];
  patch: number;
  numLatents: number;
  latentStep: number;
  numClasses: number;
  /** Participants (each with its own channel words and one session). */
  participants: number;
}

/** The vocabulary synthetic batches index into. */
export function syntheticVocabulary(shape: SyntheticBatchShape): PoyoVocabulary {
  const channels = ["<pad>"];
  const sessions = ["<pad>"];
  for (let p = 0; p < shape.participants; p++) {
    const id = `s${String(p + 1).padStart(3, "0")}`;
    for (const c of shape.channels) {
      for (let i = 0; i < c.count; i++) channels.push(`${id}/${c.modality}${i}`);
    }
    sessions.push(`${id}/session1`);
  }
  return { channels, sessions, modalities: shape.channels.map((c) => c.modality).sort() };
}

/** Tokens per window for a shape (every channel fully present). */
export function syntheticTokens(shape: SyntheticBatchShape): number {
  return shape.channels.reduce((n, c) => n + c.count * Math.floor((shape.window * c.rate) / shape.patch), 0);
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A batch whose label is encoded in the signal (class-dependent sinusoid amplitude), so a model can
 * learn it: useful for overfit and learning tests. Row i's kv_len is the full token count, except every
 * third row which drops its last channel (padding at the end).
 */
export function syntheticBatch(shape: SyntheticBatchShape, seed: number): PoyoBatch {
  const random = mulberry(seed);
  const vocab = syntheticVocabulary(shape);
  const b = shape.batchSize;
  const n = syntheticTokens(shape);
  const p = shape.patch;
  const q = 1;
  const l = shape.numLatents * Math.ceil(shape.window / shape.latentStep - 1e-9);
  const value = new Float32Array(b * n * p);
  const unit = new Int32Array(b * n);
  const modality = new Int32Array(b * n);
  const time = new Float32Array(b * n);
  const kvLen = new Int32Array(b);
  const label = new Int32Array(b * q);
  const weight = new Float32Array(b * q).fill(1);
  const querySession = new Int32Array(b * q);
  const queryTime = new Float32Array(b * q).fill(shape.window / 2);
  const modalities = vocab.modalities;
  const perParticipant = shape.channels.reduce((s, c) => s + c.count, 0);
  for (let row = 0; row < b; row++) {
    const participant = Math.floor(random() * shape.participants);
    const cls = Math.floor(random() * shape.numClasses);
    label[row] = cls;
    querySession[row] = participant + 1;
    let t = 0;
    let channelBase = 1 + participant * perParticipant;
    const dropLast = row % 3 === 2;
    for (const c of shape.channels) {
      const tokensPerChannel = Math.floor((shape.window * c.rate) / p);
      for (let ch = 0; ch < c.count; ch++) {
        const isLast = c === shape.channels[shape.channels.length - 1] && ch === c.count - 1;
        if (dropLast && isLast) continue;
        const freq = 2 + ch;
        for (let k = 0; k < tokensPerChannel; k++) {
          const tok = row * n + t;
          unit[tok] = channelBase + ch;
          modality[tok] = modalities.indexOf(c.modality);
          time[tok] = (k * p) / c.rate;
          for (let s = 0; s < p; s++) {
            const ts = (k * p + s) / c.rate;
            value[tok * p + s] = (0.5 + cls) * 0.5 * Math.sin(2 * Math.PI * freq * ts) +
              0.3 * (random() - 0.5);
          }
          t++;
        }
      }
      channelBase += c.count;
    }
    kvLen[row] = t;
  }
  const latentTime = new Float32Array(l);
  for (let j = 0; j < l; j++) latentTime[j] = (Math.floor(j / shape.numLatents) + 0.5) * shape.latentStep;
  return {
    batchSize: b,
    numTokens: n,
    patch: p,
    numQueries: q,
    value,
    unit,
    modality,
    time,
    kvLen,
    latentTime,
    querySession,
    queryTime,
    label,
    weight,
    windows: Array.from({ length: b }, (_, i) => {
      const participant = `s${String(querySession[i]).padStart(3, "0")}`;
      const recordingHash = `synthetic-${seed}-${i}`;
      return {
        recordingHash,
        start: 0,
        end: shape.window,
        derivedAssetIds: [],
        participant,
        session: `${participant}/session1`,
        recordings: [{
          recordingHash,
          derivedAssetId: "",
          modality: modalities[0],
          start: 0,
          end: shape.window,
        }],
      };
    }),
  };
}
