/**
 * Loader benchmark: windows/s of the training loader (batch 32, 10 s windows, patch 16 — the poyo_1_3m data
 * shape) for several loader worker counts, cold (first pass over an empty decoded-chunk cache: chunks read
 * from Lance) and warm (steady state over cached chunks), each without and with the training run's
 * `prepare` hook (`batchUploadArrays` of a poyo_1_3m model: modality masks and embedding-index inverses,
 * built on the main thread in the prefetch pipeline) and, with prepare, with reused batch memory
 * (`reuseBuffers`, each batch released after use). The required rate is 10 × the H200's training
 * consumption (2701.1 samples/s for poyo_1_3m with autotuned kernels, 2026-11-29; one window per sample). Also measures how long a consumer
 * that works 20 ms per step waits on `next()`. Prints a table and one JSON line (the last line).
 *
 * Usage: deno run -A scripts/bench_loader.ts [--catalog DIR] [--participants N] [--minutes N] [--batches N]
 *   [--workers 0,1,2,4] [--no-prepare] [--json PATH] [--export-snapshot FILE | --snapshot FILE]
 * Without --catalog it builds a demo corpus (12 participants × 5 min) in a temporary directory. The
 * prepare hook needs a WebGPU adapter to build the model on (any: the software adapter does); without one
 * the prepare columns are null. `--json PATH` also writes the JSON line's object to PATH.
 *
 * Without LanceDB (a machine the catalog's native module cannot travel to): `--export-snapshot FILE` builds
 * or opens the catalog as above, writes a loader snapshot (`src/data/loader_snapshot.ts`: the resolved
 * query and every decoded chunk of the training windows) and exits; `--snapshot FILE` benchmarks from that
 * file instead of a catalog. Nothing on that path loads LanceDB, so it also runs from a bundle
 * (`deno bundle --platform deno --external @lancedb/lancedb`, with `loader_worker.js` bundled beside it).
 * The cold rows read Lance and are null with --snapshot (not measured); the warm rows, including the judged
 * training path, are measured exactly as with a catalog (the first pass fills the chunk cache from the
 * snapshot instead of Lance).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { openCatalog } from "../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../src/ursa/demo_corpus.ts";
import { resolveQuery } from "../src/ursa/resolve_query.ts";
import { openWindowDataset, type WindowDataset } from "../src/data/window_dataset.ts";
import { openSnapshotDataset, readLoaderSnapshot, writeLoaderSnapshot } from "../src/data/loader_snapshot.ts";
import { defaultLoaderWorkers, loaderWorkerModuleUrl } from "../src/data/loader_worker_pool.ts";
import type { PoyoBatch } from "../src/data/batch.ts";
import { Gpu } from "../src/gpu/gpu.ts";
import { batchUploadArrays, POYO } from "../src/models/poyo.ts";
import { BENCH_PRESETS } from "../src/train/bench_presets.ts";
import type { ResolvedQuery } from "../src/ursa/resolve_query.ts";
import type { Catalog } from "../src/ursa/catalog.ts";

/**
 * poyo_1_3m training throughput on one H200 (samples/s; one sample = one window): autotuned, 2026-11-29
 * (docs/performance.md). It was 1568.7 on 2026-11-28; the loader's target moves with the trainer.
 */
export const H200_POYO_1_3M_SAMPLES_PER_SECOND = 2701.1;
/** The loader must deliver this many windows/s: 10 × the H200's consumption. */
export const REQUIRED_WINDOWS_PER_SECOND = 10 * H200_POYO_1_3M_SAMPLES_PER_SECOND;

/** One worker count's rates (windows/s; null where prepare could not run, cold null from a snapshot). */
export interface LoaderBenchRow {
  workers: number;
  coldWindowsPerSecond: number | null;
  coldPrepareWindowsPerSecond: number | null;
  warmWindowsPerSecond: number;
  warmPrepareWindowsPerSecond: number | null;
  /**
   * Warm with prepare and reused batch memory (`reuseBuffers`, each batch released after its prepare):
   * what a training run that releases its batches gets.
   */
  warmPrepareReuseWindowsPerSecond: number | null;
}

