/**
 * `orion data demo`: a deterministic synthetic cognitive-load corpus. Every value comes from counter-based
 * random streams keyed by (seed, participant, session, channel, purpose), so the same seed gives the same
 * files and the same recording hashes on any machine.
 *
 * Per participant (p001, p002, …): `sessions` sessions (default 3) sharing `minutes` of recording
 * (default 5). Each session: 4 s of rest, then 6 n-back blocks (levels 0, 1, 2 twice, in a per-session
 * random order), labelled in the EDF+ annotations as `cognitive_load=<level>`.
 * - EEG: 32 channels (10-20 montage) at 256 Hz, µV: 1/f background (Kellet's pink-noise filter), an alpha
 *   rhythm over parietal/occipital sites and a theta rhythm over frontal sites (each with its own frequency,
 *   slow amplitude envelope and per-participant strength), eye blinks on frontal channels, 50 or 60 Hz
 *   line noise. Load raises frontal theta and lowers parietal alpha by per-participant amounts.
 * - Pupil: left and right diameters at 60 Hz, mm: a per-participant baseline, a dilation per load level
 *   reached with a 1.5 s lag, slow drift, noise, and blinks (150 ms invalid, diameter 0, validity 0).
 *
 * The files (`<participant>_<session>.edf`, `<participant>_<session>_pupil.csv`) are written first, then
 * imported and derived through `importEdfFile`, `importPupilCsvFile` and `deriveAll`, the paths users use.
 *
 * @module
 */
import type { Catalog } from "./catalog.ts";
import { RECORDINGS_TABLE } from "./catalog_tables.ts";
import { RandomStream } from "./counter_random.ts";
import { EEG_CLEAN, PUPIL_DILATION } from "./derivations.ts";
import { deriveAll } from "./derive.ts";
import { importFiles, type ImportJob } from "./import_files.ts";
import { ensureSignalIndex } from "./signal_store.ts";
import { WorkerPool } from "./worker_pool.ts";
import { writeEdf } from "./edf_writer.ts";

/** The 32 EEG channels of the demo (10-20 extended montage). */
export const DEMO_EEG_CHANNELS = [
  "Fp1",
  "Fp2",
  "AF3",
  "AF4",
  "F7",
  "F3",
  "Fz",
  "F4",
  "F8",
  "FC5",
  "FC1",
  "FC2",
  "FC6",
  "T7",
  "C3",
  "Cz",
  "C4",
  "T8",
  "CP5",
  "CP1",
  "CP2",
  "CP6",
  "P7",
  "P3",
  "Pz",
  "P4",
  "P8",
  "PO3",
  "PO4",
  "O1",
  "Oz",
  "O2",
]; // deno-fmt-ignore

