/**
 * Worker entry of one all-reduce stripe (see `striped_all_reduce.ts`): owns the stripe's two links (a data
 * server its right neighbour dials, and a link it dials to its left neighbour), runs the stripe's
 * {@link StripeRing} over the shared arena, and reports to the rank's thread. Messages: {@link ToStripeWorker}
 * in, {@link FromStripeWorker} out.
 *
 * @module
 */
import { CloseCode, DATA_VALUES_OFFSET, decodeDataHead, MAX_MESSAGE_BYTES } from "./frames.ts";
import { JoinTokenVerifier, mintJoinToken } from "./join_token.ts";
import { type MeshLinks, PolledMesh } from "./polled_mesh.ts";
import { spinPolledUntil } from "./polled_progress.ts";
import { decideStripeLink } from "./stripe_link_auth.ts";
import { PolledRing } from "./polled_ring.ts";
import { ipv4Bytes, PolledListener, PolledSocket, polledSockets } from "./polled_socket.ts";
import {
  acceptRawWebSocket,
  answerUpgrade,
  BufferPool,
  connectRawWebSocket,
  type RawWebSocket,
  requestUpgrade,
  type UpgradeDecision,
  type UpgradeRequest,
} from "./raw_websocket.ts";
import { stripeSegmentBounds } from "./ring_all_reduce.ts";
import { ArenaReductionKernel, WasmReductionKernel } from "./simd_add.ts";
import { COMPLETION_SLOTS, completionReached, SAT_OUT, StripeRing, stripesRunning } from "./stripe_ring.ts";
import { type StripeStart, StripeStartSlots } from "./stripe_start_slots.ts";
import type { FromStripeWorker, ToStripeWorker } from "./striped_all_reduce.ts";

interface StripeWorkerScope {
  onmessage: ((event: MessageEvent<ToStripeWorker>) => void) | null;
  postMessage(message: FromStripeWorker): void;
}

const scope = self as unknown as StripeWorkerScope;
const post = (message: FromStripeWorker) => scope.postMessage(message);

let listener: Deno.TcpListener | null = null;
let setup: Extract<ToStripeWorker, { t: "listen" }> | null = null;
let verifier: JoinTokenVerifier | null = null;
/** The right neighbour (the ring link's dialer), and this rank and world (the mesh links' dialers). */
let expected: ExpectedPeers | null = null;
let rightClaimed = false;
let right: RawWebSocket | null = null;
let left: RawWebSocket | null = null;
let ring: StripeRing | null = null;
/** Polled mode (`connect` with `polled`): the stripe's polled ring, its links, and the arena kernel's codec. */
let polledListener: PolledListener | null = null;
let polledRight = Promise.withResolvers<PolledSocket>();
const polledLinks: PolledSocket[] = [];
let polledRing: PolledRing | null = null;
/** Polled mesh (`connect`'s `polled.mesh`): buckets up to `meshMaxBytes` run on it; its accepted links by rank. */
let polledMesh: PolledMesh | null = null;
let meshMaxBytes = 0;
const meshClaimed = new Set<number>();
const meshAccepted = new Map<number, PolledSocket>();
let meshAllAccepted = Promise.withResolvers<void>();
let arenaKernel: ArenaReductionKernel | null = null;
/** How long to wait in `Atomics.wait` for the next start after finishing (`connect`'s `polled.lingerMs`). */
let lingerMs = 0;
/** Busy-poll time of the polled ring and mesh (`connect`'s `polled.spinMs`). */
let spinMs = 0;
let worldSize = 1;
let completion: Int32Array | null = null;
/** Per collective slot and stripe: [started, finished], ms since the epoch (`StripedAllReduce.bucketTimes`). */
let timeline: Float64Array | null = null;
let stripes = 1;
/** Where the rank's thread publishes collectives, and the next one this stripe has not started. */
let startSlots: StripeStartSlots | null = null;
let nextStart = 0;
let rightReady = Promise.withResolvers<RawWebSocket>();
let stopped = false;
const pool = new BufferPool(16 * 1024 * 1024);

function linkLost(peerRank: number, reason: string): void {
  if (stopped) return;
  stopped = true;
  const error = new Error(reason);
  ring?.abort(error);
  polledRing?.abort(error);
  polledMesh?.abort(error);
  post({ t: "link_lost", peerRank, reason });
}

/**
 * Decides on a stripe link (`decideStripeLink`): from the right neighbour (`/stripe`, either kind) or, with
 * `mesh`, from any other rank (`/stripe-mesh`, polled); the token first, then the claim, recorded here.
 */
