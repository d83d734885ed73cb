/**
 * `orion launch <config>` and `orion worker --coordinator <url>`: every rank runs {@linkcode runTraining}
 * with its distributed context (gradients averaged over WebSockets, loader sharded by rank, checkpoints
 * written by rank 0 and committed when every rank reported; a restart resumes from the last committed one).
 *
 * @module
 */
import { join, resolve } from "node:path";
import { registerCommand } from "../cli/command_registry.ts";
import { loadConfigModule } from "../cli/load_config_module.ts";
import { launchCommand, workerCommand } from "../distributed/launch_cli.ts";
import type { DistributedHooks } from "../distributed/launch_cli.ts";
import type { DistributedContext } from "../distributed/context.ts";
import { checkpointDirName } from "../checkpoint/checkpoint_layout.ts";
import { listCheckpointDirs } from "../checkpoint/checkpoint_reader.ts";
import { configHash, parseSerializedRunConfig, serializeConfig } from "../config/serialize_config.ts";
import { parseRunConfig } from "../config/run_config.ts";
import { runTraining } from "./train_run.ts";

/** What each rank runs: the run of the distributed config, resumed from the last committed checkpoint. */
export async function trainRank(ctx: DistributedContext): Promise<void> {
  const serializedConfig = typeof ctx.config === "string" ? ctx.config : JSON.stringify(ctx.config);
  const config = parseSerializedRunConfig(serializedConfig);
  const runDir = resolve(config.runsDir, config.name);
  const resumeFrom = ctx.resumeStep !== null && ctx.resumeStep > 0
    ? join(runDir, checkpointDirName(ctx.resumeStep))
    : undefined;
  const tag = `[rank ${ctx.rank}/${ctx.worldSize}]`;
  if (ctx.rank === 0) {
    // Checkpoints newer than the last committed one belong to a failed generation: some rank never
    // confirmed them. Remove them so the restarted generation writes them afresh.
    const committed = ctx.resumeStep ?? 0;
    for (const entry of await listCheckpointDirs(runDir).catch(() => [])) {
      if (entry.step > committed) {
        console.error(`${tag} removing uncommitted checkpoint ${entry.name} of the failed generation`);
        await Deno.remove(join(runDir, entry.name), { recursive: true });
      }
    }
  }
  await runTraining({
    config,
    serializedConfig,
    configHash: configHash(config),
    runDir,
    resumeFrom,
    dist: ctx,
    io: { out: (l) => console.log(`${tag} ${l}`), err: (l) => console.error(`${tag} ${l}`) },
  });
}

/** The hooks that plug training into the distributed launcher. */
export const distributedTrainHooks: DistributedHooks = {
  rankMain: trainRank,
  // On the software adapter a rank compiles shaders on the CPU for seconds at a time, unannounced when
  // validation or a benchmark first needs new pipelines: 2 ranks of configs/run.ts on a 2-core machine were
  // declared hung (and took the live coordinator for lost) at 4–5 s.
  softwareAdapterHeartbeatTimeoutMs: 60_000,
  async loadConfig(path: string) {
    const loaded = await loadConfigModule(path, Deno.cwd());
    const config = parseRunConfig(loaded.value);
    return {
      config: JSON.parse(serializeConfig(config)),
      nodes: config.infra.nodes,
      gpusPerNode: config.infra.gpusPerNode,
      jobName: config.name,
    };
  },
};

registerCommand({
  name: "launch",
  summary: "start a data-parallel job: coordinator + one rank per GPU (local, SkyPilot, Slurm or PBS)",
  usage: "orion launch <config.ts> [--backend local|skypilot|slurm|pbs] [--dry-run] (orion launch --help)",
  run: (args) => launchCommand(args, distributedTrainHooks),
});

registerCommand({
  name: "worker",
  summary: "join a data-parallel job as rank(s) of this host (started by `orion launch` or a cluster script)",
  usage: "orion worker --coordinator <url> ... (orion worker --help)",
  run: (args) => workerCommand(args, distributedTrainHooks),
});
