/**
 * A rank process's side of the job: joins the coordinator, connects the ring data plane, and exposes the
 * {@link DistributedContext} the training loop uses.
 *
 * Data plane: every rank runs its own small WebSocket server. Rank r+1 dials rank r's server, so rank r
 * *sends* its bulk chunks on the accepted (server-side) socket and receives on the socket it dialed. Bulk
 * data therefore never leaves through a client `new WebSocket()`, whose small messages stall ~44 ms; the
 * default transport (peer_transport.ts) also sets TCP_NODELAY on both ends and recycles receive buffers.
 *
 * With `stripes` ≥ 1 (the default where Workers can start) the buckets are reduced by that many ring
 * stripes, each on its own Worker with its own pair of links (`striped_all_reduce.ts`); every rank uses the
 * smallest stripe count any rank offers, and the bits are those of the single ring whatever that count.
 *
 * @module
 */
import {
  decodeToRank,
  encodeControl,
  MAX_BUSY_MS,
  type PeerAddress,
  type ToCoordinator,
  type ToRank,
} from "./control_messages.ts";
import {
  checkOwnRank,
  type DistributedContext,
  DistributedStopError,
  type Json,
  type StartBucketOptions,
  type StopEvent,
} from "./context.ts";
import {
  CloseCode,
  closeReason,
  decodeFrame,
  FrameError,
  FrameType,
  MAX_CHUNK_ELEMENTS,
  MAX_MESSAGE_BYTES,
} from "./frames.ts";
import { JoinTokenVerifier, mintJoinToken } from "./join_token.ts";
import {
  dialPeer,
  type LinkEvents,
  type PeerServer,
  type PeerTransportName,
  type ReceivingLink,
  type SendingLink,
  startPeerServer,
} from "./peer_transport.ts";
import { POLLED_CHUNK_ELEMENTS, PolledRing } from "./polled_ring.ts";
import { agreedMeshMaxBytes, DEFAULT_MESH_MAX_BYTES, meshStripesForBucket } from "./polled_mesh.ts";
import { ipv4Bytes, PolledListener, PolledSocket, polledSockets } from "./polled_socket.ts";
import {
  answerUpgrade,
  BufferPool,
  connectRawWebSocket,
  type RawWebSocket,
  requestUpgrade,
  type UpgradeDecision,
} from "./raw_websocket.ts";
import { type CollectiveTimes, type DataFrame, RingAllReduce } from "./ring_all_reduce.ts";
import { bf16CodecFor } from "./bf16_codec.ts";
import { isArenaView, SharedReduceArena } from "./reduce_arena.ts";
import { reductionKernel, type ReductionKernelName } from "./simd_add.ts";
import {
  agreedStripes,
  defaultStripes,
  integerFromEnv,
  StripedAllReduce,
  stripeMinBytesFromEnv,
  type StripeReceive,
  stripesForBucket,
  stripesFromEnv,
} from "./striped_all_reduce.ts";

/** Options of {@link joinJob}. */
export interface JoinOptions {
  /** `ws://host:port/join` of the coordinator. */
  coordinatorUrl: string;
  jobId: string;
  /** Shared join secret (`ORION_JOIN_SECRET`). */
  secret: string;
  /** Host name used to order and group ranks; default `Deno.hostname()`. */
  host?: string;
  /** Address peers dial for this rank's data server; default: the address the coordinator sees. */
  advertiseHost?: string | null;
  /** Node index from the scheduler (SLURM_PROCID, PMI_RANK, SKYPILOT_NODE_RANK); orders ranks. */
  nodeRank?: number | null;
  /** GPU index on this host; orders ranks within a host. */
  localRank?: number | null;
  /** Bind address of the data server; default "0.0.0.0". */
  dataHostname?: string;
  /** Heartbeat period; default 1000 ms. */
  heartbeatIntervalMs?: number;
  /** The coordinator counts as lost after this much silence; default 5000 ms. */
  coordinatorTimeoutMs?: number;
  /** How long to wait for the rendezvous and ring setup; default 15 min. */
  joinTimeoutMs?: number;
  /** How long to keep retrying while the coordinator is not listening yet; default 120 s. */
  connectTimeoutMs?: number;
  /** All-reduce chunk size in bytes (≤ 4 MiB − 48); default 1 MiB. */
  chunkBytes?: number;
  /** Reduction arithmetic; default "wasm-simd". */
  kernel?: ReductionKernelName;
  /** WebSocket implementation of the ring links; default "tcp-websocket" (see peer_transport.ts). */
  transport?: PeerTransportName;
  /**
   * Ring stripes (Worker threads, each with its own links) per rank; 0 = one ring on this thread. Default
   * {@link defaultStripes} (`ORION_RING_STRIPES`, else cores / 4, 1..4; 0 where Workers cannot start); without
   * this option or the variable, at most the host's cores ÷ the job's ranks on it (`stripeCapFor`). The
   * job uses the smallest count any rank offers; the results are bit-identical whatever it is. Needs the
   * tcp-websocket transport.
   */
  stripes?: number;
  /** How stripe workers receive chunk values; default "direct" ("staged" adds a copy, for measurements). */
  stripeReceive?: StripeReceive;
  /**
   * Smallest bucket (bytes) for the stripes; smaller ones run on the own-thread ring (same bits). Default
   * `ORION_STRIPE_MIN_BYTES`, else world size × stripes × max(128 KiB, world size × 32 KiB)
   * ({@link stripeMinBytes}). When any rank sets it the job uses the largest value set; 0 sends every bucket
   * through the stripes.
   */
  stripeMinBytes?: number;
  /**
   * Polled links (`polled_ring.ts`: libc sockets that the reducing thread busy-polls instead of waiting for its
   * event loop): small buckets (those the stripes do not take) on the rank's polled ring instead of the
   * event-loop ring, and each stripe worker's ring polled too; same bits. Default: on where the C library
   * loads (Linux, `--allow-ffi`) and `ORION_POLLED_RING` is not `0`. The job uses them only when every rank
   * offers them and every rank's address is an IPv4 address.
   */
  polledRing?: boolean;
  /**
   * Bytes per polled-ring message (default `ORION_POLLED_CHUNK_BYTES`, else 1 MiB): a ring segment travels
   * as chunks of this size, each forwarded as soon as it is reduced.
   */
  polledChunkBytes?: number;
  /**
   * Largest bucket (bytes) the polled stripes reduce with the direct all-reduce over a full mesh of polled
   * links (`polled_mesh.ts`: two hops instead of the ring's 2(n − 1), same bits), at 3..`MESH_MAX_RANKS`
   * ranks; larger buckets take the stripes' rings. Which stripes take a bucket: `stripesFor`. Default
   * `ORION_MESH_MAX_BYTES`, else `DEFAULT_MESH_MAX_BYTES`; 0 turns the meshes off. The job uses the smallest
   * value any rank offers.
   */
  meshMaxBytes?: number;
  /** Log sink; default `console.error` with a "[orion rank]" prefix. */
  log?: (line: string) => void;
}

