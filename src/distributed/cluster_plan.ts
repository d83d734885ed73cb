/**
 * What every cluster backend (SkyPilot, Slurm, PBS) needs to write its artifact: one node agent per host
 * runs `<program> launch <config> --backend local --node-rank R --coordinator-host HEAD ...`; node rank 0
 * also hosts the coordinator. The join secret travels in the environment (`ORION_JOIN_SECRET`), never in
 * the artifact.
 *
 * @module
 */

/** Inputs of the artifact writers. */
export interface ClusterLaunchPlan {
  /** Job name (scheduler-visible). */
  jobName: string;
  /** Config path as the nodes see it (relative to the working directory). */
  configPath: string;
  nodes: number;
  gpusPerNode: number;
  /** Coordinator port on the head node. */
  port: number;
  maxRestarts: number;
  /** Shell words that run this program, e.g. `deno run -A mod.ts`. */
  programCommand: string;
  /** SkyPilot accelerator spec (e.g. "H100:8"); default `H100:<gpusPerNode>`. */
  accelerators?: string;
  /** Slurm partition. */
  partition?: string;
  /** Slurm/PBS account or project. */
  account?: string;
  /** PBS queue. */
  queue?: string;
  /** Wall time, HH:MM:SS. */
  walltime?: string;
  /** PBS filesystems (Polaris: "home:eagle"). */
  filesystems?: string;
}

/** Quotes one word for POSIX sh. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`;
}

/**
 * The node-agent command line; `nodeRankExpr`, `headExpr`, `selfExpr` and `jobIdExpr` are shell expressions
 * evaluated on each node (e.g. `"$SLURM_PROCID"`).
 */
export function agentCommand(
  plan: ClusterLaunchPlan,
  exprs: { nodeRank: string; head: string; self: string; jobId: string },
): string {
  return [
    plan.programCommand,
    "launch",
    shellQuote(plan.configPath),
    "--backend local",
    `--nodes ${plan.nodes}`,
    `--gpus-per-node ${plan.gpusPerNode}`,
    `--node-rank ${exprs.nodeRank}`,
    `--coordinator-host ${exprs.head}`,
    `--port ${plan.port}`,
    `--host ${exprs.self}`,
    `--job-id ${exprs.jobId}`,
    `--max-restarts ${plan.maxRestarts}`,
  ].join(" ");
}

/** Checks the numeric fields of a plan. */
export function checkPlan(plan: ClusterLaunchPlan): ClusterLaunchPlan {
  for (const [field, value] of [["nodes", plan.nodes], ["gpusPerNode", plan.gpusPerNode]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(
        `Cannot write the launch artifact as ${field} is invalid: current value is ${value}; use ≥ 1`,
      );
    }
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(plan.jobName)) {
    throw new Error(
      `Cannot write the launch artifact as the job name has unsafe characters: current value is "${plan.jobName}"; ` +
        `use letters, digits, "-", "_" and "."`,
    );
  }
  return plan;
}
