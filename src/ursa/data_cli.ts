/**
 * `orion data …` subcommands as a plain async function: `import-edf`, `import-pupil-csv`, `derive`,
 * `demo`, `ls`. Returns the process exit code; prints results to stdout and problems to stderr.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Catalog, openCatalog } from "./catalog.ts";
import {
  DERIVED_ASSETS_TABLE,
  type DerivedAssetRow,
  LABELS_TABLE,
  type RecordingRow,
  RECORDINGS_TABLE,
} from "./catalog_tables.ts";
import { generateDemoCorpus } from "./demo_corpus.ts";
import { DERIVATIONS } from "./derivations.ts";
import { deriveAll } from "./derive.ts";
import { importFiles, type ImportJob } from "./import_files.ts";
import { ensureSignalIndex } from "./signal_store.ts";
import { WorkerPool } from "./worker_pool.ts";

const USAGE = `orion data <command> [options]

Commands:
  import-edf <files or folders…> --participant ID [--session ID] [--modality eeg] [--channels A,B,…]
      Import EDF, EDF+, BDF or BDF+ files (folders: every .edf/.bdf inside, sorted). EDF+ annotations
      'track=value' become labels. Each file is all-or-nothing; the session defaults to the file name.
  import-pupil-csv <files or folders…> --participant ID [--session ID] [--rate HZ]
      Import eye-tracker CSV files (timestamp, left/right diameter, validity).
  derive [DERIVATION|all] [--participant ID,…] [--session ID,…]
      Build derived signals (default: all). Known: ${[...DERIVATIONS.keys()].join(", ")}.
  demo [--seed N] [--participants N] [--minutes M] [--sessions K] [--files-dir DIR]
      Generate the synthetic cognitive-load corpus (default: 60 participants × 5 min, seed 2026),
      written as EDF+/CSV files, then imported and derived.
  ls [--participant ID,…]
      Summarize the catalog (or list one participant's recordings).

Common options:
  --catalog DIR   catalog directory (default: $ORION_HOME/catalog or ./.orion/catalog)
  -h, --help      show this help
`;

function list(value: string | undefined): string[] | undefined {
  return value ? value.split(",").map((s) => s.trim()).filter((s) => s.length > 0) : undefined;
}

async function expand(paths: string[], extensions: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const path of paths) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch {
      throw new Error(`Cannot import ${path} as it does not exist`);
    }
    if (info.isDirectory) {
      const found: string[] = [];
      for await (const entry of Deno.readDir(path)) {
        if (entry.isFile && extensions.some((e) => entry.name.toLowerCase().endsWith(e))) {
          found.push(`${path.replace(/\/+$/, "")}/${entry.name}`);
        }
      }
      if (found.length === 0) {
        throw new Error(`Cannot import folder ${path} as it holds no ${extensions.join("/")} files`);
      }
      out.push(...found.sort());
    } else out.push(path);
  }
  return out;
}

/**
 * Runs `orion data <args>`.
 *
 * @example
 * ```ts
 * const code = await dataCommand(["demo", "--participants", "6", "--minutes", "1"]);
 * ```
 */
