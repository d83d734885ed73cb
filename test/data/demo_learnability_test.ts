import assert from "node:assert/strict";
import type { PoyoBatch } from "../../src/data/batch.ts";
import { openWindowDataset } from "../../src/data/window_dataset.ts";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import { resolveQuery } from "../../src/ursa/resolve_query.ts";

/**
 * Evidence that the demo task is learnable from the loader's batches but not trivial: three hand-made
 * features (frontal theta power, parietal alpha power, mean pupil dilation) with a logistic regression,
 * trained on the train split and scored on held-out sessions.
 */
Deno.test("demo corpus is learnable from loader batches: band-power features beat chance on held-out sessions", async () => {
  const dir = await Deno.makeTempDir({ prefix: "orion_learn_" });
  const catalog = await openCatalog(`${dir}/catalog`);
  try {
    await generateDemoCorpus(catalog, { participants: 8, minutes: 5 });
    const S = 2;
    const ds = await openWindowDataset(catalog, await resolveQuery(catalog, {}), {
      trainWindow: S,
      trainSplit: 0.7,
      patch: 16,
      latentStep: 0.25,
      numLatents: 8,
    });
    const frontal = ["Fz", "F3", "F4", "FC1", "FC2", "AF3", "AF4"],
      parietal = ["Pz", "P3", "P4", "PO3", "PO4", "O1", "Oz", "O2"];
    const features = (batch: PoyoBatch, b: number): number[] => {
      const N = batch.numTokens, P = batch.patch;
      const sig = new Map<string, number[]>();
      for (let t = 0; t < batch.kvLen[b]; t++) {
        const name = ds.vocab.channels[batch.unit[b * N + t]].split("/")[1];
        const arr = sig.get(name) ?? [];
        for (let j = 0; j < P; j++) arr.push(batch.value[(b * N + t) * P + j]);
        sig.set(name, arr);
      }
      const band = (x: number[], fs: number, lo: number, hi: number) => {
        let p = 0;
        for (let f = lo; f <= hi; f += 1 / S) {
          let s = 0, c = 0;
          for (let i = 0; i < x.length; i++) {
            s += x[i] * Math.sin(2 * Math.PI * f * i / fs);
            c += x[i] * Math.cos(2 * Math.PI * f * i / fs);
          }
          p += s * s + c * c;
        }
        return Math.log(p + 1e-9);
      };
      const th = frontal.map((ch) => band(sig.get(ch)!, 128, 4, 7.5)).reduce((a, b) => a + b) /
        frontal.length;
      const al = parietal.map((ch) => band(sig.get(ch)!, 128, 8, 12)).reduce((a, b) => a + b) /
        parietal.length;
      const pl = sig.get("pupil_left")!;
      const pm = pl.reduce((a, b) => a + b) / pl.length;
      return [th, al, pm];
    };
    const collect = async (split: "train" | "test") => {
      const X: number[][] = [], y: number[] = [];
      const windows = ds.split(split).windows;
      for (let i = 0; i < windows.length; i += 64) {
        const batch = await ds.makeBatch(windows.slice(i, i + 64));
        for (let b = 0; b < batch.batchSize; b++) {
          X.push(features(batch, b));
          y.push(batch.label[b]);
        }
      }
      return { X, y };
    };
    const tr = await collect("train"), te = await collect("test");
    // standardize + multinomial logistic regression by gradient descent
    const mu = [0, 1, 2].map((k) => tr.X.reduce((a, x) => a + x[k], 0) / tr.X.length);
    const sd = [0, 1, 2].map((k) =>
      Math.sqrt(tr.X.reduce((a, x) => a + (x[k] - mu[k]) ** 2, 0) / tr.X.length)
    );
    const z = (x: number[]) => x.map((v, k) => (v - mu[k]) / sd[k]);
    const W = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]];
    for (let it = 0; it < 500; it++) {
      const G = W.map((r) => r.map(() => 0));
      for (let i = 0; i < tr.X.length; i++) {
        const x = [...z(tr.X[i]), 1];
        const s = W.map((w) => w.reduce((a, wk, k) => a + wk * x[k], 0));
        const m = Math.max(...s);
        const e = s.map((v) => Math.exp(v - m));
        const Z = e.reduce((a, b) => a + b);
        for (let c = 0; c < 3; c++) {
          const g = e[c] / Z - (tr.y[i] === c ? 1 : 0);
          for (let k = 0; k < 4; k++) G[c][k] += g * x[k];
        }
      }
      for (let c = 0; c < 3; c++) for (let k = 0; k < 4; k++) W[c][k] -= 0.5 * G[c][k] / tr.X.length;
    }
    const acc = (D: { X: number[][]; y: number[] }) =>
      D.X.filter((x, i) => {
        const xx = [...z(x), 1];
        const s = W.map((w) => w.reduce((a, wk, k) => a + wk * xx[k], 0));
        return s.indexOf(Math.max(...s)) === D.y[i];
      }).length / D.X.length;
    const trainAccuracy = acc(tr), testAccuracy = acc(te);
    console.log(`demo learnability: train ${trainAccuracy.toFixed(3)}, held-out ${testAccuracy.toFixed(3)}`);
    assert.ok(te.X.length > 200, `${te.X.length} held-out windows`);
    assert.ok(testAccuracy > 0.5, `held-out accuracy ${testAccuracy} (chance 0.33)`);
    assert.ok(trainAccuracy < 0.95, `train accuracy ${trainAccuracy}: the task should not be trivial`);
  } finally {
    catalog.close();
    await Deno.remove(dir, { recursive: true });
  }
});
