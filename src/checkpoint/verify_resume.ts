/**
 * Evidence of bit-exact resume: a config is trained for N steps without interruption, then again in a
 * second run directory where the training process is SIGKILLed at random points (at random steps, at random
 * times, and while a checkpoint is being written) and continued each time with `orion resume <runDir>` until
 * it finishes. The final checkpoints of both runs are compared file by file (weights, EMA, optimizer moments
 * and step, scheduler, RNG, loader cursor, data ledger), and the resumed run's `metrics.jsonl` must log every
 * step exactly once with the same loss, gradient norm and learning rate as the uninterrupted run.
 *
 * Both runs are real `orion train` / `orion resume` processes (`deno run … mod.ts`), so what is verified is
 * exactly what a user gets after a crash. Nothing of the training loop is imported here.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { RandomStream } from "../ursa/counter_random.ts";
import { loadConfigModule } from "../cli/load_config_module.ts";
import { applyOverrides, parseOverrides } from "../config/config_overrides.ts";
import { parseRunConfig } from "../config/run_config.ts";
import { type Catalog, defaultCatalogDir, openCatalog, sqlString } from "../ursa/catalog.ts";
import { checkpointDirName, TEMP_DIR_PREFIX } from "./checkpoint_layout.ts";
import type { CheckpointManifest } from "./checkpoint_manifest.ts";
import { readCheckpoint, verifyCheckpoint } from "./checkpoint_reader.ts";
import { type MetricsEntry, readMetrics } from "./metrics_log.ts";

/** How a planned kill picks its moment. */
export type KillMode = "checkpoint-write" | "step" | "random-time";

/** One planned SIGKILL. */
export interface PlannedKill {
  /**
   * `step`: as soon as the process reports step ≥ `step`; `checkpoint-write`: as soon as the write of a
   * checkpoint of step ≥ `step` is in progress (its `.tmp-ckpt-step<N>-…` directory exists; an earlier
   * step's write still in flight does not count, so the writes before it have committed); `random-time`:
   * after `timeFraction` × the uninterrupted run's wall time since the process started.
   */
  mode: KillMode;
  step: number;
  timeFraction: number;
}

/** Options of {@link verifyResume}. */
export interface VerifyResumeOptions {
  /** The config module (default export a RunConfig), relative to `cwd`. */
  config: string;
  /** Optimizer steps of both runs (`training.maxSteps`). */
  steps: number;
  /** SIGKILLs of the second run (default 3). */
  kills?: number;
  /** Seed of the kill plan (default 0). */
  seed?: number;
  /**
   * `training.ckptEveryNSteps` of both runs (checkpoints never change the weights, so this only decides where
   * resumes can start); default {@link defaultCkptEvery}: about two checkpoints between kills.
   */
  ckptEvery?: number;
  /** Extra `--set path=value` overrides for both runs (benchmarks are always off: `training.benchSuites=[]`). */
  set?: string[];
  /**
   * Extra overrides for the interrupted run only: the runs then differ on purpose (e.g. to confirm that the
   * comparison catches a real difference, as the tests do).
   */
  setInterruptedOnly?: string[];
  /** Working directory of the runs (relative config paths and the default catalog resolve here). */
  cwd?: string;
  /** Where the two run directories go (default: a new temporary directory, removed at the end). */
  workDir?: string;
  /** Keep `workDir` (and the runs' catalog rows) after the comparison. */
  keep?: boolean;
  /** Wall-clock limit of one training process, ms (default 600 000); a process past it is killed. */
  processTimeoutMs?: number;
  /** The command that runs orion (default: `deno run <permissions> --config <repo>/deno.json <repo>/mod.ts`). */
  orion?: string[];
  /** Progress lines (one per process started and ended). */
  onProgress?: (line: string) => void;
}

/** One training process of the interrupted run. */
export interface ResumeAttempt {
  /** `train` for the first process, `resume` afterwards. */
  command: "train" | "resume";
  kill: PlannedKill | null;
  /** Whether this process was SIGKILLed (false: it exited by itself, e.g. it finished before the kill point). */
  killed: boolean;
  /** Whether a checkpoint write was in progress when it was killed (its temporary directory was left behind). */
  killedDuringCheckpointWrite: boolean;
  /** The last step the process reported (null: none). */
  lastStepReported: number | null;
  /** The checkpoint step the process resumed from (null: started from scratch). */
  resumedFromStep: number | null;
  exitCode: number;
  wallMs: number;
  /** The process's output (stdout and stderr), in the work directory. */
  logFile: string;
}

