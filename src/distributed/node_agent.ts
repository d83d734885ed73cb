/**
 * The per-host agent (torchrun's role): spawns one rank process per GPU, pins each to its GPU, prefixes
 * their output, and restarts them after a failed generation.
 *
 * Restart rules (exit codes from context.ts): 0 = rank finished; 75 (`EXIT_RESTART`) or a crash/signal =
 * respawn while the slot has restarts left; 76 (`EXIT_JOB_FAILED`) = the job is over, stop. The agent also
 * holds an "agent" connection to the coordinator: when a generation fails, it SIGKILLs local processes of
 * that generation still alive after `stopGraceMs` (a hung rank cannot exit by itself).
 *
 * A rank exits 76 when it concluded the coordinator was lost, which can be wrong: a coordinator starved of
 * CPU, or a rank too busy to read its socket, makes 5 s of silence (seen on a 2-core machine running two
 * software-adapter ranks), and the live coordinator then restarts the generation that rank left. So while the
 * agent's own connection is open, a 76 exit waits for the coordinator's verdict (`orphanGraceMs`): a
 * `generation_failed` with a restart planned respawns the rank like a crash (also a 76 exit shortly after
 * one), anything else ends it.
 *
 * @module
 */
import { decodeToRank, encodeControl } from "./control_messages.ts";
import { EXIT_JOB_FAILED, EXIT_RESTART } from "./context.ts";
import type { GpuPin } from "./gpu_pinning.ts";
import { mintJoinToken } from "./join_token.ts";

/** Options of {@link runNodeAgent}. */
export interface NodeAgentOptions {
  coordinatorUrl: string;
  jobId: string;
  secret: string;
  /** One entry per local rank (from `planGpuPins`). */
  pins: GpuPin[];
  /** Restarts allowed per local rank. */
  maxRestarts: number;
  /** Full argv (program first) of local rank `localRank`'s worker process. */
  workerArgv(localRank: number): string[];
  /** Extra environment for every worker (the join secret is added). */
  env?: Record<string, string>;
  /** Time a stopped generation's processes get to exit before SIGKILL; default 3000 ms. */
  stopGraceMs?: number;
  /**
   * How long a rank that exited 76 while the coordinator still answers this agent waits for the
   * coordinator to restart its generation before it counts as over; default 15000 ms.
   */
  orphanGraceMs?: number;
  /** Host name for the agent's hello. */
  host?: string;
  log?: (line: string) => void;
}

/** How the agent's ranks ended. */
export interface NodeAgentResult {
  /** 0 when every local rank finished, else the first terminal non-zero code. */
  exitCode: number;
  /** Process starts per local rank (1 = never restarted). */
  starts: number[];
}

interface Slot {
  localRank: number;
  child: Deno.ChildProcess | null;
  pid: number | null;
  starts: number;
  /** `orphaned`: exited 76 (coordinator lost, it thought) while the coordinator still answers this agent. */
  state: "running" | "done" | "failed" | "waiting" | "orphaned";
  exitCode: number | null;
}

async function pipeLines(stream: ReadableStream<Uint8Array>, prefix: string, sink: (line: string) => void) {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      sink(`${prefix}${pending.slice(0, newline)}`);
      pending = pending.slice(newline + 1);
    }
  }
  if (pending) sink(`${prefix}${pending}`);
}

/**
 * Runs the local ranks of one host until they all finish or the job is over.
 *
 * @example
 * ```ts
 * const { exitCode } = await runNodeAgent({ coordinatorUrl, jobId, secret, pins, maxRestarts: 3,
 *   workerArgv: (i) => [Deno.execPath(), "run", "-A", "main.ts", "worker", "--local-rank", String(i)] });
 * ```
 */
