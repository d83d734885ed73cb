import assert from "node:assert/strict";
import {
  butterworthSos,
  cascade,
  notchSos,
  sosFilter,
  sosFiltfilt,
  sosMagnitude,
} from "../../src/ursa/iir_filter.ts";
import { firLowpass, firMagnitude, resamplePoly, resampleRatio } from "../../src/ursa/resample.ts";
import { EEG_CLEAN, PUPIL_DILATION } from "../../src/ursa/derivations.ts";
import { derivedAssetIdOf } from "../../src/ursa/derive.ts";

/** Amplitude of the `hz` component of x (least-squares projection on sin/cos) over [from, to). */
function amplitude(x: ArrayLike<number>, fs: number, hz: number, from = 0, to = x.length): number {
  let s = 0, c = 0;
  for (let i = from; i < to; i++) {
    s += x[i] * Math.sin(2 * Math.PI * hz * i / fs);
    c += x[i] * Math.cos(2 * Math.PI * hz * i / fs);
  }
  return 2 * Math.hypot(s, c) / (to - from);
}

Deno.test("Butterworth designs match the bilinear Butterworth magnitude |H|² = 1/(1+(tan ratio)^2n)", () => {
  const fs = 256;
  for (const order of [1, 2, 3, 4, 5]) {
    const lp = butterworthSos(order, "lowpass", 40, fs);
    const hp = butterworthSos(order, "highpass", 1, fs);
    for (const f of [0.25, 0.5, 1, 2, 5, 10, 30, 40, 50, 80, 120]) {
      const r = Math.tan(Math.PI * f / fs) / Math.tan(Math.PI * 40 / fs);
      assert.ok(
        Math.abs(sosMagnitude(lp, f, fs) - 1 / Math.sqrt(1 + r ** (2 * order))) < 1e-9,
        `lp order ${order} at ${f} Hz`,
      );
      const q = Math.tan(Math.PI * 1 / fs) / Math.tan(Math.PI * f / fs);
      assert.ok(
        Math.abs(sosMagnitude(hp, f, fs) - 1 / Math.sqrt(1 + q ** (2 * order))) < 1e-9,
        `hp order ${order} at ${f} Hz`,
      );
    }
  }
  assert.ok(Math.abs(sosMagnitude(butterworthSos(4, "lowpass", 40, fs), 40, fs) - Math.SQRT1_2) < 1e-12);
  assert.throws(() => butterworthSos(4, "lowpass", 200, fs), /cutoff must lie in \(0, 128\)/);
});

Deno.test("notch: zero at its frequency, passband elsewhere", () => {
  const fs = 256;
  const notch = notchSos(50, 30, fs);
  assert.ok(sosMagnitude(notch, 50, fs) < 1e-12);
  assert.ok(sosMagnitude(notch, 45, fs) > 0.9);
  assert.ok(sosMagnitude(notch, 10, fs) > 0.999);
  // The −3 dB points lie about f0/Q apart.
  const edge = (from: number, step: number) => {
    let f = from;
    while (sosMagnitude(notch, f, fs) < Math.SQRT1_2) f += step;
    return f;
  };
  const bandwidth = edge(50, 1e-4) - edge(50, -1e-4);
  assert.ok(Math.abs(bandwidth - 50 / 30) < 0.01 * (50 / 30), `bandwidth ${bandwidth}`);
});