/** One differing tensor of the final weights. */
export interface TensorDifference {
  file: string;
  tensor: string;
  differingElements: number;
  maxAbsDiff: number;
}

/** Problems of the resumed run's metrics log. */
export interface MetricsCheck {
  /** Training steps logged more than once. */
  duplicateSteps: number[];
  /** Training steps 1..N never logged. */
  missingSteps: number[];
  /** Validation steps logged more than once. */
  duplicateValSteps: number[];
  /** Steps whose loss, grad_norm or lr differ from the uninterrupted run's. */
  mismatchedSteps: number[];
}

/** The outcome of {@link verifyResume}. */
export interface VerifyResumeReport {
  /** Every compared state file identical and the metrics log clean. */
  identical: boolean;
  steps: number;
  ckptEvery: number;
  seed: number;
  plannedKills: PlannedKill[];
  reference: { runDir: string; wallMs: number; checkpointHash: string; weightsSha256: string };
  resumed: {
    runDir: string;
    attempts: ResumeAttempt[];
    checkpointHash: string;
    weightsSha256: string;
  };
  /** State files compared (paths inside the final checkpoint). */
  comparedFiles: string[];
  /** State files whose bytes differ (or that only one checkpoint has). */
  differingFiles: string[];
  differingTensors: TensorDifference[];
  metrics: MetricsCheck;
  killsPerformed: number;
  killsDuringCheckpointWrite: number;
  /** The work directory, when kept. */
  workDir: string | null;
}

/** The state files of the final checkpoint whose bytes must match (everything that determines the future). */
const STATE_FILE = /^(model\/|optimizer\/|scheduler\/|grad_scaler\/|rng\/|dataloader\/|data_hashes\/)/;

const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run",
  "--allow-net=127.0.0.1,0.0.0.0,localhost",
];

/**
 * The default command that runs `orion`: the program running now, as the benchmark side processes do — this
 * checkout's `mod.ts` under `deno run` with its `deno.json` when Orion runs from source, the main module when
 * it runs as a single-file bundle, and the binary itself when it is a `deno compile` executable.
 */
export function defaultOrionCommand(): string[] {
  if (Deno.build.standalone) return [Deno.execPath()];
  const fromSource = import.meta.url.endsWith("/checkpoint/verify_resume.ts");
  const entry = fromSource ? new URL("../../mod.ts", import.meta.url) : new URL(Deno.mainModule);
  const local = entry.protocol === "file:";
  const config = fromSource && local
    ? ["--config", fileURLToPath(new URL("../../deno.json", import.meta.url))]
    : [];
  const remote = local ? [] : [`--allow-import=${entry.host}`];
  return [
    Deno.execPath(),
    "run",
    ...PERMISSIONS,
    ...remote,
    ...config,
    local ? fileURLToPath(entry) : entry.href,
  ];
}

/**
 * The checkpoint cadence when none is given: about two checkpoints between kills
 * (`floor(steps / (2 · (kills + 1)))`), lowered until the config accepts it (e.g. a monitored `val_loss`
 * needs checkpoints that coincide with validations).
 *
 * @throws the config's `ConfigError` when it is invalid even with a checkpoint every step.
 */
export async function defaultCkptEvery(
  configPath: string,
  cwd: string,
  set: readonly string[],
  steps: number,
  kills: number,
): Promise<number> {
  const loaded = await loadConfigModule(configPath, cwd);
  if (loaded.isPipeline) {
    throw new Error(
      `Cannot verify resume of ${configPath} as it is a TrainingPipeline: verify one stage's RunConfig instead`,
    );
  }
  const base = applyOverrides(loaded.value, parseOverrides(set));
  for (let every = Math.max(1, Math.floor(steps / (2 * (kills + 1)))); every >= 1; every--) {
    try {
      parseRunConfig(applyOverrides(base, parseOverrides([`training.ckptEveryNSteps=${every}`])));
      return every;
    } catch (e) {
      if (every === 1) throw e;
    }
  }
  return 1;
}

