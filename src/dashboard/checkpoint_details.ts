/**
 * Everything the dashboard shows about one checkpoint: manifest facts, the config it was trained with, the
 * code version, a summary of the data it consumed (its data-hash ledger, per participant and modality when
 * the catalog knows the recordings), its lineage, metrics, and its benchmark results (attached to the
 * checkpoint directory and stored in the catalog).
 *
 * @module
 */
import { join } from "node:path";
import { summarizeCheckpoint } from "../checkpoint/checkpoint_reader.ts";
import { parseCheckpointDirName } from "../checkpoint/checkpoint_layout.ts";
import { type BenchmarkResult, listBenchmarkResults } from "../bench/results.ts";
import { DataLedger } from "../data/ledger.ts";
import { RECORDINGS_TABLE } from "../ursa/catalog_tables.ts";
import type { Catalog } from "../ursa/catalog.ts";
import { readJsonFile } from "./run_directory.ts";

/** A benchmark result as displayed (top-level metrics only). */
export interface BenchmarkView {
  suite: string;
  checkpointHash: string;
  step: number | null;
  partialSubset: number;
  windows: string;
  /** metric → point estimate and confidence interval. */
  metrics: Record<string, { value: number | null; ciLow: number | null; ciHigh: number | null }>;
  overlapAllowed: boolean;
  createdAt: string;
  /** Where it was found: the catalog, or the checkpoint's `benchmarks/` directory. */
  source: "catalog" | "checkpoint";
}

/** What a checkpoint's data-hash ledger covers. */
export interface DataSummary {
  /** Distinct recordings read. */
  recordings: number;
  /** Seconds of recording covered (union of the windows read). */
  seconds: number;
  /** Per participant and modality, when the catalog knows the recordings. */
  groups: { participant: string; modality: string; recordings: number; seconds: number }[];
  /** Recordings the catalog does not know (or all of them without a catalog). */
  unknownRecordings: number;
}

/** One checkpoint, for the details panel. */
export interface CheckpointDetails {
  run: string;
  name: string;
  dir: string;
  step: number;
  hash: string | null;
  parentHash: string | null;
  writtenAt: string | null;
  files: number;
  bytes: number;
  /** Why the manifest could not be read. */
  problem: string | null;
  config: Record<string, unknown> | null;
  codeVersion: Record<string, unknown> | null;
  metrics: Record<string, unknown> | null;
  lineage: Record<string, unknown> | null;
  data: DataSummary | null;
  benchmarks: BenchmarkView[];
}

/** A stored result as a {@link BenchmarkView}. */
export function benchmarkView(r: BenchmarkResult, source: BenchmarkView["source"]): BenchmarkView {
  const metrics: BenchmarkView["metrics"] = {};
  for (const [name, m] of Object.entries(r.metrics ?? {})) {
    if (!name.includes("/")) metrics[name] = { value: m.value, ciLow: m.ci_low, ciHigh: m.ci_high };
  }
  return {
    suite: r.suite_key,
    checkpointHash: r.checkpoint_hash,
    step: r.step,
    partialSubset: r.partial_subset,
    windows: `${r.windows_used}/${r.windows_total}`,
    metrics,
    overlapAllowed: r.overlap_allowed,
    createdAt: r.created_at,
    source,
  };
}