/** Benchmark results. The top-level cold/warm fields are those of `defaultWorkers` (without prepare). */
export interface LoaderBenchResult {
  name: "loader";
  /** Where samples came from: the Lance catalog, or a loader snapshot (cold rows not measured). */
  source: string;
  batchSize: number;
  windowSeconds: number;
  numTokens: number;
  trainWindows: number;
  /** Logical cores of this machine. */
  cores: number;
  /** The loader's default worker count here. */
  defaultWorkers: number;
  /**
   * The loader worker entry module, or null when none can start here (every row then assembles on the
   * main thread: a bundle without `loader_worker.js` beside it).
   */
  workerModule: string | null;
  coldWindowsPerSecond: number | null;
  warmWindowsPerSecond: number;
  warmBatchesPerSecond: number;
  /** Mean wait in next() per step for a consumer busy 20 ms per step (default workers and prefetch). */
  consumerWaitMs: number;
  cachedMiB: number;
  requiredWindowsPerSecond: number;
  /** What the prepare columns ran: the model and adapter, or why they are null. */
  prepare: string;
  rows: LoaderBenchRow[];
}

/** Where the benchmark's datasets come from. */
interface BenchSource {
  /** A dataset with an empty chunk cache. */
  open(): Promise<WindowDataset>;
  /** Whether chunks are read from Lance (the cold rows are measured only then). */
  lance: boolean;
  describe: string;
}

/** Options of {@link benchLoader} and {@link exportBenchSnapshot}. */
export interface LoaderBenchOptions {
  /** An existing catalog (default: a demo corpus built in a temporary directory). */
  catalog?: string;
  /** Demo participants (default 12) and minutes per session (default 5) when no catalog is given. */
  participants?: number;
  minutes?: number;
  /** A loader snapshot to read instead of a catalog (`--snapshot`; no LanceDB). */
  snapshot?: string;
  batches?: number;
  workers?: number[];
  prepare?: boolean;
  log?: (line: string) => void;
}

/**
 * Runs `fn` over the benchmark's catalog (`options.catalog`, or a demo corpus built in a temporary
 * directory that is removed afterwards) and its resolved default query.
 */
async function withBenchCatalog<T>(
  options: LoaderBenchOptions,
  fn: (catalog: Catalog, resolved: ResolvedQuery, describe: string) => Promise<T>,
): Promise<T> {
  const log = options.log ?? (() => {});
  const temp = options.catalog ? undefined : await Deno.makeTempDir({ prefix: "orion_bench_loader_" });
  const catalog = await openCatalog(options.catalog ?? `${temp}/catalog`);
  try {
    let describe = `Lance catalog ${options.catalog}`;
    if (temp) {
      const participants = options.participants ?? 12, minutes = options.minutes ?? 5;
      const summary = await generateDemoCorpus(catalog, { participants, minutes });
      log(
        `built demo corpus (${summary.participants.length} participants) in ${
          summary.seconds.total.toFixed(1)
        } s`,
      );
      describe = `Lance catalog: demo corpus, ${participants} participants × ${minutes} min`;
    }
    return await fn(catalog, await resolveQuery(catalog, {}), describe);
  } finally {
    catalog.close();
    if (temp) await Deno.remove(temp, { recursive: true });
  }
}

/**
 * `--export-snapshot`: writes the loader snapshot of the benchmark's dataset (training split) to `file`
 * and returns its size and contents' counts.
 */
export async function exportBenchSnapshot(
  file: string,
  options: LoaderBenchOptions = {},
): Promise<{ bytes: number; chunks: number; trainWindows: number }> {
  return await withBenchCatalog(options, async (catalog, resolved) => {
    const ds = await openBenchDataset(catalog, resolved);
    try {
      const bytes = await writeLoaderSnapshot(file, ds, "train");
      const snapshot = await readLoaderSnapshot(file); // verifies what was written
      return { bytes, chunks: snapshot.source.size, trainWindows: ds.split("train").numWindows };
    } finally {
      ds.close();
    }
  });
}