async function authorizeStripe(
  request: UpgradeRequest,
  mesh = false,
): Promise<UpgradeDecision & ({ ok: false } | { ok: true; link: "ring" | "mesh"; rank: number })> {
  const url = new URL(request.target, "http://peer");
  if (url.pathname !== "/stripe" && !(mesh && url.pathname === "/stripe-mesh")) {
    return { ok: false, status: 404, reason: "not found" };
  }
  const match = /^Bearer\s+(\S+)$/i.exec((request.headers.get("authorization") ?? "").trim());
  const check = await verifier!.verify(
    request.headers.has("authorization") ? (match ? match[1] : "") : null,
    "peer",
  );
  if (!check.ok) return check;
  const want = await expectedPeer();
  const decision = decideStripeLink(request.target, check.claims.rank, {
    stripe: setup!.stripe,
    generation: want.generation,
    self: want.self,
    right: want.rank,
    worldSize: want.worldSize,
    mesh,
    rightClaimed,
    meshClaimed,
  });
  if (decision.ok && decision.link === "mesh") meshClaimed.add(decision.rank);
  else if (decision.ok) rightClaimed = true;
  return decision;
}

async function acceptPolled(): Promise<void> {
  for (;;) {
    const socket = await polledListener?.accept().catch(() => null);
    if (!socket) return;
    polledLinks.push(socket);
    let meshRank = -1;
    answerUpgrade(socket, async (request) => {
      const decision = await authorizeStripe(request, true);
      if (decision.ok && decision.link === "mesh") meshRank = decision.rank;
      return decision;
    }).then((rest) => {
      if (rest === null) return;
      if (rest.length > 0) throw new Error("the polled stripe link sent data before the collectives started");
      if (meshRank < 0) return polledRight.resolve(socket);
      meshAccepted.set(meshRank, socket);
      if (meshAccepted.size === expected!.worldSize - 1) meshAllAccepted.resolve();
    }).catch(() => socket.close());
  }
}

async function serve(): Promise<void> {
  for await (const conn of listener!) {
    acceptRawWebSocket(conn, authorizeStripe, { pool, maxPayload: MAX_MESSAGE_BYTES }).then((socket) => {
      if (!socket) return;
      right = socket;
      rightReady.resolve(socket);
    }).catch(() => {
      try {
        conn.close();
      } catch { /* closed */ }
    });
  }
}

type ExpectedPeers = { rank: number; generation: number; self: number; worldSize: number };
const expectedWaiters: Array<(value: ExpectedPeers) => void> = [];
function expectedPeer(): Promise<ExpectedPeers> {
  if (expected) return Promise.resolve(expected);
  return new Promise((resolve) => expectedWaiters.push(resolve));
}

