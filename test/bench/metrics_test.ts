import assert from "node:assert/strict";
import {
  ACCURACY,
  accuracy,
  BALANCED_ACCURACY,
  balancedAccuracy,
  bootstrapDraws,
  type ClassPrediction,
  MACRO_F1,
  macroF1,
  PER_PARTICIPANT_ACCURACY,
  percentile,
  scoreMetrics,
} from "../../src/bench/metrics.ts";
import { uniformAt } from "../../src/ursa/counter_random.ts";

const close = (a: number | null, b: number, what: string) =>
  assert.ok(a !== null && Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

/** labels [0,0,0,1,1,2], predictions [0,0,1,1,2,2] over two participants / three sessions. */
function example(): ClassPrediction[] {
  const labels = [0, 0, 0, 1, 1, 2], predicted = [0, 0, 1, 1, 2, 2];
  const units = ["pA/s1", "pA/s1", "pA/s2", "pA/s2", "pB/s1", "pB/s1"];
  return labels.map((label, i) => ({
    id: `b${i}`,
    participant: units[i].slice(0, 2),
    unit: units[i],
    label,
    predicted: predicted[i],
  }));
}

Deno.test("accuracy, balanced accuracy and macro-F1 match hand-computed values", () => {
  const p = example();
  close(accuracy(p), 4 / 6, "accuracy");
  // recalls: class 0 2/3, class 1 1/2, class 2 1/1
  close(balancedAccuracy(p), (2 / 3 + 1 / 2 + 1) / 3, "balanced accuracy");
  // precision 1, 1/2, 1/2; recall 2/3, 1/2, 1 → F1 0.8, 0.5, 2/3
  close(macroF1(p), (0.8 + 0.5 + 2 / 3) / 3, "macro-F1");
  assert.equal(accuracy([]), null);
  assert.equal(balancedAccuracy([]), null);
  assert.equal(macroF1([]), null);
});

Deno.test("macro-F1 counts a class that is predicted but never labelled as F1 0; balanced accuracy ignores it", () => {
  const p: ClassPrediction[] = [
    { id: "a", participant: "p", unit: "u", label: 0, predicted: 0 },
    { id: "b", participant: "p", unit: "u", label: 0, predicted: 2 },
    { id: "c", participant: "p", unit: "u", label: 1, predicted: 1 },
  ];
  // class 0: P 1, R 1/2 → 2/3; class 1: 1; class 2: P 0, R 0 → 0
  close(macroF1(p), (2 / 3 + 1 + 0) / 3, "macro-F1");
  close(balancedAccuracy(p), (1 / 2 + 1) / 2, "balanced accuracy");
});

Deno.test("percentile interpolates linearly between order statistics (type 7)", () => {
  assert.equal(percentile([1, 2, 3, 4], 0.25), 1.75);
  assert.equal(percentile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(percentile([1, 2, 3, 4], 0), 1);
  assert.equal(percentile([1, 2, 3, 4], 1), 4);
  assert.equal(percentile([10, 20, 30, 40, 50], 0.975), 49);
  assert.equal(percentile([7], 0.3), 7);
  assert.throws(() => percentile([], 0.5), /no values/);
});

Deno.test("per-participant accuracy is reported per participant", () => {
  const s = scoreMetrics(example(), [PER_PARTICIPANT_ACCURACY], { replicates: 10 });
  assert.deepEqual(Object.keys(s), ["per_participant_accuracy/pA", "per_participant_accuracy/pB"]);
  close(s["per_participant_accuracy/pA"].value, 3 / 4, "pA");
  close(s["per_participant_accuracy/pB"].value, 1 / 2, "pB");
  assert.equal(s["per_participant_accuracy/pA"].units, 2);
  assert.equal(s["per_participant_accuracy/pB"].n, 2);
});

Deno.test("bootstrap resamples sessions with the documented counter-based draws (hand-enumerated interval)", () => {
  // Two sessions: s1 all correct (2 blocks), s2 all wrong (2 blocks). A replicate draws 2 sessions, so its
  // accuracy is 1 (s1,s1), 0.5 (mixed) or 0 (s2,s2), and the draws are uniformAt(seed, r, j).
  const p: ClassPrediction[] = [
    { id: "a", participant: "p", unit: "s1", label: 0, predicted: 0 },
    { id: "b", participant: "p", unit: "s1", label: 1, predicted: 1 },
    { id: "c", participant: "p", unit: "s2", label: 0, predicted: 1 },
    { id: "d", participant: "p", unit: "s2", label: 1, predicted: 0 },
  ];
  const replicates = 200, seed = 11;
  const values: number[] = [];
  for (let r = 0; r < replicates; r++) {
    const draws = [0, 1].map((j) => Math.floor(uniformAt(seed, r, j) * 2));
    assert.deepEqual(bootstrapDraws(seed, [], r, 2), draws);
    values.push(draws.reduce((n, k) => n + (k === 0 ? 1 : 0), 0) / 2);
  }
  values.sort((a, b) => a - b);
  const s = scoreMetrics(p, [ACCURACY], { replicates, seed });
  assert.equal(s.accuracy.value, 0.5);
  assert.equal(s.accuracy.ci_low, percentile(values, 0.025));
  assert.equal(s.accuracy.ci_high, percentile(values, 0.975));
  assert.equal(s.accuracy.ci_low, 0);
  assert.equal(s.accuracy.ci_high, 1);
  assert.equal(s.accuracy.units, 2);
});

Deno.test("bootstrap intervals are deterministic per seed, change with the seed, and bracket the estimate", () => {
  const p: ClassPrediction[] = [];
  for (let u = 0; u < 30; u++) {
    for (let b = 0; b < 6; b++) {
      const label = b % 3;
      const right = uniformAt(5, u, b) < 0.7;
      p.push({
        id: `${u}#${b}`,
        participant: `p${u % 10}`,
        unit: `u${u}`,
        label,
        predicted: right ? label : (label + 1) % 3,
      });
    }
  }
  const metrics = [ACCURACY, BALANCED_ACCURACY, MACRO_F1, PER_PARTICIPANT_ACCURACY];
  const a = scoreMetrics(p, metrics, { replicates: 300, seed: 1 });
  const b = scoreMetrics([...p].reverse(), metrics, { replicates: 300, seed: 1 });
  assert.deepEqual(a, b, "same seed, same intervals, whatever the prediction order");
  const c = scoreMetrics(p, metrics, { replicates: 300, seed: 2 });
  assert.notDeepEqual(a.accuracy, c.accuracy, "another seed resamples differently");
  for (const [name, m] of Object.entries(a)) {
    assert.ok(m.ci_low !== null && m.ci_high !== null && m.value !== null, name);
    assert.ok(
      m.ci_low <= m.value + 1e-12 && m.value <= m.ci_high + 1e-12,
      `${name}: ${m.ci_low} ≤ ${m.value} ≤ ${m.ci_high}`,
    );
  }
  // 30 independent sessions of 6 blocks at ~70 %: the half-width is about 1.96·sqrt(0.21/180) ≈ 0.067.
  const width = a.accuracy.ci_high! - a.accuracy.ci_low!;
  assert.ok(width > 0.08 && width < 0.2, `95% interval width ${width}`);
});

Deno.test("scoreMetrics refuses bad settings and duplicate metrics", () => {
  assert.throws(() => scoreMetrics(example(), [ACCURACY], { replicates: -1 }), /replicates -1/);
  assert.throws(() => scoreMetrics(example(), [ACCURACY], { confidence: 1 }), /confidence/);
  assert.throws(() => scoreMetrics(example(), [ACCURACY, ACCURACY]), /twice/);
  assert.throws(() => scoreMetrics(example(), [{ ...ACCURACY, name: "bad name" }]), /rename/);
  const none = scoreMetrics(example(), [ACCURACY], { replicates: 0 });
  assert.equal(none.accuracy.ci_low, null);
  assert.equal(none.accuracy.value, 4 / 6);
});