/**
 * The kill plan: `kills` distinct steps in [1, steps − 1] in increasing order, each with a mode; at least
 * one kill lands during a checkpoint write. Deterministic in `seed`.
 *
 * @example
 * ```ts
 * import { planKills } from "./verify_resume.ts";
 * planKills(20, 3, 0); // e.g. [{ mode: "step", step: 4, … }, { mode: "checkpoint-write", step: 9, … }, …]
 * ```
 */
export function planKills(steps: number, kills: number, seed: number): PlannedKill[] {
  if (!Number.isSafeInteger(kills) || kills < 0) {
    throw new Error(`Cannot plan kills as --kills must be a non-negative integer: current value is ${kills}`);
  }
  if (kills > steps - 1) {
    throw new Error(
      `Cannot plan ${kills} kills in a run of ${steps} steps as each kill needs its own step in [1, ${
        steps - 1
      }]; lower --kills or raise --steps`,
    );
  }
  const random = new RandomStream(seed, "verify_resume");
  const chosen = new Set<number>();
  while (chosen.size < kills) chosen.add(1 + Math.floor(random.uniform() * (steps - 1)));
  const targets = [...chosen].sort((a, b) => a - b);
  const forced = Math.floor(random.uniform() * Math.max(1, kills));
  const modes: KillMode[] = ["checkpoint-write", "step", "random-time"];
  return targets.map((step, i) => ({
    mode: i === forced ? "checkpoint-write" : modes[Math.floor(random.uniform() * modes.length)],
    step,
    timeFraction: 0.15 + 0.75 * random.uniform(),
  }));
}

async function scratchDirsIn(runDir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(runDir)) if (e.name.startsWith(TEMP_DIR_PREFIX)) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

interface ProcessOutcome {
  exitCode: number;
  killed: boolean;
  timedOut: boolean;
  killedDuringCheckpointWrite: boolean;
  lastStepReported: number | null;
  resumedFromStep: number | null;
  wallMs: number;
  tail: string;
}

/** Runs one orion process, SIGKILLing it at `kill` (if given); its output goes to `logFile`. */
async function runOrion(
  orion: string[],
  args: string[],
  options: {
    cwd: string;
    runDir: string;
    logFile: string;
    kill: PlannedKill | null;
    referenceWallMs: number;
    timeoutMs: number;
  },
): Promise<ProcessOutcome> {
  const started = performance.now();
  const child = new Deno.Command(orion[0], {
    args: [...orion.slice(1), ...args],
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log = await Deno.open(options.logFile, { write: true, create: true, append: true });
  const encoder = new TextEncoder();
  let tail = "";
  let lastStep: number | null = null;
  let resumedFrom: number | null = null;
  let killed = false;
  let timedOut = false;
  let exited = false;
  const kill = () => {
    if (killed || exited) return;
    try {
      child.kill("SIGKILL");
      killed = true;
    } catch { /* already exited */ }
  };
  const kp = options.kill;
  let watchingWrites = false;
  const watchWrites = async () => {
    if (watchingWrites) return;
    watchingWrites = true;
    while (!exited && !killed) {
      // The writer lags behind training (one write in flight, one queued): wait for this step's write.
      // `.tmp-ckpt-step<N>-<hex>`: parseInt stops at the dash.
      const writing = (await scratchDirsIn(options.runDir)).map((name) =>
        Number.parseInt(name.slice(TEMP_DIR_PREFIX.length), 10)
      );
      if (writing.some((step) => step >= kp!.step)) kill();
      else await new Promise((r) => setTimeout(r, 1));
    }
  };
  const onLine = (line: string) => {
    const step = /^step (\d+)\/\d+ /.exec(line);
    if (step) lastStep = Number(step[1]);
    const plan = /^resume plan: .* \(step (\d+), checkpoint /.exec(line);
    if (plan) resumedFrom = Number(plan[1]);
    if (kp && lastStep !== null && lastStep >= kp.step) {
      if (kp.mode === "step") kill();
      else if (kp.mode === "checkpoint-write") void watchWrites();
    }
  };
  const pump = async (stream: ReadableStream<Uint8Array>, parse: boolean) => {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      await log.write(encoder.encode(chunk));
      tail = (tail + chunk).slice(-4000);
      if (!parse) continue;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const l of lines) onLine(l);
    }
  };
  const timers = [
    setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs),
  ];
  if (kp?.mode === "random-time") {
    timers.push(setTimeout(kill, Math.round(kp.timeFraction * options.referenceWallMs)));
  }
  const [status] = await Promise.all([child.status, pump(child.stdout, true), pump(child.stderr, false)]);
  exited = true;
  for (const t of timers) clearTimeout(t);
  log.close();
  const left = killed ? await scratchDirsIn(options.runDir) : [];
  return {
    exitCode: status.code,
    killed: killed && status.signal === "SIGKILL",
    timedOut,
    killedDuringCheckpointWrite: left.length > 0,
    lastStepReported: lastStep,
    resumedFromStep: resumedFrom,
    wallMs: performance.now() - started,
    tail,
  };
}

