/**
 * The coordinator: a WebSocket server (`Deno.serve`) that forms the ranks of a job and watches them.
 *
 * - Rendezvous: waits for `worldSize` rank processes, orders them (node rank, host, local rank, join order),
 *   assigns ranks and sends each the resolved config and every rank's data-plane address.
 * - Runs barriers, JSON broadcasts and checkpoint commits (a step commits only when every rank reported
 *   its part written).
 * - Failure handling: a closed socket is a lost rank at once; a rank silent for `heartbeatTimeoutMs` is a
 *   hung rank (unless it announced that long a silence with a `busy` message: compiling its pipelines).
 *   Either way every rank is told to stop; then, while restarts remain (`maxRestarts`), a new
 *   rendezvous generation forms from whichever processes join next (node agents restart them) and resumes
 *   from the last committed checkpoint.
 * - Joins are authenticated in the HTTP upgrade ({@link JoinTokenVerifier}) before any rank state is
 *   touched; malformed frames close only the offending connection.
 *
 * @module
 */
import {
  decodeToCoordinator,
  encodeControl,
  type PeerAddress,
  type ToCoordinator,
  type ToRank,
} from "./control_messages.ts";
import { CloseCode, closeReason, FrameError } from "./frames.ts";
import { stripeCapFor } from "./striped_all_reduce.ts";
import { bearerToken, type JoinClaims, JoinTokenVerifier } from "./join_token.ts";

/** One rank of a formed generation. */
export interface RankRecord {
  rank: number;
  host: string;
  nodeRank: number | null;
  localRank: number;
  pid: number;
  peer: PeerAddress;
}

/** How the job ended. */
export interface JobResult {
  status: "completed" | "failed";
  reason: string;
  generation: number;
  restartCount: number;
  lastCommittedStep: number | null;
}

/** Callbacks for the launcher / trainer. All are optional and must not throw. */
export interface CoordinatorEvents {
  /** Every rank connected its ring: the generation runs. */
  onGenerationStarted?(info: {
    generation: number;
    restartCount: number;
    resumeStep: number | null;
    ranks: RankRecord[];
  }): void;
  /** The generation ended early; `restartPlanned` tells whether a new rendezvous follows. */
  onGenerationFailed?(info: { generation: number; reason: string; restartPlanned: boolean }): void;
  /** Every rank reported its part of checkpoint `step`. */
  onCheckpointCommitted?(step: number): void;
  /** The job is over. */
  onJobFinished?(result: JobResult): void;
}

/** Options of {@link Coordinator.start}. */
export interface CoordinatorOptions {
  jobId: string;
  /** Shared join secret (≥ 16 characters). */
  secret: string;
  /** nodes × GPUs per node. */
  worldSize: number;
  /** Resolved config handed to every rank (opaque JSON). */
  config?: unknown;
  /** Bind address; default "0.0.0.0". */
  hostname?: string;
  /** Port; 0 (default) picks a free one. */
  port?: number;
  /** Elastic restarts allowed after the first generation fails; default 3. */
  maxRestarts?: number;
  /** Heartbeat period, both directions; default 1000 ms. */
  heartbeatIntervalMs?: number;
  /**
   * A rank silent this long is declared hung; default 4000 ms (detection ≤ timeout + 250 ms). A rank that
   * announced a longer silence (`busy`, {@linkcode DistributedContext.announceBusy}) is given until then.
   */
  heartbeatTimeoutMs?: number;
  /** Time for assigned ranks to connect their ring; default 60 s. */
  startTimeoutMs?: number;
  /** Time for a rendezvous to fill; default 15 min. */
  rendezvousTimeoutMs?: number;
  /** Last committed checkpoint found on disk before the coordinator started (resume). */
  initialCommittedStep?: number | null;
  /** Log sink; default `console.error` with an "[orion coordinator]" prefix. */
  log?: (line: string) => void;
  events?: CoordinatorEvents;
}

