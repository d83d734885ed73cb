/**
 * PBS Pro backend (ALCF Polaris runs PBS, not Slurm): a job script that starts one node agent per node
 * with `mpiexec -n <nodes> --ppn 1`; each agent takes `PMI_RANK` as node rank, the first host of
 * `$PBS_NODEFILE` as head and its own line of the node file as address. Submit with
 * `qsub -v ORION_JOIN_SECRET` so the secret comes from the submitting environment.
 *
 * @module
 */
import { agentCommand, checkPlan, type ClusterLaunchPlan, shellQuote } from "./cluster_plan.ts";

/** The job script text. */
export function pbsJobScript(plan: ClusterLaunchPlan): string {
  checkPlan(plan);
  const directives = [
    `#PBS -N ${plan.jobName}`,
    `#PBS -l select=${plan.nodes}:ngpus=${plan.gpusPerNode}`,
    "#PBS -l place=scatter",
    "#PBS -j oe",
    "#PBS -r y",
  ];
  if (plan.walltime) directives.push(`#PBS -l walltime=${plan.walltime}`);
  if (plan.filesystems) directives.push(`#PBS -l filesystems=${plan.filesystems}`);
  if (plan.queue) directives.push(`#PBS -q ${plan.queue}`);
  if (plan.account) directives.push(`#PBS -A ${plan.account}`);
  const agent = agentCommand(plan, {
    nodeRank: '"$PMI_RANK"',
    head: '"$HEAD_NODE"',
    self: '"${NODES[$PMI_RANK]}"',
    jobId: '"orion-${PBS_JOBID%%.*}"',
  });
  return [
    "#!/bin/bash",
    `# Orion distributed job "${plan.jobName}": ${plan.nodes} node(s) x ${plan.gpusPerNode} GPU(s), one node agent per node.`,
    "# Submit: ORION_JOIN_SECRET=$(openssl rand -hex 32) qsub -v ORION_JOIN_SECRET <this file>",
    ...directives,
    "set -euo pipefail",
    'cd "${PBS_O_WORKDIR:-.}"',
    ': "${ORION_JOIN_SECRET:?pass ORION_JOIN_SECRET with qsub -v ORION_JOIN_SECRET}"',
    "# Unique hosts in node-file order; exported because sister nodes may not see $PBS_NODEFILE.",
    'ORION_NODES=$(awk \'!seen[$0]++\' "$PBS_NODEFILE" | tr "\\n" " ")',
    "NNODES=$(echo $ORION_NODES | wc -w)",
    `if [ "$NNODES" -ne ${plan.nodes} ]; then echo "PBS gave $NNODES nodes; the config asks for ${plan.nodes}" >&2; exit 1; fi`,
    "HEAD_NODE=${ORION_NODES%% *}",
    "export HEAD_NODE ORION_NODES ORION_JOIN_SECRET",
    `mpiexec -n ${plan.nodes} --ppn 1 --envall bash -c ${
      shellQuote(`read -r -a NODES <<< "$ORION_NODES"; exec ${agent}`)
    }`,
    "",
  ].join("\n");
}

/** Command that submits the script. */
export function pbsSubmitCommand(scriptPath: string): string[] {
  return ["qsub", "-v", "ORION_JOIN_SECRET", scriptPath];
}