/** Options of the demo corpus. */
export interface DemoOptions {
  /** Default 2026. */
  seed?: number;
  /** Number of participants p001… (default 60). */
  participants?: number;
  /** Minutes of recording per participant, split over the sessions (default 5). */
  minutes?: number;
  /** Sessions per participant (default 3). */
  sessions?: number;
  /** EEG sampling rate (default 256). */
  eegRate?: number;
  /** Pupil sampling rate (default 60). */
  pupilRate?: number;
  /** Where the EDF/CSV files go (default `<catalog dir>/../demo_files`). */
  filesDir?: string;
  /** Build the standard derived assets after import (default true). */
  derive?: boolean;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Worker pool to use (default: a pool over the machine's cores, closed at the end). */
  pool?: WorkerPool;
}

/** What the demo built. */
export interface DemoSummary {
  participants: string[];
  sessions: number;
  files: string[];
  /** recording hashes in import order (EEG then pupil per session). */
  recordingHashes: string[];
  derivedAssets: number;
  seconds: { generate: number; import: number; derive: number; total: number };
}

interface Resolved {
  seed: number;
  participants: number;
  minutes: number;
  sessions: number;
  eegRate: number;
  pupilRate: number;
}

function resolve(options: DemoOptions): Resolved {
  const r = {
    seed: options.seed ?? 2026,
    participants: options.participants ?? 60,
    minutes: options.minutes ?? 5,
    sessions: options.sessions ?? 3,
    eegRate: options.eegRate ?? 256,
    pupilRate: options.pupilRate ?? 60,
  };
  if (!Number.isInteger(r.participants) || r.participants < 1 || r.participants > 999) {
    throw new Error(`Cannot build the demo with ${r.participants} participants: use 1..999`);
  }
  if (!(r.minutes * 60 / r.sessions >= 10)) {
    throw new Error(
      `Cannot build the demo with ${r.minutes} min over ${r.sessions} sessions: each session needs at least 10 s`,
    );
  }
  return r;
}

/** Participant id of index i (0-based): p001, p002, … */
export function demoParticipantId(i: number): string {
  return `p${String(i + 1).padStart(3, "0")}`;
}

/** Per-participant traits (deterministic from the seed). */
export interface DemoTraits {
  alphaHz: number;
  thetaHz: number;
  alphaUv: number;
  thetaUv: number;
  /** Relative theta increase per load level. */
  thetaGain: number;
  /** Relative alpha decrease per load level. */
  alphaDrop: number;
  pupilBaseMm: number;
  /** Dilation per load level, mm. */
  pupilGainMm: number;
  lineHz: number;
  lineUv: number;
  noiseUv: number;
  blinksPerS: number;
}

/** The traits of participant `participant` under `seed`. */
export function demoTraits(seed: number, participant: string): DemoTraits {
  const r = new RandomStream(seed, "traits", participant);
  return {
    alphaHz: r.between(8.5, 11.5),
    thetaHz: r.between(4.5, 7),
    alphaUv: r.between(6, 12),
    thetaUv: r.between(3, 6),
    thetaGain: r.between(0.12, 0.35),
    alphaDrop: r.between(0.08, 0.22),
    pupilBaseMm: r.between(3, 5.5),
    pupilGainMm: r.between(0.05, 0.2),
    lineHz: r.uniform() < 0.5 ? 50 : 60,
    lineUv: r.between(2, 10),
    noiseUv: r.between(8, 14),
    blinksPerS: r.between(0.15, 0.4),
  };
}

/** Block layout of one session: rest then 6 labelled blocks. */
export interface DemoBlock {
  start: number;
  end: number;
  level: number;
}

/** The blocks of a session of `seconds` seconds. */
export function demoBlocks(seed: number, participant: string, session: string, seconds: number): DemoBlock[] {
  const rest = 4;
  const levels = [0, 1, 2, 0, 1, 2];
  const order = new RandomStream(seed, "blocks", participant, session).permutation(levels.length);
  const length = (seconds - rest) / levels.length;
  return order.map((k, i) => ({ start: rest + i * length, end: rest + (i + 1) * length, level: levels[k] }));
}

const THETA_WEIGHT: Record<string, number> = {
  Fz: 1,
  F3: 0.9,
  F4: 0.9,
  FC1: 0.9,
  FC2: 0.9,
  AF3: 0.8,
  AF4: 0.8,
  Fp1: 0.5,
  Fp2: 0.5,
  F7: 0.5,
  F8: 0.5,
  FC5: 0.5,
  FC6: 0.5,
  Cz: 0.5,
  C3: 0.3,
  C4: 0.3,
}; // deno-fmt-ignore
const ALPHA_WEIGHT: Record<string, number> = {
  Pz: 1, P3: 0.9, P4: 0.9, PO3: 1, PO4: 1, O1: 0.9, Oz: 1, O2: 0.9, P7: 0.6, P8: 0.6, CP1: 0.5, CP2: 0.5,
  CP5: 0.4, CP6: 0.4, Cz: 0.3, C3: 0.3, C4: 0.3,
}; // deno-fmt-ignore
const BLINK_WEIGHT: Record<string, number> = { Fp1: 1, Fp2: 1, AF3: 0.6, AF4: 0.6, F7: 0.35, F3: 0.3, Fz: 0.3, F4: 0.3, F8: 0.35 };

/** A slowly varying positive envelope around 1 (AR(1) in log amplitude, ~2 s time constant). */
function envelope(r: RandomStream, n: number, fs: number, spread: number): Float64Array {
  const out = new Float64Array(n);
  const a = Math.exp(-1 / (2 * fs));
  const s = spread * Math.sqrt(1 - a * a);
  let v = r.normal() * spread;
  for (let i = 0; i < n; i++) {
    v = a * v + s * r.normal();
    out[i] = Math.exp(v);
  }
  return out;
}

function levelAt(blocks: DemoBlock[], t: number): number {
  for (const b of blocks) if (t >= b.start && t < b.end) return b.level;
  return 0;
}

/** Blink onset times (s) of a session. */
function blinkTimes(
  seed: number,
  participant: string,
  session: string,
  seconds: number,
  rate: number,
): number[] {
  const r = new RandomStream(seed, "blinks", participant, session);
  const out: number[] = [];
  let t = r.between(0.5, 3);
  while (t < seconds - 0.5) {
    out.push(t);
    t += 0.6 + -Math.log(1 - r.uniform()) / rate;
  }
  return out;
}

/** One session's EEG (µV, one array per channel). */
export function demoEeg(
  seed: number,
  participant: string,
  session: string,
  seconds: number,
  fs: number,
): Float32Array[] {
  const traits = demoTraits(seed, participant);
  const n = Math.round(seconds * fs);
  const blocks = demoBlocks(seed, participant, session, seconds);
  const sessionScale = new RandomStream(seed, "impedance", participant, session).between(0.85, 1.15);
  const rhythms = (name: string, hz: number) => {
    const r = new RandomStream(seed, name, participant, session);
    const env = envelope(r, n, fs, 0.3);
    const out = new Float64Array(n);
    let phase = r.uniform() * 2 * Math.PI;
    let drift = 0;
    for (let i = 0; i < n; i++) {
      drift = 0.999 * drift + 0.002 * r.normal();
      phase += 2 * Math.PI * hz * (1 + 0.03 * drift) / fs;
      out[i] = env[i] * Math.sin(phase);
    }
    return out;
  };
  const alpha = rhythms("alpha", traits.alphaHz);
  const theta = rhythms("theta", traits.thetaHz);
  const load = new Float64Array(n);
  for (let i = 0; i < n; i++) load[i] = levelAt(blocks, i / fs);
  const blinks = blinkTimes(seed, participant, session, seconds, traits.blinksPerS);
  return DEMO_EEG_CHANNELS.map((channel, c) => {
    const r = new RandomStream(seed, "eeg", participant, session, c);
    const out = new Float32Array(n);
    const thetaW = (THETA_WEIGHT[channel] ?? 0.05) * traits.thetaUv;
    const alphaW = (ALPHA_WEIGHT[channel] ?? 0.08) * traits.alphaUv;
    const lineUv = traits.lineUv * r.between(0.5, 1.5);
    const linePhase = r.uniform() * 2 * Math.PI;
    const noise = traits.noiseUv * r.between(0.8, 1.2) * 0.25;
    let b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0;
    const lineStep = 2 * Math.PI * traits.lineHz / fs;
    for (let i = 0; i < n; i++) {
      // Paul Kellet's refined pink-noise filter.
      const white = r.normal();
      b0 = 0.99886 * b0 + white * 0.0555179;
      b1 = 0.99332 * b1 + white * 0.0750759;
      b2 = 0.96900 * b2 + white * 0.1538520;
      b3 = 0.86650 * b3 + white * 0.3104856;
      b4 = 0.55000 * b4 + white * 0.5329522;
      b5 = -0.7616 * b5 - white * 0.0168980;
      const pink = b0 + b1 + b2 + b3 + b4 + b5 + b6 + white * 0.5362;
      b6 = white * 0.115926;
      const level = load[i];
      out[i] = sessionScale * (
        noise * pink +
        thetaW * (1 + traits.thetaGain * level) * theta[i] +
        alphaW * (1 - traits.alphaDrop * level) * alpha[i] +
        lineUv * Math.sin(lineStep * i + linePhase)
      );
    }
    const blinkW = BLINK_WEIGHT[channel] ?? 0.03;
    for (const tb of blinks) {
      const from = Math.max(0, Math.floor((tb - 0.3) * fs)), to = Math.min(n, Math.ceil((tb + 0.5) * fs));
      for (let i = from; i < to; i++) {
        const d = (i / fs - tb - 0.1) / 0.08;
        out[i] += 120 * blinkW * Math.exp(-d * d);
      }
    }
    return out;
  });
}

/** One session's pupil diameters (mm) for [pupil_left, pupil_right]; blinks are NaN. */
export function demoPupil(
  seed: number,
  participant: string,
  session: string,
  seconds: number,
  fs: number,
): Float32Array[] {
  const traits = demoTraits(seed, participant);
  const n = Math.round(seconds * fs);
  const blocks = demoBlocks(seed, participant, session, seconds);
  const blinks = blinkTimes(seed, participant, session, seconds, traits.blinksPerS);
  const r = new RandomStream(seed, "pupil", participant, session);
  const lag = Math.exp(-1 / (1.5 * fs));
  const driftA = Math.exp(-1 / (10 * fs));
  let response = 0, drift = 0;
  const common = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    response = lag * response + (1 - lag) * traits.pupilGainMm * levelAt(blocks, i / fs);
    drift = driftA * drift + 0.15 * Math.sqrt(1 - driftA * driftA) * r.normal();
    common[i] = traits.pupilBaseMm + response + drift;
  }
  const invalid = new Uint8Array(n);
  for (const tb of blinks) {
    for (let i = Math.max(0, Math.round(tb * fs)); i < Math.min(n, Math.round((tb + 0.15) * fs)); i++) {
      invalid[i] = 1;
    }
  }
  return [0, 1].map((eye) => {
    const e = new RandomStream(seed, "pupil_eye", participant, session, eye);
    const offset = eye === 0 ? 0 : e.between(-0.15, 0.15);
    return Float32Array.from(
      { length: n },
      (_, i) => invalid[i] ? Number.NaN : common[i] + offset + 0.02 * e.normal(),
    );
  });
}