interface Connection {
  id: number;
  socket: WebSocket;
  remoteHost: string;
  claims: JoinClaims;
  openedAt: number;
  lastSeen: number;
  /** Until when (ms since epoch) silence is announced (`busy`); 0 = none. */
  busyUntil: number;
  hello: Extract<ToCoordinator, { t: "hello" }> | null;
  /** Set once this connection is a rank of the current generation. */
  record: RankRecord | null;
  generation: number;
  ready: boolean;
  done: boolean;
  closedByUs: boolean;
}

type Phase = "rendezvous" | "starting" | "running" | "finished";

const SWEEP_MS = 250;
const HELLO_TIMEOUT_MS = 10_000;

/**
 * A running coordinator.
 *
 * @example
 * ```ts
 * const coordinator = await Coordinator.start({ jobId, secret, worldSize: 4, config });
 * console.log(coordinator.url); // ws://0.0.0.0:PORT/join — hand to `orion worker --coordinator`
 * const result = await coordinator.finished;
 * await coordinator.close();
 * ```
 */
export class Coordinator {
  readonly jobId: string;
  readonly worldSize: number;
  readonly port: number;
  readonly hostname: string;
  /** Resolves when the job completed or failed for good. */
  readonly finished: Promise<JobResult>;
  /** Counters for tests and the health endpoint. */
  readonly stats = { refusedJoins: 0, malformedFrames: 0, acceptedConnections: 0 };

