/**
 * IIR filters as cascades of second-order sections (biquads), designed by the bilinear transform with
 * frequency pre-warping, and applied forward (`sosFilter`) or forward-backward for zero phase
 * (`sosFiltfilt`, steady-state initial conditions and odd-reflection padding as in SciPy's `sosfiltfilt`).
 *
 * A section is `[b0, b1, b2, a1, a2]` with a0 = 1: y[n] = b0 x[n] + b1 x[n−1] + b2 x[n−2] − a1 y[n−1] − a2 y[n−2].
 *
 * @module
 */

/** Second-order sections, 5 coefficients each: b0 b1 b2 a1 a2. */
export type Sos = Float64Array;

/** Bilinear transform of one analog section (b2 s² + b1 s + b0) / (a2 s² + a1 s + a0) with K = 2 fs. */
function bilinear(b: [number, number, number], a: [number, number, number], k: number): number[] {
  const [b2, b1, b0] = b;
  const [a2, a1, a0] = a;
  const kk = k * k;
  const A0 = a2 * kk + a1 * k + a0;
  return [
    (b2 * kk + b1 * k + b0) / A0,
    (2 * b0 - 2 * b2 * kk) / A0,
    (b2 * kk - b1 * k + b0) / A0,
    (2 * a0 - 2 * a2 * kk) / A0,
    (a2 * kk - a1 * k + a0) / A0,
  ];
}

/**
 * Butterworth low- or high-pass of `order` at `cutoffHz` (−3 dB) for sampling rate `fs`.
 *
 * @example
 * ```ts
 * const lp = butterworthSos(4, "lowpass", 40, 256);
 * console.log(sosMagnitude(lp, 40, 256)); // ≈ 0.7071
 * ```
 */
export function butterworthSos(
  order: number,
  type: "lowpass" | "highpass",
  cutoffHz: number,
  fs: number,
): Sos {
  if (!Number.isInteger(order) || order < 1) {
    throw new Error(`Cannot design a Butterworth filter of order ${order}: it must be a positive integer`);
  }
  if (!(cutoffHz > 0 && cutoffHz < fs / 2)) {
    throw new Error(
      `Cannot design a ${type} at ${cutoffHz} Hz for ${fs} Hz sampling: the cutoff must lie in (0, ${
        fs / 2
      })`,
    );
  }
  const k = 2 * fs;
  const wc = k * Math.tan(Math.PI * cutoffHz / fs); // pre-warped analog cutoff
  const sections: number[] = [];
  for (let i = 0; i < Math.floor(order / 2); i++) {
    // Pole pair at angle θ: s² + 2 sin(θ') wc s + wc², with damping 2 cos of the pole angle.
    const theta = Math.PI * (2 * i + 1) / (2 * order);
    const damping = 2 * Math.sin(theta) * wc; // −2 Re(p) wc, Re(p) = −sin θ
    const a: [number, number, number] = [1, damping, wc * wc];
    const b: [number, number, number] = type === "lowpass" ? [0, 0, wc * wc] : [1, 0, 0];
    sections.push(...bilinear(b, a, k));
  }
  if (order % 2 === 1) {
    const a: [number, number, number] = [0, 1, wc];
    const b: [number, number, number] = type === "lowpass" ? [0, 0, wc] : [0, 1, 0];
    sections.push(...bilinear(b, a, k));
  }
  return Float64Array.from(sections);
}

/**
 * A second-order IIR notch at `f0` Hz whose −3 dB band is exactly f0 / q wide (SciPy's `iirnotch`: the
 * bilinear transform of an analog notch with the bandwidth pre-warped, tan(bw/2)).
 */
