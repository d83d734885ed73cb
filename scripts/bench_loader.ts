/**
 * Loader benchmark: windows/s and batches/s of the training loader (batch 32, 10 s windows, patch 16),
 * cold (first pass, chunks read from Lance) and warm (steady state, chunks cached), plus how long a
 * consumer that works 20 ms per step waits on `next()` with prefetch. Prints a table and one JSON line.
 *
 * Usage: deno run -A scripts/bench_loader.ts [--catalog DIR] [--participants N] [--batches N]
 * Without --catalog it builds a demo corpus (12 participants × 5 min) in a temporary directory.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { openCatalog } from "../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../src/ursa/demo_corpus.ts";
import { resolveQuery } from "../src/ursa/resolve_query.ts";
import { openWindowDataset } from "../src/data/window_dataset.ts";

/** Benchmark results. */
export interface LoaderBenchResult {
  name: "loader";
  batchSize: number;
  windowSeconds: number;
  numTokens: number;
  trainWindows: number;
  coldWindowsPerSecond: number;
  warmWindowsPerSecond: number;
  warmBatchesPerSecond: number;
  /** Mean wait in next() per step for a consumer busy 20 ms per step (prefetch 4). */
  consumerWaitMs: number;
  cachedMiB: number;
}

/** Runs the benchmark. */
export async function benchLoader(
  options: { catalog?: string; participants?: number; batches?: number; log?: (line: string) => void } = {},
): Promise<LoaderBenchResult> {
  const log = options.log ?? (() => {});
  const temp = options.catalog ? undefined : await Deno.makeTempDir({ prefix: "orion_bench_loader_" });
  const catalog = await openCatalog(options.catalog ?? `${temp}/catalog`);
  try {
    if (temp) {
      const summary = await generateDemoCorpus(catalog, {
        participants: options.participants ?? 12,
        minutes: 5,
      });
      log(
        `built demo corpus (${summary.participants.length} participants) in ${
          summary.seconds.total.toFixed(1)
        } s`,
      );
    }
    const resolved = await resolveQuery(catalog, {});
    const S = 10, B = 32;
    const ds = await openWindowDataset(catalog, resolved, {
      trainWindow: S,
      trainSplit: 0.8,
      patch: 16,
      latentStep: S / 8,
      numLatents: 16,
    });
    const trainWindows = ds.split("train").numWindows;
    // Cold: one epoch's worth of batches, every chunk read from Lance on first use.
    const coldBatches = Math.max(1, Math.ceil(trainWindows / B));
    let t = performance.now();
    const cold = ds.loader("train", { batchSize: B, seed: 1, prefetch: 4 });
    for (let i = 0; i < coldBatches; i++) await cold.next();
    const coldSeconds = (performance.now() - t) / 1000;
    // Warm: steady state over cached chunks.
    const warmBatches = options.batches ?? 200;
    const warm = ds.loader("train", { batchSize: B, seed: 2, prefetch: 4 });
    await warm.next();
    t = performance.now();
    for (let i = 0; i < warmBatches; i++) await warm.next();
    const warmSeconds = (performance.now() - t) / 1000;
    // Consumer simulation: 20 ms of work per step; measure time blocked in next().
    const consumer = ds.loader("train", { batchSize: B, seed: 3, prefetch: 4 });
    await consumer.next();
    let waited = 0;
    const steps = 30;
    for (let i = 0; i < steps; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const w0 = performance.now();
      await consumer.next();
      waited += performance.now() - w0;
    }
    return {
      name: "loader",
      batchSize: B,
      windowSeconds: S,
      numTokens: ds.numTokens,
      trainWindows,
      coldWindowsPerSecond: (coldBatches * B) / coldSeconds,
      warmWindowsPerSecond: (warmBatches * B) / warmSeconds,
      warmBatchesPerSecond: warmBatches / warmSeconds,
      consumerWaitMs: waited / steps,
      cachedMiB: ds.reader.cachedBytes / 2 ** 20,
    };
  } finally {
    catalog.close();
    if (temp) await Deno.remove(temp, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { catalog: { type: "string" }, participants: { type: "string" }, batches: { type: "string" } },
  });
  const result = await benchLoader({
    catalog: values.catalog,
    participants: values.participants ? Number(values.participants) : undefined,
    batches: values.batches ? Number(values.batches) : undefined,
    log: (line) => console.log(line),
  });
  const rows: [string, string][] = [
    ["batch × window", `${result.batchSize} × ${result.windowSeconds} s (${result.numTokens} tokens)`],
    ["train windows", String(result.trainWindows)],
    ["cold windows/s", result.coldWindowsPerSecond.toFixed(0)],
    ["warm windows/s", result.warmWindowsPerSecond.toFixed(0)],
    ["warm batches/s", result.warmBatchesPerSecond.toFixed(1)],
    ["consumer wait/step (20 ms step)", `${result.consumerWaitMs.toFixed(2)} ms`],
    ["chunk cache", `${result.cachedMiB.toFixed(1)} MiB`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
  console.log(JSON.stringify(result));
}
