/**
 * `InfraConfig`: where and on how many processes a run executes.
 *
 * @module
 */
import { z } from "zod";
import { buildConfig } from "./config_builder.ts";
import { alwaysCheck } from "./schema_tools.ts";

/** Launch backends. */
export const BACKENDS = ["local", "skypilot", "slurm", "pbs"] as const;

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

/** Infrastructure settings as a user writes them. */
export type InfraConfigInput = z.input<typeof InfraConfigSchema>;
/** Validated infrastructure settings with every default filled in. */
export type InfraConfig = z.output<typeof InfraConfigSchema>;

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
