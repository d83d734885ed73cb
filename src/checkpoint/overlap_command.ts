/**
 * `orion overlap <ckpt> <benchmark-suite | ckpt | ledger.json | query>`: train/test overlap as the set
 * intersection of data-hash ledgers (`intersectLedgers`): the checkpoint's training ledger
 * (`data_hashes/manifest.json`, ancestors' data included) against
 * - a benchmark suite (`cognitive_load_eval@1`): its held-out ledger (`openBenchData(...).heldOutLedger`),
 *   cut the way the checkpoint's model reads data;
 * - another checkpoint (directory or hash) or a ledger JSON file: that ledger;
 * - a query (QuerySpec JSON, e.g. `{"participants": ["p005"]}`): every sample of every recording it selects.
 *
 * Exit codes: 0 no overlap, 1 overlap found (or a failure), 2 usage error.
 *
 * @module
 */
import { resolve } from "node:path";
import { EXIT, UsageError } from "../cli/cli_errors.ts";
import type { CliIO } from "../cli/cli_io.ts";
import type { Command, CommandContext } from "../cli/command_registry.ts";
import { parseCommandArgs } from "../cli/parse_command_args.ts";
import { DataLedger, intersectLedgers, type LedgerOverlap } from "../data/ledger.ts";
import { type Catalog, defaultCatalogDir, openCatalog, sqlString } from "../ursa/catalog.ts";
import { RECORDINGS_TABLE } from "../ursa/catalog_tables.ts";
import { resolveQuery } from "../ursa/resolve_query.ts";
import type { QuerySpecInput } from "../ursa/query_spec.ts";
import { openBenchData } from "../bench/bench_data.ts";
import type { BenchModelInput } from "../bench/bench_model.ts";
import { readCheckpointLedger } from "../bench/leakage.ts";
import { benchSuiteExists, getBenchmark, listBenchmarks } from "../bench/registry.ts";
import "../bench/cognitive_load_eval.ts"; // registers cognitive_load_eval@1
import { resolveCheckpointArg } from "./checkpoint_arg.ts";
import { parseSafetensorsHeader, readSafetensorsHeaderLength } from "./safetensors.ts";

/** Usage text of `orion overlap`. */
export const OVERLAP_USAGE =
  `orion overlap <ckpt> <benchmark-suite | ckpt | ledger.json | query> [--catalog dir] [--json]

Train/test overlap as the intersection of data-hash ledgers: the samples <ckpt> was trained on (its
data_hashes/manifest.json, ancestors' data included) against
  benchmark-suite   a suite key (e.g. cognitive_load_eval@1): its held-out samples, read as <ckpt>'s model reads
  ckpt              another checkpoint (directory or hash): the samples it was trained on
  ledger.json       a data ledger file ({"version": 1, "entries": [...]})
  query             a QuerySpec as JSON (e.g. '{"participants": ["p005"]}'): every sample of what it selects
<ckpt> is a checkpoint directory or a checkpoint hash (at least 6 hex digits) looked up in the catalog.
  --catalog dir   catalog for hashes, suites and queries (default: the checkpoint's data.catalogDir, else
                  $ORION_HOME/catalog or ./.orion/catalog)
  --json          print the overlap as JSON
Exit codes: 0 no overlap, 1 overlap found (or a failure), 2 usage error.`;

/** The outcome of {@link computeOverlap}. */
export interface OverlapReport {
  left: { label: string; recordings: number; seconds: number };
  right: {
    label: string;
    kind: "suite" | "checkpoint" | "ledger" | "query";
    recordings: number;
    seconds: number;
  };
  overlaps: (LedgerOverlap & { session: string | null })[];
  seconds: number;
}

function recordingsOf(ledger: DataLedger): number {
  return new Set(ledger.entries().map((e) => e.recording_hash)).size;
}

interface CheckpointConfig {
  data?: {
    catalogDir?: string | null;
    trainWindow?: number;
    evalWindowStride?: number | null;
    ursaQuery?: { modalities?: string[]; derived?: string[] };
  };
}

async function checkpointConfig(dir: string): Promise<CheckpointConfig> {
  try {
    const doc = JSON.parse(await Deno.readTextFile(resolve(dir, "config.json")));
    return (doc && typeof doc === "object" && "config" in doc ? doc.config : doc) as CheckpointConfig;
  } catch {
    return {};
  }
}