  readonly #options: Required<Omit<CoordinatorOptions, "events" | "initialCommittedStep" | "config">> & {
    config: unknown;
  };
  readonly #events: CoordinatorEvents;
  readonly #verifier: JoinTokenVerifier;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #connections = new Set<Connection>();
  #resolveFinished!: (result: JobResult) => void;
  #nextConnectionId = 1;
  #phase: Phase = "rendezvous";
  #generation = 0;
  #restartCount = 0;
  #phaseStartedAt = Date.now();
  #lastHeartbeatSent = 0;
  #waiting: Connection[] = [];
  #members: Connection[] = [];
  #barriers = new Map<number, { name: string; arrived: Set<number> }>();
  #checkpointParts = new Map<number, Set<number>>();
  #lastCommittedStep: number | null;
  #result: JobResult | null = null;
  #sweepTimer: ReturnType<typeof setInterval>;

  private constructor(options: CoordinatorOptions) {
    if (!Number.isInteger(options.worldSize) || options.worldSize < 1) {
      throw new RangeError(
        `Cannot start the coordinator as worldSize is invalid: current value is ${options.worldSize}; ` +
          `use nodes × gpusPerNode ≥ 1`,
      );
    }
    this.jobId = options.jobId;
    this.worldSize = options.worldSize;
    this.#options = {
      jobId: options.jobId,
      secret: options.secret,
      worldSize: options.worldSize,
      config: options.config ?? null,
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 0,
      maxRestarts: options.maxRestarts ?? 3,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1000,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 4000,
      startTimeoutMs: options.startTimeoutMs ?? 60_000,
      rendezvousTimeoutMs: options.rendezvousTimeoutMs ?? 15 * 60_000,
      log: options.log ?? ((line) => console.error(`[orion coordinator] ${line}`)),
    };
    this.#events = options.events ?? {};
    this.#lastCommittedStep = options.initialCommittedStep ?? null;
    this.#verifier = new JoinTokenVerifier({ secret: options.secret, jobId: options.jobId });
    this.finished = new Promise((resolve) => this.#resolveFinished = resolve);
    this.#server = Deno.serve(
      { hostname: this.#options.hostname, port: this.#options.port, onListen: () => {} },
      (request, info) => this.#handle(request, info.remoteAddr),
    );
    this.port = this.#server.addr.port;
    this.hostname = this.#server.addr.hostname;
    this.#sweepTimer = setInterval(() => this.#guard(() => this.#sweep()), SWEEP_MS);
  }

  /** Starts listening. */
  static start(options: CoordinatorOptions): Promise<Coordinator> {
    return Promise.resolve(new Coordinator(options));
  }

  /** `ws://host:port/join`, with `host` replaced by `advertiseHost` when given (bind-all addresses are not dialable). */
  url(advertiseHost?: string): string {
    const host = advertiseHost ?? (this.hostname === "0.0.0.0" ? "127.0.0.1" : this.hostname);
    return `ws://${host.includes(":") ? `[${host}]` : host}:${this.port}/join`;
  }

  /** Current generation (0 for the first rendezvous). */
  get generation(): number {
    return this.#generation;
  }

  /** Restarts so far. */
  get restartCount(): number {
    return this.#restartCount;
  }

  /** Last committed checkpoint step. */
  get lastCommittedStep(): number | null {
    return this.#lastCommittedStep;
  }

  /** "rendezvous" | "starting" | "running" | "finished". */
  get phase(): string {
    return this.#phase;
  }

  /** Ranks of the current generation (empty before it formed). */
  get ranks(): RankRecord[] {
    return this.#members.map((m) => m.record!).filter(Boolean);
  }

  /** Ends the job as failed (if still running), tells every process, and stops the server. */
  async close(reason = "coordinator closed"): Promise<void> {
    if (this.#phase !== "finished") this.#finish("failed", reason);
    clearInterval(this.#sweepTimer);
    for (const conn of this.#connections) this.#closeConnection(conn, CloseCode.jobOver, reason);
    await this.#server.shutdown();
  }

  /**
   * Simulates a coordinator crash for tests: drops every socket and the listener without telling anyone.
   */
  async abort(): Promise<void> {
    clearInterval(this.#sweepTimer);
    this.#phase = "finished";
    for (const conn of this.#connections) {
      conn.closedByUs = true;
      try {
        conn.socket.close();
      } catch { /* already closed */ }
    }
    await this.#server.shutdown();
  }

  // ---------------------------------------------------------------------------------------------------
  // HTTP + upgrade

  async #handle(request: Request, remote: Deno.NetAddr): Promise<Response> {
    try {
      const url = new URL(request.url);
      if (url.pathname === "/health") {
        return Response.json({
          jobId: this.jobId,
          phase: this.#phase,
          generation: this.#generation,
          restartCount: this.#restartCount,
          worldSize: this.worldSize,
          waiting: this.#waiting.length,
          lastCommittedStep: this.#lastCommittedStep,
          stats: this.stats,
        });
      }
      if (url.pathname !== "/join") return new Response("not found", { status: 404 });
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("expected a WebSocket upgrade", { status: 426 });
      }
      const check = await this.#verifier.verify(bearerToken(request), ["rank", "agent"]);
      if (!check.ok) {
        this.stats.refusedJoins++;
        this.#options.log(
          `refused join from ${remote.hostname}:${remote.port}: ${check.status} ${check.reason}`,
        );
        return new Response(check.reason, { status: check.status });
      }
      if (this.#phase === "finished") {
        this.stats.refusedJoins++;
        this.#options.log(`refused join from ${remote.hostname}: job is over (${this.#result?.status})`);
        return new Response(`job ${this.jobId} is over (${this.#result?.status})`, { status: 410 });
      }
      const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
      socket.binaryType = "arraybuffer";
      const now = Date.now();
      const conn: Connection = {
        id: this.#nextConnectionId++,
        socket,
        remoteHost: remote.hostname,
        claims: check.claims,
        openedAt: now,
        lastSeen: now,
        busyUntil: 0,
        hello: null,
        record: null,
        generation: -1,
        ready: false,
        done: false,
        closedByUs: false,
      };
      this.#connections.add(conn);
      this.stats.acceptedConnections++;
      socket.onmessage = (event) => this.#guard(() => this.#onMessage(conn, event.data), conn);
      socket.onclose = (event) => this.#guard(() => this.#onClose(conn, event.code, event.reason));
      socket.onerror = () => {};
      return response;
    } catch (error) {
      this.#options.log(`internal error while handling a request: ${(error as Error).stack ?? error}`);
      return new Response("internal error", { status: 500 });
    }
  }

  /** Runs `fn`; a FrameError closes `conn` with a reason, anything else is logged. Never throws. */
  #guard(fn: () => void, conn?: Connection): void {
    try {
      fn();
    } catch (error) {
      if (error instanceof FrameError) {
        this.stats.malformedFrames++;
        if (conn) {
          this.#options.log(`closing connection #${conn.id} from ${conn.remoteHost}: ${error.reason}`);
          this.#closeConnection(conn, CloseCode.protocolError, error.reason);
          if (conn.record && conn.generation === this.#generation) {
            this.#failGeneration(`rank ${conn.record.rank} sent a malformed frame: ${error.reason}`);
          }
        }
        return;
      }
      this.#options.log(`internal error (ignored): ${(error as Error).stack ?? error}`);
    }
  }

  #send(conn: Connection, message: ToRank): void {
    if (conn.socket.readyState !== WebSocket.OPEN) return;
    try {
      conn.socket.send(encodeControl(message));
    } catch (error) {
      this.#options.log(`send to connection #${conn.id} failed: ${(error as Error).message}`);
    }
  }

  #closeConnection(conn: Connection, code: number, reason: string): void {
    conn.closedByUs = true;
    this.#waiting = this.#waiting.filter((c) => c !== conn);
    if (conn.socket.readyState === WebSocket.OPEN || conn.socket.readyState === WebSocket.CONNECTING) {
      try {
        conn.socket.close(code, closeReason(reason));
      } catch { /* closing anyway */ }
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // Messages

  #onMessage(conn: Connection, data: unknown): void {
    if (conn.closedByUs) return;
    const message = decodeToCoordinator(data);
    conn.lastSeen = Date.now();
    if (conn.hello === null) {
      if (message.t !== "hello") throw new FrameError(`expected hello first, got "${message.t}"`);
      if (message.role !== conn.claims.role) {
        throw new FrameError(`hello role "${message.role}" differs from token role "${conn.claims.role}"`);
      }
      if (message.role === "rank" && message.dataPort === null) {
        throw new FrameError("rank hello without dataPort");
      }
      conn.hello = message;
      if (message.role === "agent") {
        this.#options.log(`node agent joined from ${message.host} (pid ${message.pid})`);
        return;
      }
      this.#waiting.push(conn);
      if (this.#phase === "rendezvous") this.#maybeFormGeneration();
      else {
        this.#options.log(
          `rank process from ${message.host} (pid ${message.pid}) joined while generation ${this.#generation} is ` +
            `${this.#phase}; it waits for the next rendezvous`,
        );
      }
      return;
    }
    if (message.t === "hello") throw new FrameError("second hello on one connection");
    if (message.t === "heartbeat") return;
    if (conn.hello.role === "agent") {
      throw new FrameError(`agents may only send heartbeats, got "${message.t}"`);
    }
    const record = conn.record;
    if (!record || conn.generation !== this.#generation) {
      throw new FrameError(
        `"${message.t}" from a process that holds no rank in generation ${this.#generation}`,
      );
    }
    switch (message.t) {
      case "ready":
        if (message.generation !== this.#generation) {
          throw new FrameError(`ready for generation ${message.generation}`);
        }
        conn.ready = true;
        if (this.#phase === "starting" && this.#members.every((m) => m.ready)) this.#startGeneration();
        return;
      case "barrier":
        return this.#onBarrier(record.rank, message.seq, message.name);
      case "broadcast":
        if (message.root !== record.rank) {
          throw new FrameError(`rank ${record.rank} sent a broadcast value for root ${message.root}`);
        }
        this.#requireRunning(message.t);
        for (const member of this.#members) {
          this.#send(member, {
            t: "broadcast_value",
            seq: message.seq,
            root: message.root,
            value: message.value,
          });
        }
        return;
      case "ckpt_part":
        if (message.rank !== record.rank) {
          throw new FrameError(`rank ${record.rank} reported the checkpoint part of rank ${message.rank}`);
        }
        this.#requireRunning(message.t);
        return this.#onCheckpointPart(record.rank, message.step);
      case "busy":
        conn.busyUntil = message.ms > 0 ? Date.now() + message.ms : 0;
        if (message.ms > 0) {
          this.#options.log(
            `rank ${record.rank} announced up to ${message.ms} ms without heartbeats: ${message.what}`,
          );
        }
        return;
      case "peer_lost":
        return this.#failGeneration(
          `rank ${record.rank} lost its link to rank ${message.peerRank}: ${message.reason}`,
        );
      case "done":
        conn.done = true;
        if (this.#phase === "running" && this.#members.every((m) => m.done)) {
          this.#finish("completed", "every rank finished");
        }
        return;
    }
  }

  #requireRunning(what: string): void {
    if (this.#phase !== "running") throw new FrameError(`"${what}" before the generation started`);
  }

  #onClose(conn: Connection, code: number, reason: string): void {
    this.#connections.delete(conn);
    this.#waiting = this.#waiting.filter((c) => c !== conn);
    if (conn.closedByUs || this.#phase === "finished") return;
    if (
      conn.record && conn.generation === this.#generation &&
      (this.#phase === "starting" || this.#phase === "running")
    ) {
      if (conn.done) return;
      this.#failGeneration(
        `rank ${conn.record.rank} (${conn.record.host}, pid ${conn.record.pid}) disconnected` +
          (code === 1000 || code >= 4000
            ? ` (code ${code}${reason ? `: ${reason}` : ""})`
            : " (connection dropped)"),
      );
    }
  }

  #onBarrier(rank: number, seq: number, name: string): void {
    this.#requireRunning("barrier");
    let entry = this.#barriers.get(seq);
    if (!entry) this.#barriers.set(seq, entry = { name, arrived: new Set() });
    if (entry.name !== name) {
      this.#failGeneration(
        `ranks disagree on barrier #${seq}: rank ${rank} is at "${name}", others at "${entry.name}"`,
      );
      return;
    }
    entry.arrived.add(rank);
    if (entry.arrived.size === this.worldSize) {
      this.#barriers.delete(seq);
      for (const member of this.#members) this.#send(member, { t: "barrier_release", seq, name });
    }
  }

  #onCheckpointPart(rank: number, step: number): void {
    let parts = this.#checkpointParts.get(step);
    if (!parts) this.#checkpointParts.set(step, parts = new Set());
    parts.add(rank);
    if (parts.size < this.worldSize) return;
    this.#checkpointParts.delete(step);
    this.#lastCommittedStep = Math.max(this.#lastCommittedStep ?? -1, step);
    this.#options.log(`checkpoint step ${step} committed (all ${this.worldSize} parts written)`);
    for (const member of this.#members) this.#send(member, { t: "ckpt_committed", step });
    this.#notify(() => this.#events.onCheckpointCommitted?.(step));
  }

  // ---------------------------------------------------------------------------------------------------
  // Generations

  #maybeFormGeneration(): void {
    if (this.#phase !== "rendezvous" || this.#waiting.length < this.worldSize) return;
    const joined = this.#waiting.splice(0, this.worldSize);
    const order = new Map(joined.map((c, i) => [c, i]));
    const key = (c: Connection) => c.hello!;
    joined.sort((a, b) => {
      const ha = key(a), hb = key(b);
      const na = ha.nodeRank ?? Number.MAX_SAFE_INTEGER, nb = hb.nodeRank ?? Number.MAX_SAFE_INTEGER;
      if (na !== nb) return na - nb;
      if (ha.host !== hb.host) return ha.host < hb.host ? -1 : 1;
      const la = ha.localRank ?? Number.MAX_SAFE_INTEGER, lb = hb.localRank ?? Number.MAX_SAFE_INTEGER;
      if (la !== lb) return la - lb;
      return order.get(a)! - order.get(b)!;
    });
    const hostGroups = new Map<string, Connection[]>();
    for (const c of joined) {
      const group = hostGroups.get(c.hello!.host) ?? [];
      group.push(c);
      hostGroups.set(c.hello!.host, group);
    }
    this.#members = joined;
    this.#barriers.clear();
    this.#checkpointParts.clear();
    const records = joined.map((c, rank): RankRecord => {
      const hello = c.hello!;
      const group = hostGroups.get(hello.host)!;
      return {
        rank,
        host: hello.host,
        nodeRank: hello.nodeRank,
        localRank: group.indexOf(c),
        pid: hello.pid,
        peer: {
          rank,
          host: hello.advertiseHost ?? c.remoteHost,
          port: hello.dataPort!,
          ...(hello.stripePorts ? { stripePorts: hello.stripePorts } : {}),
          ...(hello.stripeMinBytes !== undefined ? { stripeMinBytes: hello.stripeMinBytes } : {}),
          ...(hello.cores !== undefined ? { stripeCap: stripeCapFor(hello.cores, group.length) } : {}),
          ...(hello.polledPort !== undefined ? { polledPort: hello.polledPort } : {}),
          ...(hello.stripePolledPorts?.length ? { stripePolledPorts: hello.stripePolledPorts } : {}),
          ...(hello.meshMaxBytes !== undefined ? { meshMaxBytes: hello.meshMaxBytes } : {}),
        },
      };
    });
    const peers = records.map((r) => r.peer);
    for (const [rank, c] of joined.entries()) {
      c.record = records[rank];
      c.generation = this.#generation;
      c.ready = false;
      c.done = false;
      this.#send(c, {
        t: "assign",
        jobId: this.jobId,
        generation: this.#generation,
        restartCount: this.#restartCount,
        rank,
        worldSize: this.worldSize,
        localRank: records[rank].localRank,
        localWorldSize: hostGroups.get(c.hello!.host)!.length,
        resumeStep: this.#lastCommittedStep,
        config: this.#options.config,
        peers,
      });
    }
    this.#setPhase("starting");
    this.#options.log(
      `generation ${this.#generation}: assigned ${this.worldSize} ranks ` +
        `(${
          records.map((r) => `${r.rank}=${r.host}/${r.localRank}`).join(", ")
        }), resume step ${this.#lastCommittedStep}`,
    );
  }

  #startGeneration(): void {
    this.#setPhase("running");
    for (const member of this.#members) this.#send(member, { t: "start", generation: this.#generation });
    this.#options.log(`generation ${this.#generation} running`);
    const info = {
      generation: this.#generation,
      restartCount: this.#restartCount,
      resumeStep: this.#lastCommittedStep,
      ranks: this.ranks,
    };
    this.#notify(() => this.#events.onGenerationStarted?.(info));
  }

  #failGeneration(reason: string): void {
    if (this.#phase !== "starting" && this.#phase !== "running") return;
    const generation = this.#generation;
    this.#restartCount++;
    const restartPlanned = this.#restartCount <= this.#options.maxRestarts;
    this.#options.log(
      `generation ${generation} failed: ${reason}; ` +
        (restartPlanned
          ? `stopping all ranks, restart ${this.#restartCount}/${this.#options.maxRestarts} from checkpoint step ${this.#lastCommittedStep}`
          : `no restarts left (maxRestarts ${this.#options.maxRestarts})`),
    );
    const members = this.#members.map((m) => ({
      rank: m.record!.rank,
      host: m.record!.host,
      pid: m.record!.pid,
    }));
    for (const member of this.#members) {
      this.#send(member, { t: "stop", generation, reason, restartPlanned });
      this.#closeConnection(member, CloseCode.stopped, `generation ${generation} stopped`);
    }
    for (const conn of this.#connections) {
      if (conn.hello?.role === "agent") {
        this.#send(conn, { t: "generation_failed", generation, reason, restartPlanned, members });
      }
    }
    this.#members = [];
    this.#notify(() => this.#events.onGenerationFailed?.({ generation, reason, restartPlanned }));
    if (!restartPlanned) {
      this.#finish("failed", `generation ${generation} failed with no restarts left: ${reason}`);
      return;
    }
    this.#generation++;
    this.#setPhase("rendezvous");
    this.#maybeFormGeneration();
  }

  #finish(status: JobResult["status"], reason: string): void {
    if (this.#phase === "finished") return;
    this.#setPhase("finished");
    const result: JobResult = {
      status,
      reason,
      generation: this.#generation,
      restartCount: this.#restartCount,
      lastCommittedStep: this.#lastCommittedStep,
    };
    this.#result = result;
    this.#options.log(`job ${status}: ${reason}`);
    for (const conn of this.#connections) {
      this.#send(conn, { t: "shutdown", status, reason });
      this.#closeConnection(conn, CloseCode.jobOver, `job ${status}`);
    }
    this.#waiting = [];
    this.#resolveFinished(result);
    this.#notify(() => this.#events.onJobFinished?.(result));
  }

  #setPhase(phase: Phase): void {
    this.#phase = phase;
    this.#phaseStartedAt = Date.now();
  }

  #notify(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#options.log(`event callback threw (ignored): ${(error as Error).stack ?? error}`);
    }
  }

  #sweep(): void {
    const now = Date.now();
    const { heartbeatIntervalMs, heartbeatTimeoutMs } = this.#options;
    if (this.#phase === "finished") return;
    if (now - this.#lastHeartbeatSent >= heartbeatIntervalMs) {
      this.#lastHeartbeatSent = now;
      for (const conn of this.#connections) if (conn.hello) this.#send(conn, { t: "heartbeat" });
    }
    for (const conn of this.#connections) {
      if (!conn.hello && now - conn.openedAt > HELLO_TIMEOUT_MS) {
        this.#options.log(
          `closing connection #${conn.id} from ${conn.remoteHost}: no hello in ${HELLO_TIMEOUT_MS} ms`,
        );
        this.#closeConnection(conn, CloseCode.timeout, "no hello");
      }
    }
    for (const conn of [...this.#waiting]) {
      if (now - conn.lastSeen > heartbeatTimeoutMs) {
        this.#options.log(
          `dropping waiting process from ${conn.hello?.host}: silent for ${now - conn.lastSeen} ms`,
        );
        this.#closeConnection(conn, CloseCode.timeout, "missed heartbeats");
      }
    }
    if (this.#phase === "starting" || this.#phase === "running") {
      for (const member of this.#members) {
        const silent = now - member.lastSeen;
        if (!member.done && silent > heartbeatTimeoutMs && now > member.busyUntil) {
          this.#failGeneration(
            `rank ${member.record!.rank} (${member.record!.host}, pid ${
              member.record!.pid
            }) missed heartbeats ` +
              `for ${silent} ms (hung or frozen)`,
          );
          return;
        }
      }
      if (this.#phase === "starting" && now - this.#phaseStartedAt > this.#options.startTimeoutMs) {
        const late = this.#members.filter((m) => !m.ready).map((m) => m.record!.rank);
        this.#failGeneration(
          `ranks ${late.join(", ")} did not connect their ring in ${this.#options.startTimeoutMs} ms`,
        );
      }
    } else if (
      this.#phase === "rendezvous" && now - this.#phaseStartedAt > this.#options.rendezvousTimeoutMs
    ) {
      this.#finish(
        "failed",
        `rendezvous of generation ${this.#generation} timed out: ${this.#waiting.length} of ${this.worldSize} ranks joined`,
      );
    }
  }
}
