/**
 * The versioned derived-signal recipes. A derivation maps one recording's samples to a cleaned signal; its
 * name (`<set>.<recipe>`), implementation version and parameters enter the content address of every asset
 * it builds (see `derive.ts`).
 *
 * - `standard_v2026q2.eeg_clean`: zero-phase Butterworth band-pass 1–40 Hz (order 4 high-pass and order 4
 *   low-pass, applied forward and backward), zero-phase IIR notches at 50 and 60 Hz (Q = 30, only those below
 *   Nyquist), average re-reference (the mean over channels subtracted at every sample), per-channel robust
 *   z-score (median, 1.4826·MAD; clipped to ±20), polyphase resampling to 128 Hz.
 * - `standard_v2026q2.pupil_dilation`: blink detection (invalid samples, samples whose speed exceeds
 *   20 mm/s, each run widened by 100 ms on both sides), linear interpolation across blinks (edge runs hold
 *   the nearest valid value), zero-phase Butterworth low-pass order 4 at 4 Hz, baseline correction
 *   (the channel's median subtracted), polyphase resampling to 32 Hz.
 *
 * @module
 */
import { butterworthSos, cascade, notchSos, sosFiltfilt } from "./iir_filter.ts";
import { resamplePoly, resampleRatio } from "./resample.ts";

/** Samples of one recording or derived asset. */
export interface SignalData {
  channels: string[];
  samplingRate: number;
  samples: Float32Array[];
}

/** A derivation recipe. */
export interface Derivation {
  /** `<set>.<recipe>`, e.g. "standard_v2026q2.eeg_clean". */
  name: string;
  /** Implementation version; bump when the code changes its output. */
  version: number;
  /** Modality of the recordings it applies to. */
  modality: string;
  /** Parameters (hashed into the asset id). */
  params: Record<string, number | number[] | string>;
  /** Physical unit of the output. */
  unit: string;
  run(input: SignalData): SignalData;
}

/** k-th smallest value (0-based) of `a`, reordering `a` in place (Hoare quickselect, median-of-three). */
function selectInPlace(a: Float64Array, k: number): number {
  let lo = 0, hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >> 1;
    // Median of three as the pivot.
    let x = a[lo], y = a[mid], z = a[hi];
    if (x > y) [x, y] = [y, x];
    if (y > z) [y, z] = [z, y];
    if (x > y) [x, y] = [y, x];
    const pivot = y;
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/** Median (mean of the two middle values for even lengths), without sorting. */
export function median(values: ArrayLike<number>): number {
  const a = Float64Array.from(values);
  const n = a.length;
  const upper = selectInPlace(a, n >> 1);
  if (n % 2) return upper;
  let lower = -Infinity;
  for (let i = 0; i < n >> 1; i++) if (a[i] > lower) lower = a[i];
  return (lower + upper) / 2;
}

const EEG_CLEAN_PARAMS = {
  highpass_hz: 1,
  lowpass_hz: 40,
  butterworth_order: 4,
  notch_hz: [50, 60],
  notch_q: 30,
  reference: "average",
  zscore: "median_mad",
  zscore_clip: 20,
  target_rate_hz: 128,
};

/** `standard_v2026q2.eeg_clean`. */
export const EEG_CLEAN: Derivation = {
  name: "standard_v2026q2.eeg_clean",
  version: 1,
  modality: "eeg",
  params: EEG_CLEAN_PARAMS,
  unit: "z",
  run(input) {
    const p = EEG_CLEAN_PARAMS;
    const fs = input.samplingRate;
    const parts = [
      butterworthSos(p.butterworth_order, "highpass", p.highpass_hz, fs),
      butterworthSos(p.butterworth_order, "lowpass", Math.min(p.lowpass_hz, fs * 0.45), fs),
      ...p.notch_hz.filter((f) => f < fs / 2).map((f) => notchSos(f, p.notch_q, fs)),
    ];
    const sos = cascade(...parts);
    const padlen = Math.round(2 * fs);
    const filtered = input.samples.map((x) => sosFiltfilt(sos, x, padlen));
    const n = filtered[0].length;
    const mean = new Float64Array(n);
    for (const x of filtered) for (let i = 0; i < n; i++) mean[i] += x[i];
    for (let i = 0; i < n; i++) mean[i] /= filtered.length;
    const { up, down } = resampleRatio(fs, p.target_rate_hz);
    const samples = filtered.map((x) => {
      for (let i = 0; i < n; i++) x[i] -= mean[i];
      const center = median(x);
      const deviations = x.map((v) => Math.abs(v - center));
      const scale = 1.4826 * median(deviations) || 1;
      for (let i = 0; i < n; i++) {
        const z = (x[i] - center) / scale;
        x[i] = z > p.zscore_clip ? p.zscore_clip : z < -p.zscore_clip ? -p.zscore_clip : z;
      }
      return Float32Array.from(resamplePoly(x, up, down));
    });
    return { channels: input.channels, samplingRate: p.target_rate_hz, samples };
  },
};

const PUPIL_PARAMS = {
  blink_speed_mm_s: 20,
  blink_margin_s: 0.1,
  lowpass_hz: 4,
  butterworth_order: 4,
  baseline: "median",
  target_rate_hz: 32,
};

/** Marks blink samples: invalid (NaN) or too fast, widened by the margin. */
export function detectBlinks(x: Float32Array, fs: number, speedLimit: number, marginS: number): Uint8Array {
  const n = x.length;
  const raw = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(x[i])) raw[i] = 1;
    else if (i > 0 && Number.isFinite(x[i - 1]) && Math.abs(x[i] - x[i - 1]) * fs > speedLimit) {
      raw[i] = raw[i - 1] = 1;
    }
  }
  const margin = Math.round(marginS * fs);
  const blink = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (!raw[i]) continue;
    for (let j = Math.max(0, i - margin); j <= Math.min(n - 1, i + margin); j++) blink[j] = 1;
  }
  return blink;
}

