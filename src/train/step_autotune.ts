/**
 * Matmul autotuning for training (`InfraConfig.autotune`), in the spirit of PyTorch's
 * `torch.compile(mode="max-autotune")` but opt-in and cached per adapter:
 *
 * - `"off"`: never read or write the autotune cache; `matmulInto` uses its size heuristic (or whatever
 *   table someone else installed on the device).
 * - `"cached"` (default): at startup install this adapter's cached tuning table
 *   (`${ORION_HOME ?? ".orion"}/autotune/<adapter-hash>.json`) when there is one. Cheap; never times.
 * - `"tune"`: as `"cached"`, then collect the matmul problems the first recorded training step issues
 *   (`collectMatmulProblems`), time the shapes the cache does not hold with `autotuneMatmul` right after
 *   that step was submitted (between steps, never inside a step's command buffer), and install the new
 *   table. The trainer then drops any captured step stream (it would replay the old kernels) and captures
 *   again.
 *
 * Why this never changes a run's numbers: every tile configuration of the generated kernel and the general
 * kernel compute each output as the same chain `acc = fma(a_k, b_k, acc)` over k = 0..K−1 in order from
 * +0, then the same epilogue (`matmul_codegen.ts`, tested bit for bit over every configuration); a K tail
 * padded with zeros adds `fma(0, 0, acc) = acc` exactly (acc starts at +0 and so is never −0). The one
 * product whose bits depend on its path, the split-K weight gradient, is chosen by `splitKChunk` from the
 * shape alone: tuning tables are never consulted for it (only its inner batched product, an ordinary
 * bitwise-neutral one). So a run tuned mid-way, one that loaded the cache and one with tuning off give
 * identical weights, and resume stays bit-exact.
 *
 * @module
 */
import type { Gpu } from "../gpu/gpu.ts";
import {
  autotuneCachePath,
  autotuneMatmul,
  type AutotuneOptions,
  loadMatmulTuning,
} from "../ops/autotune.ts";
import { collectMatmulProblems } from "../ops/matmul_problems.ts";
import {
  chooseMatmulConfig,
  matmulConfigName,
  type MatmulProblem,
  matmulProblemKey,
} from "../ops/matmul_codegen.ts";

/** What a run does about matmul autotuning (`InfraConfig.autotune`). */
export type AutotuneMode = "off" | "cached" | "tune";

/** Autotuning settings of the step engine. */
export interface StepAutotuneSettings {
  mode: AutotuneMode;
  /** Passed to `autotuneMatmul` / `loadMatmulTuning` (cache root, candidates, timing targets). */
  options?: AutotuneOptions;
  /** One line when the cache was loaded and one when tuning finished. */
  log?: (line: string) => void;
}

/** What autotuning did in this process. */
export interface StepAutotuneReport {
  mode: AutotuneMode;
  /** The cache file consulted (null with `"off"`). */
  cachePath: string | null;
  /** Shapes in the tuning table installed at startup (0: no cache for this adapter). */
  loadedShapes: number;
  /** Distinct matmul shapes of the first recorded step (null until that step ran). */
  stepShapes: number | null;
  /** `"tune"`: shapes timed now (the rest came from the cache). */
  timedShapes: number;
  /** `"tune"`: wall milliseconds spent timing. */
  tuneMs: number;
  /** The step (1-based: steps completed) after which tuning ran (null: not yet, or not tuning). */
  tunedAfterStep: number | null;
  /**
   * The kernel each matmul shape of the first recorded step runs from then on (`matmulProblemKey` → config
   * name or `"general"`): the tuned choice, a cached one, or the size heuristic's.
   */
  chosen: Record<string, string>;
}

/**
 * The step engine's autotuning state machine: load once, collect one step, tune once.
 *
 * @example
 * ```ts ignore
 * const tuner = new StepAutotuner(gpu, { mode: "tune", log: console.log });
 * await tuner.load();
 * tuner.record(() => recordStep()); // collects the step's matmul shapes
 * gpu.submit();
 * if (await tuner.afterStep(1)) discardCapturedStreams();
 * ```
 */
export class StepAutotuner {
  readonly gpu: Gpu;
  readonly settings: StepAutotuneSettings;
  readonly report: StepAutotuneReport;
  #loaded = false;
  #collect: boolean;
  #problems: MatmulProblem[] | null = null;

