/**
 * Kernel benchmarks: fp32 matmul (4096³ and the POYO linear-layer shapes, forward and both gradients,
 * with bias/accumulate epilogues) and bandwidth kernels (elementwise accumulate, reductions, buffer copy).
 * Prints a table (name, shape, kernel, time, TFLOP/s or GB/s, adapter) and writes the same rows as JSON.
 *
 * Usage:
 *   deno run -A scripts/bench_kernels.ts [--json out/bench_kernels.json] [--small] [--sweep]
 *     [--configs NAMES] [--autotune] [--filter TEXT] [--target-ms 100] [--warmup-ms 300] [--no-general]
 *   --small      small shapes (the software adapter runs ~0.5 GFLOP/s; 4096³ would take minutes)
 *   --sweep      also time every candidate tile configuration of the generated kernel per matmul shape
 *   --configs    comma-separated config names to sweep instead (e.g. 128x128x16_t8x8_b2_p4_g8)
 *   --autotune   tune the matmul shapes first (cache under $ORION_HOME/autotune) and bench the tuned choice
 *   --no-general skip the general (fallback) matmul kernel rows
 *
 * Times are GPU timestamps around one compute pass of many dispatches, queued right behind
 * `--warmup-ms` of back-to-back warm-up dispatches (GPUs lower their clocks while idle), when the device
 * has `timestamp-query` (column `via` = timestamp), else differenced wall time (`via` = wall).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Gpu } from "../src/gpu/gpu.ts";
import { Tensor } from "../src/tensor/tensor.ts";
import { accumulateInto, sum } from "../src/ops/mod.ts";
import {
  chooseMatmulConfig,
  configFits,
  MATMUL_TILE_CONFIGS,
  matmulConfigName,
  type MatmulProblem,
  matmulProblem,
  type MatmulTileConfig,
  parseMatmulConfigName,
} from "../src/ops/matmul_codegen.ts";
import { autotuneMatmul, matmulOperands, timeMatmul, timeRecorded } from "../src/ops/autotune.ts";

/** One benchmark row. */
export interface KernelBenchRow {
  name: string;
  shape: string;
  kernel: string;
  ms: number;
  tflops?: number;
  gbps?: number;
  via: "timestamp" | "wall";
  adapter: string;
}

/** A named matmul problem of the benchmark. */
interface MatmulBench {
  name: string;
  problem: MatmulProblem;
}

const problem = matmulProblem;

/**
 * Matmul shapes: a square product, and POYO's FFN and attention projections at 32 samples × 512 latents
 * (rows R = 16384, D = 512): forward x·Wᵀ (+bias), input gradient dY·W and weight gradient dYᵀ·X
 * accumulated into the gradient (beta = 1). `small` divides everything to run on a software adapter.
 */
function matmulBenches(small: boolean): MatmulBench[] {
  const sq = small ? 256 : 4096;
  const R = small ? 512 : 32 * 512;
  const D = small ? 64 : 512;
  const out: MatmulBench[] = [
    { name: "matmul square", problem: problem(sq, sq, sq, false, false) },
    { name: "matmul square Aᵀ", problem: problem(sq, sq, sq, true, false) },
    { name: "matmul square Bᵀ", problem: problem(sq, sq, sq, false, true) },
    { name: "ffn.w1 forward x·Wᵀ+b", problem: problem(R, 8 * D, D, false, true, { bias: true }) },
    { name: "ffn.w1 grad input dY·W", problem: problem(R, D, 8 * D, false, false) },
    { name: "ffn.w1 grad weight dYᵀ·X (+=)", problem: problem(8 * D, D, R, true, false, { beta: 1 }) },
    { name: "ffn.w2 forward h·Wᵀ+b", problem: problem(R, D, 4 * D, false, true, { bias: true }) },
    { name: "ffn.w2 grad input dY·W", problem: problem(R, 4 * D, D, false, false) },
    { name: "ffn.w2 grad weight dYᵀ·H (+=)", problem: problem(D, 4 * D, R, true, false, { beta: 1 }) },
    { name: "attn to_qkv forward x·Wᵀ", problem: problem(R, 3 * D, D, false, true) },
    // Edges inside tiles; sizes multiples of 4 (128-bit loads) and odd sizes (scalar loads).
    {
      name: "ragged (mult. of 4)",
      problem: problem(small ? 132 : 1000, small ? 260 : 1000, small ? 36 : 1000, false, true),
    },
    {
      name: "ragged (odd)",
      problem: problem(small ? 130 : 1023, small ? 257 : 1021, small ? 33 : 1019, false, true),
    },
  ];
  return out;
}

