/**
 * `orion launch` and `orion worker` as reusable CLI handlers. The program that owns the CLI passes
 * {@link DistributedHooks}: what each rank runs (`rankMain`), how to read a config, and how to start this
 * program again as a worker.
 *
 * ```
 * orion launch <config> [--backend local|skypilot|slurm|pbs] [--nodes N] [--gpus-per-node G] [--dry-run] ...
 * orion worker --coordinator ws://HOST:PORT/join [--local-rank I] [--node-rank R] ...
 * ```
 *
 * @module
 */
import { isAbsolute, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type ClusterLaunchPlan, shellQuote } from "./cluster_plan.ts";
import {
  type DistributedContext,
  DistributedStopError,
  EXIT_JOB_FAILED,
  exitCodeForStop,
} from "./context.ts";
import { generateJoinSecret, JOIN_SECRET_ENV, joinSecretFromEnv } from "./join_token.ts";
import { detectGpuBusIds, planGpuPins } from "./gpu_pinning.ts";
import { launchLocal } from "./launch_local.ts";
import { pbsJobScript, pbsSubmitCommand } from "./launch_pbs.ts";
import { skypilotSubmitCommand, skypilotTaskYaml } from "./launch_skypilot.ts";
import { slurmBatchScript, slurmSubmitCommand } from "./launch_slurm.ts";
import { JoinError, joinJob } from "./rank_client.ts";
import type { ReductionKernelName } from "./simd_add.ts";

/** A config as the launcher needs it. */
export interface LaunchConfig {
  /** Resolved config handed to every rank (JSON). */
  config: unknown;
  /** `InfraConfig.nodes`. */
  nodes: number;
  /** `InfraConfig.gpusPerNode`. */
  gpusPerNode: number;
  /** Job name; default: the config file's base name. */
  jobName?: string;
}

/** What the owning program plugs in. */
export interface DistributedHooks {
  /** What every rank runs; `ctx.config` is the resolved config. Return normally when training is done. */
  rankMain(ctx: DistributedContext): Promise<void>;
  /** Reads and resolves a config file; default: JSON with optional `infra.nodes` / `infra.gpusPerNode`. */
  loadConfig?(path: string): Promise<LaunchConfig>;
  /** argv (program first) that runs this program's `worker` subcommand followed by `workerArgs`. */
  workerArgv?(workerArgs: string[]): string[];
  /** Shell words that run this program on cluster nodes (artifacts); default `deno run <flags> <main module>`. */
  programCommand?: string;
  /**
   * The default hung-rank timeout (ms) of a local launch whose ranks all run on the software adapter (no GPU
   * found), for programs whose ranks block their threads for seconds there (compiling shaders on the CPU);
   * default: the coordinator's (4000). `--heartbeat-timeout-ms` overrides it.
   */
  softwareAdapterHeartbeatTimeoutMs?: number;
}

/** Permission flags the default worker / artifact command passes to Deno. */
export const DEFAULT_DENO_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run",
  "--allow-net",
];

function mainModulePath(): string {
  return Deno.mainModule.startsWith("file:") ? fileURLToPath(Deno.mainModule) : Deno.mainModule;
}

// A `deno compile` binary is the program itself (`orion worker ...`); otherwise the main module — the
// checkout's mod.ts or the single-file bundle dist/orion.js — runs again under the same (pinned) Deno.
function defaultWorkerArgv(workerArgs: string[]): string[] {
  if (Deno.build.standalone) return [Deno.execPath(), "worker", ...workerArgs];
  return [Deno.execPath(), "run", ...DEFAULT_DENO_FLAGS, mainModulePath(), "worker", ...workerArgs];
}

function defaultProgramCommand(): string {
  if (Deno.build.standalone) {
    const binary = Deno.execPath();
    const rel = relative(Deno.cwd(), binary);
    return shellQuote(rel.startsWith("..") || isAbsolute(rel) ? binary : `./${rel}`);
  }
  const main = mainModulePath();
  const path = main.startsWith("/") ? relative(Deno.cwd(), main) : main;
  return ["deno", "run", ...DEFAULT_DENO_FLAGS, shellQuote(path)].join(" ");
}