/** Pupil CSV text (timestamp in s with 6 decimals, diameters with 4 decimals, validity 0/1). */
export function demoPupilCsv(samples: Float32Array[], fs: number): string {
  const lines = ["timestamp,left_diameter,right_diameter,validity"];
  for (let i = 0; i < samples[0].length; i++) {
    const valid = Number.isFinite(samples[0][i]) && Number.isFinite(samples[1][i]);
    const d = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : "0");
    lines.push(`${(i / fs).toFixed(6)},${d(samples[0][i])},${d(samples[1][i])},${valid ? 1 : 0}`);
  }
  return lines.join("\n") + "\n";
}

/** One demo session's files on disk. */
export interface DemoSessionFiles {
  participant: string;
  session: string;
  edfPath: string;
  csvPath: string;
}

/** Writes the EDF+ and CSV files of one session. */
export async function writeDemoSession(
  dir: string,
  options: Omit<DemoOptions, "log" | "pool">,
  participant: string,
  sessionIndex: number,
): Promise<DemoSessionFiles> {
  const o = resolve(options);
  const session = `s${sessionIndex + 1}`;
  const seconds = Math.round(o.minutes * 60 / o.sessions);
  const eeg = demoEeg(o.seed, participant, session, seconds, o.eegRate);
  const blocks = demoBlocks(o.seed, participant, session, seconds);
  const edf = writeEdf({
    format: "edf+",
    recordDuration: 1,
    patientId: `${participant} X X ${participant}`,
    signals: DEMO_EEG_CHANNELS.map((label, c) => ({
      label,
      samplingRate: o.eegRate,
      samples: eeg[c],
      physicalMin: -1000,
      physicalMax: 1000,
      physicalDimension: "uV",
      transducer: "AgAgCl electrode",
      prefiltering: "HP:0.1Hz LP:100Hz",
    })),
    annotations: blocks.map((b) => ({
      onset: b.start,
      duration: b.end - b.start,
      text: `cognitive_load=${b.level}`,
    })),
  });
  const base = `${dir}/${participant}_${session}`;
  await Deno.writeFile(`${base}.edf`, edf);
  const pupil = demoPupil(o.seed, participant, session, seconds, o.pupilRate);
  await Deno.writeTextFile(`${base}_pupil.csv`, demoPupilCsv(pupil, o.pupilRate));
  return { participant, session, edfPath: `${base}.edf`, csvPath: `${base}_pupil.csv` };
}