function failure(what: string, outcome: ProcessOutcome, logFile: string): Error {
  return new Error(
    `Cannot verify resume as ${what} ${
      outcome.timedOut ? "ran past its time limit" : `exited with code ${outcome.exitCode}`
    } (log: ${logFile}); last output:\n${outcome.tail.trimEnd().split("\n").slice(-15).join("\n")}`,
  );
}

async function finalManifest(runDir: string, steps: number): Promise<CheckpointManifest> {
  const dir = join(runDir, checkpointDirName(steps));
  const verification = await verifyCheckpoint(dir);
  if (!verification.ok) {
    throw new Error(
      `Cannot compare the final checkpoint ${dir} as it does not verify: ${
        verification.problems.map((p) => `${p.file}: ${p.reason}`).join("; ")
      }`,
    );
  }
  return verification.manifest;
}

async function tensorDifferences(a: string, b: string, files: string[]): Promise<TensorDifference[]> {
  const [x, y] = await Promise.all([readCheckpoint(a), readCheckpoint(b)]);
  const sets: Record<
    string,
    [Record<string, { data: ArrayLike<number | bigint> }>, typeof x.state.model.weights]
  > = {
    "model/weights.safetensors": [x.state.model.weights, y.state.model.weights],
    "model/ema.safetensors": [x.state.model.ema ?? {}, y.state.model.ema ?? {}],
    "optimizer/state.safetensors": [x.state.optimizer.tensors, y.state.optimizer.tensors],
  };
  const out: TensorDifference[] = [];
  for (const file of files) {
    const pair = sets[file];
    if (!pair) continue;
    const [left, right] = pair;
    for (const name of [...new Set([...Object.keys(left), ...Object.keys(right)])].sort()) {
      const p = left[name]?.data, q = right[name]?.data;
      if (!p || !q || p.length !== q.length) {
        out.push({
          file,
          tensor: name,
          differingElements: Math.max(p?.length ?? 0, q?.length ?? 0),
          maxAbsDiff: NaN,
        });
        continue;
      }
      let count = 0, max = 0;
      for (let i = 0; i < p.length; i++) {
        const u = Number(p[i]), v = Number(q[i]);
        if (!Object.is(u, v)) {
          count++;
          max = Math.max(max, Math.abs(u - v));
        }
      }
      if (count > 0) out.push({ file, tensor: name, differingElements: count, maxAbsDiff: max });
    }
  }
  return out;
}

const isTrainEntry = (e: MetricsEntry) => typeof e.loss === "number";
const isValEntry = (e: MetricsEntry) => typeof e.val_loss === "number";

/** Checks the resumed run's metrics log against the uninterrupted run's (see {@link MetricsCheck}). */
export function checkResumedMetrics(
  reference: readonly MetricsEntry[],
  resumed: readonly MetricsEntry[],
  steps: number,
): MetricsCheck {
  const counts = (entries: readonly MetricsEntry[]) => {
    const m = new Map<number, number>();
    for (const e of entries) m.set(e.step, (m.get(e.step) ?? 0) + 1);
    return m;
  };
  const train = resumed.filter(isTrainEntry);
  const trainCounts = counts(train);
  const valCounts = counts(resumed.filter(isValEntry));
  const byStep = new Map(reference.filter(isTrainEntry).map((e) => [e.step, e]));
  const mismatched = new Set<number>();
  for (const e of train) {
    const r = byStep.get(e.step);
    if (!r || !["loss", "grad_norm", "lr"].every((k) => Object.is(r[k], e[k]))) mismatched.add(e.step);
  }
  const missing: number[] = [];
  for (let s = 1; s <= steps; s++) if (!trainCounts.has(s)) missing.push(s);
  return {
    duplicateSteps: [...trainCounts].filter(([, n]) => n > 1).map(([s]) => s).sort((a, b) => a - b),
    missingSteps: missing,
    duplicateValSteps: [...valCounts].filter(([, n]) => n > 1).map(([s]) => s).sort((a, b) => a - b),
    mismatchedSteps: [...mismatched].sort((a, b) => a - b),
  };
}