/** Runs the benchmark. */
export async function benchLoader(options: LoaderBenchOptions = {}): Promise<LoaderBenchResult> {
  if (options.snapshot) {
    const file = options.snapshot;
    const snapshot = await readLoaderSnapshot(file);
    const want = JSON.stringify(BENCH_DATASET_OPTIONS), got = JSON.stringify(snapshot.options);
    for (const [k, v] of Object.entries(BENCH_DATASET_OPTIONS)) {
      if ((snapshot.options as Record<string, unknown>)[k] !== v || snapshot.split !== "train") {
        throw new Error(
          `Cannot benchmark loader snapshot ${file} as it was exported for other dataset options or split than ` +
            `this benchmark's ${want} (train): current value is ${got} (${snapshot.split}); export it again`,
        );
      }
    }
    const mib = (snapshot.bytes / 2 ** 20).toFixed(1);
    return await runBench(options, {
      open: () => openSnapshotDataset(snapshot),
      lance: false,
      describe: `loader snapshot ${file} (${snapshot.source.size} chunks, ${mib} MiB; ` +
        `${snapshot.resolved.sessions.length} sessions); cold rows not measured (they read Lance)`,
    });
  }
  return await withBenchCatalog(
    options,
    (catalog, resolved, describe) =>
      runBench(options, { open: () => openBenchDataset(catalog, resolved), lance: true, describe }),
  );
}

async function runBench(options: LoaderBenchOptions, source: BenchSource): Promise<LoaderBenchResult> {
  const log = options.log ?? (() => {});
  const cores = navigator.hardwareConcurrency ?? 1;
  const defaultWorkers = defaultLoaderWorkers();
  const workerModule = loaderWorkerModuleUrl();
  const counts = [...new Set(options.workers ?? [0, 1, 2, 4, cores])].sort((a, b) => a - b);
  const open = source.open;
  log(`samples from: ${source.describe}`);
  if (workerModule === null && counts.some((c) => c > 0)) {
    log(
      "warning: no loader worker module here (loader_worker.js beside the bundle?): every row runs on the main thread",
    );
  }
  const B = 32;
  const probe = await open();
  const trainWindows = probe.split("train").numWindows;
  const epochBatches = Math.max(1, Math.ceil(trainWindows / B));
  const warmBatches = options.batches ?? 200;
  const { prepare, note } = options.prepare === false
    ? { prepare: null, note: "skipped (--no-prepare)" }
    : await prepareHook(probe);
  log(`prepare hook: ${note}`);
  // One throw-away cold pass: opens Lance's files and warms the OS page cache, so the cold rows below
  // measure reading and decoding chunks, not the first file opens.
  if (source.lance) {
    await passWindowsPerSecond(probe, { batchSize: B, seed: 0, workers: 0 }, epochBatches);
  }

  const rows: LoaderBenchRow[] = [];
  let consumerWaitMs = 0, cachedMiB = 0;
  for (const workers of counts) {
    const cold = async (hook?: (b: PoyoBatch) => void) => {
      const ds = await open(); // empty chunk cache
      try {
        return await passWindowsPerSecond(
          ds,
          { batchSize: B, seed: 1, workers, prepare: hook },
          epochBatches,
        );
      } finally {
        ds.close();
      }
    };
    const coldRate = source.lance ? await cold() : null;
    const coldPrepare = source.lance && prepare ? await cold(prepare) : null;
    const ds = await open();
    try {
      await passWindowsPerSecond(ds, { batchSize: B, seed: 1, workers }, epochBatches); // fill the cache
      const warm = await passWindowsPerSecond(ds, { batchSize: B, seed: 2, workers }, warmBatches, 2);
      const warmPrepare = prepare
        ? await passWindowsPerSecond(ds, { batchSize: B, seed: 3, workers, prepare }, warmBatches, 2)
        : null;
      const warmPrepareReuse = prepare
        ? await passWindowsPerSecond(
          ds,
          { batchSize: B, seed: 3, workers, prepare, reuseBuffers: true },
          warmBatches,
          2,
        )
        : null;
      if (workers === defaultWorkers || (workers === counts[0] && !counts.includes(defaultWorkers))) {
        consumerWaitMs = await consumerWait(ds, { batchSize: B, seed: 4, workers });
        cachedMiB = ds.reader.cachedBytes / 2 ** 20;
      }
      const row = {
        workers,
        coldWindowsPerSecond: coldRate,
        coldPrepareWindowsPerSecond: coldPrepare,
        warmWindowsPerSecond: warm,
        warmPrepareWindowsPerSecond: warmPrepare,
        warmPrepareReuseWindowsPerSecond: warmPrepareReuse,
      };
      log(
        `workers ${workers}: cold ${coldRate === null ? "not measured" : coldRate.toFixed(0)}${
          coldPrepare === null ? "" : ` (+prepare ${coldPrepare.toFixed(0)})`
        }, warm ${warm.toFixed(0)}${warmPrepare === null ? "" : ` (+prepare ${warmPrepare.toFixed(0)})`}${
          warmPrepareReuse === null ? "" : ` (+prepare, reused memory ${warmPrepareReuse.toFixed(0)})`
        } windows/s`,
      );
      rows.push(row);
    } finally {
      ds.close();
    }
  }
  probe.close();
  const main = rows.find((r) => r.workers === defaultWorkers) ?? rows[0];
  return {
    name: "loader",
    source: source.describe,
    batchSize: B,
    windowSeconds: probe.options.trainWindow,
    numTokens: probe.numTokens,
    trainWindows,
    cores,
    defaultWorkers,
    workerModule,
    coldWindowsPerSecond: main.coldWindowsPerSecond,
    warmWindowsPerSecond: main.warmWindowsPerSecond,
    warmBatchesPerSecond: main.warmWindowsPerSecond / B,
    consumerWaitMs,
    cachedMiB,
    requiredWindowsPerSecond: REQUIRED_WINDOWS_PER_SECOND,
    prepare: note,
    rows,
  };
}