/**
 * Generates the demo files, imports them and builds the standard derived assets.
 *
 * @example
 * ```ts
 * // A tiny corpus for tests (a few seconds):
 * const summary = await generateDemoCorpus(catalog, { participants: 6, minutes: 1 });
 * console.log(summary.recordingHashes.length); // 6 × 3 sessions × 2 modalities = 36
 * ```
 */
export async function generateDemoCorpus(catalog: Catalog, options: DemoOptions = {}): Promise<DemoSummary> {
  const o = resolve(options);
  const log = options.log ?? (() => {});
  const dir = options.filesDir ??
    `${catalog.dir.replace(/\/+$/, "").replace(/\/[^/]*$/, "") || "."}/demo_files`;
  await Deno.mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const participants = Array.from({ length: o.participants }, (_, i) => demoParticipantId(i));
  const pool = options.pool ?? new WorkerPool();
  try {
    const plain = {
      seed: o.seed,
      participants: o.participants,
      minutes: o.minutes,
      sessions: o.sessions,
      eegRate: o.eegRate,
      pupilRate: o.pupilRate,
    };
    const files = await Promise.all(
      participants.flatMap((participant) =>
        Array.from(
          { length: o.sessions },
          (_, s) => pool.run({ kind: "demo_session", dir, options: plain, participant, sessionIndex: s }),
        )
      ),
    );
    const t1 = performance.now();
    log(`demo: wrote ${files.length * 2} files to ${dir} in ${((t1 - t0) / 1000).toFixed(1)} s`);
    const jobs: ImportJob[] = files.flatMap((f) => [
      { kind: "edf" as const, path: f.edfPath, options: { participant: f.participant, session: f.session } },
      {
        kind: "pupil_csv" as const,
        path: f.csvPath,
        options: { participant: f.participant, session: f.session },
      },
    ]);
    const report = await importFiles(catalog, jobs, { pool });
    if (report.failures.length > 0) {
      throw new Error(`Cannot build the demo corpus: ${report.failures.map((f) => f.reason).join("; ")}`);
    }
    const hashes = report.results.map((r) => r.recordingHash);
    const t2 = performance.now();
    log(`demo: imported ${hashes.length} recordings in ${((t2 - t1) / 1000).toFixed(1)} s`);
    let derivedAssets = 0;
    if (options.derive ?? true) {
      for (const derivation of [EEG_CLEAN, PUPIL_DILATION]) {
        derivedAssets += (await deriveAll(catalog, derivation.name, { participants }, { pool })).length;
      }
    }
    await ensureSignalIndex(catalog);
    await catalog.optimize();
    const t3 = performance.now();
    log(`demo: built ${derivedAssets} derived assets in ${((t3 - t2) / 1000).toFixed(1)} s`);
    return {
      participants,
      sessions: o.sessions,
      files: files.flatMap((f) => [f.edfPath, f.csvPath]),
      recordingHashes: hashes,
      derivedAssets,
      seconds: {
        generate: (t1 - t0) / 1000,
        import: (t2 - t1) / 1000,
        derive: (t3 - t2) / 1000,
        total: (t3 - t0) / 1000,
      },
    };
  } finally {
    if (!options.pool) pool.close();
  }
}
/**
 * Builds the demo corpus when the catalog has no recordings, printing a message first. Returns whether it
 * built anything. Processes that share the catalog (the ranks of `orion launch` on one machine, or on a
 * shared filesystem) take turns on a lock file in it: one builds, the others wait and then find it built,
 * instead of reading a half-built corpus.
 *
 * @example
 * ```ts
 * const catalog = await openCatalog();
 * await ensureDemoCatalog(catalog); // first run: builds p001..p060
 * ```
 */