/** Environment variable that turns the polled ring off (`0`) or on (`1`); see {@link JoinOptions.polledRing}. */
export const POLLED_RING_ENV = "ORION_POLLED_RING";
/** Environment variable that sets {@link JoinOptions.polledChunkBytes}. */
export const POLLED_CHUNK_ENV = "ORION_POLLED_CHUNK_BYTES";
/** Environment variable that sets {@link JoinOptions.meshMaxBytes}. */
export const MESH_MAX_BYTES_ENV = "ORION_MESH_MAX_BYTES";

/** Environment variable that sets how long polled rings busy-poll without news, in µs (see `polledSpinMs`). */
export const POLLED_SPIN_ENV = "ORION_POLLED_SPIN_US";

/**
 * How long a polled ring busy-polls without news before it sleeps in `poll(2)`: `ORION_POLLED_SPIN_US` when
 * set; else 1 ms where the host has `coresEach` logical cores for each of the `threads` that may spin on it at
 * once (a spinning thread then takes no core a peer needs), else 0.05 ms.
 */
function polledSpinMs(threads: number, coresEach: number): number {
  const us = integerFromEnv(POLLED_SPIN_ENV, "a busy-poll time", "microseconds, 0..50000", 50_000);
  if (us !== null) return us / 1000;
  const cores = typeof navigator !== "undefined" ? navigator.hardwareConcurrency ?? 1 : 1;
  return cores >= coresEach * threads ? 1 : 0.05;
}

/** Longest this thread busy-polls the polled ring in one {@link RankSession.pollCollectives} or all-reduce. */
const POLLED_SPIN_CAP_MS = 50;

type Assignment = Extract<ToRank, { t: "assign" }>;