/** The poyo_1_3m data shape: 10 s windows, patch 16, 16 latents every 1.25 s. */
const BENCH_DATASET_OPTIONS = {
  trainWindow: 10,
  trainSplit: 0.8,
  patch: 16,
  latentStep: 10 / 8,
  numLatents: 16,
} as const;

function openBenchDataset(catalog: Catalog, resolved: ResolvedQuery): Promise<WindowDataset> {
  return openWindowDataset(catalog, resolved, { ...BENCH_DATASET_OPTIONS });
}

/**
 * The training run's prepare hook over a poyo_1_3m model with the dataset's vocabularies (the hook reads
 * only the model's kwargs and vocabulary sizes; the model is built on whatever adapter exists).
 */
async function prepareHook(
  ds: WindowDataset,
): Promise<{ prepare: ((b: PoyoBatch) => void) | null; note: string }> {
  try {
    const gpu = await Gpu.create();
    const kwargs = { ...BENCH_PRESETS.poyo_1_3m.kwargs, numClasses: ds.numClasses };
    const model = new POYO(gpu, kwargs, {
      channels: ds.vocab.channels,
      sessions: ds.vocab.sessions,
      modalities: ds.modalities,
    }, { seed: 0 });
    return {
      prepare: (b) => void batchUploadArrays(model, b),
      note: `batchUploadArrays of poyo_1_3m (dim ${kwargs.dim}, ${kwargs.numLatents} latents)`,
    };
  } catch (e) {
    return { prepare: null, note: `not measured: no model could be built (${(e as Error).message})` };
  }
}

/** Windows/s over `batches` batches of a fresh loader (after `skip` untimed batches). */
async function passWindowsPerSecond(
  ds: WindowDataset,
  options: {
    batchSize: number;
    seed: number;
    workers: number;
    prepare?: (b: PoyoBatch) => void;
    reuseBuffers?: boolean;
  },
  batches: number,
  skip = 0,
): Promise<number> {
  await ds.startWorkers(options.workers); // worker start-up (once per run) is not part of the rate
  const loader = ds.loader("train", options);
  for (let i = 0; i < skip; i++) loader.release(await loader.next());
  const t = performance.now();
  for (let i = 0; i < batches; i++) loader.release(await loader.next()); // a no-op without reuseBuffers
  return (batches * options.batchSize) / ((performance.now() - t) / 1000);
}

