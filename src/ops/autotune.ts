/**
 * The matmul autotuner: times the candidate tile configurations of the generated kernel (and the general
 * kernel) per (adapter, problem shape), keeps the fastest, and caches the choice on disk under
 * `${ORION_HOME ?? ".orion"}/autotune/<adapter-hash>.json`. Once a shape is cached its choice is read back,
 * never re-timed, so the kernel a run uses is deterministic; and since every configuration computes
 * bitwise-identical results (see `matmul_codegen.ts`), the choice only changes speed, never numbers.
 *
 * Timing: GPU timestamps around one compute pass holding `reps` dispatches when the device has
 * `timestamp-query`, else wall time between two waits minus the same for half the dispatches (which
 * cancels the ≥ 11 ms cost of a wait in Deno).
 *
 * Tests never consult the cache: `matmulInto` only uses a tuning table after
 * {@linkcode loadMatmulTuning} or {@linkcode autotuneMatmul} installed one on that device.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Gpu } from "../gpu/gpu.ts";
import type { AdapterDescription } from "../gpu/device.ts";
import { Tensor } from "../tensor/tensor.ts";
import {
  configFits,
  dispatchGeneratedMatmul,
  MATMUL_CODEGEN_VERSION,
  MATMUL_TILE_CONFIGS,
  matmulConfigName,
  type MatmulProblem,
  matmulProblemKey,
  type MatmulTileConfig,
  type MatmulTuningTable,
  setMatmulTuning,
} from "./matmul_codegen.ts";
import { matmulInto } from "./matmul.ts";
import { castTo } from "./cast.ts";
import { noGrad } from "../tensor/autograd.ts";

/** Format version of the autotune cache file. */
export const AUTOTUNE_FILE_VERSION = 1;

/** One timed candidate. */
export interface CandidateTiming {
  /** A config name, or `"general"`. */
  kernel: string;
  /** Milliseconds per dispatch. */
  ms: number;
}

/** The outcome for one problem. */
export interface MatmulTuneResult {
  key: string;
  /** Winning config name or `"general"`. */
  best: string;
  /** Every candidate's time (empty when the result came from the cache). */
  timings: CandidateTiming[];
  /** Whether the choice was read from the cache instead of timed. */
  cached: boolean;
}

/** The autotune cache file's content. */
export interface AutotuneFile {
  version: number;
  codegenVersion: number;
  adapter: Pick<AdapterDescription, "vendor" | "architecture" | "device" | "description" | "deno">;
  /** Per problem key: the winner and the timings it won with. */
  matmul: Record<string, { best: string; timings: CandidateTiming[] }>;
}

/** Options of {@linkcode autotuneMatmul}. */
export interface AutotuneOptions {
  /** Root of Orion's local state (default `$ORION_HOME`, else `.orion`). */
  home?: string;
  /** Candidates (default: every entry of `MATMUL_TILE_CONFIGS` that fits the device). */
  candidates?: readonly MatmulTileConfig[];
  /** Also time the general kernel (default true). */
  includeGeneral?: boolean;
  /** Re-time shapes already in the cache (default false). */
  force?: boolean;
  /** Target GPU time per candidate measurement in ms (default 50; reps are derived from an estimate). */
  targetMs?: number;
  /** GPU time of back-to-back warm-up calls before each measurement in ms (default max(200, targetMs)). */
  warmupMs?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

function orionHome(home?: string): string {
  if (home) return home;
  try {
    return Deno.env.get("ORION_HOME") ?? ".orion";
  } catch {
    return ".orion";
  }
}

/**
 * A short hash naming the adapter and runtime: vendor, architecture, device, description, Deno version
 * and the generator version (a new driver name or Deno re-tunes).
 */
export function adapterHash(
  d: Pick<AdapterDescription, "vendor" | "architecture" | "device" | "description" | "deno">,
): string {
  const text = JSON.stringify([
    d.vendor,
    d.architecture,
    d.device,
    d.description,
    d.deno,
    MATMUL_CODEGEN_VERSION,
  ]);
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** Path of this device's autotune cache file. */
export function autotuneCachePath(gpu: Gpu, home?: string): string {
  return `${orionHome(home)}/autotune/${adapterHash(gpu.description)}.json`;
}

async function readCache(path: string): Promise<AutotuneFile | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  let parsed: AutotuneFile;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(
      `Cannot read the autotune cache ${path} as it is not valid JSON (${(e as Error).message}): ` +
        "delete the file to re-tune",
    );
  }
  if (parsed.version !== AUTOTUNE_FILE_VERSION || parsed.codegenVersion !== MATMUL_CODEGEN_VERSION) {
    return null;
  }
  if (typeof parsed.matmul !== "object" || parsed.matmul === null) {
    throw new SyntaxError(
      `Cannot read the autotune cache ${path} as it has no "matmul" object: delete it to re-tune`,
    );
  }
  return parsed;
}

async function writeCache(path: string, file: AutotuneFile): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, JSON.stringify(file, null, 1) + "\n");
  await Deno.rename(tmp, path);
}