async function connect(m: Extract<ToStripeWorker, { t: "connect" }>): Promise<void> {
  const n = m.worldSize;
  const leftRank = (m.rank - 1 + n) % n;
  const rightRank = (m.rank + 1) % n;
  expected = { rank: rightRank, generation: m.generation, self: m.rank, worldSize: n };
  for (const resolve of expectedWaiters.splice(0)) resolve(expected);
  const kernel = new ArenaReductionKernel(setup!.memory);
  completion = new Int32Array(setup!.memory.buffer, m.completionOffset, COMPLETION_SLOTS);
  timeline = new Float64Array(setup!.memory.buffer, m.timelineOffset, COMPLETION_SLOTS * m.stripes * 2);
  startSlots = new StripeStartSlots(setup!.memory.buffer, m.startSlotsOffset);
  stripes = m.stripes;
  worldSize = n;
  const token = await mintJoinToken(setup!.secret, { job: setup!.jobId, role: "peer", rank: m.rank });
  if (m.polled) {
    arenaKernel = kernel;
    lingerMs = m.polled.lingerMs;
    spinMs = m.polled.spinMs;
    const target = `/stripe?gen=${m.generation}&stripe=${setup!.stripe}`;
    const leftSocket = await (async () => {
      const socket = await PolledSocket.dial(m.left.host, m.polled!.leftPort, 60_000);
      polledLinks.push(socket);
      const rest = await requestUpgrade(socket, m.left.host, m.polled!.leftPort, target, {
        Authorization: `Bearer ${token}`,
      });
      if (rest.length > 0) throw new Error("the polled stripe link sent data before the ring started");
      return socket;
    })().catch((error) => {
      throw new Error(
        `Cannot connect polled stripe ${setup!.stripe} to rank ${leftRank} at ${m.left.host}:` +
          `${m.polled!.leftPort}: ${(error as Error).message}`,
      );
    });
    const rightSocket = await polledRight.promise;
    if (m.polled.mesh) await connectMesh(m, m.polled.mesh);
    polledListener?.close();
    polledRing = new PolledRing({
      rank: m.rank,
      worldSize: n,
      generation: m.generation,
      kernel: new WasmReductionKernel(),
      right: rightSocket,
      left: leftSocket,
      spinMs: m.polled.spinMs,
      chunkElements: m.chunkElements,
      failPendingOnLinkLoss: false, // linkLost aborts it
      onLinkLost: (peerRank, reason) => linkLost(peerRank, `stripe ${setup!.stripe} polled ${reason}`),
    });
    return;
  }
  const dialed = await connectRawWebSocket(
    m.left.host,
    m.left.port,
    `/stripe?gen=${m.generation}&stripe=${setup!.stripe}`,
    { Authorization: `Bearer ${token}` },
    { pool, maxPayload: MAX_MESSAGE_BYTES },
  ).catch((error) => {
    throw new Error(
      `Cannot connect stripe ${setup!.stripe} to rank ${leftRank} at ${m.left.host}:${m.left.port}: ` +
        (error as Error).message,
    );
  });
  left = dialed;
  const sending = await rightReady.promise;
  ring = new StripeRing({
    rank: m.rank,
    worldSize: n,
    generation: m.generation,
    chunkElements: m.chunkElements,
    stripe: setup!.stripe,
    stripes: m.stripes,
    kernel,
    receiveOffset: m.receiveOffset,
    send: (head, values, written) => sending.sendParts([head, values], written),
  });
  const r = ring;
  sending.onmessage = () =>
    sending.close(CloseCode.protocolError, "the right neighbour sends nothing on this link");
  sending.onclose = (code, reason) =>
    linkLost(
      rightRank,
      `stripe ${setup!.stripe} link to rank ${rightRank} closed (code ${code}${reason ? ` ${reason}` : ""})`,
    );
  sending.start();
  if (m.receive === "staged") {
    // Measurement variant: read into a private buffer, then copy to where the values belong.
    const staging = new Uint8Array(4 * m.chunkElements);
    let destination: Uint8Array | null = null;
    dialed.receiveSplit({
      headBytes: DATA_VALUES_OFFSET,
      target: (head, bytes) => {
        destination = r.receiveTarget(decodeDataHead(head, bytes));
        return staging.subarray(0, destination.length);
      },
      done: (head, rest) => {
        destination!.set(rest);
        r.receiveDone(decodeDataHead(head, rest.length + DATA_VALUES_OFFSET), destination!);
      },
    });
  } else {
    dialed.receiveSplit({
      headBytes: DATA_VALUES_OFFSET,
      target: (head, bytes) => r.receiveTarget(decodeDataHead(head, bytes)),
      done: (head, rest) => r.receiveDone(decodeDataHead(head, rest.length + DATA_VALUES_OFFSET), rest),
    });
  }
  dialed.onclose = (code, reason) =>
    linkLost(
      leftRank,
      `stripe ${setup!.stripe} link from rank ${leftRank} closed (code ${code}${reason ? ` ${reason}` : ""})`,
    );
  dialed.start();
}

/**
 * Connects this stripe's polled mesh: dials the same stripe of every other rank (its messages arrive there)
 * and waits until every other rank dialed this one (this stripe sends to it there).
 */
async function connectMesh(
  m: Extract<ToStripeWorker, { t: "connect" }>,
  mesh: { maxBytes: number; peers: Array<{ host: string; port: number } | null> },
): Promise<void> {
  const target = `/stripe-mesh?gen=${m.generation}&stripe=${setup!.stripe}`;
  const receive = await Promise.all(mesh.peers.map(async (peer, q) => {
    if (peer === null) return null;
    try {
      // A token of its own per link: a peer's verifier refuses one it saw (the ring link's, to the left rank).
      const token = await mintJoinToken(setup!.secret, { job: setup!.jobId, role: "peer", rank: m.rank });
      const socket = await PolledSocket.dial(peer.host, peer.port, 60_000);
      polledLinks.push(socket);
      const rest = await requestUpgrade(socket, peer.host, peer.port, target, {
        Authorization: `Bearer ${token}`,
      });
      if (rest.length > 0) throw new Error("the mesh link sent data before the collectives started");
      return socket;
    } catch (error) {
      throw new Error(
        `Cannot connect stripe ${setup!.stripe}'s mesh to rank ${q} at ${peer.host}:${peer.port}: ` +
          (error as Error).message,
      );
    }
  }));
  await meshAllAccepted.promise;
  const links: Array<MeshLinks | null> = receive.map((socket, q) =>
    socket === null ? null : { send: meshAccepted.get(q)!, receive: socket }
  );
  meshMaxBytes = mesh.maxBytes;
  polledMesh = new PolledMesh({
    rank: m.rank,
    worldSize: m.worldSize,
    generation: m.generation,
    kernel: new WasmReductionKernel(),
    links,
    spinMs: m.polled!.spinMs,
    chunkElements: m.chunkElements,
    failPendingOnLinkLoss: false, // linkLost aborts it
    onLinkLost: (peerRank, reason) => linkLost(peerRank, `stripe ${setup!.stripe} polled ${reason}`),
  });
}