/** Mean ms a consumer busy 20 ms per step waits in `next()`. */
async function consumerWait(
  ds: WindowDataset,
  options: { batchSize: number; seed: number; workers: number },
): Promise<number> {
  const consumer = ds.loader("train", options);
  await consumer.next();
  let waited = 0;
  const steps = 30;
  for (let i = 0; i < steps; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const w0 = performance.now();
    await consumer.next();
    waited += performance.now() - w0;
  }
  return waited / steps;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      catalog: { type: "string" },
      participants: { type: "string" },
      minutes: { type: "string" },
      batches: { type: "string" },
      workers: { type: "string" },
      "no-prepare": { type: "boolean" },
      json: { type: "string" },
      snapshot: { type: "string" },
      "export-snapshot": { type: "string" },
    },
  });
  const positive = (name: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`Cannot benchmark with --${name} ${value}: it takes a positive integer`);
    }
    return n;
  };
  if (
    values.snapshot !== undefined && (values["export-snapshot"] !== undefined || values.catalog !== undefined)
  ) {
    throw new Error(
      "Cannot combine --snapshot with --export-snapshot or --catalog: --snapshot reads samples from the " +
        "snapshot file only",
    );
  }
  const corpus = {
    catalog: values.catalog,
    participants: positive("participants", values.participants),
    minutes: positive("minutes", values.minutes),
    log: (line: string) => console.log(line),
  };
  if (values["export-snapshot"] !== undefined) {
    const file = values["export-snapshot"];
    const out = await exportBenchSnapshot(file, corpus);
    console.log(
      `wrote loader snapshot ${file}: ${out.bytes} bytes (${(out.bytes / 2 ** 20).toFixed(2)} MiB), ` +
        `${out.chunks} chunks of ${out.trainWindows} training windows`,
    );
    Deno.exit(0);
  }
  const workers = values.workers?.split(",").map(Number);
  if (workers?.some((w) => !Number.isInteger(w) || w < 0)) {
    throw new Error(
      `Cannot benchmark worker counts ${values.workers}: --workers takes non-negative integers, e.g. 0,1,2,4`,
    );
  }
  const result = await benchLoader({
    ...corpus,
    snapshot: values.snapshot,
    batches: positive("batches", values.batches),
    workers,
    prepare: !values["no-prepare"],
  });
  const rate = (x: number | null) => (x === null ? "—" : x.toFixed(0));
  // judged: the training path — warm, with prepare, batches released after upload (reused memory) — or
  // warm without prepare when prepare could not run.
  const info: [string, string][] = [
    ["samples from", result.source],
    ["batch × window", `${result.batchSize} × ${result.windowSeconds} s (${result.numTokens} tokens)`],
    ["train windows", String(result.trainWindows)],
    ["cores / default workers", `${result.cores} / ${result.defaultWorkers}`],
    ["worker module", result.workerModule ?? "none: every row ran on the main thread"],
    ["prepare", result.prepare],
    ["consumer wait/step (20 ms step)", `${result.consumerWaitMs.toFixed(2)} ms`],
    ["chunk cache", `${result.cachedMiB.toFixed(1)} MiB`],
    [
      "required windows/s",
      `${result.requiredWindowsPerSecond.toFixed(0)} (10 × ${H200_POYO_1_3M_SAMPLES_PER_SECOND})`,
    ],
  ];
  const width = Math.max(...info.map(([k]) => k.length));
  for (const [k, v] of info) console.log(`${k.padEnd(width)}  ${v}`);
  const header = ["workers", "cold", "cold+prepare", "warm", "warm+prepare", "+reuse", "judged/required"];
  console.log(header.map((h) => h.padStart(15)).join(" "));
  for (const r of result.rows) {
    const judged = r.warmPrepareReuseWindowsPerSecond ?? r.warmWindowsPerSecond;
    console.log(
      [
        String(r.workers),
        rate(r.coldWindowsPerSecond),
        rate(r.coldPrepareWindowsPerSecond),
        rate(r.warmWindowsPerSecond),
        rate(r.warmPrepareWindowsPerSecond),
        rate(r.warmPrepareReuseWindowsPerSecond),
        `${(judged / result.requiredWindowsPerSecond).toFixed(2)}×`,
      ].map((c) => c.padStart(15)).join(" "),
    );
  }
  if (values.json !== undefined) {
    await Deno.writeTextFile(values.json, JSON.stringify(result, null, 2) + "\n");
  }
  console.log(JSON.stringify(result));
}