function shapeOf(p: MatmulProblem): string {
  const a = p.transA ? `[${p.k},${p.m}]ᵀ` : `[${p.m},${p.k}]`;
  const b = p.transB ? `[${p.n},${p.k}]ᵀ` : `[${p.k},${p.n}]`;
  return `${p.batch > 1 ? `${p.batch}×` : ""}${a}·${b}`;
}

function table(rows: KernelBenchRow[]): string {
  const head = ["name", "shape", "kernel", "ms", "TFLOP/s", "GB/s", "via"];
  const cells = rows.map((r) => [
    r.name,
    r.shape,
    r.kernel,
    r.ms < 0.1 ? r.ms.toFixed(4) : r.ms.toFixed(3),
    r.tflops === undefined ? "" : r.tflops.toFixed(r.tflops < 1 ? 4 : 2),
    r.gbps === undefined ? "" : r.gbps.toFixed(1),
    r.via,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i])).join("  ");
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

/** Runs the kernel benchmarks; returns the rows (also printed and written as JSON by the CLI). */
export async function benchKernels(options: {
  small: boolean;
  sweep: boolean;
  autotune: boolean;
  general: boolean;
  filter?: string;
  /** Sweep candidates (default MATMUL_TILE_CONFIGS). */
  configs?: readonly MatmulTileConfig[];
  targetMs: number;
  /** Back-to-back warm-up before each measurement (GPUs clock down while idle). */
  warmupMs: number;
  log: (line: string) => void;
}): Promise<{ rows: KernelBenchRow[]; adapter: Record<string, unknown> }> {
  const gpu = await Gpu.create();
  const adapter = gpu.description.description || `${gpu.description.vendor} ${gpu.description.device}`;
  const rows: KernelBenchRow[] = [];
  const push = (row: Omit<KernelBenchRow, "adapter">) => {
    const full = { ...row, adapter };
    rows.push(full);
    options.log(
      `${full.name} ${full.shape} ${full.kernel}: ${full.ms.toFixed(4)} ms` +
        (full.tflops !== undefined ? ` ${full.tflops.toFixed(3)} TFLOP/s` : "") +
        (full.gbps !== undefined ? ` ${full.gbps.toFixed(1)} GB/s` : "") + ` (${full.via})`,
    );
  };
  const wanted = (name: string) => !options.filter || name.includes(options.filter);
  const benches = matmulBenches(options.small).filter((b) => wanted(b.name));
  if (options.autotune) {
    await autotuneMatmul(gpu, benches.map((b) => b.problem), {
      log: options.log,
      targetMs: options.targetMs,
      warmupMs: options.warmupMs,
    });
  }
  for (const { name, problem: p } of benches) {
    const flops = 2 * p.batch * p.m * p.n * p.k;
    const ops = matmulOperands(gpu, p);
    try {
      const kernels: (MatmulTileConfig | "general")[] = [];
      const chosen = chooseMatmulConfig(gpu, p, "auto");
      kernels.push(chosen ?? "general");
      if (options.sweep) {
        const chosenName = chosen ? matmulConfigName(chosen) : "";
        for (const c of options.configs ?? MATMUL_TILE_CONFIGS) {
          if (matmulConfigName(c) !== chosenName && configFits(c, gpu.device.limits)) kernels.push(c);
        }
      }
      if (options.general && chosen) kernels.push("general");
      for (const kernel of kernels) {
        const ms = await timeMatmul(gpu, p, kernel, ops, options.targetMs, options.warmupMs);
        const label = kernel === "general" ? "general" : matmulConfigName(kernel);
        push({
          name: kernel === chosen || (kernel === "general" && !chosen) ? name : `${name} [alt]`,
          shape: shapeOf(p) + (p.bias ? "+b" : "") + (p.beta ? "+βC" : ""),
          kernel: label,
          ms,
          tflops: flops / ms / 1e9,
          via: gpu.features.timestampQuery ? "timestamp" : "wall",
        });
      }
    } finally {
      for (const t of Object.values(ops)) t?.dispose();
    }
  }

  // Bandwidth kernels.
  const n = options.small ? 1 << 18 : 1 << 26;
  const x = Tensor.fromArray(gpu, new Float32Array(n).fill(0.5), [n]);
  const y = Tensor.zeros(gpu, [n]);
  const bandwidth = async (
    name: string,
    shape: string,
    kernel: string,
    family: string,
    bytes: number,
    record: () => void,
  ) => {
    if (!wanted(name)) return;
    const t = await timeRecorded(gpu, record, family, {
      targetMs: options.targetMs,
      warmupMs: options.warmupMs,
    });
    push({ name, shape, kernel, ms: t.ms, gbps: bytes / t.ms / 1e6, via: t.source });
  };
  await bandwidth(
    "elementwise accumulate y += x",
    `[${n}]`,
    "elementwise.accumulate",
    "elementwise",
    12 * n,
    () => {
      accumulateInto(y, x);
    },
  );
  const cols = 1024;
  const x2 = x.viewAs([n / cols, cols]);
  await bandwidth(
    "reduce sum axis 1",
    `[${n / cols},${cols}]→[${n / cols}]`,
    "reduce.sum_axis",
    "elementwise",
    4 * n,
    () => {
      sum(x2, 1).dispose();
    },
  );
  const x3 = x.viewAs([cols, n / cols]);
  await bandwidth(
    "reduce sum axis 0",
    `[${cols},${n / cols}]→[${n / cols}]`,
    "reduce.sum_axis",
    "elementwise",
    4 * n,
    () => {
      sum(x3, 0).dispose();
    },
  );
  await bandwidth("buffer copy", `[${n}]`, "copyBufferToBuffer", "copy", 8 * n, () => {
    gpu.copy(x.binding(), y.binding(), 4 * n);
  });
  x.dispose();
  y.dispose();
  const info = {
    description: gpu.description.description,
    vendor: gpu.description.vendor,
    architecture: gpu.description.architecture,
    device: gpu.description.device,
    isFallbackAdapter: gpu.description.isFallbackAdapter,
    deno: gpu.description.deno,
    timestampQuery: gpu.features.timestampQuery,
    maxComputeWorkgroupStorageSize: gpu.device.limits.maxComputeWorkgroupStorageSize,
    pipelineCompileMs: Math.round(gpu.pipelines.compileMs),
  };
  gpu.destroy();
  return { rows, adapter: info };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      json: { type: "string", default: "out/bench_kernels.json" },
      small: { type: "boolean", default: false },
      sweep: { type: "boolean", default: false },
      autotune: { type: "boolean", default: false },
      "no-general": { type: "boolean", default: false },
      configs: { type: "string" },
      filter: { type: "string" },
      "target-ms": { type: "string", default: "100" },
      "warmup-ms": { type: "string", default: "300" },
    },
  });
  const targetMs = Number(values["target-ms"]);
  const warmupMs = Number(values["warmup-ms"]);
  if (!(warmupMs >= 0)) {
    throw new RangeError(
      `Cannot run benchmarks with --warmup-ms ${values["warmup-ms"]}: it must be a number ≥ 0`,
    );
  }
  if (!(targetMs > 0)) {
    throw new RangeError(
      `Cannot run benchmarks with --target-ms ${values["target-ms"]}: it must be a number > 0`,
    );
  }
  const started = new Date().toISOString();
  const { rows, adapter } = await benchKernels({
    small: values.small,
    sweep: values.sweep,
    autotune: values.autotune,
    general: !values["no-general"],
    filter: values.filter,
    configs: values.configs?.split(",").map(parseMatmulConfigName),
    targetMs,
    warmupMs,
    log: (line) => console.error(line),
  });
  console.log(`\nKernels on ${adapter.description} (Deno ${adapter.deno})${values.small ? ", --small" : ""}`);
  console.log(table(rows));
  const path = values.json;
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    path,
    JSON.stringify({ bench: "kernels", started, small: values.small, adapter, rows }, null, 1) + "\n",
  );
  console.log(`wrote ${path}`);
}