export async function ensureDemoCatalog(
  catalog: Catalog,
  options: DemoOptions & { print?: (line: string) => void } = {},
): Promise<boolean> {
  if (await demoCorpusBuilt(catalog)) return false;
  await Deno.mkdir(catalog.dir, { recursive: true });
  const lock = await Deno.open(`${catalog.dir}/${DEMO_LOCK_FILE}`, { create: true, write: true });
  try {
    await lock.lock(true);
    // Checked again under the lock: another process may have built it while this one waited.
    if ((await catalog.count(RECORDINGS_TABLE)) > 0) return false;
    const print = options.print ?? ((line: string) => console.log(line));
    const o = resolve(options);
    print(
      `The catalog at ${catalog.dir} is empty: building the synthetic demo corpus (${o.participants} participants, ` +
        `${o.minutes} min each, seed ${o.seed}). Import real data with \`orion data import-edf\` to use your own.`,
    );
    const summary = await generateDemoCorpus(catalog, { ...options, log: options.log ?? print });
    print(
      `Demo corpus ready: ${summary.recordingHashes.length} recordings, ${summary.derivedAssets} derived assets in ${
        summary.seconds.total.toFixed(1)
      } s.`,
    );
    return true;
  } finally {
    lock.close(); // releases the lock
  }
}

/** The lock file {@linkcode ensureDemoCatalog} holds while it checks and builds, in the catalog directory. */
export const DEMO_LOCK_FILE = ".demo_corpus.lock";

/**
 * Whether the catalog has recordings and no process is building the demo corpus into it (a build has
 * recordings before its derived assets): the fast path. The lock is checked before the table is read, and
 * held shared while it is, so no half-built table is ever opened (and cached) here.
 */
async function demoCorpusBuilt(catalog: Catalog): Promise<boolean> {
  let lock: Deno.FsFile;
  try {
    lock = await Deno.open(`${catalog.dir}/${DEMO_LOCK_FILE}`, { read: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return (await catalog.count(RECORDINGS_TABLE)) > 0; // no demo build ever started here
  }
  try {
    return (await lock.tryLock(false)) && (await catalog.count(RECORDINGS_TABLE)) > 0;
  } finally {
    lock.close();
  }
}