/** The model's data input (what `openBenchData` cuts windows with) from a checkpoint's config and weights metadata. */
async function benchInputOf(dir: string, config: CheckpointConfig): Promise<BenchModelInput> {
  const path = resolve(dir, "model", "weights.safetensors");
  let kwargs: Record<string, unknown>;
  const file = await Deno.open(path);
  try {
    const size = (await file.stat()).size;
    const readInto = async (buffer: Uint8Array) => {
      let at = 0;
      while (at < buffer.byteLength) {
        const n = await file.read(buffer.subarray(at));
        if (n === null) break;
        at += n;
      }
    };
    const head = new Uint8Array(8);
    await readInto(head);
    const prefix = new Uint8Array(8 + readSafetensorsHeaderLength(head, size, { source: path }));
    prefix.set(head);
    await readInto(prefix.subarray(8));
    const layout = parseSafetensorsHeader(prefix, size, { source: path });
    kwargs = JSON.parse(layout.metadata.kwargs ?? "null");
  } finally {
    file.close();
  }
  const data = config.data ?? {};
  if (!kwargs || typeof kwargs !== "object" || !data.ursaQuery?.modalities || !data.trainWindow) {
    throw new Error(
      `Cannot open a suite's held-out data for ${dir} as its config.json or model/weights.safetensors metadata ` +
        "lacks the data input (data.ursaQuery.modalities, data.trainWindow, kwargs): it was not written by orion train",
    );
  }
  return {
    modalities: data.ursaQuery.modalities,
    derived: data.ursaQuery.derived ?? [],
    trainWindow: data.trainWindow,
    evalStride: data.evalWindowStride ?? undefined,
    patch: Number(kwargs.patch),
    latentStep: Number(kwargs.latentStep),
    numLatents: Number(kwargs.numLatents),
  };
}

/** Every sample of every recording a query selects, as a ledger (plus each recording's session). */
async function queryLedger(
  catalog: Catalog,
  spec: QuerySpecInput,
): Promise<{ ledger: DataLedger; sessions: Map<string, string> }> {
  const resolved = await resolveQuery(catalog, spec);
  const ledger = new DataLedger();
  const sessions = new Map<string, string>();
  for (const s of resolved.sessions) {
    for (const a of s.assets) {
      ledger.add(a.recordingHash, [a.derivedAssetId], 0, a.numSamples / a.samplingRate);
      sessions.set(a.recordingHash, s.key);
    }
  }
  return { ledger, sessions };
}

async function sessionsFromCatalog(catalog: Catalog | null, hashes: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!catalog || hashes.length === 0 || !(await catalog.hasTable(RECORDINGS_TABLE))) return out;
  const rows = await catalog.query(
    RECORDINGS_TABLE,
    `recording_hash IN (${hashes.map(sqlString).join(", ")})`,
    { columns: ["recording_hash", "participant", "session"] },
  );
  for (const r of rows) out.set(String(r.recording_hash), `${r.participant}/${r.session}`);
  return out;
}

/** Options of {@link computeOverlap}. */
export interface OverlapOptions {
  cwd: string;
  /** Catalog for hashes, suites and queries (default: the checkpoint's `data.catalogDir`, else the default). */
  catalogDir?: string;
}

/**
 * The overlap between the training data of checkpoint `ckpt` and `other` (see the module documentation).
 *
 * @example
 * ```ts ignore
 * const report = await computeOverlap("runs/demo/ckpt-step000000300", "cognitive_load_eval@1", { cwd: Deno.cwd() });
 * console.log(report.overlaps.length === 0 ? "clean split" : `${report.seconds} s overlap`);
 * ```
 */