scope.onmessage = (event: MessageEvent<ToStripeWorker>) => {
  const m = event.data;
  switch (m.t) {
    case "listen":
      setup = m;
      verifier = new JoinTokenVerifier({ secret: m.secret, jobId: m.jobId });
      try {
        listener = Deno.listen({ hostname: m.hostname, port: 0 });
      } catch (error) {
        post({ t: "setup_failed", message: `stripe ${m.stripe} cannot listen: ${(error as Error).message}` });
        return;
      }
      serve().catch(() => {});
      if (m.polled && polledSockets() !== null && ipv4Bytes(m.hostname) !== null) {
        try {
          polledListener = PolledListener.listen(m.hostname);
          acceptPolled().catch(() => {});
        } catch { /* no polled link from this stripe: the job keeps the event-loop stripes */ }
      }
      post({
        t: "listening",
        port: (listener.addr as Deno.NetAddr).port,
        ...(polledListener ? { polledPort: polledListener.port } : {}),
      });
      return;
    case "connect":
      connect(m).then(
        () => post({ t: "connected" }),
        (error) => post({ t: "setup_failed", message: (error as Error).message }),
      );
      return;
    case "start":
      // A message can come after its collective was taken from the slots: only new starts run (and linger).
      if (polledRing) {
        if (nextStart < startSlots!.published) runPolled();
      } else if (ring) startPublished();
      else post({ t: "failed", seq: nextStart, name: "Error", message: "stripe ring not connected" });
      return;
    case "drain":
      (right ? right.drain() : Promise.resolve()).then(() => post({ t: "drained", id: m.id }));
      return;
    case "stop":
      stopped = true;
      ring?.abort(new Error(m.reason));
      polledRing?.abort(new Error(m.reason));
      polledMesh?.abort(new Error(m.reason));
      meshAllAccepted.reject(new Error(m.reason));
      meshAllAccepted = Promise.withResolvers<void>();
      meshAllAccepted.promise.catch(() => {});
      polledListener?.close();
      for (const socket of polledLinks.splice(0)) socket.close();
      polledRight.reject(new Error(m.reason));
      polledRight = Promise.withResolvers<PolledSocket>();
      polledRight.promise.catch(() => {});
      for (const socket of [left, right]) {
        try {
          socket?.close(CloseCode.normal, "rank leaving");
        } catch { /* closing anyway */ }
      }
      try {
        listener?.close();
      } catch { /* closed */ }
      rightReady.reject(new Error(m.reason));
      rightReady = Promise.withResolvers<RawWebSocket>();
      rightReady.promise.catch(() => {});
      post({ t: "stopped" });
      return;
  }
};
rightReady.promise.catch(() => {});
polledRight.promise.catch(() => {});
meshAllAccepted.promise.catch(() => {});

/** Index of collective `seq`'s [started, finished] pair in the timeline. */
function timelineIndex(seq: number): number {
  return 2 * ((seq % COMPLETION_SLOTS) * stripes + setup!.stripe);
}

/**
 * Marks collective `seq` (run by `running` stripes) finished by this stripe: its end time (none when it did
 * not `run` it), then its completion slot; the stripe whose mark finishes it for the rank (the last running
 * one; the last to pass it when none runs it) wakes a rank thread waiting on the slot and posts `done` (for one
 * sleeping in its event loop). A stripe that sits it out never holds it up. The shared slot comes first: the
 * rank's thread may poll it before it reads the message.
 */
function finished(seq: number, running: number, run = true): void {
  const at = timelineIndex(seq);
  if (run) timeline![at + 1] = performance.timeOrigin + performance.now();
  else [timeline![at], timeline![at + 1]] = [Infinity, -Infinity]; // left out of the collective's span
  const slot = seq % COMPLETION_SLOTS;
  const add = run ? 1 : SAT_OUT;
  const word = Atomics.add(completion!, slot, add) + add;
  if (!completionReached(word, running, stripes) || completionReached(word - add, running, stripes)) return;
  Atomics.notify(completion!, slot);
  post({ t: "done", seq });
}