/** The results attached to a checkpoint directory (`benchmarks/<suite>@<version>.json`). */
export async function attachedBenchmarks(checkpointDir: string): Promise<BenchmarkView[]> {
  const out: BenchmarkView[] = [];
  try {
    for await (const entry of Deno.readDir(join(checkpointDir, "benchmarks"))) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const r = await readJsonFile(join(checkpointDir, "benchmarks", entry.name));
      if (r && typeof r.suite_key === "string" && r.metrics && typeof r.metrics === "object") {
        out.push(benchmarkView(r as unknown as BenchmarkResult, "checkpoint"));
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.suite.localeCompare(b.suite));
}

/**
 * Benchmark results of a run: the catalog's (table `benchmark_results`) and those attached to its
 * checkpoint directories, one per (suite, checkpoint, subset), the catalog's preferred.
 */
export function mergeBenchmarks(catalog: BenchmarkView[], attached: BenchmarkView[]): BenchmarkView[] {
  const key = (b: BenchmarkView) => `${b.suite}|${b.checkpointHash}|${b.partialSubset}`;
  const seen = new Set(catalog.map(key));
  return [...catalog, ...attached.filter((b) => !seen.has(key(b)))].sort((a, b) =>
    (a.step ?? -1) - (b.step ?? -1) || a.suite.localeCompare(b.suite)
  );
}

/** Catalog results of a run, as views; [] without a catalog. */
export async function catalogBenchmarks(catalog: Catalog | null, run: string): Promise<BenchmarkView[]> {
  if (!catalog) return [];
  return (await listBenchmarkResults(catalog, { run })).map((r) => benchmarkView(r, "catalog"));
}

/** Summarizes a ledger, naming participants and modalities from the catalog's recordings when it can. */
export async function summarizeLedger(ledger: DataLedger, catalog: Catalog | null): Promise<DataSummary> {
  const perRecording = new Map<string, number>();
  for (const e of ledger.entries()) {
    const s = e.intervals.reduce((n, [a, b]) => n + b - a, 0);
    perRecording.set(e.recording_hash, (perRecording.get(e.recording_hash) ?? 0) + s);
  }
  const known = new Map<string, { participant: string; modality: string }>();
  if (catalog && perRecording.size > 0) {
    const rows = await catalog.query(RECORDINGS_TABLE, undefined, {
      columns: ["recording_hash", "participant", "modality"],
    });
    for (const row of rows) {
      const hash = String(row.recording_hash);
      if (perRecording.has(hash)) {
        known.set(hash, { participant: String(row.participant), modality: String(row.modality) });
      }
    }
  }
  const groups = new Map<
    string,
    { participant: string; modality: string; recordings: number; seconds: number }
  >();
  let unknownRecordings = 0;
  for (const [hash, seconds] of perRecording) {
    const who = known.get(hash);
    if (!who) {
      unknownRecordings++;
      continue;
    }
    const k = `${who.participant}|${who.modality}`;
    const g = groups.get(k) ?? { ...who, recordings: 0, seconds: 0 };
    g.recordings++;
    g.seconds += seconds;
    groups.set(k, g);
  }
  return {
    recordings: perRecording.size,
    seconds: [...perRecording.values()].reduce((a, b) => a + b, 0),
    groups: [...groups.values()].sort((a, b) =>
      a.participant.localeCompare(b.participant) || a.modality.localeCompare(b.modality)
    ),
    unknownRecordings,
  };
}

/**
 * Reads the details of checkpoint directory `checkpointDir` of run `run` (files are not re-hashed: the
 * dashboard shows, it does not verify).
 */
export async function readCheckpointDetails(
  run: string,
  checkpointDir: string,
  catalog: Catalog | null,
): Promise<CheckpointDetails> {
  const name = checkpointDir.replace(/\/+$/, "").split("/").pop() ?? checkpointDir;
  const step = parseCheckpointDirName(name) ?? -1;
  const summary = await summarizeCheckpoint({ name, dir: checkpointDir, step });
  const manifest = summary.manifest;
  const configDoc = await readJsonFile(join(checkpointDir, "config.json"));
  const ledgerJson = await readJsonFile(join(checkpointDir, "data_hashes", "manifest.json"));
  let data: DataSummary | null = null;
  let problem = summary.problem ?? null;
  if (ledgerJson) {
    try {
      data = await summarizeLedger(DataLedger.fromJSON(ledgerJson), catalog);
    } catch (e) {
      problem = [problem, `data_hashes/manifest.json: ${(e as Error).message}`].filter(Boolean).join("; ");
    }
  }
  const hash = manifest?.checkpointHash ?? null;
  const fromCatalog = hash
    ? (await catalogBenchmarks(catalog, run)).filter((b) => b.checkpointHash === hash)
    : [];
  return {
    run,
    name,
    dir: checkpointDir,
    step: manifest?.step ?? step,
    hash,
    parentHash: manifest?.parentHash ?? null,
    writtenAt: manifest?.writtenAt ?? null,
    files: manifest ? manifest.files.length + 1 : 0,
    bytes: manifest ? manifest.files.reduce((n, f) => n + f.bytes, 0) : 0,
    problem,
    config: (configDoc?.config as Record<string, unknown> | undefined) ?? configDoc,
    codeVersion: await readJsonFile(join(checkpointDir, "code_version.json")),
    metrics: summary.metrics,
    lineage: summary.lineage,
    data,
    // Attached results may be of earlier checkpoints (results attach to the next checkpoint written).
    benchmarks: mergeBenchmarks(
      fromCatalog,
      (await attachedBenchmarks(checkpointDir)).filter((b) => b.checkpointHash === hash),
    ),
  };
}