Deno.test("filtering real signals: measured gains equal the designed response; filtfilt has zero phase", () => {
  const fs = 256, n = fs * 20;
  const sos = cascade(
    butterworthSos(4, "highpass", 1, fs),
    butterworthSos(4, "lowpass", 40, fs),
    notchSos(50, 30, fs),
  );
  for (const f of [3, 10, 25, 38, 50, 60]) {
    const x = Float64Array.from({ length: n }, (_, i) => Math.sin(2 * Math.PI * f * i / fs));
    const once = sosFilter(sos, x.slice());
    const measured = amplitude(once, fs, f, n / 2, n);
    assert.ok(Math.abs(measured - sosMagnitude(sos, f, fs)) < 2e-3, `forward gain at ${f} Hz: ${measured}`);
    const twice = sosFiltfilt(sos, x, 2 * fs);
    assert.ok(
      Math.abs(amplitude(twice, fs, f, fs * 4, n - fs * 4) - sosMagnitude(sos, f, fs) ** 2) < 2e-3,
      `filtfilt gain at ${f} Hz`,
    );
  }
  // Zero phase: a 10 Hz sine comes out aligned with the input (sample by sample) away from the edges.
  const x = Float64Array.from({ length: n }, (_, i) => Math.sin(2 * Math.PI * 10 * i / fs));
  const y = sosFiltfilt(sos, x, 2 * fs);
  const g = sosMagnitude(sos, 10, fs) ** 2;
  for (let i = fs * 2; i < n - fs * 2; i += 7) assert.ok(Math.abs(y[i] - g * x[i]) < 5e-3, `sample ${i}`);
});

Deno.test("FIR low-pass and polyphase resampling: passband kept, aliasing band attenuated by > 40 dB", () => {
  const h = firLowpass(41, 0.5);
  assert.ok(Math.abs(firMagnitude(h, 0, 2) - 1) < 1e-12);
  assert.ok(firMagnitude(h, 0.1, 2) > 0.99);
  assert.ok(firMagnitude(h, 0.8, 2) < 0.01);
  assert.deepEqual(resampleRatio(256, 128), { up: 1, down: 2 });
  assert.deepEqual(resampleRatio(60, 32), { up: 8, down: 15 });
  for (const [from, to, keep, alias] of [[256, 128, 10, 100], [60, 32, 2, 25]]) {
    const n = from * 10;
    const { up, down } = resampleRatio(from, to);
    const slow = Float64Array.from({ length: n }, (_, i) => Math.sin(2 * Math.PI * keep * i / from));
    const fast = Float64Array.from({ length: n }, (_, i) => Math.sin(2 * Math.PI * alias * i / from));
    const ySlow = resamplePoly(slow, up, down);
    const yFast = resamplePoly(fast, up, down);
    assert.equal(ySlow.length, Math.ceil(n * to / from));
    for (let m = to; m < ySlow.length - to; m++) {
      assert.ok(
        Math.abs(ySlow[m] - Math.sin(2 * Math.PI * keep * m / to)) < 1e-2,
        `${from}→${to} sample ${m}`,
      );
    }
    let peak = 0;
    for (let m = to; m < yFast.length - to; m++) peak = Math.max(peak, Math.abs(yFast[m]));
    assert.ok(peak < 0.01, `${from}→${to}: ${alias} Hz leaks with amplitude ${peak}`);
  }
});

Deno.test("eeg_clean removes drift and line noise, re-references, z-scores and resamples to 128 Hz", () => {
  const fs = 256, n = fs * 30;
  const channels = ["Fz", "Cz", "Pz", "Oz"];
  const common = Float64Array.from({ length: n }, (_, i) => 30 * Math.sin(2 * Math.PI * 7 * i / fs));
  const samples = channels.map((_, c) =>
    Float32Array.from({ length: n }, (_, i) =>
      200 + 80 * Math.sin(2 * Math.PI * 0.1 * i / fs) + // offset and drift
      (10 + 5 * c) * Math.sin(2 * Math.PI * 10 * i / fs + c) + // alpha, different per channel
      20 * Math.sin(2 * Math.PI * 50 * i / fs) + // line noise
      common[i])
  );
  const out = EEG_CLEAN.run({ channels, samplingRate: fs, samples });
  assert.equal(out.samplingRate, 128);
  assert.equal(out.samples[0].length, n / 2);
  const mid = [128 * 4, 128 * 26] as const;
  for (let c = 0; c < channels.length; c++) {
    const y = out.samples[c];
    const alpha = amplitude(y, 128, 10, ...mid);
    assert.ok(amplitude(y, 128, 50, ...mid) < 0.01 * alpha, "50 Hz removed");
    assert.ok(amplitude(y, 128, 0.1, ...mid) < 0.05 * alpha, "drift removed");
    assert.ok(
      amplitude(y, 128, 7, ...mid) < 0.01 * alpha,
      "the common (reference) signal is removed by re-referencing",
    );
  }
  let sum = 0;
  for (let i = 0; i < n / 2; i++) sum += out.samples.reduce((s, x) => s + x[i], 0);
  assert.ok(Math.abs(sum / (n / 2)) < 0.2, "average reference (up to the per-channel z-scaling)");
  const sorted = Float32Array.from(out.samples[0]).sort();
  assert.ok(Math.abs(sorted[sorted.length >> 1]) < 0.05, "median ≈ 0");
});