/** Linear interpolation over marked samples; edge runs hold the nearest unmarked value. */
export function interpolateMarked(x: Float32Array, marked: Uint8Array): Float64Array | null {
  const n = x.length;
  const y = Float64Array.from(x);
  let previous = -1;
  for (let i = 0; i <= n; i++) {
    if (i < n && marked[i]) continue;
    // Samples previous+1 .. i-1 are marked.
    if (i - previous > 1) {
      if (previous < 0 && i === n) return null; // nothing valid
      for (let j = previous + 1; j < i; j++) {
        if (previous < 0) y[j] = y[i];
        else if (i === n) y[j] = y[previous];
        else y[j] = y[previous] + (y[i] - y[previous]) * (j - previous) / (i - previous);
      }
    }
    previous = i;
  }
  return y;
}

/** `standard_v2026q2.pupil_dilation`. */
export const PUPIL_DILATION: Derivation = {
  name: "standard_v2026q2.pupil_dilation",
  version: 1,
  modality: "pupil",
  params: PUPIL_PARAMS,
  unit: "mm",
  run(input) {
    const p = PUPIL_PARAMS;
    const fs = input.samplingRate;
    const sos = butterworthSos(p.butterworth_order, "lowpass", Math.min(p.lowpass_hz, fs * 0.45), fs);
    const { up, down } = resampleRatio(fs, p.target_rate_hz);
    const samples = input.samples.map((x, c) => {
      const blinks = detectBlinks(x, fs, p.blink_speed_mm_s, p.blink_margin_s);
      const filled = interpolateMarked(x, blinks);
      if (!filled) {
        throw new Error(
          `Cannot derive ${PUPIL_DILATION.name} as channel ${
            input.channels[c]
          } has no valid sample outside blinks`,
        );
      }
      const smooth = sosFiltfilt(sos, filled, Math.round(fs));
      const base = median(smooth);
      for (let i = 0; i < smooth.length; i++) smooth[i] -= base;
      return Float32Array.from(resamplePoly(smooth, up, down));
    });
    return { channels: input.channels, samplingRate: p.target_rate_hz, samples };
  },
};

/** Every known derivation, by name. */
export const DERIVATIONS: ReadonlyMap<string, Derivation> = new Map(
  [EEG_CLEAN, PUPIL_DILATION].map((d) => [d.name, d]),
);

/** The derivation called `name`, or an error listing the known ones. */
export function derivationNamed(name: string): Derivation {
  const derivation = DERIVATIONS.get(name);
  if (!derivation) {
    throw new Error(
      `Cannot use derivation '${name}' as it is unknown: known derivations are ${
        [...DERIVATIONS.keys()].join(", ")
      }`,
    );
  }
  return derivation;
}