  constructor(gpu: Gpu, settings: StepAutotuneSettings) {
    if (!["off", "cached", "tune"].includes(settings.mode)) {
      throw new RangeError(
        `Cannot autotune matmuls in mode "${settings.mode}" as it must be "off", "cached" or "tune": ` +
          `current value is ${JSON.stringify(settings.mode)}`,
      );
    }
    this.gpu = gpu;
    this.settings = settings;
    this.#collect = true;
    this.report = {
      mode: settings.mode,
      cachePath: settings.mode === "off" ? null : autotuneCachePath(gpu, settings.options?.home),
      loadedShapes: 0,
      stepShapes: null,
      timedShapes: 0,
      tuneMs: 0,
      tunedAfterStep: null,
      chosen: {},
    };
  }

  /**
   * Installs the adapter's cached table (once; a no-op with `"off"` or when already loaded). The cache is
   * derived data: an unreadable one (not JSON, no table, a bad config name) does not stop training — it is
   * renamed to `<file>.unreadable-<time>` (kept for inspection), a warning says so, and the run goes on
   * with the size heuristic (`"tune"` then writes a fresh cache).
   */
  async load(): Promise<void> {
    if (this.#loaded) return;
    this.#loaded = true;
    if (this.settings.mode === "off") return;
    let table: Awaited<ReturnType<typeof loadMatmulTuning>>;
    try {
      table = await loadMatmulTuning(this.gpu, this.settings.options?.home);
    } catch (e) {
      if (e instanceof Deno.errors.PermissionDenied) throw e;
      const path = this.report.cachePath!;
      const aside = `${path}.unreadable-${new Date().toISOString().replace(/[:.]/g, "-")}`;
      try {
        await Deno.rename(path, aside);
      } catch (renameError) {
        // Another process on this host (a second rank) moved it first.
        if (!(renameError instanceof Deno.errors.NotFound)) throw renameError;
      }
      this.settings.log?.(
        `autotune: warning: cannot use the autotune cache ${path} (${(e as Error).message}); moved it to ` +
          `${aside} and running on the size heuristic${this.settings.mode === "tune" ? " (re-tuning)" : ""}`,
      );
      return;
    }
    if (!table) return;
    this.report.loadedShapes = Object.keys(table).length;
    this.settings.log?.(
      `autotune: loaded ${this.report.loadedShapes} tuned matmul shapes from ${this.report.cachePath}`,
    );
  }

  /** Whether the next recorded step's matmul shapes will be collected (the first recorded step's are). */
  get collecting(): boolean {
    return this.#collect;
  }

  /** Runs the synchronous recording `fn`, collecting its matmul problems if it is the first step's. */
  record<T>(fn: () => T): T {
    if (!this.#collect) return fn();
    const { result, problems } = collectMatmulProblems(fn);
    this.#problems = [...(this.#problems ?? []), ...problems];
    return result;
  }

  /**
   * After step `step` (1-based: steps completed) was recorded and submitted, once: with `"tune"` times the
   * collected shapes and installs the new table; in every mode fills `report.chosen` with the kernel each
   * shape of that step now runs. Returns true when a new table was installed — captured step streams
   * recorded before it are then stale.
   */
  async afterStep(step: number): Promise<boolean> {
    if (!this.#collect || this.#problems === null) return false;
    this.#collect = false;
    const seen = new Set<string>();
    const problems = this.#problems.filter((p) => {
      const key = matmulProblemKey(p);
      return seen.has(key) ? false : (seen.add(key), true);
    });
    this.#problems = null;
    this.report.stepShapes = problems.length;
    let tuned = false;
    if (this.settings.mode === "tune") {
      const t0 = performance.now();
      const results = await autotuneMatmul(this.gpu, problems, this.settings.options);
      const ms = performance.now() - t0;
      const timed = results.filter((r) => !r.cached).length;
      Object.assign(this.report, { timedShapes: timed, tuneMs: ms, tunedAfterStep: step });
      this.settings.log?.(
        `autotune: step ${step} issues ${problems.length} matmul shapes; timed ${timed} ` +
          `(${problems.length - timed} cached) in ${(ms / 1000).toFixed(1)} s → ${this.report.cachePath}`,
      );
      tuned = true;
    }
    for (const p of problems) {
      const c = chooseMatmulConfig(this.gpu, p, "auto");
      this.report.chosen[matmulProblemKey(p)] = c ? matmulConfigName(c) : "general";
    }
    return tuned;
  }
}
