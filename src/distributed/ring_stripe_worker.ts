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
import { acceptRawWebSocket, BufferPool, connectRawWebSocket, type RawWebSocket } from "./raw_websocket.ts";
import { ArenaReductionKernel } from "./simd_add.ts";
import { COMPLETION_SLOTS, StripeRing } from "./stripe_ring.ts";
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
let expected: { rank: number; generation: number } | null = null;
let rightClaimed = false;
let right: RawWebSocket | null = null;
let left: RawWebSocket | null = null;
let ring: StripeRing | null = null;
let completion: Int32Array | null = null;
/** Per collective slot and stripe: [started, finished], ms since the epoch (`StripedAllReduce.bucketTimes`). */
let timeline: Float64Array | null = null;
let stripes = 1;
let rightReady = Promise.withResolvers<RawWebSocket>();
let stopped = false;
const pool = new BufferPool(16 * 1024 * 1024);

function linkLost(peerRank: number, reason: string): void {
  if (stopped) return;
  stopped = true;
  const error = new Error(reason);
  ring?.abort(error);
  post({ t: "link_lost", peerRank, reason });
}

async function serve(): Promise<void> {
  for await (const conn of listener!) {
    acceptRawWebSocket(conn, async (request) => {
      const url = new URL(request.target, "http://peer");
      if (url.pathname !== "/stripe") return { ok: false, status: 404, reason: "not found" };
      const match = /^Bearer\s+(\S+)$/i.exec((request.headers.get("authorization") ?? "").trim());
      const check = await verifier!.verify(
        request.headers.has("authorization") ? (match ? match[1] : "") : null,
        "peer",
      );
      if (!check.ok) return check;
      const want = await expectedPeer();
      if (
        check.claims.rank !== want.rank || url.searchParams.get("gen") !== String(want.generation) ||
        url.searchParams.get("stripe") !== String(setup!.stripe) || rightClaimed
      ) {
        return {
          ok: false,
          status: 403,
          reason:
            `stripe ${setup!.stripe} connection from rank ${check.claims.rank} refused: expected rank ` +
            `${want.rank} of generation ${want.generation}, stripe ${setup!.stripe}, once`,
        };
      }
      rightClaimed = true;
      return { ok: true };
    }, { pool, maxPayload: MAX_MESSAGE_BYTES }).then((socket) => {
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

const expectedWaiters: Array<(value: { rank: number; generation: number }) => void> = [];
function expectedPeer(): Promise<{ rank: number; generation: number }> {
  if (expected) return Promise.resolve(expected);
  return new Promise((resolve) => expectedWaiters.push(resolve));
}

async function connect(m: Extract<ToStripeWorker, { t: "connect" }>): Promise<void> {
  const n = m.worldSize;
  const leftRank = (m.rank - 1 + n) % n;
  const rightRank = (m.rank + 1) % n;
  expected = { rank: rightRank, generation: m.generation };
  for (const resolve of expectedWaiters.splice(0)) resolve(expected);
  const kernel = new ArenaReductionKernel(setup!.memory);
  completion = new Int32Array(setup!.memory.buffer, m.completionOffset, COMPLETION_SLOTS);
  timeline = new Float64Array(setup!.memory.buffer, m.timelineOffset, COMPLETION_SLOTS * m.stripes * 2);
  stripes = m.stripes;
  const token = await mintJoinToken(setup!.secret, { job: setup!.jobId, role: "peer", rank: m.rank });
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
      post({ t: "listening", port: (listener.addr as Deno.NetAddr).port });
      return;
    case "connect":
      connect(m).then(
        () => post({ t: "connected" }),
        (error) => post({ t: "setup_failed", message: (error as Error).message }),
      );
      return;
    case "start":
      if (!ring) {
        post({ t: "failed", seq: m.seq, name: "Error", message: "stripe ring not connected" });
        return;
      }
      {
        const at = 2 * ((m.seq % COMPLETION_SLOTS) * stripes + setup!.stripe);
        timeline![at] = performance.timeOrigin + performance.now();
        ring.start(m.bucket, m.offset, m.length, m.bf16Offset ?? null).then(
          () => {
            timeline![at + 1] = performance.timeOrigin + performance.now();
            // The shared slot first: the rank's thread may poll it before it reads this message.
            Atomics.add(completion!, m.seq % COMPLETION_SLOTS, 1);
            Atomics.notify(completion!, m.seq % COMPLETION_SLOTS); // a rank thread may wait on it
            post({ t: "done", seq: m.seq });
          },
          (error) =>
            post({ t: "failed", seq: m.seq, name: (error as Error).name, message: (error as Error).message }),
        );
      }
      return;
    case "drain":
      (right ? right.drain() : Promise.resolve()).then(() => post({ t: "drained", id: m.id }));
      return;
    case "stop":
      stopped = true;
      ring?.abort(new Error(m.reason));
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