/** The connection could not be made or the job refused this process. */
export class JoinError extends Error {
  constructor(message: string, readonly jobOver = false) {
    super(message);
    this.name = "JoinError";
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new JoinError(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Marks `promise` as handled so that a stop rejecting it while the caller has not awaited it yet (a bucket
 * started during backward, awaited later) is not an unhandled rejection; awaiting it still throws.
 */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/**
 * Polls the coordinator's `/health` until it answers (nodes start in any order), then checks the job is not
 * over. Throws {@link JoinError} on timeout or when the job already ended.
 */
export async function waitForCoordinator(
  coordinatorUrl: string,
  timeoutMs: number,
  log: (line: string) => void = () => {},
): Promise<void> {
  const health = new URL(coordinatorUrl);
  health.protocol = health.protocol === "wss:" ? "https:" : "http:";
  health.pathname = "/health";
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  while (true) {
    try {
      const response = await fetch(health, { signal: AbortSignal.timeout(5000) });
      const body = await response.json() as { phase?: string };
      if (body.phase === "finished") {
        throw new JoinError(
          `Cannot join the job at ${coordinatorUrl} as it is over (the coordinator finished)`,
          true,
        );
      }
      return;
    } catch (error) {
      if (error instanceof JoinError) throw error;
      if (Date.now() >= deadline) {
        throw new JoinError(
          `Cannot reach the coordinator at ${coordinatorUrl} after ${timeoutMs} ms: ${
            (error as Error).message
          }; ` +
            `check that node 0 runs and that --coordinator-host / --port point at it`,
        );
      }
      if (++attempts === 1) log(`coordinator at ${coordinatorUrl} not reachable yet; retrying`);
      await new Promise((r) => setTimeout(r, Math.min(1000, 50 * attempts)));
    }
  }
}

/**
 * The networked {@link DistributedContext}; obtained from {@link joinJob}.
 */
export class RankSession implements DistributedContext {
  readonly jobId: string;
  #assignment: Assignment | null = null;
  #options: Required<Omit<JoinOptions, "advertiseHost" | "nodeRank" | "localRank" | "stripeMinBytes">> & {
    stripeMinBytes: number | null;
    advertiseHost: string | null;
    polledRing: boolean;
    polledChunkBytes: number;
    meshMaxBytes: number;
    nodeRank: number | null;
    localRank: number | null;
  };
  #control: RawWebSocket | null = null;
  #peerServer: PeerServer | null = null;
  #peerVerifier: JoinTokenVerifier;
  #left: ReceivingLink | null = null;
  #right: SendingLink | null = null;
  #rightClaimed = false;
  #pool = new BufferPool();
  #dataPort = 0;
  #ring: RingAllReduce | null = null;
  /** The polled ring's server (until the ring is connected) and the ring itself. */
  #polledListener: PolledListener | null = null;
  #polledRightClaimed = false;
  #polledRight = Promise.withResolvers<PolledSocket>();
  #polledSockets: PolledSocket[] = [];
  #polled: PolledRing | null = null;
  /** Largest bucket (bytes) the stripes run on their polled meshes, agreed at rendezvous (0: none). */
  #meshMaxBytes = 0;
  #striped: StripedAllReduce | null = null;
  /** Without stripes, {@link sharedBucket}'s arrays come from this arena (for host kernels in place). */
  #ownArena: SharedReduceArena | null = null;
  /** Whether the stripe count came from the `stripes` option or `ORION_RING_STRIPES` (never capped). */
  #stripesSetByHand: boolean;
  /**
   * How buckets are routed to the stripes, agreed at rendezvous: the smallest striped size set by hand (the
   * largest any rank set), and whether the stripes are polled. See {@link stripesFor}.
   */
  #stripeRouting: { explicit: number | null; polled: boolean } = { explicit: null, polled: false };
  #stopEvent: StopEvent | null = null;
  #stopCallbacks = new Set<(event: StopEvent) => void>();
  #closing = false;
  #finished = false;
  #tornDown = false;
  #lastCoordinatorMessage = Date.now();
  #lastSweep = Date.now();
  /**
   * When this rank's announced busy phase ends or ended ({@link announceBusy}): until then its own thread may
   * not read the coordinator's messages in time, so their silence is not judged, and afterwards it counts
   * from then.
   */
  #busyEnd = 0;
  #lastHeartbeatSent = 0;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #peerLossTimer: ReturnType<typeof setTimeout> | undefined;
  #nextBarrier = 0;
  #nextBroadcast = 0;
  #barrierWaiters = new Map<number, { name: string; resolve(): void; reject(e: Error): void }>();
  #broadcastValues = new Map<number, { root: number; value: unknown }>();
  #broadcastWaiters = new Map<number, { root: number; resolve(v: unknown): void; reject(e: Error): void }>();
  #committed = new Set<number>();
  #commitWaiters = new Map<number, Array<{ resolve(): void; reject(e: Error): void }>>();
  #assigned = Promise.withResolvers<Assignment>();
  #started = Promise.withResolvers<void>();
  #rightConnected = Promise.withResolvers<void>();
  #shutdown = Promise.withResolvers<void>();

  /** @internal use {@link joinJob}. */
  constructor(options: JoinOptions) {
    this.jobId = options.jobId;
    this.#options = {
      coordinatorUrl: options.coordinatorUrl,
      jobId: options.jobId,
      secret: options.secret,
      host: options.host ?? Deno.hostname(),
      advertiseHost: options.advertiseHost ?? null,
      nodeRank: options.nodeRank ?? null,
      localRank: options.localRank ?? null,
      dataHostname: options.dataHostname ?? "0.0.0.0",
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1000,
      coordinatorTimeoutMs: options.coordinatorTimeoutMs ?? 5000,
      joinTimeoutMs: options.joinTimeoutMs ?? 15 * 60_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 120_000,
      chunkBytes: options.chunkBytes ?? 1024 * 1024,
      kernel: options.kernel ?? "wasm-simd",
      transport: options.transport ?? "tcp-websocket",
      stripes: (options.transport ?? "tcp-websocket") === "tcp-websocket"
        ? options.stripes ?? defaultStripes()
        : 0,
      stripeReceive: options.stripeReceive ?? "direct",
      stripeMinBytes: options.stripeMinBytes ?? stripeMinBytesFromEnv(),
      polledRing: polledSockets() !== null && (options.polledRing ?? integerFromEnv(
            POLLED_RING_ENV,
            "the polled ring switch",
            "0 (off) or 1 (on)",
            1,
          ) !== 0),
      polledChunkBytes: options.polledChunkBytes ??
        integerFromEnv(POLLED_CHUNK_ENV, "the polled ring's chunk size", "bytes, 16..4194240", 4194240) ??
        POLLED_CHUNK_ELEMENTS * 4,
      meshMaxBytes: options.meshMaxBytes ??
        integerFromEnv(
          MESH_MAX_BYTES_ENV,
          "the mesh's largest bucket",
          "bytes, 0..2^53",
          Number.MAX_SAFE_INTEGER,
        ) ??
        DEFAULT_MESH_MAX_BYTES,
      log: options.log ?? ((line) => console.error(`[orion rank] ${line}`)),
    };
    this.#stripesSetByHand = options.stripes !== undefined || stripesFromEnv() !== null;
    this.#peerVerifier = new JoinTokenVerifier({ secret: options.secret, jobId: options.jobId });
    // Rejections of these internal promises are observed through joinJob / close; never unhandled.
    for (
      const p of [this.#assigned, this.#started, this.#rightConnected, this.#shutdown, this.#polledRight]
    ) {
      p.promise.catch(() => {});
    }
  }

  #a(): Assignment {
    if (!this.#assignment) throw new Error("Cannot read the rank before the rendezvous assigned one");
    return this.#assignment;
  }

  get rank(): number {
    return this.#a().rank;
  }
  get worldSize(): number {
    return this.#a().worldSize;
  }
  get localRank(): number {
    return this.#a().localRank;
  }
  get localWorldSize(): number {
    return this.#a().localWorldSize;
  }
  get generation(): number {
    return this.#a().generation;
  }
  get restartCount(): number {
    return this.#a().restartCount;
  }
  get resumeStep(): number | null {
    return this.#a().resumeStep;
  }
  get config(): unknown {
    return this.#a().config;
  }
  /** Data-plane addresses of every rank. */
  get peers(): PeerAddress[] {
    return this.#a().peers;
  }
  /** The stop event, once stopped. */
  get stopEvent(): StopEvent | null {
    return this.#stopEvent;
  }
  /** Port of this rank's data server. */
  get dataPort(): number {
    return this.#dataPort;
  }
  /** Bytes this rank queued to its right neighbour (own-thread ring). */
  get bytesSent(): number {
    return this.#right?.bytesSent ?? 0;
  }
  /** When the stripes or this thread's ring last ran bucket index `index`'s collective (for traces). */
  collectiveTimes(index: number): CollectiveTimes | undefined {
    const times = [this.#ring, this.#polled, this.#striped].flatMap((r) => r?.bucketTimes.get(index) ?? []);
    return times.reduce<CollectiveTimes | undefined>((a, b) => (a && a.endMs > b.endMs ? a : b), undefined);
  }
  /** Whether small buckets run on the polled ring (agreed at rendezvous). */
  get polledRing(): boolean {
    return this.#polled !== null;
  }
  /** Largest bucket (bytes) the stripes reduce on their polled meshes; 0: no mesh (agreed at rendezvous). */
  get meshMaxBytes(): number {
    return this.#meshMaxBytes;
  }
  /**
   * Whether a bucket of `length` values, when the stripes take it ({@link stripesFor}), runs on their polled
   * meshes (`polled_mesh.ts`: the direct all-reduce, two hops) instead of their rings; same bits either way.
   */
  onMesh(length: number): boolean {
    return length * 4 <= this.#meshMaxBytes;
  }
  /** Whether the stripes run as polled rings (agreed at rendezvous). */
  get polledStripes(): boolean {
    return this.#striped?.polled ?? false;
  }
  /** Ring stripes in use (0: one ring on this thread). */
  get stripes(): number {
    return this.#striped?.stripes ?? 0;
  }

  /**
   * Whether a bucket of `length` values is reduced by the stripes (else by the ring on this thread: buckets
   * under the job's smallest striped size, or every bucket without stripes).
   */
  onStripes(length: number): boolean {
    return this.stripesFor(length) > 0;
  }

  /**
   * How many stripes reduce a bucket of `length` values (0: the ring on this thread), by its size
   * (`stripesForBucket`: all stripes from the job's smallest striped size, or for polled stripes as many as
   * give each a 128 KiB part of every ring segment; a mesh bucket, `meshStripesForBucket`: all stripes'
   * meshes with parts of at least worldSize × 16 KiB, else the ring on this thread).
   */
  stripesFor(length: number): number {
    const stripes = this.#striped?.stripes ?? 0;
    const { explicit, polled } = this.#stripeRouting;
    if (this.onMesh(length)) {
      return meshStripesForBucket(length * 4, this.worldSize, stripes, explicit);
    }
    return stripesForBucket(length * 4, this.worldSize, stripes, polled, explicit);
  }

  /**
   * A zero-filled bucket that the striped ring reduces in place (inside its shared arena, no copies);
   * a plain Float32Array without stripes. Any Float32Array works with {@link startBucket}; this one saves
   * two copies. Give it back with {@link releaseSharedBucket}.
   */
  sharedBucket(length: number): Float32Array {
    if (this.#striped) return this.#striped.sharedBucket(length);
    this.#ownArena ??= new SharedReduceArena(length * 4);
    return this.#ownArena.zerosOrPlain(length);
  }

  /** Returns a {@link sharedBucket}'s memory. */
  releaseSharedBucket(bucket: Float32Array): void {
    if (this.#ownArena && isArenaView(this.#ownArena.memory, bucket)) {
      this.#ownArena.release(bucket.byteOffset);
    } else this.#striped?.releaseSharedBucket(bucket);
  }

  /** The memory of {@link sharedBucket}'s arrays: the stripes' arena, or this rank's own without stripes. */
  get bucketMemory(): WebAssembly.Memory | null {
    return this.#striped?.arena.memory ?? this.#ownArena?.memory ?? null;
  }

  // ---------------------------------------------------------------------------------------------------
  // Join sequence

  /** @internal */
  async join(): Promise<void> {
    const o = this.#options;
    await waitForCoordinator(o.coordinatorUrl, o.connectTimeoutMs, o.log);
    this.#peerServer = startPeerServer({
      transport: o.transport,
      hostname: o.dataHostname,
      pool: this.#pool,
      maxPayload: MAX_MESSAGE_BYTES,
      authorize: (target, authorization) => this.#authorizePeer(target, authorization),
      onAccepted: (link, setEvents) => this.#onRightAccepted(link, setEvents),
    });
    this.#dataPort = this.#peerServer.port;
    if (o.polledRing && ipv4Bytes(o.dataHostname) !== null) {
      this.#polledListener = PolledListener.listen(o.dataHostname);
      void this.#acceptPolled(this.#polledListener);
    }
    if (o.stripes > 0) {
      if (!Number.isInteger(o.stripes) || o.stripes > 64) {
        throw new RangeError(`Cannot join with stripes ${o.stripes}: use an integer 0..64`);
      }
      this.#striped = await StripedAllReduce.listen({
        stripes: o.stripes,
        hostname: o.dataHostname,
        secret: o.secret,
        jobId: o.jobId,
        failPendingOnLinkLoss: false, // pending buckets reject with the stop (DistributedStopError)
        polled: o.polledRing,
        onLinkLost: (peerRank, reason) => {
          const a = this.#assignment;
          this.#peerLost(peerRank ?? (a ? (a.rank - 1 + a.worldSize) % a.worldSize : 0), reason);
        },
      });
    }
    const token = await mintJoinToken(o.secret, { job: o.jobId, role: "rank", rank: o.localRank });
    // The control link is a client socket too, but a TCP_NODELAY one (raw_websocket.ts): Deno's client
    // WebSocket stalls ~44 ms on 1–60 KB messages (broadcasts, configs).
    const url = new URL(o.coordinatorUrl);
    try {
      const control = await withTimeout(
        connectRawWebSocket(
          url.hostname.replace(/^\[|\]$/g, ""),
          Number(url.port || 80),
          url.pathname + url.search,
          { Authorization: `Bearer ${token}` },
          { pool: new BufferPool(8 * 1024 * 1024), maxPayload: MAX_MESSAGE_BYTES },
        ).catch((error) => {
          throw new JoinError(
            `Cannot join job "${o.jobId}" at ${o.coordinatorUrl}: ${(error as Error).message} ` +
              `(check ORION_JOIN_SECRET, the job id, and the coordinator's log)`,
          );
        }),
        30_000,
        `the coordinator at ${o.coordinatorUrl} to accept the connection`,
      );
      this.#control = control;
      control.onclose = (code, reason) => this.#onControlClose(code, reason);
      control.onmessage = (buffer) => this.#onControlMessage(buffer);
      control.start();
      this.#watchdog = setInterval(() => this.#sweep(), 250);
      this.#sendControl({
        t: "hello",
        role: "rank",
        host: o.host,
        advertiseHost: o.advertiseHost,
        nodeRank: o.nodeRank,
        localRank: o.localRank,
        dataPort: this.dataPort,
        stripePorts: this.#striped?.ports ?? [],
        ...(this.#polledListener ? { polledPort: this.#polledListener.port } : {}),
        ...(this.#polledListener && this.#striped?.polledPorts.length
          ? { stripePolledPorts: this.#striped.polledPorts }
          : {}),
        ...(this.#polledListener && this.#striped?.polledPorts.length
          ? { meshMaxBytes: this.#options.meshMaxBytes }
          : {}),
        ...(this.#options.stripeMinBytes !== null ? { stripeMinBytes: this.#options.stripeMinBytes } : {}),
        // A default stripe count shares the host's cores with its other ranks; a count set by hand is kept.
        ...(this.#striped && !this.#stripesSetByHand ? { cores: navigator.hardwareConcurrency } : {}),
        pid: Deno.pid,
      });
      const assignment = await withTimeout(this.#assigned.promise, o.joinTimeoutMs, "the rendezvous");
      if (assignment.worldSize > 1) await this.#connectRing(assignment);
      else {
        void this.#striped?.close();
        this.#striped = null;
      }
      this.#sendControl({ t: "ready", generation: assignment.generation });
      await withTimeout(this.#started.promise, o.joinTimeoutMs, "every rank to connect its ring");
    } catch (error) {
      const stopEvent = this.#stopEvent;
      this.#teardown();
      if (stopEvent && !(error instanceof DistributedStopError)) throw new DistributedStopError(stopEvent);
      throw error;
    }
  }

  async #connectRing(a: Assignment): Promise<void> {
    const n = a.worldSize;
    // Every rank computes the same count from the same assignment.
    const stripes = agreedStripes(a.peers);
    if (stripes < (this.#striped?.ports.length ?? 0)) {
      this.#options.log(
        `using ${stripes} all-reduce stripes (the smallest count any rank offers, within its host's cores)`,
      );
    }
    // Every rank routes each bucket the same way: by its size against the same threshold, or to the stripes
    // when the caller asks (`startBucket`'s `offThread`, which every rank passes alike).
    // Polled stripes when every rank offers them (and the polled ring): all decide alike.
    const polledStripes = stripes > 0 && this.#polledAgreed(a) &&
      a.peers.every((p) => (p.stripePolledPorts?.length ?? 0) >= stripes);
    const set = a.peers.flatMap((p) => p.stripeMinBytes ?? []);
    // Meshes on the polled stripes when every rank offers them (3..8 ranks).
    this.#meshMaxBytes = polledStripes ? agreedMeshMaxBytes(a.peers.map((p) => p.meshMaxBytes)) : 0;
    const stripeMesh = this.#meshMaxBytes > 0;
    this.#stripeRouting = { explicit: set.length ? Math.max(...set) : null, polled: polledStripes };
    let stripeLinks: Promise<void> = Promise.resolve();
    if (stripes === 0) {
      void this.#striped?.close();
      this.#striped = null;
    } else {
      // The stripes carry the buckets; the ring link below stays up as the neighbours' watched link.
      const left = a.peers[(a.rank - 1 + n) % n];
      stripeLinks = withTimeout(
        this.#striped!.connect({
          rank: a.rank,
          worldSize: n,
          generation: a.generation,
          left: { host: left.host, ports: left.stripePorts ?? [] },
          stripes,
          chunkElements: Math.max(4, Math.min(MAX_CHUNK_ELEMENTS, Math.floor(this.#options.chunkBytes / 4))),
          receive: this.#options.stripeReceive,
          ...(polledStripes
            ? {
              polled: {
                leftPorts: left.stripePolledPorts!,
                spinMs: polledSpinMs(a.localWorldSize * stripes, 2),
                ...(stripeMesh
                  ? {
                    mesh: {
                      maxBytes: this.#meshMaxBytes,
                      peers: a.peers.map((p) =>
                        p.rank === a.rank ? null : { host: p.host, ports: p.stripePolledPorts! }
                      ),
                    },
                  }
                  : {}),
              },
            }
            : {}),
        }),
        this.#options.joinTimeoutMs,
        `the all-reduce stripe links to ranks ${(a.rank - 1 + n) % n} and ${(a.rank + 1) % n}`,
      ).catch((error) => {
        throw error instanceof JoinError ? error : new JoinError((error as Error).message);
      });
      stripeLinks.catch(() => {}); // awaited below
    }
    this.#ring = new RingAllReduce({
      rank: a.rank,
      worldSize: n,
      generation: a.generation,
      chunkElements: Math.max(4, Math.min(MAX_CHUNK_ELEMENTS, Math.floor(this.#options.chunkBytes / 4))),
      kernel: reductionKernel(this.#options.kernel),
      sendRight: (message) => this.#right!.send(message),
      allocate: (bytes) => this.#pool.take(bytes),
      release: (buffer) => this.#pool.give(buffer),
    });
    const leftRank = (a.rank - 1 + n) % n;
    const left = a.peers[leftRank];
    const token = await mintJoinToken(this.#options.secret, { job: this.jobId, role: "peer", rank: a.rank });
    const dial = dialPeer(
      this.#options.transport,
      {
        host: left.host,
        port: left.port,
        path: `/peer?gen=${a.generation}`,
        authorization: `Bearer ${token}`,
      },
      {
        onmessage: (buffer) => this.#onLeftMessage(buffer, leftRank),
        onclose: (code, reason) =>
          this.#peerLost(
            leftRank,
            `link from rank ${leftRank} closed (code ${code}${reason ? ` ${reason}` : ""})`,
          ),
      },
      this.#pool,
      MAX_MESSAGE_BYTES,
    ).catch((error) => {
      throw new JoinError(
        `Cannot connect to rank ${leftRank}'s data server at ${left.host}:${left.port}: ${
          (error as Error).message
        }`,
      );
    });
    const [link] = await Promise.all([
      withTimeout(dial, this.#options.joinTimeoutMs, `the link to rank ${leftRank}`),
      withTimeout(
        this.#rightConnected.promise,
        this.#options.joinTimeoutMs,
        `rank ${(a.rank + 1) % n} to connect`,
      ),
    ]);
    this.#left = link;
    await stripeLinks;
    await this.#connectPolled(a);
  }

  /**
   * Connects the polled ring when every rank offers one at an IPv4 address (every rank decides alike from
   * the assignment); otherwise small buckets stay on the event-loop ring.
   */
  async #connectPolled(a: Assignment): Promise<void> {
    const listener = this.#polledListener;
    const n = a.worldSize;
    if (!listener || !this.#polledAgreed(a)) {
      listener?.close();
      this.#polledListener = null;
      if (a.peers.some((p) => p.polledPort !== undefined)) {
        this.#options.log("small buckets stay on the event-loop ring: not every rank offers a polled ring");
      }
      return;
    }
    const leftRank = (a.rank - 1 + n) % n;
    const left = a.peers[leftRank];
    const token = await mintJoinToken(this.#options.secret, { job: this.jobId, role: "peer", rank: a.rank });
    const dial = (async () => {
      const socket = await PolledSocket.dial(left.host, left.polledPort!, this.#options.joinTimeoutMs);
      this.#polledSockets.push(socket);
      const rest = await requestUpgrade(socket, left.host, left.polledPort!, `/polled?gen=${a.generation}`, {
        Authorization: `Bearer ${token}`,
      });
      if (rest.length > 0) throw new Error("the polled link sent data before the ring started");
      return socket;
    })().catch((error) => {
      throw new JoinError(
        `Cannot connect the polled ring to rank ${leftRank} at ${left.host}:${left.polledPort}: ${
          (error as Error).message
        }`,
      );
    });
    const [leftSocket, rightSocket] = await Promise.all([
      withTimeout(dial, this.#options.joinTimeoutMs, `the polled link to rank ${leftRank}`),
      withTimeout(
        this.#polledRight.promise,
        this.#options.joinTimeoutMs,
        `rank ${(a.rank + 1) % n}'s polled link`,
      ),
    ]);
    listener.close();
    this.#polledListener = null;
    this.#polled = new PolledRing({
      rank: a.rank,
      worldSize: n,
      generation: a.generation,
      kernel: reductionKernel(this.#options.kernel),
      right: rightSocket,
      left: leftSocket,
      spinMs: polledSpinMs(a.localWorldSize, 2),
      chunkElements: Math.max(
        4,
        Math.min(MAX_CHUNK_ELEMENTS, Math.floor(this.#options.polledChunkBytes / 4)),
      ),
      onLinkLost: (peerRank, reason) => this.#peerLost(peerRank, `polled ${reason}`),
      failPendingOnLinkLoss: false, // pending buckets reject with the stop (DistributedStopError)
    });
  }

  /** Whether the job runs polled links: every rank offers a polled ring at an IPv4 address (all decide alike). */
  #polledAgreed(a: Assignment): boolean {
    return this.#polledListener !== null &&
      a.peers.every((p) => p.polledPort !== undefined && ipv4Bytes(p.host));
  }

  /** Accepts the right neighbour's polled link (authenticated like the data links, once). */
  async #acceptPolled(listener: PolledListener): Promise<void> {
    for (;;) {
      const socket = await listener.accept().catch(() => null);
      if (!socket) return;
      this.#polledSockets.push(socket);
      answerUpgrade(
        socket,
        (request) =>
          this.#authorizePeer(request.target, request.headers.get("authorization") ?? null, "/polled"),
      )
        .then((rest) => {
          if (rest === null) return;
          if (rest.length > 0) throw new Error("the polled link sent data before the ring started");
          this.#polledRight.resolve(socket);
        })
        .catch(() => socket.close());
    }
  }

  async #authorizePeer(
    target: string,
    authorization: string | null,
    path: "/peer" | "/polled" = "/peer",
  ): Promise<UpgradeDecision> {
    const url = new URL(target, "http://peer");
    if (url.pathname !== path) return { ok: false, status: 404, reason: "not found" };
    const match = authorization === null ? null : /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    const check = await this.#peerVerifier.verify(
      authorization === null ? null : match ? match[1] : "",
      "peer",
    );
    if (!check.ok) {
      this.#options.log(`refused peer connection: ${check.status} ${check.reason}`);
      return check;
    }
    let a: Assignment;
    try {
      a = await withTimeout(this.#assigned.promise, 60_000, "this rank's assignment");
    } catch {
      return { ok: false, status: 409, reason: "this rank has no assignment" };
    }
    const expectedRank = (a.rank + 1) % a.worldSize;
    const claimed = path === "/peer" ? this.#rightClaimed : this.#polledRightClaimed;
    if (
      check.claims.rank !== expectedRank || url.searchParams.get("gen") !== String(a.generation) || claimed
    ) {
      const reason =
        `peer connection from rank ${check.claims.rank} (gen ${url.searchParams.get("gen")}) refused: ` +
        `expected rank ${expectedRank} of generation ${a.generation}, once`;
      this.#options.log(reason);
      return { ok: false, status: 403, reason };
    }
    if (path === "/peer") this.#rightClaimed = true;
    else this.#polledRightClaimed = true;
    return { ok: true };
  }

  #onRightAccepted(link: SendingLink, setEvents: (events: LinkEvents) => void): void {
    const a = this.#assignment!;
    const rightRank = (a.rank + 1) % a.worldSize;
    this.#right = link;
    setEvents({
      onmessage: () => link.close(CloseCode.protocolError, "the right neighbour sends nothing on this link"),
      onclose: (code, reason) =>
        this.#peerLost(
          rightRank,
          `link to rank ${rightRank} closed (code ${code}${reason ? ` ${reason}` : ""})`,
        ),
    });
    this.#rightConnected.resolve();
  }

  // ---------------------------------------------------------------------------------------------------
  // Incoming

  #onLeftMessage(data: ArrayBuffer, leftRank: number): void {
    if (this.#stopEvent) return;
    try {
      const frame = decodeFrame(data);
      if (frame.type !== FrameType.data) throw new FrameError("control frame on the data link");
      this.#ring!.receive(frame as DataFrame);
    } catch (error) {
      const reason = error instanceof FrameError ? error.reason : (error as Error).message;
      this.#options.log(`bad data from rank ${leftRank}: ${reason}`);
      this.#left?.close(CloseCode.protocolError, closeReason(reason));
      this.#peerLost(leftRank, reason);
    }
  }

  #onControlMessage(data: unknown): void {
    let message: ToRank;
    try {
      message = decodeToRank(data);
    } catch (error) {
      this.#stop({
        kind: "coordinator_lost",
        reason: `coordinator sent a malformed message: ${(error as Error).message}`,
        restartPlanned: false,
      });
      return;
    }
    this.#lastCoordinatorMessage = Date.now();
    switch (message.t) {
      case "assign":
        if (this.#assignment) return;
        this.#assignment = message;
        this.#assigned.resolve(message);
        return;
      case "start":
        this.#started.resolve();
        return;
      case "heartbeat":
      case "generation_failed":
        return;
      case "barrier_release": {
        const waiter = this.#barrierWaiters.get(message.seq);
        this.#barrierWaiters.delete(message.seq);
        waiter?.resolve();
        return;
      }
      case "broadcast_value": {
        const waiter = this.#broadcastWaiters.get(message.seq);
        if (waiter) {
          this.#broadcastWaiters.delete(message.seq);
          waiter.resolve(message.value);
        } else this.#broadcastValues.set(message.seq, { root: message.root, value: message.value });
        return;
      }
      case "ckpt_committed": {
        this.#committed.add(message.step);
        for (const waiter of this.#commitWaiters.get(message.step) ?? []) waiter.resolve();
        this.#commitWaiters.delete(message.step);
        return;
      }
      case "stop":
        this.#stop({ kind: "stopped", reason: message.reason, restartPlanned: message.restartPlanned });
        return;
      case "shutdown":
        if (message.status === "completed" && this.#closing) {
          this.#finished = true;
          this.#shutdown.resolve();
          this.#teardown();
          return;
        }
        this.#stop({
          kind: "job_failed",
          reason: message.status === "completed"
            ? `job completed while this rank was still running (${message.reason})`
            : message.reason,
          restartPlanned: false,
        });
        return;
    }
  }

  #onControlClose(code: number, reason: string): void {
    if (this.#stopEvent || this.#finished || this.#tornDown) return;
    this.#stop({
      kind: "coordinator_lost",
      reason: `the coordinator at ${this.#options.coordinatorUrl} closed the connection (code ${code}` +
        `${reason ? `: ${reason}` : ""}); the launcher's restart policy and \`resume\` continue the job`,
      restartPlanned: false,
    });
  }

  #peerLost(peerRank: number, reason: string): void {
    if (this.#stopEvent || this.#closing || this.#tornDown) return;
    this.#options.log(`lost data link with rank ${peerRank}: ${reason}`);
    this.#sendControl({ t: "peer_lost", peerRank, reason: reason.slice(0, 500) });
    if (this.#peerLossTimer === undefined) {
      this.#peerLossTimer = setTimeout(() => {
        this.#stop({
          kind: "coordinator_lost",
          reason:
            `lost rank ${peerRank} and the coordinator did not answer within ${this.#options.coordinatorTimeoutMs} ms`,
          restartPlanned: false,
        });
      }, this.#options.coordinatorTimeoutMs);
    }
  }

  #sweep(): void {
    if (this.#stopEvent) return;
    const now = Date.now();
    const blocked = now - this.#lastSweep > 2 * this.#options.heartbeatIntervalMs + 1000;
    this.#lastSweep = now;
    if (now - this.#lastHeartbeatSent >= this.#options.heartbeatIntervalMs) {
      this.#lastHeartbeatSent = now;
      this.#sendControl({ t: "heartbeat" });
    }
    // This thread itself was blocked (compiling pipelines): the coordinator's messages of that time are
    // still unread in the socket; judge its silence from the next sweep on. The same during an announced
    // busy phase: blocks shorter than `blocked` detects, with a turn between them whose timers may run before
    // the socket is read (compiling one pipeline after another), took a live coordinator for lost under load.
    if (blocked || now < this.#busyEnd) return;
    const silent = now - Math.max(this.#lastCoordinatorMessage, this.#busyEnd);
    if (silent > this.#options.coordinatorTimeoutMs) {
      this.#stop({
        kind: "coordinator_lost",
        reason:
          `no message from the coordinator at ${this.#options.coordinatorUrl} for ${silent} ms (hung or unreachable)`,
        restartPlanned: false,
      });
    }
  }

  #sendControl(message: ToCoordinator): void {
    if (!this.#control?.open) return;
    this.#control.send(encodeControl(message).buffer);
  }

  #stop(event: StopEvent): void {
    if (this.#stopEvent) return;
    this.#stopEvent = event;
    this.#options.log(`stopping: ${event.kind}: ${event.reason}`);
    const error = new DistributedStopError(event);
    this.#ring?.abort(error);
    this.#polled?.abort(error);
    this.#striped?.abort(error);
    for (const waiter of this.#barrierWaiters.values()) waiter.reject(error);
    for (const waiter of this.#broadcastWaiters.values()) waiter.reject(error);
    for (const list of this.#commitWaiters.values()) for (const waiter of list) waiter.reject(error);
    this.#barrierWaiters.clear();
    this.#broadcastWaiters.clear();
    this.#commitWaiters.clear();
    this.#assigned.reject(error);
    this.#started.reject(error);
    this.#rightConnected.reject(error);
    this.#shutdown.reject(error);
    this.#teardown();
    for (const callback of this.#stopCallbacks) {
      try {
        callback(event);
      } catch (e) {
        this.#options.log(`onStop callback threw (ignored): ${(e as Error).message}`);
      }
    }
  }

  #teardown(): void {
    this.#tornDown = true;
    clearInterval(this.#watchdog);
    clearTimeout(this.#peerLossTimer);
    for (const link of [this.#left, this.#right]) {
      try {
        link?.close(CloseCode.normal, "rank leaving");
      } catch { /* closing anyway */ }
    }
    try {
      this.#control?.close(CloseCode.normal, "rank leaving");
    } catch { /* closing anyway */ }
    this.#peerServer?.close();
    this.#peerServer = null;
    this.#polledListener?.close();
    this.#polledListener = null;
    this.#polledRight.reject(new Error("rank leaving"));
    for (const socket of this.#polledSockets.splice(0)) socket.close();
    void this.#striped?.close();
  }

  #requireLive(): void {
    if (this.#stopEvent) throw new DistributedStopError(this.#stopEvent);
    if (this.#closing) throw new Error("Cannot use the distributed context after close()");
  }

  // ---------------------------------------------------------------------------------------------------
  // DistributedContext

  async allReduceMean(buckets: readonly Float32Array[]): Promise<void> {
    const done = Promise.all(buckets.map((bucket, index) => this.startBucket(index, bucket)));
    // Nothing else to do on this thread until they are reduced: poll the polled ring's links, then wait on
    // the stripes' completion slots (woken by the stripe that finishes last, sooner than its `done` message
    // would wake the event loop). Not while a bucket is on the event-loop ring, which needs this thread.
    this.#polled?.spinUntil(performance.now() + POLLED_SPIN_CAP_MS);
    if (this.#polled !== null || buckets.every((bucket) => this.onStripes(bucket.length))) {
      this.#striped?.pollCompleted(performance.now() + POLLED_SPIN_CAP_MS);
    }
    await done;
    await this.flush();
  }

  startBucket(index: number, data: Float32Array, options: StartBucketOptions = {}): Promise<void> {
    try {
      this.#requireLive();
    } catch (error) {
      return handled(Promise.reject(error));
    }
    const bf16 = options.bf16;
    if (this.worldSize === 1) {
      if (bf16) bf16CodecFor(this.bucketMemory).unpack(bf16, data);
      return Promise.resolve();
    }
    const stripes = options.offThread === true ? (this.#striped?.stripes ?? 0) : this.stripesFor(data.length);
    if (stripes > 0) return handled(this.#striped!.start(index, data, bf16, stripes));
    const ring = this.#polled ?? this.#ring!;
    if (!bf16) return handled(ring.start(index, data));
    // A ring on this thread: widen and round back here.
    const codec = bf16CodecFor(this.bucketMemory);
    codec.unpack(bf16, data);
    return handled(ring.start(index, data).then(() => codec.pack(data, bf16)));
  }

  /** {@link startBucket} takes bf16 buckets (the stripes widen and round them; the own ring, this thread). */
  readonly bf16Buckets = true;

  spinPolled(untilMs: number): number {
    const polled = this.#polled;
    if (!polled) return 0;
    const before = polled.completed;
    polled.spinUntil(Math.min(untilMs, performance.now() + POLLED_SPIN_CAP_MS));
    return polled.completed - before;
  }

  pollCollectives(untilMs?: number): number {
    let settled = 0;
    const polled = this.#polled;
    if (polled && untilMs !== undefined) settled += this.spinPolled(untilMs);
    else if (polled) {
      const before = polled.completed;
      polled.progress();
      settled += polled.completed - before;
    }
    return settled + (this.#striped?.pollCompleted(untilMs) ?? 0);
  }

  async announceBusy(ms: number, what: string): Promise<void> {
    if (!Number.isInteger(ms) || ms < 0 || ms > MAX_BUSY_MS) {
      throw new RangeError(
        `Cannot announce ${ms} ms without heartbeats: use an integer 0..${MAX_BUSY_MS}: current value is ${ms}`,
      );
    }
    this.#requireLive();
    this.#busyEnd = Date.now() + ms;
    this.#sendControl({ t: "busy", ms, what: what.slice(0, 200) });
    // On the wire before the caller blocks this thread (the write loop runs on this thread too).
    await this.#control?.drain();
  }

  async flush(): Promise<void> {
    this.#requireLive();
    await this.#right?.drain();
    await this.#striped?.drain().catch((error) => {
      if (!this.#stopEvent) throw error;
    });
    if (this.#stopEvent) throw new DistributedStopError(this.#stopEvent);
  }

  barrier(name: string): Promise<void> {
    try {
      this.#requireLive();
    } catch (error) {
      return handled(Promise.reject(error));
    }
    const seq = this.#nextBarrier++;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#barrierWaiters.set(seq, { name, resolve, reject });
    this.#sendControl({ t: "barrier", seq, name });
    return handled(promise);
  }

  broadcastJson<T extends Json>(value: T | undefined, root: number): Promise<T> {
    try {
      this.#requireLive();
      if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) {
        throw new RangeError(
          `Cannot broadcast from root ${root} as it is not a rank: use 0..${this.worldSize - 1}`,
        );
      }
      if (root === this.rank && value === undefined) {
        throw new TypeError(
          `Cannot broadcast as root rank ${root} passed no value: pass the value on the root`,
        );
      }
    } catch (error) {
      return handled(Promise.reject(error));
    }
    const seq = this.#nextBroadcast++;
    if (root === this.rank) this.#sendControl({ t: "broadcast", seq, root, value });
    const arrived = this.#broadcastValues.get(seq);
    if (arrived) {
      this.#broadcastValues.delete(seq);
      return this.#checkRoot(arrived.root, root, seq).then(() => arrived.value as T);
    }
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    this.#broadcastWaiters.set(seq, { root, resolve, reject });
    return handled(promise as Promise<T>);
  }

  #checkRoot(actual: number, expected: number, seq: number): Promise<void> {
    return actual === expected ? Promise.resolve() : Promise.reject(
      new Error(`Cannot complete broadcast #${seq} as ranks disagree on its root: ${actual} vs ${expected}`),
    );
  }

  reportCheckpointPart(step: number, rank?: number): Promise<void> {
    try {
      this.#requireLive();
      checkOwnRank(rank, this.rank);
    } catch (error) {
      return handled(Promise.reject(error));
    }
    this.#sendControl({ t: "ckpt_part", step, rank: this.rank });
    return Promise.resolve();
  }

  waitCheckpointCommitted(step: number): Promise<void> {
    if (this.#committed.has(step)) return Promise.resolve();
    try {
      this.#requireLive();
    } catch (error) {
      return handled(Promise.reject(error));
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const list = this.#commitWaiters.get(step) ?? [];
    list.push({ resolve, reject });
    this.#commitWaiters.set(step, list);
    return handled(promise);
  }

  onStop(callback: (event: StopEvent) => void): () => void {
    this.#stopCallbacks.add(callback);
    return () => this.#stopCallbacks.delete(callback);
  }

  async close(): Promise<void> {
    if (this.#stopEvent) throw new DistributedStopError(this.#stopEvent);
    if (this.#closing) return this.#shutdown.promise;
    await this.#right?.drain();
    await this.#striped?.drain().catch(() => {});
    this.#closing = true;
    this.#sendControl({ t: "done" });
    await this.#shutdown.promise;
  }
}

/**
 * Joins a job: starts this rank's data server, authenticates to the coordinator, waits for the rendezvous,
 * connects the ring and waits until every rank did. Rejects with {@link JoinError} (connection/refusal) or
 * `DistributedStopError` (the generation failed while forming).
 *
 * @example
 * ```ts
 * const ctx = await joinJob({ coordinatorUrl: "ws://10.0.0.1:29400/join", jobId, secret: joinSecretFromEnv() });
 * await ctx.allReduceMean(buckets);
 * await ctx.close();
 * ```
 */
export async function joinJob(options: JoinOptions): Promise<RankSession> {
  const session = new RankSession(options);
  await session.join();
  return session;
}
