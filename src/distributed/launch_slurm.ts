/**
 * Slurm backend: an sbatch script with one task per node (`srun --ntasks-per-node=1`); each task runs the
 * node agent with `SLURM_PROCID` as node rank and the first host of `SLURM_JOB_NODELIST` as head.
 * `--requeue` lets Slurm bring the job back after a node failure; the secret comes from the submitting
 * environment (sbatch exports it).
 *
 * @module
 */
import { agentCommand, checkPlan, type ClusterLaunchPlan, shellQuote } from "./cluster_plan.ts";

/** The batch script text. */
export function slurmBatchScript(plan: ClusterLaunchPlan): string {
  checkPlan(plan);
  const directives = [
    `#SBATCH --job-name=${plan.jobName}`,
    `#SBATCH --nodes=${plan.nodes}`,
    "#SBATCH --ntasks-per-node=1",
    `#SBATCH --gpus-per-node=${plan.gpusPerNode}`,
    "#SBATCH --exclusive",
    "#SBATCH --requeue",
    `#SBATCH --output=${plan.jobName}-%j.out`,
  ];
  if (plan.partition) directives.push(`#SBATCH --partition=${plan.partition}`);
  if (plan.account) directives.push(`#SBATCH --account=${plan.account}`);
  if (plan.walltime) directives.push(`#SBATCH --time=${plan.walltime}`);
  const agent = agentCommand(plan, {
    nodeRank: '"$SLURM_PROCID"',
    head: '"$HEAD_NODE"',
    self: '"$(hostname)"',
    jobId: '"orion-$SLURM_JOB_ID"',
  });
  return [
    "#!/bin/bash",
    `# Orion distributed job "${plan.jobName}": ${plan.nodes} node(s) x ${plan.gpusPerNode} GPU(s), one node agent per node.`,
    "# Submit: ORION_JOIN_SECRET=$(openssl rand -hex 32) sbatch <this file>",
    ...directives,
    "set -euo pipefail",
    ': "${ORION_JOIN_SECRET:?export ORION_JOIN_SECRET (same value on every node) before sbatch}"',
    'HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)',
    "export HEAD_NODE ORION_JOIN_SECRET",
    `srun --nodes=${plan.nodes} --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c ${
      shellQuote(`exec ${agent}`)
    }`,
    "",
  ].join("\n");
}

/** Command that submits the script. */
export function slurmSubmitCommand(scriptPath: string): string[] {
  return ["sbatch", scriptPath];
}