export async function dataCommand(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (!command || command === "-h" || command === "--help" || command === "help") {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        catalog: { type: "string" },
        participant: { type: "string" },
        session: { type: "string" },
        modality: { type: "string" },
        channels: { type: "string" },
        rate: { type: "string" },
        seed: { type: "string" },
        participants: { type: "string" },
        minutes: { type: "string" },
        sessions: { type: "string" },
        "files-dir": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  let catalog: Catalog | undefined;
  try {
    catalog = await openCatalog(values.catalog);
    switch (command) {
      case "import-edf":
      case "import-pupil-csv":
        return await importCommand(catalog, command, positionals, values);
      case "derive":
        return await deriveCommand(catalog, positionals, values);
      case "demo":
        return await demoCommand(catalog, values);
      case "ls":
        return await lsCommand(catalog, values);
      default:
        console.error(`error: Cannot run 'orion data ${command}' as the command is unknown\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  } finally {
    catalog?.close();
  }
}

function number(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`Cannot read --${name} as a number: current value is '${value}'`);
  return n;
}

async function importCommand(
  catalog: Catalog,
  command: "import-edf" | "import-pupil-csv",
  positionals: string[],
  values: Record<string, string | boolean | undefined>,
): Promise<number> {
  const participant = values.participant as string | undefined;
  if (!participant) {
    throw new Error(`Cannot run 'orion data ${command}' without --participant (e.g. --participant p001)`);
  }
  if (positionals.length === 0) {
    throw new Error(`Cannot run 'orion data ${command}' without files or folders to import`);
  }
  const edf = command === "import-edf";
  const files = await expand(positionals, edf ? [".edf", ".bdf"] : [".csv"]);
  const session = values.session as string | undefined;
  if (session && files.length > 1) {
    throw new Error(
      `Cannot import ${files.length} files into the one session '${session}': a session holds one recording per modality; ` +
        `omit --session to name sessions after the files`,
    );
  }
  const jobs: ImportJob[] = files.map((path) =>
    edf
      ? {
        kind: "edf",
        path,
        options: {
          participant,
          session,
          modality: values.modality as string | undefined,
          channels: list(values.channels as string),
        },
      }
      : {
        kind: "pupil_csv",
        path,
        options: { participant, session, samplingRate: number("rate", values.rate as string) },
      }
  );
  const pool = new WorkerPool(files.length > 1 ? undefined : 0);
  try {
    const report = await importFiles(catalog, jobs, {
      pool,
      onResult: (r) =>
        console.log(
          `${
            r.status === "imported" ? "imported" : "already imported"
          } ${r.sourcePath} → ${r.participant}/${r.session} ` +
            `${r.modality} ${r.recordingHash.slice(0, 12)} (${
              r.durationS.toFixed(1)
            } s, ${r.numLabels} labels)`,
        ),
    });
    for (const f of report.failures) console.error(`error: ${f.reason}`);
    if (report.results.some((r) => r.status === "imported")) {
      await ensureSignalIndex(catalog);
      await catalog.optimize();
    }
    return report.failures.length > 0 ? 1 : 0;
  } finally {
    pool.close();
  }
}

async function deriveCommand(
  catalog: Catalog,
  positionals: string[],
  values: Record<string, string | boolean | undefined>,
) {
  const which = positionals[0] ?? "all";
  const names = which === "all" ? [...DERIVATIONS.keys()] : [which];
  const pool = new WorkerPool();
  try {
    for (const name of names) {
      const results = await deriveAll(catalog, name, {
        participants: list(values.participant as string),
        sessions: list(values.session as string),
      }, { pool });
      const built = results.filter((r) => r.status === "built").length;
      console.log(`${name}: built ${built}, already built ${results.length - built}`);
    }
    await ensureSignalIndex(catalog);
    await catalog.optimize();
    return 0;
  } finally {
    pool.close();
  }
}

async function demoCommand(catalog: Catalog, values: Record<string, string | boolean | undefined>) {
  const summary = await generateDemoCorpus(catalog, {
    seed: number("seed", values.seed as string),
    participants: number("participants", values.participants as string),
    minutes: number("minutes", values.minutes as string),
    sessions: number("sessions", values.sessions as string),
    filesDir: values["files-dir"] as string | undefined,
    log: (line) => console.log(line),
  });
  console.log(
    `demo corpus: ${summary.participants.length} participants (${summary.participants[0]}…${
      summary.participants.at(-1)
    }), ` +
      `${summary.recordingHashes.length} recordings, ${summary.derivedAssets} derived assets in ${
        summary.seconds.total.toFixed(1)
      } s`,
  );
  return 0;
}

async function lsCommand(catalog: Catalog, values: Record<string, string | boolean | undefined>) {
  const recordings = (await catalog.query(RECORDINGS_TABLE)) as unknown as RecordingRow[];
  const derived = (await catalog.query(DERIVED_ASSETS_TABLE, undefined, {
    columns: ["derivation", "source_recording_hash", "participant"],
  })) as unknown as DerivedAssetRow[];
  const only = list(values.participant as string);
  if (only) {
    for (
      const r of recordings.filter((x) => only.includes(x.participant)).sort((a, b) =>
        (a.session + a.modality).localeCompare(b.session + b.modality)
      )
    ) {
      const builds = derived.filter((d) => d.source_recording_hash === r.recording_hash).map((d) =>
        d.derivation
      );
      console.log(
        `${r.participant}/${r.session} ${r.modality.padEnd(6)} ${
          r.recording_hash.slice(0, 12)
        } ${r.channels.length} ch @ ${r.sampling_rate} Hz, ` +
          `${r.duration_s.toFixed(1)} s, ${r.source_format} ${r.source_path}` +
          (builds.length ? ` [${builds.join(", ")}]` : ""),
      );
    }
    return 0;
  }
  const participants = [...new Set(recordings.map((r) => r.participant))].sort();
  console.log(`catalog: ${catalog.dir}`);
  console.log(`tables: ${(await catalog.tableNames()).join(", ") || "(none)"}`);
  console.log(
    `participants: ${participants.length}` +
      (participants.length ? ` (${participants[0]}…${participants.at(-1)})` : ""),
  );
  const byModality = new Map<string, RecordingRow[]>();
  for (const r of recordings) byModality.set(r.modality, [...(byModality.get(r.modality) ?? []), r]);
  for (const [m, rows] of [...byModality].sort()) {
    const seconds = rows.reduce((n, r) => n + r.duration_s, 0);
    console.log(`  ${m}: ${rows.length} recordings, ${(seconds / 60).toFixed(1)} min`);
  }
  const byDerivation = new Map<string, number>();
  for (const d of derived) byDerivation.set(d.derivation, (byDerivation.get(d.derivation) ?? 0) + 1);
  for (const [name, count] of [...byDerivation].sort()) console.log(`  derived ${name}: ${count}`);
  console.log(`labels: ${await catalog.count(LABELS_TABLE)}`);
  return 0;
}