export async function runNodeAgent(options: NodeAgentOptions): Promise<NodeAgentResult> {
  const log = options.log ?? ((line: string) => console.error(`[orion agent] ${line}`));
  const stopGraceMs = options.stopGraceMs ?? 3000;
  const orphanGraceMs = options.orphanGraceMs ?? 15_000;
  /** A 76 exit before this time left a generation the coordinator is restarting: respawn it. */
  let restartingUntil = 0;
  /** The coordinator said the job is over (a generation failed with no restart, or it shut down). */
  let jobOver = false;
  const slots: Slot[] = options.pins.map((pin) => ({
    localRank: pin.localRank,
    child: null,
    pid: null,
    starts: 0,
    state: "waiting",
    exitCode: null,
  }));
  const allSettled = Promise.withResolvers<void>();
  let shuttingDown = false;

  const spawn = (slot: Slot) => {
    const pin = options.pins[slot.localRank];
    const argv = options.workerArgv(slot.localRank);
    const env: Record<string, string> = { ...options.env, ORION_JOIN_SECRET: options.secret };
    if (pin.driPrime) env.DRI_PRIME = pin.driPrime;
    const child = new Deno.Command(argv[0], { args: argv.slice(1), env, stdout: "piped", stderr: "piped" })
      .spawn();
    slot.child = child;
    slot.pid = child.pid;
    slot.starts++;
    slot.state = "running";
    const prefix = `[local ${slot.localRank}] `;
    const out = (line: string) => console.log(line);
    const err = (line: string) => console.error(line);
    const pumps = Promise.all([pipeLines(child.stdout, prefix, out), pipeLines(child.stderr, prefix, err)]);
    child.status.then(async (status) => {
      await pumps.catch(() => {});
      onExit(slot, child, status);
    });
  };

  const settleIfDone = () => {
    if (slots.every((s) => s.state === "done" || s.state === "failed")) allSettled.resolve();
  };

  const onExit = (slot: Slot, child: Deno.ChildProcess, status: Deno.CommandStatus) => {
    if (slot.child !== child) return;
    slot.child = null;
    const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
    // A 76 exit claims the job is over. It is, unless the coordinator still answers this agent and has not
    // said so: then it may restart the generation that rank left (respawned at once when it already did).
    const coordinatorAnswers = agentSocket?.readyState === WebSocket.OPEN && !jobOver;
    const claimsJobOver = status.code === EXIT_JOB_FAILED &&
      !(coordinatorAnswers && Date.now() < restartingUntil);
    if (status.success) {
      slot.state = "done";
      log(`local rank ${slot.localRank} (pid ${slot.pid}) finished`);
    } else if (claimsJobOver && coordinatorAnswers && !shuttingDown) {
      slot.state = "orphaned";
      log(
        `local rank ${slot.localRank} (pid ${slot.pid}) exited with ${how} (it saw no coordinator) while the ` +
          `coordinator answers this agent: waiting up to ${orphanGraceMs} ms for it to restart the generation`,
      );
      setTimeout(() => {
        if (slot.state !== "orphaned") return;
        slot.state = "failed";
        slot.exitCode = EXIT_JOB_FAILED;
        log(`local rank ${slot.localRank}: no restart came: job over`);
        settleIfDone();
      }, orphanGraceMs);
    } else if (claimsJobOver || shuttingDown) {
      slot.state = "failed";
      slot.exitCode = status.code || 1;
      log(`local rank ${slot.localRank} (pid ${slot.pid}) exited with ${how}: job over`);
    } else {
      const planned = status.code === EXIT_RESTART
        ? "stopped for a restart"
        : status.code === EXIT_JOB_FAILED
        ? "left a generation the coordinator restarts"
        : `crashed (${how})`;
      respawn(slot, planned, status.code || 1);
    }
    settleIfDone();
  };

  /** Ends the orphaned slots: the coordinator is gone or said the job is over. */
  const endOrphans = () => {
    for (const slot of slots) {
      if (slot.state !== "orphaned") continue;
      slot.state = "failed";
      slot.exitCode = EXIT_JOB_FAILED;
      log(`local rank ${slot.localRank}: job over`);
    }
    settleIfDone();
  };

  /** Restarts `slot` while it has restarts left (after `why`), else marks it failed with `code`. */
  const respawn = (slot: Slot, why: string, code: number) => {
    if (slot.starts > options.maxRestarts) {
      slot.state = "failed";
      slot.exitCode = code;
      log(`local rank ${slot.localRank} (pid ${slot.pid}) ${why}; no restarts left`);
      return;
    }
    log(
      `local rank ${slot.localRank} (pid ${slot.pid}) ${why}; restart ${slot.starts}/${options.maxRestarts}`,
    );
    slot.state = "waiting";
    setTimeout(() => {
      if (!shuttingDown && slot.state === "waiting") spawn(slot);
      else if (slot.state === "waiting") {
        slot.state = "failed";
        slot.exitCode = EXIT_JOB_FAILED;
        settleIfDone();
      }
    }, 100);
  };

  const reap = (pids: Set<number>) => {
    setTimeout(() => {
      for (const slot of slots) {
        if (slot.child && slot.pid !== null && pids.has(slot.pid)) {
          log(
            `local rank ${slot.localRank} (pid ${slot.pid}) did not exit ${stopGraceMs} ms after the stop: SIGKILL`,
          );
          try {
            slot.child.kill("SIGKILL");
          } catch { /* exited meanwhile */ }
        }
      }
    }, stopGraceMs);
  };

  // The agent connection: best effort (the head node's coordinator may start later than this agent).
  let agentSocket: WebSocket | null = null;
  const connectAgent = async (attempt: number): Promise<void> => {
    if (shuttingDown) return;
    const token = await mintJoinToken(options.secret, { job: options.jobId, role: "agent" });
    const socket = new WebSocket(options.coordinatorUrl, { headers: { authorization: `Bearer ${token}` } });
    socket.binaryType = "arraybuffer";
    agentSocket = socket;
    socket.onopen = () => {
      socket.send(encodeControl({
        t: "hello",
        role: "agent",
        host: options.host ?? Deno.hostname(),
        advertiseHost: null,
        nodeRank: null,
        localRank: null,
        dataPort: null,
        pid: Deno.pid,
      }));
    };
    socket.onmessage = (event) => {
      try {
        const message = decodeToRank(event.data);
        if (message.t === "generation_failed") {
          reap(new Set(message.members.map((m) => m.pid)));
          if (message.restartPlanned) {
            restartingUntil = Date.now() + orphanGraceMs;
            for (const slot of slots) {
              if (slot.state === "orphaned") {
                respawn(slot, "left the generation the coordinator restarts", EXIT_JOB_FAILED);
              }
            }
          } else {
            jobOver = true;
            endOrphans();
          }
        } else if (message.t === "shutdown") {
          jobOver = true;
          endOrphans();
        }
      } catch (error) {
        log(`ignoring a bad message from the coordinator: ${(error as Error).message}`);
      }
    };
    socket.onerror = () => {};
    socket.onclose = () => {
      if (agentSocket === socket) agentSocket = null;
      endOrphans(); // no coordinator to restart them
      if (!shuttingDown && attempt < 120) setTimeout(() => connectAgent(attempt + 1), 1000);
    };
  };
  const agentTimer = setInterval(() => {
    if (agentSocket?.readyState === WebSocket.OPEN) agentSocket.send(encodeControl({ t: "heartbeat" }));
  }, 1000);
  void connectAgent(0);

  const onSignal = () => {
    log("signal received: stopping local ranks");
    shuttingDown = true;
    for (const slot of slots) {
      try {
        slot.child?.kill("SIGTERM");
      } catch { /* gone */ }
    }
    reap(new Set(slots.map((s) => s.pid ?? -1)));
  };
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);

  for (const slot of slots) spawn(slot);
  await allSettled.promise;
  shuttingDown = true;
  for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  clearInterval(agentTimer);
  (agentSocket as WebSocket | null)?.close();
  const failed = slots.find((s) => s.state === "failed");
  return { exitCode: failed ? failed.exitCode ?? 1 : 0, starts: slots.map((s) => s.starts) };
}