Deno.test("pupil_dilation interpolates blinks, low-passes, baseline-corrects and resamples to 32 Hz", () => {
  const fs = 60, n = fs * 20;
  const x = Float32Array.from(
    { length: n },
    (_, i) => 4 + 0.3 * Math.sin(2 * Math.PI * 0.2 * i / fs) + 0.05 * Math.sin(2 * Math.PI * 12 * i / fs),
  );
  for (let i = 300; i < 310; i++) x[i] = Number.NaN; // blink
  x[600] = 1.5; // partial-closure spike (fast)
  const out = PUPIL_DILATION.run({ channels: ["pupil_left"], samplingRate: fs, samples: [x] });
  assert.equal(out.samplingRate, 32);
  assert.equal(out.samples[0].length, Math.ceil(n * 32 / 60));
  const y = out.samples[0];
  assert.ok(y.every(Number.isFinite));
  // The blink region follows the slow curve (interpolated), not a dip.
  const t = 305 / fs, m = Math.round(t * 32);
  const med = 4; // baseline (median of a symmetric sine around 4)
  assert.ok(
    Math.abs(y[m] - (4 + 0.3 * Math.sin(2 * Math.PI * 0.2 * t) - med)) < 0.05,
    `blink sample ${y[m]}`,
  );
  assert.ok(
    Math.abs(y[Math.round(10 * 32)] - (0.3 * Math.sin(2 * Math.PI * 0.2 * 10))) < 0.05,
    "the spike is removed",
  );
  assert.ok(amplitude(y, 32, 12, 64, y.length - 64) < 0.002, "12 Hz tremor is low-passed");
  assert.throws(
    () =>
      PUPIL_DILATION.run({
        channels: ["pupil_left"],
        samplingRate: fs,
        samples: [new Float32Array(100).fill(Number.NaN)],
      }),
    /pupil_left has no valid sample/,
  );
});

Deno.test("derived asset ids are content addresses of derivation@version, params and source", () => {
  const a = derivedAssetIdOf(EEG_CLEAN, "abc");
  assert.equal(a, derivedAssetIdOf(EEG_CLEAN, "abc"));
  assert.notEqual(a, derivedAssetIdOf(EEG_CLEAN, "abd"));
  assert.notEqual(a, derivedAssetIdOf({ ...EEG_CLEAN, version: 2 }, "abc"));
  assert.notEqual(
    a,
    derivedAssetIdOf({ ...EEG_CLEAN, params: { ...EEG_CLEAN.params, lowpass_hz: 30 } }, "abc"),
  );
  assert.match(a, /^[0-9a-f]{64}$/);
});

Deno.test("median by selection equals the sorted median", async () => {
  const { median } = await import("../../src/ursa/derivations.ts");
  for (const n of [1, 2, 3, 10, 101, 1000]) {
    const values = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 7);
    const sorted = values.slice().sort();
    const expected = n % 2 ? sorted[n >> 1] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    assert.equal(median(values), expected, `n = ${n}`);
  }
  assert.equal(median([5, 5, 5, 5]), 5);
});