export async function computeOverlap(
  ckpt: string,
  other: string,
  options: OverlapOptions,
): Promise<OverlapReport> {
  const left = await resolveCheckpointArg(ckpt, options.cwd, options.catalogDir);
  const trained = await readCheckpointLedger(left.dir);
  const config = await checkpointConfig(left.dir);
  const catalogDir = resolve(
    options.cwd,
    options.catalogDir ?? config.data?.catalogDir ?? defaultCatalogDir(),
  );
  let catalog: Catalog | null = null;
  const needCatalog = async () => {
    try {
      if (!(await Deno.stat(catalogDir)).isDirectory) throw new Deno.errors.NotFound(catalogDir);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new UsageError(
        `Cannot read the catalog ${catalogDir} as it does not exist: pass --catalog <dir>`,
      );
    }
    catalog ??= await openCatalog(catalogDir);
    return catalog;
  };
  try {
    let ledger: DataLedger;
    let kind: OverlapReport["right"]["kind"];
    let label = other;
    let sessions = new Map<string, string>();
    if (other.trim().startsWith("{")) {
      let spec: QuerySpecInput;
      try {
        spec = JSON.parse(other);
      } catch (e) {
        throw new UsageError(`Cannot read the query ${other} as it is not JSON: ${(e as Error).message}`);
      }
      ({ ledger, sessions } = await queryLedger(await needCatalog(), spec));
      kind = "query";
    } else if (/^[A-Za-z0-9_.-]+@[0-9]+$/.test(other)) {
      if (!benchSuiteExists(other)) {
        throw new UsageError(
          `Cannot check overlap with suite ${other} as no such suite is registered: current suites are ${
            listBenchmarks().map((b) => b.key).join(", ")
          }`,
        );
      }
      const suite = getBenchmark(other).suite();
      const data = await openBenchData(await needCatalog(), {
        query: suite.heldOutData(),
        isHeldOut: suite.isHeldOut?.bind(suite),
      }, await benchInputOf(left.dir, config));
      ledger = data.heldOutLedger;
      sessions = data.recordingSessions;
      kind = "suite";
      label = `${other} held-out data`;
    } else {
      let isFile = false;
      try {
        isFile = (await Deno.stat(resolve(options.cwd, other))).isFile;
      } catch { /* not a file */ }
      if (isFile) {
        const path = resolve(options.cwd, other);
        try {
          ledger = DataLedger.fromJSON(JSON.parse(await Deno.readTextFile(path)));
        } catch (e) {
          throw new UsageError(`Cannot read the data ledger ${path}: ${(e as Error).message}`);
        }
        kind = "ledger";
      } else {
        const right = await resolveCheckpointArg(other, options.cwd, options.catalogDir);
        ledger = await readCheckpointLedger(right.dir);
        kind = "checkpoint";
        label = right.dir;
      }
    }
    const overlaps = intersectLedgers(trained, ledger);
    if (overlaps.some((o) => !sessions.has(o.recording_hash))) {
      const known = await sessionsFromCatalog(
        await needCatalog().catch(() => null),
        overlaps.map((o) => o.recording_hash),
      );
      for (const [h, s] of known) if (!sessions.has(h)) sessions.set(h, s);
    }
    return {
      left: { label: left.dir, recordings: recordingsOf(trained), seconds: trained.totalSeconds() },
      right: { label, kind, recordings: recordingsOf(ledger), seconds: ledger.totalSeconds() },
      overlaps: overlaps.map((o) => ({ ...o, session: sessions.get(o.recording_hash) ?? null })),
      seconds: overlaps.reduce((n, o) => n + o.seconds, 0),
    };
  } finally {
    (catalog as Catalog | null)?.close();
  }
}

/** The report as lines for people. */
export function formatOverlap(report: OverlapReport): string[] {
  const s = (x: number) => x.toFixed(3);
  const lines = [
    `trained on  ${report.left.label}: ${report.left.recordings} recording(s), ${s(report.left.seconds)} s`,
    `against     ${report.right.label} (${report.right.kind}): ${report.right.recordings} recording(s), ${
      s(report.right.seconds)
    } s`,
  ];
  if (report.overlaps.length === 0) {
    lines.push("overlap     none: the two sets of samples are disjoint");
    return lines;
  }
  lines.push(`overlap     ${report.overlaps.length} recording(s), ${s(report.seconds)} s in total:`);
  for (const o of report.overlaps.slice(0, 50)) {
    lines.push(
      `  ${o.recording_hash.slice(0, 16)}${o.session ? ` (${o.session})` : ""}: ${s(o.seconds)} s in ${
        o.intervals.slice(0, 4).map(([a, b]) => `[${a}, ${b})`).join(", ")
      }${o.intervals.length > 4 ? `, … (${o.intervals.length} intervals)` : ""}`,
    );
  }
  if (report.overlaps.length > 50) lines.push(`  … and ${report.overlaps.length - 50} more`);
  return lines;
}

/** Runs `orion overlap …` and returns the exit code (0 none, 1 overlap). */
export async function overlapCommand(args: string[], io: CliIO, cwd: string): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    catalog: { type: "string" },
    json: { type: "boolean" },
  }, OVERLAP_USAGE);
  if (positionals.length !== 2) {
    throw new UsageError(
      `Cannot compute an overlap from ${positionals.length} argument(s): it takes <ckpt> and what to compare with`,
      OVERLAP_USAGE,
    );
  }
  const report = await computeOverlap(positionals[0], positionals[1], { cwd, catalogDir: values.catalog });
  io.out(values.json ? JSON.stringify(report, null, 2) : formatOverlap(report).join("\n"));
  return report.overlaps.length === 0 ? EXIT.ok : EXIT.runtimeFailure;
}

/** The `orion overlap` command. */
export const overlapCLICommand: Command = {
  name: "overlap",
  summary: "train/test overlap of a checkpoint's data with a benchmark suite, checkpoint, ledger or query",
  usage: OVERLAP_USAGE,
  run: (args: string[], ctx: CommandContext) => overlapCommand(args, ctx.io, ctx.cwd),
};
