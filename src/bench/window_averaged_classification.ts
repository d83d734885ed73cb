/**
 * The measurement behind classification suites: predict every (kept) window, average the logits of the
 * overlapping windows of each labelled block, take the argmax, score the blocks.
 *
 * - A window's logits are the mean over its queries of weight > 0 (one query per window by default).
 * - A block's logits are the mean of its kept windows' logits (raw logits, not probabilities), accumulated in
 *   float64 in window order; the prediction is the argmax, ties going to the lowest class index.
 * - Blocks are the unit that carries one label (a labelled interval of a recording session); the bootstrap
 *   resamples sessions (see `metrics.ts`).
 *
 * @module
 */
import type { PoyoBatch } from "../data/batch.ts";
import type { BenchModel } from "./bench_model.ts";
import type { BenchData, BenchWindow } from "./bench_data.ts";
import type { BenchmarkMeasurement, BenchRunOptions, BlockPrediction } from "./bench_suite.ts";
import { type BootstrapOptions, type Metric, scoreMetrics } from "./metrics.ts";
import { selectPartialSubset } from "./partial_subset.ts";

/** Options of {@link runWindowAveragedClassification}. */
export interface WindowAveragedOptions extends BenchRunOptions {
  /** Metrics to compute over the block predictions. */
  metrics: readonly Metric[];
  /** Default: 1000 replicates, seed 0, 95 %. */
  bootstrap?: BootstrapOptions;
  /** Batches handed to one `predict` call (default 4); the next ones are assembled meanwhile. */
  batchesPerPredict?: number;
}

/** Assembles the batches of `windows`, padding the last to `batchSize` rows of weight 0. */
async function assemble(data: BenchData, windows: BenchWindow[], batchSize: number): Promise<PoyoBatch> {
  const rows = windows.slice();
  while (rows.length < batchSize) rows.push(windows[windows.length - 1]);
  const batch = await data.makeBatch(rows);
  if (batch.batchSize !== rows.length) {
    throw new Error(
      `Cannot evaluate as the data produced a batch of ${batch.batchSize} rows for ${rows.length} windows`,
    );
  }
  for (let b = windows.length; b < batchSize; b++) {
    batch.weight.fill(0, b * batch.numQueries, (b + 1) * batch.numQueries);
  }
  return batch;
}

/**
 * Measures a classifier on held-out blocks with window-averaged logits.
 *
 * @example
 * ```ts
 * const m = await runWindowAveragedClassification(model, data, {
 *   partialSubset: 1, partialSeed: 0, metrics: [ACCURACY, MACRO_F1],
 * });
 * console.log(m.metrics.accuracy.value, m.windows_used);
 * ```
 */
export async function runWindowAveragedClassification(
  model: BenchModel,
  data: BenchData,
  options: WindowAveragedOptions,
): Promise<BenchmarkMeasurement> {
  const selection = selectPartialSubset(data.groups, options.partialSubset, options.partialSeed);
  if (selection.windows.length === 0) {
    throw new Error(
      `Cannot evaluate a partial subset of ${options.partialSubset} (seed ${options.partialSeed}) as it keeps none ` +
        `of the ${selection.windowsTotal} windows: raise partialSubset`,
    );
  }
  const batchSize = model.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`Cannot evaluate with model batchSize ${batchSize}: it must be a positive integer`);
  }
  const perCall = Math.max(1, options.batchesPerPredict ?? 4);
  const chunks: BenchWindow[][] = [];
  for (let i = 0; i < selection.windows.length; i += batchSize) {
    chunks.push(selection.windows.slice(i, i + batchSize));
  }
  const sums = new Map<number, { logits: Float64Array; windows: number }>();
  let numLogits = -1;
  const assembleCall = (first: number) =>
    Promise.all(chunks.slice(first, first + perCall).map((c) => assemble(data, c, batchSize)));
  let next = chunks.length > 0 ? assembleCall(0) : null;
  for (let first = 0; first < chunks.length; first += perCall) {
    const batches = await next!;
    next = first + perCall < chunks.length ? assembleCall(first + perCall) : null;
    next?.catch(() => {}); // surfaced when awaited
    const logits = await model.predict(batches);
    const expected = batches.reduce((n, b) => n + b.batchSize * b.numQueries, 0);
    if (!Array.isArray(logits) || logits.length !== expected) {
      throw new Error(
        `Cannot use the model's predictions as predict returned ${
          Array.isArray(logits) ? logits.length : typeof logits
        } logit rows for ${expected} (rows × queries) of ${batches.length} batches`,
      );
    }
    if (numLogits < 0) {
      numLogits = logits[0]?.length ?? 0;
      if (numLogits < Math.max(1, data.numClasses)) {
        throw new Error(
          `Cannot score the model as it emits ${numLogits} logits per query but the held-out labels have ` +
            `${data.numClasses} classes`,
        );
      }
    }
    logits.forEach((z, r) => {
      if (!(z instanceof Float32Array) || z.length !== numLogits) {
        throw new Error(
          `Cannot use the model's predictions as logit row ${r} has ${z?.length} values, not ${numLogits}`,
        );
      }
    });
    let row = 0;
    batches.forEach((batch, bi) => {
      const windows = chunks[first + bi];
      for (let b = 0; b < batch.batchSize; b++, row += batch.numQueries) {
        if (b >= windows.length) continue; // padding row
        const mean = new Float64Array(numLogits);
        let queries = 0;
        for (let q = 0; q < batch.numQueries; q++) {
          if (!(batch.weight[b * batch.numQueries + q] > 0)) continue;
          const z = logits[row + q];
          for (let c = 0; c < numLogits; c++) mean[c] += z[c];
          queries++;
        }
        if (queries === 0) continue;
        for (let c = 0; c < numLogits; c++) {
          if (!Number.isFinite(mean[c])) {
            throw new Error(
              `Cannot score the model as it produced a non-finite logit for a window of block ${
                data.groups[windows[b].group].id
              }`,
            );
          }
        }
        const g = windows[b].group;
        let sum = sums.get(g);
        if (!sum) sums.set(g, sum = { logits: new Float64Array(numLogits), windows: 0 });
        for (let c = 0; c < numLogits; c++) sum.logits[c] += mean[c] / queries;
        sum.windows++;
      }
    });
  }
  for (const sum of sums.values()) for (let c = 0; c < numLogits; c++) sum.logits[c] /= sum.windows;
  const predictions: BlockPrediction[] = [];
  for (const [g, sum] of [...sums.entries()].sort((a, b) => a[0] - b[0])) {
    const group = data.groups[g];
    let best = 0;
    for (let c = 1; c < sum.logits.length; c++) if (sum.logits[c] > sum.logits[best]) best = c;
    predictions.push({
      id: group.id,
      participant: group.participant,
      unit: group.session,
      label: group.label,
      predicted: best,
      windows: sum.windows,
    });
  }
  const bootstrap = {
    replicates: options.bootstrap?.replicates ?? 1000,
    seed: options.bootstrap?.seed ?? 0,
    confidence: options.bootstrap?.confidence ?? 0.95,
  };
  return {
    metrics: scoreMetrics(predictions, options.metrics, bootstrap),
    windows_used: selection.windows.length,
    windows_total: selection.windowsTotal,
    groups_used: predictions.length,
    groups_total: data.groups.length,
    bootstrap: { ...bootstrap, unit: "session" },
    predictions,
  };
}
