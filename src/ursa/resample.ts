/**
 * FIR design (Kaiser-windowed sinc) and rational polyphase resampling, as in SciPy's `resample_poly`
 * (half length 10·max(up, down) taps per phase, Kaiser β = 5, zero delay), except that the signal is
 * extended by its edge values instead of zeros so that offsets do not ring at the ends.
 *
 * @module
 */

/** Zeroth-order modified Bessel function of the first kind (series). */
function besselI0(x: number): number {
  let sum = 1, term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

/** Kaiser window of `length` points with shape `beta`. */
export function kaiserWindow(length: number, beta: number): Float64Array {
  const w = new Float64Array(length);
  const denominator = besselI0(beta);
  for (let i = 0; i < length; i++) {
    const r = length === 1 ? 0 : (2 * i) / (length - 1) - 1;
    w[i] = besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r))) / denominator;
  }
  return w;
}

/**
 * Linear-phase low-pass FIR: `numTaps` (odd) taps, cutoff as a fraction of Nyquist (0..1), Kaiser window,
 * unit gain at DC.
 */
export function firLowpass(numTaps: number, cutoff: number, beta = 5): Float64Array {
  if (numTaps % 2 !== 1) {
    throw new Error(`Cannot design a linear-phase low-pass with ${numTaps} taps: use an odd count`);
  }
  const window = kaiserWindow(numTaps, beta);
  const h = new Float64Array(numTaps);
  const mid = (numTaps - 1) / 2;
  let sum = 0;
  for (let i = 0; i < numTaps; i++) {
    const t = i - mid;
    h[i] = (t === 0 ? cutoff : Math.sin(Math.PI * cutoff * t) / (Math.PI * t)) * window[i];
    sum += h[i];
  }
  for (let i = 0; i < numTaps; i++) h[i] /= sum;
  return h;
}

/** |H(e^{jω})| of an FIR at `hz` for sampling rate `fs`. */
export function firMagnitude(h: Float64Array, hz: number, fs: number): number {
  const w = 2 * Math.PI * hz / fs;
  let re = 0, im = 0;
  for (let i = 0; i < h.length; i++) {
    re += h[i] * Math.cos(w * i);
    im -= h[i] * Math.sin(w * i);
  }
  return Math.hypot(re, im);
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The reduced ratio up/down for resampling from `fromHz` to `toHz` (rates rounded to 1e-3 Hz). */
export function resampleRatio(fromHz: number, toHz: number): { up: number; down: number } {
  const from = Math.round(fromHz * 1000), to = Math.round(toHz * 1000);
  const g = gcd(from, to);
  const up = to / g, down = from / g;
  if (up > 1000 || down > 1000) {
    throw new Error(
      `Cannot resample ${fromHz} Hz to ${toHz} Hz: the ratio ${up}/${down} needs too many filter phases`,
    );
  }
  return { up, down };
}

/**
 * Resamples by up/down with a zero-delay polyphase FIR. Output sample m sits at input time m·down/up.
 *
 * @example
 * ```ts
 * const y = resamplePoly(new Float64Array(256).fill(1), 1, 2); // 128 samples of 1
 * ```
 */
export function resamplePoly(
  x: ArrayLike<number>,
  up: number,
  down: number,
  filter?: Float64Array,
): Float64Array {
  const n = x.length;
  if (up === 1 && down === 1) return Float64Array.from(x);
  const maxRate = Math.max(up, down);
  const halfLength = 10 * maxRate;
  const h = filter ?? firLowpass(2 * halfLength + 1, 1 / maxRate);
  const half = (h.length - 1) / 2;
  const outLength = Math.ceil((n * up) / down);
  const y = new Float64Array(outLength);
  for (let m = 0; m < outLength; m++) {
    // Upsampled-domain position p = m·down; y[m] = up · Σ_k h[k] · xup[p + half − k], xup[j] = x[j / up] when up | j.
    const center = m * down + half;
    let k = center % up;
    let acc = 0;
    const firstIndex = (center - k) / up; // index of tap k; later taps step back by 1
    const lastIndex = firstIndex - Math.floor((h.length - 1 - k) / up);
    if (lastIndex >= 0 && firstIndex < n) {
      for (let index = firstIndex; k < h.length; k += up, index--) acc += h[k] * x[index];
    } else {
      for (; k < h.length; k += up) {
        let index = (center - k) / up;
        if (index < 0) index = 0;
        else if (index >= n) index = n - 1;
        acc += h[k] * x[index];
      }
    }
    y[m] = acc * up;
  }
  return y;
}