interface RunConfigFile {
  name: string;
  data?: { catalogDir?: string | null };
  training?: { ckptEveryNSteps?: number };
}

async function readRunConfig(runDir: string): Promise<RunConfigFile> {
  const parsed = JSON.parse(await Deno.readTextFile(join(runDir, "config.json")));
  return (parsed.config ?? parsed) as RunConfigFile;
}

async function removeCatalogRows(catalogDir: string, runNames: string[]): Promise<void> {
  let catalog: Catalog | null = null;
  try {
    catalog = await openCatalog(catalogDir);
    const names = runNames.map(sqlString).join(", ");
    await catalog.delete("runs", `run_name IN (${names})`);
    await catalog.delete("checkpoints", `run_name IN (${names})`);
  } finally {
    catalog?.close();
  }
}

/**
 * Trains `config` for `steps` steps twice — once uninterrupted, once SIGKILLed `kills` times and resumed
 * after each kill — and compares the final checkpoints and metrics logs (see the module documentation).
 *
 * @throws when a process fails other than by a planned kill (the message holds its last output).
 * @example
 * ```ts ignore
 * import { verifyResume } from "./verify_resume.ts";
 * const report = await verifyResume({ config: "configs/run.ts", steps: 40, kills: 3, seed: 1 });
 * console.log(report.identical, report.resumed.weightsSha256);
 * ```
 */