async function defaultLoadConfig(path: string): Promise<LaunchConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(
      `Cannot read the config as the file is unreadable: current value is "${path}" (${
        (error as Error).message
      })`,
    );
  }
  const config = JSON.parse(text);
  const infra = (config?.infra ?? {}) as { nodes?: number; gpusPerNode?: number };
  const name = path.split("/").pop()!.replace(/\.[^.]+$/, "");
  return { config, nodes: infra.nodes ?? 1, gpusPerNode: infra.gpusPerNode ?? 1, jobName: name };
}

function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`Cannot parse ${flag} as a non-negative integer: current value is "${value}"`);
  }
  return n;
}

const LAUNCH_HELP = `orion launch <config> [options]

Runs a distributed job: world size = nodes x gpusPerNode; effective batch = batchSize x world size.

  --backend local|skypilot|slurm|pbs   where to run (default local: this host)
  --nodes N, --gpus-per-node G         override InfraConfig.nodes / gpusPerNode
  --dry-run                            print the cluster artifact instead of writing/submitting it (local:
                                       print the ranks and GPUs this host would run, start nothing)
  --out PATH                           where to write the cluster artifact (default runs/<job>/launch.*)
  --max-restarts N                     elastic restarts after a failure (default 3)
  --job-id ID                          job id (default: env ORION_JOB_ID or a fresh one)
  --run-dir DIR                        records (default runs/<job id>)
  local backend, multi-node:
  --node-rank R --coordinator-host H --port P --host ADDR
  cluster backends: --accelerators H100:8 --partition P --account A --queue Q --walltime HH:MM:SS --filesystems F
  --kernel wasm-simd|js                reduction arithmetic (default wasm-simd)
  --transport tcp-websocket|deno-websocket   ring links (default tcp-websocket)
  --stripes N                          all-reduce ring stripes (Worker threads) per rank; 0 = one ring on the
                                       rank's thread (default env ORION_RING_STRIPES, else cores/4, 1..4,
                                       at most cores / ranks on the host)
  --stripe-min-bytes N                 smaller buckets run on the rank's own-thread ring, same bits (default
                                       env ORION_STRIPE_MIN_BYTES, else ranks x stripes x max(128 KiB,
                                       ranks x 32 KiB); 0 = all on the stripes)
  --heartbeat-timeout-ms MS            hung-rank detection (default 4000; training on the software adapter:
                                       60000)
Secret: env ${JOIN_SECRET_ENV} (generated for single-node local runs when unset).
`;

/**
 * `orion launch`: returns the process exit code.
 *
 * @example
 * ```ts
 * Deno.exit(await launchCommand(["cfg.json", "--backend", "slurm", "--dry-run"], { rankMain }));
 * ```
 */