function failed(seq: number, error: Error): void {
  post({ t: "failed", seq, name: error.name, message: error.message });
}

/** The next published collective's descriptor, with its start time recorded. */
function takeStart(): { seq: number; start: StripeStart } {
  const seq = nextStart++;
  timeline![timelineIndex(seq)] = performance.timeOrigin + performance.now();
  return { seq, start: startSlots!.read(seq) };
}

/** Event-loop stripe: starts every published collective on the stripe ring. */
function startPublished(): void {
  while (nextStart < startSlots!.published) {
    const { seq, start } = takeStart();
    // Event-loop stripes run every collective on every stripe (an empty one too: it finishes at once).
    ring!.start(start.bucket, start.offset, start.length, start.bf16Offset).then(
      () => finished(seq, stripes),
      (error) => failed(seq, error as Error),
    );
  }
}

/** Longest a polled stripe busy-polls one collective before its background loop carries on (ms). */
const POLLED_SPIN_CAP_MS = 50;

/**
 * Polled collectives started and not yet marked finished, in start order, each with the engine it runs on
 * (the ring or the mesh, each finishing its own in order) and its index among that engine's collectives.
 */
const polledRuns: Array<
  {
    seq: number;
    offset: number;
    bf16: number | null;
    segments: StripePart[];
    engine: PolledRing | PolledMesh;
    index: number;
    /** The stripes that run it ({@link stripesRunning}). */
    running: number;
  }
> = [];
type StripePart = { start: number; end: number };
/** Collectives started on each polled engine so far (the next one's index). */
const polledStarted = new Map<PolledRing | PolledMesh, number>();

/** Whether the oldest polled collective not marked yet has finished. */
function polledHeadDone(): boolean {
  const head = polledRuns[0];
  return head !== undefined && head.engine.completed > head.index;
}

/**
 * Polled stripe: starts every published collective, busy-polls until they finish (or
 * {@link POLLED_SPIN_CAP_MS} passes: the ring's background loop then carries on, and {@link afterPolled}
 * comes back here), marks them finished, and lingers for the next (`lingerMs` of the connection).
 */
function runPolled(): void {
  while (!stopped) {
    while (nextStart < startSlots!.published) beginPolled();
    spinPolledUntil(
      polledMesh ? [polledRing!, polledMesh] : [polledRing!],
      performance.now() + POLLED_SPIN_CAP_MS,
      spinMs,
    );
    markPolled();
    if (polledRuns.length > 0) return;
    if (!startSlots!.waitForStart(setup!.stripe, nextStart, lingerMs)) return;
  }
}

/**
 * One collective on the polled ring: this stripe's parts of the bucket (bf16 widened first, and rounded back
 * in {@link markPolled}, as the event-loop stripe does).
 */
function beginPolled(): void {
  const { seq, start } = takeStart();
  // Every rank alike: an empty bucket, or one this stripe sits out (`stripesForBucket`), has nothing to send.
  const running = stripesRunning(start.length, start.stripes);
  if (setup!.stripe >= running) return finished(seq, running, false);
  const segments = stripeSegmentBounds(start.length, worldSize, setup!.stripe, start.stripes);
  const bf16 = start.bf16Offset;
  if (bf16 !== null) {
    for (const { start: from, end } of segments) {
      arenaKernel!.unpackBf16(start.offset + 4 * from, bf16 + 2 * from, end - from);
    }
  }
  // The mesh takes buckets up to its size on every rank alike (the ring the others); the same bits either way.
  const engine = polledMesh !== null && start.length * 4 <= meshMaxBytes ? polledMesh : polledRing!;
  const index = polledStarted.get(engine) ?? 0;
  polledStarted.set(engine, index + 1);
  polledRuns.push({ seq, offset: start.offset, bf16, segments, engine, index, running });
  const data = new Float32Array(setup!.memory.buffer, start.offset, start.length);
  engine.start(start.bucket, data, segments).then(afterPolled, (error) => failed(seq, error as Error));
}

/** Marks the polled collectives finished since the last call, in start order (synchronously: no microtask turn). */
function markPolled(): void {
  while (polledHeadDone()) {
    const run = polledRuns.shift()!;
    if (run.bf16 !== null) {
      for (const { start, end } of run.segments) {
        arenaKernel!.packBf16(run.bf16 + 2 * start, run.offset + 4 * start, end - start);
      }
    }
    finished(run.seq, run.running);
  }
}

/** A polled collective finished on the background loop (not while {@link runPolled} spun): carry on there. */
function afterPolled(): void {
  if (!polledHeadDone()) return;
  markPolled();
  if (polledRuns.length === 0) runPolled();
}