export async function verifyResume(options: VerifyResumeOptions): Promise<VerifyResumeReport> {
  const steps = options.steps;
  if (!Number.isSafeInteger(steps) || steps < 2) {
    throw new Error(`Cannot verify resume as --steps must be an integer ≥ 2: current value is ${steps}`);
  }
  const kills = options.kills ?? 3;
  const seed = options.seed ?? 0;
  const plan = planKills(steps, kills, seed);
  const cwd = resolve(options.cwd ?? Deno.cwd());
  const orion = options.orion ?? defaultOrionCommand();
  const timeoutMs = options.processTimeoutMs ?? 600_000;
  const progress = options.onProgress ?? (() => {});
  const ownWorkDir = options.workDir === undefined;
  const workDir = resolve(cwd, options.workDir ?? await Deno.makeTempDir({ prefix: "orion_verify_resume_" }));
  await Deno.mkdir(workDir, { recursive: true });
  const tag = `vr${Date.now().toString(36)}`;
  const names = { reference: `verify-resume-${tag}-reference`, resumed: `verify-resume-${tag}-resumed` };
  const runsDirs = { reference: join(workDir, "uninterrupted"), resumed: join(workDir, "killed") };
  const runDirs = {
    reference: join(runsDirs.reference, names.reference),
    resumed: join(runsDirs.resumed, names.resumed),
  };
  let catalogDir: string | null = null;
  try {
    const common = [
      ...(options.set ?? []).flatMap((s) => ["--set", s]),
      "--set",
      `training.maxSteps=${steps}`,
      "--set",
      "training.benchSuites=[]",
    ];
    const configPath = resolve(cwd, options.config);
    const trainArgs = (which: "reference" | "resumed", ckptEvery: number) => [
      "train",
      configPath,
      ...common,
      "--set",
      `training.ckptEveryNSteps=${ckptEvery}`,
      "--set",
      `runsDir=${runsDirs[which]}`,
      "--set",
      `name=${names[which]}`,
      ...(which === "resumed" ? (options.setInterruptedOnly ?? []).flatMap((x) => ["--set", x]) : []),
    ];

    // 1. The uninterrupted run (also fixes the checkpoint cadence and the time scale of random-time kills).
    progress(`uninterrupted run: ${steps} steps in ${runDirs.reference}`);
    const refLog = join(workDir, "uninterrupted.log");
    const ckptEvery = options.ckptEvery ??
      await defaultCkptEvery(
        configPath,
        cwd,
        [...(options.set ?? []), `training.maxSteps=${steps}`],
        steps,
        kills,
      );
    const reference = await runOrion(orion, trainArgs("reference", ckptEvery), {
      cwd,
      runDir: runDirs.reference,
      logFile: refLog,
      kill: null,
      referenceWallMs: 0,
      timeoutMs,
    });
    if (reference.exitCode !== 0) throw failure("the uninterrupted run", reference, refLog);
    const refConfig = await readRunConfig(runDirs.reference);
    catalogDir = resolve(cwd, refConfig.data?.catalogDir ?? defaultCatalogDir());
    progress(`uninterrupted run finished in ${(reference.wallMs / 1000).toFixed(1)} s`);

    // 2. The killed and resumed run.
    const attempts: ResumeAttempt[] = [];
    for (let i = 0; i <= plan.length; i++) {
      const kill = plan[i] ?? null;
      const command = i === 0 ? "train" : "resume";
      const logFile = join(workDir, `attempt-${i}-${command}.log`);
      progress(
        `${command === "train" ? "killed run: train" : `resume #${i}`}${
          kill
            ? `, SIGKILL ${
              kill.mode === "random-time"
                ? `after ${(kill.timeFraction * reference.wallMs / 1000).toFixed(2)} s`
                : kill.mode === "step"
                ? `at step ${kill.step}`
                : `during the first checkpoint write from step ${kill.step}`
            }`
            : ", to the end"
        }`,
      );
      const outcome = await runOrion(
        orion,
        command === "train" ? trainArgs("resumed", ckptEvery) : ["resume", runDirs.resumed],
        { cwd, runDir: runDirs.resumed, logFile, kill, referenceWallMs: reference.wallMs, timeoutMs },
      );
      attempts.push({
        command,
        kill,
        killed: outcome.killed,
        killedDuringCheckpointWrite: outcome.killed && outcome.killedDuringCheckpointWrite,
        lastStepReported: outcome.lastStepReported,
        resumedFromStep: outcome.resumedFromStep,
        exitCode: outcome.exitCode,
        wallMs: outcome.wallMs,
        logFile,
      });
      const last = attempts.at(-1)!;
      progress(
        `  ${
          outcome.killed
            ? `killed${last.killedDuringCheckpointWrite ? " during a checkpoint write" : ""}`
            : `exited ${outcome.exitCode}`
        }${last.resumedFromStep !== null ? `, resumed from step ${last.resumedFromStep}` : ""}${
          last.lastStepReported !== null ? `, last step reported ${last.lastStepReported}` : ""
        }`,
      );
      if (outcome.timedOut || (!outcome.killed && outcome.exitCode !== 0)) {
        throw failure(`${command} process #${i}`, outcome, logFile);
      }
      // A process that exits 0 by itself has finished the run (it stops early only on signals).
      if (!outcome.killed) break;
    }
    if (attempts.at(-1)!.killed) throw new Error("Cannot verify resume as the last process was killed");

    // 3. Compare.
    const [refManifest, resManifest] = await Promise.all([
      finalManifest(runDirs.reference, steps),
      finalManifest(runDirs.resumed, steps),
    ]);
    const hashes = (m: CheckpointManifest) =>
      new Map(m.files.filter((f) => STATE_FILE.test(f.path)).map((f) => [f.path, f.sha256]));
    const refFiles = hashes(refManifest), resFiles = hashes(resManifest);
    const compared = [...new Set([...refFiles.keys(), ...resFiles.keys()])].sort();
    const differing = compared.filter((p) => refFiles.get(p) !== resFiles.get(p));
    const differingTensors = differing.length === 0 ? [] : await tensorDifferences(
      join(runDirs.reference, checkpointDirName(steps)),
      join(runDirs.resumed, checkpointDirName(steps)),
      differing,
    );
    const metrics = checkResumedMetrics(
      (await readMetrics(runDirs.reference)).entries,
      (await readMetrics(runDirs.resumed)).entries,
      steps,
    );
    const clean = metrics.duplicateSteps.length === 0 && metrics.missingSteps.length === 0 &&
      metrics.duplicateValSteps.length === 0 && metrics.mismatchedSteps.length === 0;
    const weights = "model/weights.safetensors";
    return {
      identical: differing.length === 0 && clean,
      steps,
      ckptEvery,
      seed,
      plannedKills: plan,
      reference: {
        runDir: runDirs.reference,
        wallMs: reference.wallMs,
        checkpointHash: refManifest.checkpointHash,
        weightsSha256: refFiles.get(weights) ?? "",
      },
      resumed: {
        runDir: runDirs.resumed,
        attempts,
        checkpointHash: resManifest.checkpointHash,
        weightsSha256: resFiles.get(weights) ?? "",
      },
      comparedFiles: compared,
      differingFiles: differing,
      differingTensors,
      metrics,
      killsPerformed: attempts.filter((a) => a.killed).length,
      killsDuringCheckpointWrite: attempts.filter((a) => a.killedDuringCheckpointWrite).length,
      workDir: options.keep ? workDir : null,
    };
  } finally {
    if (!options.keep) {
      if (catalogDir !== null) {
        await removeCatalogRows(catalogDir, [names.reference, names.resumed]).catch(() => {});
      }
      if (ownWorkDir) await Deno.remove(workDir, { recursive: true }).catch(() => {});
      else {
        for (const d of Object.values(runsDirs)) await Deno.remove(d, { recursive: true }).catch(() => {});
      }
    }
  }
}