function tableOf(file: AutotuneFile): MatmulTuningTable {
  const table: MatmulTuningTable = {};
  for (const key of Object.keys(file.matmul).sort()) table[key] = file.matmul[key].best;
  return table;
}

/**
 * Reads this device's autotune cache (if any) and installs it for `matmulInto`'s `"auto"` choice.
 * Returns the installed table, or null when there is no cache for this adapter.
 *
 * @example
 * ```ts ignore
 * await loadMatmulTuning(gpu); // at startup, before recording steps
 * ```
 */
export async function loadMatmulTuning(gpu: Gpu, home?: string): Promise<MatmulTuningTable | null> {
  const file = await readCache(autotuneCachePath(gpu, home));
  if (!file) return null;
  const table = tableOf(file);
  setMatmulTuning(gpu, table);
  return table;
}

/** Deterministic pseudo-random f32 values in [-1, 1) (a counter hash; fast for large buffers). */
function fillRandom(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let h = Math.imul(i ^ seed, 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h, 0x85ebca77);
    h ^= h >>> 13;
    out[i] = ((h >>> 8) / 8388608) - 1;
  }
  return out;
}

/** Operand tensors of a problem (A, B as stored, optional bias, C), filled with pseudo-random values. */
export function matmulOperands(
  gpu: Gpu,
  p: MatmulProblem,
): { a: Tensor; b: Tensor; bias?: Tensor; c: Tensor } {
  const aRows = p.transA ? p.k : p.m;
  const aCols = p.transA ? p.m : p.k;
  const bRows = p.transB ? p.n : p.k;
  const bCols = p.transB ? p.k : p.n;
  const batched = p.batch > 1;
  const a = Tensor.fromArray(
    gpu,
    fillRandom((p.strideA ? p.batch : 1) * aRows * aCols, 1),
    batched && p.strideA ? [p.batch, aRows, aCols] : [aRows, aCols],
  );
  const b = Tensor.fromArray(
    gpu,
    fillRandom((p.strideB ? p.batch : 1) * bRows * bCols, 2),
    batched && p.strideB ? [p.batch, bRows, bCols] : [bRows, bCols],
  );
  // Mixed-precision problems read 16-bit operands: time them on 16-bit copies.
  const half = (t: Tensor, dtype: MatmulProblem["halfA"]) => {
    if (!dtype) return t;
    const h = noGrad(() => castTo(t, dtype));
    t.dispose();
    return h;
  };
  const bias = p.bias ? Tensor.fromArray(gpu, fillRandom(p.n, 3), [p.n]) : undefined;
  const c = Tensor.fromArray(
    gpu,
    fillRandom(p.batch * p.m * p.n, 4),
    batched ? [p.batch, p.m, p.n] : [p.m, p.n],
  );
  return { a: half(a, p.halfA), b: half(b, p.halfB), bias, c };
}

/**
 * Times `record()` (which must dispatch kernels of family `family` only): first a warm-up of
 * `warmupReps` calls submitted without waiting (GPUs lower their clocks while idle, and our waits leave
 * them idle; measured on an H200: 1980 MHz falling to 400–900 MHz between short bursts), then, right
 * behind it in the queue, `reps` calls whose compute pass is timed with GPU timestamps when the device
 * has `timestamp-query`. Without timestamps: wall milliseconds per call from two waits (`reps` and
 * `reps/2` calls after the same warm-up, differenced, which cancels the fixed cost of a wait).
 */
export async function timeRecorded(
  gpu: Gpu,
  record: () => void,
  family: string,
  options: { targetMs?: number; warmupMs?: number } = {},
): Promise<{ ms: number; reps: number; source: "timestamp" | "wall" }> {
  const targetMs = options.targetMs ?? 100;
  const warmupMs = options.warmupMs ?? Math.max(200, targetMs);
  // Estimate: one call (compiles pipelines), then two timed calls.
  record();
  await gpu.sync();
  let estimate: number | undefined;
  if (gpu.features.timestampQuery) {
    gpu.setTiming(true);
    record();
    record();
    gpu.submit();
    gpu.setTiming(false);
    const ns = (await gpu.takeTimings()).ns[family];
    if (ns !== undefined && ns > 0) estimate = ns / 1e6 / 2;
  }
  if (estimate === undefined) {
    const t0 = performance.now();
    record();
    await gpu.sync();
    estimate = performance.now() - t0; // includes a wait: an overestimate, so fewer reps
  }
  const per = Math.max(estimate, 0.002);
  const reps = Math.max(3, Math.min(5000, Math.round(targetMs / per)));
  const warmupReps = Math.max(1, Math.min(20000, Math.round(warmupMs / per)));
  let stamped: number | undefined;
  if (gpu.features.timestampQuery) {
    await gpu.sync();
    for (let i = 0; i < warmupReps; i++) record();
    gpu.submit();
    gpu.setTiming(true);
    for (let i = 0; i < reps; i++) record();
    gpu.submit();
    gpu.setTiming(false);
    const timings = await gpu.takeTimings();
    const ns = timings.ns[family];
    if (ns !== undefined && ns > 0) stamped = ns / 1e6 / reps;
  }
  if (stamped !== undefined) return { ms: stamped, reps, source: "timestamp" };
  const wall = async (n: number, warm: number) => {
    for (let i = 0; i < warm; i++) record();
    await gpu.sync(); // the GPU idles briefly (≥ 10 ms more without early maps) before the timed calls
    const t0 = performance.now();
    for (let i = 0; i < n; i++) record();
    await gpu.sync();
    return performance.now() - t0;
  };
  const half = Math.max(1, Math.floor(reps / 2));
  const tHalf = await wall(half, warmupReps);
  const tFull = await wall(reps, warmupReps);
  // When timer noise swamps the difference, fall back to the mean.
  const diff = reps > half ? (tFull - tHalf) / (reps - half) : 0;
  const wallMs = diff > 0.05 * (tFull / reps) ? diff : tFull / reps;
  return { ms: wallMs, reps, source: "wall" };
}