export function notchSos(f0: number, q: number, fs: number): Sos {
  if (!(f0 > 0 && f0 < fs / 2)) {
    throw new Error(`Cannot design a notch at ${f0} Hz for ${fs} Hz sampling: it must lie in (0, ${fs / 2})`);
  }
  const w0 = 2 * Math.PI * f0 / fs;
  const bandwidth = w0 / q;
  const gain = 1 / (1 + Math.tan(bandwidth / 2));
  const c = -2 * Math.cos(w0);
  return Float64Array.from([gain, gain * c, gain, gain * c, 2 * gain - 1]);
}

/** Concatenates cascades. */
export function cascade(...parts: Sos[]): Sos {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** |H(e^{jω})| of a cascade at `hz`. */
export function sosMagnitude(sos: Sos, hz: number, fs: number): number {
  const w = 2 * Math.PI * hz / fs;
  const c1 = Math.cos(w), s1 = Math.sin(w), c2 = Math.cos(2 * w), s2 = Math.sin(2 * w);
  let magnitude = 1;
  for (let i = 0; i < sos.length; i += 5) {
    const [b0, b1, b2, a1, a2] = sos.subarray(i, i + 5);
    const nr = b0 + b1 * c1 + b2 * c2, ni = -(b1 * s1 + b2 * s2);
    const dr = 1 + a1 * c1 + a2 * c2, di = -(a1 * s1 + a2 * s2);
    magnitude *= Math.hypot(nr, ni) / Math.hypot(dr, di);
  }
  return magnitude;
}

/** Filters `x` in place (float64) through the cascade, starting from state `zi` (2 values per section). */
export function sosFilter(sos: Sos, x: Float64Array, zi?: Float64Array): Float64Array {
  for (let s = 0; s < sos.length / 5; s++) {
    const b0 = sos[5 * s], b1 = sos[5 * s + 1], b2 = sos[5 * s + 2], a1 = sos[5 * s + 3], a2 = sos[5 * s + 4];
    let z1 = zi ? zi[2 * s] : 0;
    let z2 = zi ? zi[2 * s + 1] : 0;
    for (let n = 0; n < x.length; n++) {
      const xn = x[n];
      const y = b0 * xn + z1;
      z1 = b1 * xn - a1 * y + z2;
      z2 = b2 * xn - a2 * y;
      x[n] = y;
    }
  }
  return x;
}

/** Steady-state state of each section for a unit step input (SciPy's `sosfilt_zi`). */
export function sosFilterZi(sos: Sos): Float64Array {
  const zi = new Float64Array((sos.length / 5) * 2);
  let gainIn = 1;
  for (let s = 0; s < sos.length / 5; s++) {
    const [b0, b1, b2, a1, a2] = sos.subarray(5 * s, 5 * s + 5);
    const g = (b0 + b1 + b2) / (1 + a1 + a2);
    zi[2 * s] = (g - b0) * gainIn;
    zi[2 * s + 1] = (b2 - a2 * g) * gainIn;
    gainIn *= g;
  }
  return zi;
}

/**
 * Zero-phase forward-backward filtering (magnitude response squared). The signal is padded at both ends
 * with `padlen` samples of odd reflection (default SciPy's 3·(2·sections+1)) and each pass starts from the
 * steady state for its first sample.
 */
export function sosFiltfilt(sos: Sos, input: ArrayLike<number>, padlen?: number): Float64Array {
  const n = input.length;
  const sections = sos.length / 5;
  const pad = Math.min(n - 1, padlen ?? 3 * (2 * sections + 1));
  const ext = new Float64Array(n + 2 * pad);
  const first = input[0], last = input[n - 1];
  for (let i = 0; i < pad; i++) {
    ext[i] = 2 * first - input[pad - i];
    ext[n + pad + i] = 2 * last - input[n - 2 - i];
  }
  for (let i = 0; i < n; i++) ext[pad + i] = input[i];
  const zi = sosFilterZi(sos);
  const scaled = (v: number) => zi.map((z) => z * v);
  sosFilter(sos, ext, scaled(ext[0]));
  ext.reverse();
  sosFilter(sos, ext, scaled(ext[0]));
  ext.reverse();
  return ext.slice(pad, pad + n);
}