/** The report as lines for people. */
export function formatVerifyResumeReport(report: VerifyResumeReport): string[] {
  const lines = [
    `verify-resume: ${report.steps} steps, checkpoint every ${report.ckptEvery}, kill seed ${report.seed}`,
    `uninterrupted  weights sha256 ${report.reference.weightsSha256}  (${
      (report.reference.wallMs / 1000).toFixed(1)
    } s)`,
    `resumed        weights sha256 ${report.resumed.weightsSha256}  (${report.resumed.attempts.length} processes)`,
  ];
  report.resumed.attempts.forEach((a, i) => {
    const k = a.kill;
    lines.push(
      `  #${i} ${a.command.padEnd(6)} ${
        k
          ? `kill ${k.mode}@${k.mode === "random-time" ? `${(k.timeFraction * 100).toFixed(0)}%` : k.step}`
          : "to the end"
      }: ${
        a.killed
          ? `killed${a.killedDuringCheckpointWrite ? " during a checkpoint write" : ""}`
          : `exit ${a.exitCode}`
      }${a.resumedFromStep !== null ? `, resumed from step ${a.resumedFromStep}` : ", fresh start"}${
        a.lastStepReported !== null ? `, reached step ${a.lastStepReported}` : ""
      }`,
    );
  });
  lines.push(
    `kills performed ${report.killsPerformed} (${report.killsDuringCheckpointWrite} during a checkpoint write)`,
  );
  lines.push(
    `state files compared ${report.comparedFiles.length}: ${
      report.differingFiles.length === 0 ? "all identical" : `DIFFERENT: ${report.differingFiles.join(", ")}`
    }`,
  );
  for (const t of report.differingTensors.slice(0, 20)) {
    lines.push(`  ${t.file} ${t.tensor}: ${t.differingElements} elements differ, max |Δ| ${t.maxAbsDiff}`);
  }
  const m = report.metrics;
  const problems = [
    m.duplicateSteps.length ? `steps logged twice: ${m.duplicateSteps.join(", ")}` : "",
    m.missingSteps.length ? `steps missing: ${m.missingSteps.join(", ")}` : "",
    m.duplicateValSteps.length ? `validations logged twice: ${m.duplicateValSteps.join(", ")}` : "",
    m.mismatchedSteps.length ? `steps with other loss/grad_norm/lr: ${m.mismatchedSteps.join(", ")}` : "",
  ].filter((s) => s);
  lines.push(
    `metrics.jsonl: ${
      problems.length === 0
        ? "every step logged once, same values as the uninterrupted run"
        : problems.join("; ")
    }`,
  );
  if (report.workDir) lines.push(`kept ${report.workDir}`);
  lines.push(report.identical ? "IDENTICAL: resume is bit-exact" : "DIFFERENT: resume is not bit-exact");
  return lines;
}