/**
 * Milliseconds per dispatch of problem `p` under `kernel` (a configuration or `"general"`), timed as
 * {@linkcode timeRecorded} does with repetitions filling about `targetMs` after `warmupMs` of warm-up.
 */
export async function timeMatmul(
  gpu: Gpu,
  p: MatmulProblem,
  kernel: MatmulTileConfig | "general",
  operands: { a: Tensor; b: Tensor; bias?: Tensor; c: Tensor },
  targetMs = 50,
  warmupMs?: number,
): Promise<number> {
  const family = `tune.${kernel === "general" ? "general" : matmulConfigName(kernel)}`;
  const record = kernel === "general"
    ? () => {
      matmulInto(operands.c, operands.a, operands.b, {
        transA: p.transA,
        transB: p.transB,
        bias: operands.bias,
        alpha: p.alpha,
        beta: p.beta,
        kernel: "general",
      });
    }
    : () =>
      dispatchGeneratedMatmul(gpu, kernel, p, {
        a: operands.a.binding(),
        b: operands.b.binding(),
        bias: operands.bias?.binding(),
        c: operands.c.binding(),
      }, family);
  const fam = kernel === "general" ? "matmul" : family;
  const { ms } = await timeRecorded(gpu, record, fam, { targetMs, warmupMs });
  return ms;
}

/**
 * Times every fitting candidate for each problem not yet cached (all of them with `force`), writes the
 * winners to this device's cache file and installs the full cached table for `matmulInto`.
 *
 * @example
 * ```ts ignore
 * const results = await autotuneMatmul(gpu, [{ batch: 1, m: 4096, n: 4096, k: 4096, transA: false,
 *   transB: false, strideA: 0, strideB: 0, bias: false, alpha: 1, beta: 0 }]);
 * console.log(results[0].best);
 * ```
 */
export async function autotuneMatmul(
  gpu: Gpu,
  problems: readonly MatmulProblem[],
  options: AutotuneOptions = {},
): Promise<MatmulTuneResult[]> {
  const path = autotuneCachePath(gpu, options.home);
  const file: AutotuneFile = (await readCache(path)) ?? {
    version: AUTOTUNE_FILE_VERSION,
    codegenVersion: MATMUL_CODEGEN_VERSION,
    adapter: {
      vendor: gpu.description.vendor,
      architecture: gpu.description.architecture,
      device: gpu.description.device,
      description: gpu.description.description,
      deno: gpu.description.deno,
    },
    matmul: {},
  };
  const candidates = (options.candidates ?? MATMUL_TILE_CONFIGS).filter((c) =>
    configFits(c, gpu.device.limits)
  );
  const results: MatmulTuneResult[] = [];
  for (const p of problems) {
    const key = matmulProblemKey(p);
    const hit = file.matmul[key];
    if (hit && !options.force) {
      results.push({ key, best: hit.best, timings: [], cached: true });
      continue;
    }
    const timings: CandidateTiming[] = [];
    {
      const ops = matmulOperands(gpu, p);
      try {
        const kernels: (MatmulTileConfig | "general")[] = [...candidates];
        if (options.includeGeneral ?? true) kernels.push("general");
        for (const kernel of kernels) {
          const ms = await timeMatmul(gpu, p, kernel, ops, options.targetMs, options.warmupMs);
          const name = kernel === "general" ? "general" : matmulConfigName(kernel);
          timings.push({ kernel: name, ms });
          options.log?.(
            `${key} ${name}: ${ms.toFixed(4)} ms, ${
              (2 * p.batch * p.m * p.n * p.k / ms / 1e9).toFixed(2)
            } TFLOP/s`,
          );
        }
      } finally {
        for (const t of Object.values(ops)) t?.dispose();
      }
    }
    if (!timings.length) continue;
    // Fastest wins; ties go to the earlier candidate (list order), so the choice is reproducible.
    let best = timings[0];
    for (const t of timings) if (t.ms < best.ms) best = t;
    file.matmul[key] = { best: best.kernel, timings };
    results.push({ key, best: best.kernel, timings, cached: false });
  }
  await writeCache(path, file);
  setMatmulTuning(gpu, tableOf(file));
  return results;
}
