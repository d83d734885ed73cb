/**
 * Local backend: this host's node agent, plus the coordinator when this is node 0. On one machine it is the
 * whole job; on a cluster every node runs it (the SkyPilot/Slurm/PBS artifacts call it with `--node-rank`).
 * Writes the local-rank → GPU mapping to `<runDir>/distributed/node<R>_gpus.json`.
 *
 * @module
 */
import { Coordinator, type CoordinatorEvents, type JobResult } from "./coordinator.ts";
import { detectGpuBusIds, type GpuPin, planGpuPins } from "./gpu_pinning.ts";
import { runNodeAgent } from "./node_agent.ts";

/** Options of {@link launchLocal}. */
export interface LocalLaunchOptions {
  jobId: string;
  secret: string;
  /** Resolved config handed to every rank (node 0 only). */
  config: unknown;
  nodes: number;
  gpusPerNode: number;
  nodeRank: number;
  /** Address other processes dial to reach the coordinator. */
  coordinatorHost: string;
  /** Coordinator bind address (node 0); default "0.0.0.0" for several nodes, else "127.0.0.1". */
  coordinatorBind?: string;
  /** Coordinator port; 0 picks a free one (single node only). */
  port: number;
  /** Host name of this node (rank ordering); default `Deno.hostname()`. */
  host?: string;
  /** Address peers dial for this node's ranks; default: what the coordinator sees. */
  advertiseHost?: string | null;
  maxRestarts: number;
  heartbeatTimeoutMs?: number;
  /** argv (program first) that runs this program's `worker` subcommand with `workerArgs` appended. */
  workerArgv(workerArgs: string[]): string[];
  /** Extra worker arguments (e.g. `--kernel js`). */
  extraWorkerArgs?: string[];
  /** Where to record the GPU mapping; default "runs/<jobId>". */
  runDir?: string;
  /** GPUs to use instead of asking nvidia-smi (tests). */
  gpuBusIds?: string[];
  initialCommittedStep?: number | null;
  coordinatorEvents?: CoordinatorEvents;
  log?: (line: string) => void;
}

/** What {@link launchLocal} did. */
export interface LocalLaunchResult {
  exitCode: number;
  /** The job result (node 0 only). */
  result: JobResult | null;
  pins: GpuPin[];
  /** Process starts per local rank. */
  starts: number[];
  coordinatorUrl: string;
}

/**
 * Runs this node's share of a job.
 *
 * @example
 * ```ts
 * const { exitCode } = await launchLocal({ jobId, secret, config, nodes: 1, gpusPerNode: 2, nodeRank: 0,
 *   coordinatorHost: "127.0.0.1", port: 0, maxRestarts: 3,
 *   workerArgv: (args) => [Deno.execPath(), "run", "-A", "main.ts", "worker", ...args] });
 * ```
 */
export async function launchLocal(options: LocalLaunchOptions): Promise<LocalLaunchResult> {
  const log = options.log ?? ((line: string) => console.error(`[orion launch] ${line}`));
  const worldSize = options.nodes * options.gpusPerNode;
  if (options.nodeRank < 0 || options.nodeRank >= options.nodes) {
    throw new RangeError(
      `Cannot launch node ${options.nodeRank} as it is outside the job: current value of nodes is ${options.nodes}; ` +
        `use --node-rank 0..${options.nodes - 1}`,
    );
  }
  let coordinator: Coordinator | null = null;
  let port = options.port;
  if (options.nodeRank === 0) {
    coordinator = await Coordinator.start({
      jobId: options.jobId,
      secret: options.secret,
      worldSize,
      config: options.config,
      hostname: options.coordinatorBind ?? (options.nodes > 1 ? "0.0.0.0" : "127.0.0.1"),
      port: options.port,
      maxRestarts: options.maxRestarts,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      initialCommittedStep: options.initialCommittedStep,
      events: options.coordinatorEvents,
    });
    port = coordinator.port;
  } else if (port === 0) {
    throw new Error(
      `Cannot join node ${options.nodeRank} to the job as --port is 0: pass the head node's coordinator port`,
    );
  }
  const host = options.coordinatorHost;
  const coordinatorUrl = `ws://${host.includes(":") ? `[${host}]` : host}:${port}/join`;
  const pins = planGpuPins(options.gpusPerNode, options.gpuBusIds ?? await detectGpuBusIds());
  const nodeHost = options.host ?? Deno.hostname();
  const runDir = options.runDir ?? `runs/${options.jobId}`;
  await Deno.mkdir(`${runDir}/distributed`, { recursive: true });
  const mapping = {
    jobId: options.jobId,
    nodeRank: options.nodeRank,
    host: nodeHost,
    coordinatorUrl,
    ranks: pins.map((p) => ({
      localRank: p.localRank,
      adapter: p.driPrime ? "gpu" : "software",
      pciBusId: p.pciBusId,
      DRI_PRIME: p.driPrime,
    })),
  };
  await Deno.writeTextFile(
    `${runDir}/distributed/node${options.nodeRank}_gpus.json`,
    JSON.stringify(mapping, null, 2) + "\n",
  );
  log(
    `job ${options.jobId}: node ${options.nodeRank}/${options.nodes}, ${options.gpusPerNode} rank(s) ` +
      `(${pins.map((p) => p.driPrime ?? "software adapter").join(", ")}), coordinator ${coordinatorUrl}`,
  );
  const agentResult = runNodeAgent({
    coordinatorUrl,
    jobId: options.jobId,
    secret: options.secret,
    pins,
    maxRestarts: options.maxRestarts,
    host: nodeHost,
    workerArgv: (localRank) =>
      options.workerArgv([
        "--coordinator",
        coordinatorUrl,
        "--job-id",
        options.jobId,
        "--node-rank",
        String(options.nodeRank),
        "--local-rank",
        String(localRank),
        "--host",
        nodeHost,
        ...(options.advertiseHost ? ["--advertise-host", options.advertiseHost] : []),
        ...(options.extraWorkerArgs ?? []),
      ]),
    log,
  });
  if (!coordinator) {
    const { exitCode, starts } = await agentResult;
    return { exitCode, result: null, pins, starts, coordinatorUrl };
  }
  // Node 0: the job ends when the coordinator says so; if every local rank is gone first, close it as failed.
  const { exitCode, starts } = await Promise.race([
    agentResult.then(async (agent) => {
      if (agent.exitCode !== 0) await coordinator!.close(`node 0's ranks exited with code ${agent.exitCode}`);
      return agent;
    }),
    coordinator.finished.then(() => agentResult),
  ]);
  const result = await coordinator.finished;
  await coordinator.close();
  return {
    exitCode: result.status === "completed" && exitCode === 0 ? 0 : exitCode || 1,
    result,
    pins,
    starts,
    coordinatorUrl,
  };
}
