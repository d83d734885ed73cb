/**
 * SkyPilot backend: a task YAML with `num_nodes`, `resources.accelerators`, a `setup` that installs Deno
 * from npm (plus Mesa's Vulkan device-select layer for GPU pinning), and a `run` that starts one node
 * agent per node from `SKYPILOT_NODE_RANK`, `SKYPILOT_NODE_IPS` (first line = head) and
 * `SKYPILOT_NUM_GPUS_PER_NODE`. The join secret is a SkyPilot secret: `sky launch --secret ORION_JOIN_SECRET`.
 *
 * @module
 */
import { agentCommand, checkPlan, type ClusterLaunchPlan } from "./cluster_plan.ts";

/** Deno version the setup installs. */
export const DENO_VERSION = "2.9.6";

function indent(text: string, spaces: number): string {
  return text.split("\n").map((line) => (line ? " ".repeat(spaces) + line : line)).join("\n");
}

/** The task YAML text. */
export function skypilotTaskYaml(plan: ClusterLaunchPlan): string {
  checkPlan(plan);
  const accelerators = plan.accelerators ?? `H100:${plan.gpusPerNode}`;
  const setup = [
    "set -euo pipefail",
    `if ! deno --version 2>/dev/null | grep -q "^deno ${DENO_VERSION} "; then`,
    "  command -v npm >/dev/null || { sudo apt-get update -q && sudo apt-get install -y -q nodejs npm; }",
    `  sudo npm install -g --silent deno@${DENO_VERSION}`,
    "fi",
    "sudo apt-get install -y -q mesa-vulkan-drivers >/dev/null 2>&1 || true",
    "if [ -f deno.json ]; then deno install --frozen --quiet; fi # a checkout; a bundle fetches npm packages on first run",
  ].join("\n");
  const run = [
    "set -euo pipefail",
    'HEAD_IP=$(echo "$SKYPILOT_NODE_IPS" | sed -n 1p)',
    'SELF_IP=$(echo "$SKYPILOT_NODE_IPS" | sed -n "$((SKYPILOT_NODE_RANK + 1))p")',
    'if [ "$SKYPILOT_NUM_GPUS_PER_NODE" != "' + plan.gpusPerNode + '" ]; then',
    `  echo "SkyPilot gave $SKYPILOT_NUM_GPUS_PER_NODE GPUs per node; the config asks for ${plan.gpusPerNode}" >&2; exit 1`,
    "fi",
    agentCommand(
      { ...plan, gpusPerNode: plan.gpusPerNode },
      {
        nodeRank: '"$SKYPILOT_NODE_RANK"',
        head: '"$HEAD_IP"',
        self: '"$SELF_IP"',
        jobId: '"orion-${SKYPILOT_TASK_ID}"',
      },
    ),
  ].join("\n");
  return [
    `# Orion distributed job "${plan.jobName}": ${plan.nodes} node(s) x ${plan.gpusPerNode} GPU(s).`,
    `# Launch: ORION_JOIN_SECRET=$(openssl rand -hex 32) sky launch --secret ORION_JOIN_SECRET <this file>`,
    `name: ${plan.jobName}`,
    `num_nodes: ${plan.nodes}`,
    "resources:",
    `  accelerators: ${accelerators}`,
    "workdir: .",
    "secrets:",
    "  ORION_JOIN_SECRET: null",
    "setup: |",
    indent(setup, 2),
    "run: |",
    indent(run, 2),
    "",
  ].join("\n");
}

/** Command that submits the YAML. */
export function skypilotSubmitCommand(yamlPath: string, jobName: string): string[] {
  return ["sky", "launch", "--yes", "--cluster", jobName, "--secret", "ORION_JOIN_SECRET", yamlPath];
}