export async function launchCommand(args: string[], hooks: DistributedHooks): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      backend: { type: "string", default: "local" },
      nodes: { type: "string" },
      "gpus-per-node": { type: "string" },
      "node-rank": { type: "string" },
      "coordinator-host": { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "job-id": { type: "string" },
      "max-restarts": { type: "string" },
      "heartbeat-timeout-ms": { type: "string" },
      "run-dir": { type: "string" },
      kernel: { type: "string" },
      transport: { type: "string" },
      stripes: { type: "string" },
      "stripe-min-bytes": { type: "string" },
      "dry-run": { type: "boolean", default: false },
      out: { type: "string" },
      accelerators: { type: "string" },
      partition: { type: "string" },
      account: { type: "string" },
      queue: { type: "string" },
      walltime: { type: "string" },
      filesystems: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(LAUNCH_HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(
      `Cannot launch as the config path is missing: current arguments are ${
        JSON.stringify(positionals)
      }\n\n${LAUNCH_HELP}`,
    );
    return 2;
  }
  const configPath = positionals[0];
  const loaded = await (hooks.loadConfig ?? defaultLoadConfig)(configPath);
  const nodes = positiveInt(values.nodes, "--nodes", loaded.nodes);
  const gpusPerNode = positiveInt(values["gpus-per-node"], "--gpus-per-node", loaded.gpusPerNode);
  const maxRestarts = positiveInt(values["max-restarts"], "--max-restarts", 3);
  const jobName = (loaded.jobName ?? "orion").replace(/[^A-Za-z0-9_.-]/g, "-");
  const backend = values.backend;

  if (backend === "local") {
    const nodeRank = positiveInt(values["node-rank"], "--node-rank", 0);
    if (nodes > 1 && !values["coordinator-host"]) {
      console.error(
        `Cannot launch node ${nodeRank} of ${nodes} as --coordinator-host is unset: pass the head node's address`,
      );
      return 2;
    }
    if (values["dry-run"]) {
      // Nothing to write or submit here: say what this host would run, and start nothing.
      const pins = planGpuPins(gpusPerNode, await detectGpuBusIds());
      console.log(
        `orion launch (local, dry run): job ${jobName}, node ${nodeRank} of ${nodes}, ${gpusPerNode} rank(s) here, ` +
          `world size ${nodes * gpusPerNode}, max restarts ${maxRestarts}; coordinator ` +
          (nodeRank === 0 ? "started here" : `at ${values["coordinator-host"]}`),
      );
      for (const pin of pins) {
        console.log(
          `  local rank ${pin.localRank}: ${
            pin.driPrime ? `GPU ${pin.pciBusId} (DRI_PRIME=${pin.driPrime})` : "the software adapter"
          }`,
        );
      }
      return 0;
    }
    let secret = Deno.env.get(JOIN_SECRET_ENV);
    if (!secret) {
      if (nodes > 1) {
        console.error(
          `Cannot launch a ${nodes}-node job as ${JOIN_SECRET_ENV} is unset: export the same secret on every node`,
        );
        return 2;
      }
      secret = generateJoinSecret();
    }
    const jobId = values["job-id"] ?? Deno.env.get("ORION_JOB_ID") ??
      `${jobName}-${new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14)}-${
        crypto.randomUUID().slice(0, 8)
      }`;
    const kernel = values.kernel as ReductionKernelName | undefined;
    const gpuBusIds = await detectGpuBusIds();
    let heartbeatTimeoutMs = values["heartbeat-timeout-ms"]
      ? Number(values["heartbeat-timeout-ms"])
      : undefined;
    if (
      heartbeatTimeoutMs === undefined && gpuBusIds.length === 0 && hooks.softwareAdapterHeartbeatTimeoutMs
    ) {
      heartbeatTimeoutMs = hooks.softwareAdapterHeartbeatTimeoutMs;
      console.error(
        `[orion launch] no GPU here: the ranks share the software adapter, whose shader compiles block them ` +
          `for seconds; hung ranks and a silent coordinator are declared after ${heartbeatTimeoutMs} ms ` +
          `(--heartbeat-timeout-ms to change)`,
      );
    }
    const { exitCode, result } = await launchLocal({
      gpuBusIds,
      jobId,
      secret,
      config: loaded.config,
      nodes,
      gpusPerNode,
      nodeRank,
      coordinatorHost: values["coordinator-host"] ?? "127.0.0.1",
      port: positiveInt(values.port, "--port", nodes > 1 ? 29400 : 0),
      host: values.host,
      advertiseHost: values.host ?? null,
      maxRestarts,
      heartbeatTimeoutMs,
      runDir: values["run-dir"],
      workerArgv: hooks.workerArgv ?? defaultWorkerArgv,
      extraWorkerArgs: [
        ...(kernel ? ["--kernel", kernel] : []),
        ...(values.transport ? ["--transport", values.transport] : []),
        ...(values.stripes !== undefined
          ? ["--stripes", String(positiveInt(values.stripes, "--stripes", 0))]
          : []),
        ...(values["stripe-min-bytes"] !== undefined
          ? [
            "--stripe-min-bytes",
            String(positiveInt(values["stripe-min-bytes"], "--stripe-min-bytes", 0)),
          ]
          : []),
        ...(heartbeatTimeoutMs
          ? ["--coordinator-timeout-ms", String(Math.max(5000, heartbeatTimeoutMs))]
          : []),
      ],
    });
    if (result) console.error(`[orion launch] job ${jobId} ${result.status}: ${result.reason}`);
    return exitCode;
  }

  // Nodes run from the working directory (SkyPilot workdir, the submit directory): prefer a relative path.
  const artifactConfigPath = isAbsolute(configPath) && !relative(Deno.cwd(), configPath).startsWith("..")
    ? relative(Deno.cwd(), configPath)
    : configPath;
  if (isAbsolute(artifactConfigPath)) {
    console.error(
      `[orion launch] note: config path ${artifactConfigPath} is absolute; it must exist on every node`,
    );
  }
  const plan: ClusterLaunchPlan = {
    jobName,
    configPath: artifactConfigPath,
    nodes,
    gpusPerNode,
    port: positiveInt(values.port, "--port", 29400),
    maxRestarts,
    programCommand: hooks.programCommand ?? defaultProgramCommand(),
    accelerators: values.accelerators,
    partition: values.partition,
    account: values.account,
    queue: values.queue,
    walltime: values.walltime,
    filesystems: values.filesystems,
  };
  let artifact: string, extension: string, submit: (path: string) => string[];
  if (backend === "skypilot") {
    [artifact, extension, submit] = [
      skypilotTaskYaml(plan),
      "yaml",
      (p) => skypilotSubmitCommand(p, jobName),
    ];
  } else if (backend === "slurm") {
    [artifact, extension, submit] = [slurmBatchScript(plan), "sbatch", slurmSubmitCommand];
  } else if (backend === "pbs") {
    [artifact, extension, submit] = [pbsJobScript(plan), "pbs", pbsSubmitCommand];
  } else {
    console.error(
      `Cannot launch with backend "${backend}" as it is unknown: use local, skypilot, slurm or pbs`,
    );
    return 2;
  }
  if (values["dry-run"]) {
    console.log(artifact);
    return 0;
  }
  const out = values.out ?? `runs/${jobName}/launch.${extension}`;
  await Deno.mkdir(out.split("/").slice(0, -1).join("/") || ".", { recursive: true });
  await Deno.writeTextFile(out, artifact, { mode: 0o755 });
  const command = submit(out);
  console.error(`[orion launch] wrote ${out}`);
  if (!(await onPath(command[0]))) {
    console.log(`${command[0]} is not on PATH here; submit with:\n  ${command.map(shellQuote).join(" ")}`);
    return 0;
  }
  if (!Deno.env.get(JOIN_SECRET_ENV)) {
    console.error(
      `Cannot submit as ${JOIN_SECRET_ENV} is unset: export ORION_JOIN_SECRET=$(openssl rand -hex 32) first`,
    );
    return 2;
  }
  const status = await new Deno.Command(command[0], {
    args: command.slice(1),
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  })
    .spawn().status;
  return status.code;
}

