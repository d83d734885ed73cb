/**
 * `InfraConfig`: where and on how many processes a run executes.
 *
 * @module
 */
import { z } from "zod";
import type { SameShape, Unbranded } from "./config_shape.ts";
import { buildConfig } from "./config_builder.ts";
import { alwaysCheck } from "./schema_tools.ts";

/** Launch backends. */
export const BACKENDS: readonly ["local", "skypilot", "slurm", "pbs"] = ["local", "skypilot", "slurm", "pbs"];

const InfraConfigObject = z.strictObject({
  accelerator: z.enum(["gpu", "cpu-software"]).default("gpu").describe(
    '"gpu": a hardware WebGPU adapter; "cpu-software": Mesa\'s software adapter (tests, CI)',
  ),
  nodes: z.number().int().positive().default(1).describe("machines"),
  gpusPerNode: z.number().int().positive().default(1).describe(
    "training processes (one GPU each) per machine",
  ),
  backend: z.enum(BACKENDS).default("local").describe("launcher: local | skypilot | slurm | pbs"),
  maxRestarts: z.number().int().nonnegative().default(0).describe(
    "automatic restarts from the last checkpoint after a failure or preemption",
  ),
  bucketCapMb: z.union([z.number().positive().max(1024), z.literal("auto")]).default("auto").describe(
    "gradient bucket size in MiB for data-parallel runs (PyTorch DDP's bucket_cap_mb, 25 there), or " +
      '"auto": an eighth of the gradient within 2–8 MiB (measured fastest here). Backward is cut where each ' +
      "bucket's gradients are final and the bucket is exchanged while backward goes on; the first bucket is " +
      "min(1, this)",
  ),
  gradientCompression: z.enum(["none", "bf16"]).default("none").describe(
    'data-parallel gradient exchange: "none" (f32) or "bf16" (each rank\'s gradient rounded to bf16 for the ' +
      "read-back, averaged in f32, rounded to bf16 for the write-back: half the PCIe and host-copy bytes; " +
      "changes the numbers, like PyTorch DDP's bf16_compress_hook)",
  ),
  autotune: z.enum(["off", "cached", "tune"]).default("cached").describe(
    '"off": never read or write the matmul autotune cache; "cached": install this adapter\'s tuning table ' +
      '(${ORION_HOME:-.orion}/autotune/) at startup; "tune": also time the first step\'s uncached matmul ' +
      "shapes right after it and cache the winners (the numbers never change)",
  ),
});

/** The zod schema of {@link InfraConfig}: fields, defaults and their documentation. */
export const InfraConfigSchema = alwaysCheck(InfraConfigObject, (v, r) => {
  if (v === null || typeof v !== "object") return;
  if ((v.backend ?? "local") === "local" && typeof v.nodes === "number" && v.nodes > 1) {
    r.report(
      ["nodes"],
      `Cannot run on ${v.nodes} nodes with infra.backend "local" as the local launcher only starts processes on this machine: current value is ${v.nodes}`,
      'set infra.nodes to 1, or infra.backend to "skypilot", "slurm" or "pbs"',
    );
  }
}).brand<"InfraConfig">();

/** Validated infrastructure settings with every default filled in. */
export interface InfraConfig {
  /** "gpu": a hardware WebGPU adapter; "cpu-software": Mesa's software adapter (tests, CI). */
  accelerator: "gpu" | "cpu-software";
  /** Machines. */
  nodes: number;
  /** Training processes (one GPU each) per machine. */
  gpusPerNode: number;
  /** Launcher: local | skypilot | slurm | pbs. */
  backend: "local" | "skypilot" | "slurm" | "pbs";
  /** Automatic restarts from the last checkpoint after a failure or preemption. */
  maxRestarts: number;
  /**
   * Gradient bucket size in MiB for data-parallel runs (PyTorch DDP's bucket_cap_mb), or "auto" (default): an
   * eighth of the gradient within 2–8 MiB. Backward is cut where each bucket's gradients are final and the
   * bucket is exchanged while backward goes on; the first bucket is min(1, this).
   */
  bucketCapMb: number | "auto";
  /**
   * Data-parallel gradient exchange: "none" (default, f32) or "bf16": each rank's gradient is rounded to
   * bf16 for the read-back, averaged in f32 and rounded to bf16 for the write-back — half the bytes over
   * PCIe and through the host copies. Changes the numbers (like PyTorch DDP's `bf16_compress_hook`).
   */
  gradientCompression: "none" | "bf16";
  /**
   * "off": never read or write the matmul autotune cache; "cached": install this adapter's tuning table
   * (${ORION_HOME:-.orion}/autotune/) at startup; "tune": also time the first step's uncached matmul shapes
   * right after it and cache the winners (the numbers never change).
   */
  autotune: "off" | "cached" | "tune";
}

/** Infrastructure settings as a user writes them (every field optional). */
export type InfraConfigInput = Partial<InfraConfig>;

const _infraConfigMatchesSchema: [
  SameShape<Unbranded<z.output<typeof InfraConfigSchema>>, InfraConfig>,
  SameShape<z.input<typeof InfraConfigSchema>, InfraConfigInput>,
] = [true, true];

/**
 * Validates infrastructure settings.
 *
 * @example
 * ```ts
 * import { InfraConfig } from "./infra_config.ts";
 * const i = InfraConfig({ accelerator: "gpu", nodes: 1, gpusPerNode: 8 });
 * console.log(i.backend); // "local"
 * ```
 */
export function InfraConfig(input: InfraConfigInput = {}): InfraConfig {
  return buildConfig("InfraConfig", InfraConfigSchema, input);
}