async function onPath(program: string): Promise<boolean> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const info = await Deno.stat(`${dir}/${program}`);
      if (info.isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

const WORKER_HELP = `orion worker --coordinator ws://HOST:PORT/join [options]

Joins a job as one rank (normally started by the node agent of \`orion launch\`).

  --job-id ID               job id (default env ORION_JOB_ID)
  --node-rank R             node index (orders ranks)
  --local-rank I            GPU index on this host (orders ranks)
  --host NAME               host name for rank ordering (default: hostname)
  --advertise-host ADDR     address peers dial for this rank's data server
  --bind ADDR               data server bind address (default 0.0.0.0)
  --kernel wasm-simd|js     reduction arithmetic (default wasm-simd)
  --transport T             ring links: tcp-websocket (default) or deno-websocket
  --chunk-bytes N           all-reduce chunk size (default 1048576, max 4 MiB - 48)
  --stripes N               all-reduce ring stripes (Worker threads) per rank, 0..64; 0 = one ring on this
                            thread (default env ORION_RING_STRIPES, else cores/4, 1..4, at most cores / ranks
                            on the host; ranks use the smallest)
  --stripe-min-bytes N      smaller buckets run on this thread's ring, same bits (default env
                            ORION_STRIPE_MIN_BYTES, else ranks x stripes x max(128 KiB, ranks x 32 KiB);
                            ranks use the largest set)
  --coordinator-timeout-ms  coordinator silence before giving up (default 5000)
  --stop-grace-ms MS        time rankMain gets to return after a stop (default 5000)
Exit codes: 0 done, 75 stopped for a restart, 76 job over (coordinator lost / failed), 1 error.
Secret: env ${JOIN_SECRET_ENV}.
`;

/**
 * `orion worker`: joins, runs `hooks.rankMain`, reports done; returns the exit code (see the help text).
 *
 * @example
 * ```ts
 * Deno.exit(await workerCommand(Deno.args.slice(1), { rankMain: async (ctx) => { await train(ctx); } }));
 * ```
 */
export async function workerCommand(args: string[], hooks: DistributedHooks): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      coordinator: { type: "string" },
      "job-id": { type: "string" },
      "node-rank": { type: "string" },
      "local-rank": { type: "string" },
      host: { type: "string" },
      "advertise-host": { type: "string" },
      bind: { type: "string" },
      kernel: { type: "string" },
      transport: { type: "string" },
      "chunk-bytes": { type: "string" },
      stripes: { type: "string" },
      "stripe-min-bytes": { type: "string" },
      "coordinator-timeout-ms": { type: "string" },
      "stop-grace-ms": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(WORKER_HELP);
    return 0;
  }
  const jobId = values["job-id"] ?? Deno.env.get("ORION_JOB_ID");
  if (!values.coordinator || !jobId) {
    console.error(`Cannot start a worker as --coordinator or --job-id is missing\n\n${WORKER_HELP}`);
    return 2;
  }
  const kernel = values.kernel ?? "wasm-simd";
  if (kernel !== "wasm-simd" && kernel !== "js") {
    console.error(
      `Cannot start a worker as --kernel is unknown: current value is "${kernel}"; use wasm-simd or js`,
    );
    return 2;
  }
  const transport = values.transport ?? "tcp-websocket";
  if (transport !== "tcp-websocket" && transport !== "deno-websocket") {
    console.error(
      `Cannot start a worker as --transport is unknown: current value is "${transport}"; use tcp-websocket or deno-websocket`,
    );
    return 2;
  }
  const tag = `[orion worker pid ${Deno.pid}]`;
  const log = (line: string) => console.error(`${tag} ${line}`);
  let ctx;
  try {
    ctx = await joinJob({
      coordinatorUrl: values.coordinator,
      jobId,
      secret: joinSecretFromEnv(),
      host: values.host,
      advertiseHost: values["advertise-host"] ?? null,
      nodeRank: values["node-rank"] === undefined ? null : positiveInt(values["node-rank"], "--node-rank", 0),
      localRank: values["local-rank"] === undefined
        ? null
        : positiveInt(values["local-rank"], "--local-rank", 0),
      dataHostname: values.bind,
      kernel,
      transport,
      chunkBytes: values["chunk-bytes"] ? positiveInt(values["chunk-bytes"], "--chunk-bytes", 0) : undefined,
      stripes: values.stripes !== undefined ? positiveInt(values.stripes, "--stripes", 0) : undefined,
      stripeMinBytes: values["stripe-min-bytes"] !== undefined
        ? positiveInt(values["stripe-min-bytes"], "--stripe-min-bytes", 0)
        : undefined,
      coordinatorTimeoutMs: values["coordinator-timeout-ms"]
        ? Number(values["coordinator-timeout-ms"])
        : undefined,
      log,
    });
  } catch (error) {
    if (error instanceof DistributedStopError) {
      log(error.message);
      return exitCodeForStop(error.event);
    }
    log((error as Error).message);
    return error instanceof JoinError ? EXIT_JOB_FAILED : 1;
  }
  log(
    `rank ${ctx.rank}/${ctx.worldSize} (local ${ctx.localRank}/${ctx.localWorldSize}) generation ${ctx.generation}, ` +
      `resume step ${ctx.resumeStep}, DRI_PRIME=${Deno.env.get("DRI_PRIME") ?? "(software adapter)"}`,
  );
  const graceMs = values["stop-grace-ms"] ? Number(values["stop-grace-ms"]) : 5000;
  ctx.onStop((event) => {
    // rankMain may be busy outside the distributed API: force the exit if it does not return in time.
    const timer = setTimeout(() => {
      log(`rankMain did not return ${graceMs} ms after the stop; exiting`);
      Deno.exit(exitCodeForStop(event));
    }, graceMs);
    Deno.unrefTimer(timer as unknown as number);
  });
  try {
    await hooks.rankMain(ctx);
    await ctx.close();
    return 0;
  } catch (error) {
    const event = ctx.stopEvent;
    if (event) {
      if (event.kind === "coordinator_lost") log(`coordinator lost, exiting: ${event.reason}`);
      return exitCodeForStop(event);
    }
    log(`rank ${ctx.rank} failed: ${(error as Error).stack ?? error}`);
    return 1;
  }
}
