import assert from "node:assert/strict";
import { encodeDataHead, RingPhase } from "../../src/distributed/frames.ts";
import { PolledRing } from "../../src/distributed/polled_ring.ts";
import { PolledListener, PolledSocket, polledSockets } from "../../src/distributed/polled_socket.ts";
import { answerUpgrade, requestUpgrade } from "../../src/distributed/raw_websocket.ts";
import { referenceRingMean, RingOrderError } from "../../src/distributed/ring_all_reduce.ts";
import { WasmReductionKernel } from "../../src/distributed/simd_add.ts";
import { assertEnginesMatchReference, driveAll } from "./fixtures/drive_polled.ts";
import { seededGradients } from "./fixtures/seeded_gradients.ts";

const available = polledSockets() !== null;

/** n ranks' links on loopback: rank r sends on the link rank r+1 dialed to it, receives on the one it dialed. */
async function ringLinks(n: number): Promise<{ right: PolledSocket[]; left: PolledSocket[]; close(): void }> {
  const listeners = Array.from({ length: n }, () => PolledListener.listen("127.0.0.1"));
  const right: PolledSocket[] = [];
  const left: PolledSocket[] = [];
  await Promise.all(listeners.map(async (listener, r) => {
    const [accepted, dialed] = await Promise.all([
      listener.accept(),
      PolledSocket.dial("127.0.0.1", listener.port, 5000),
    ]);
    right[r] = accepted!;
    left[(r + 1) % n] = dialed;
  }));
  for (const listener of listeners) listener.close();
  return {
    right,
    left,
    close: () => [...right, ...left].forEach((s) => s.close()),
  };
}

/** Runs `fn` with `n` ranks' links on loopback, closed afterwards. */
async function withLinks(
  n: number,
  fn: (links: { right: PolledSocket[]; left: PolledSocket[] }) => Promise<void> | void,
): Promise<void> {
  const links = await ringLinks(n);
  try {
    await fn(links);
  } finally {
    links.close();
  }
}

function rings(
  n: number,
  links: { right: PolledSocket[]; left: PolledSocket[] },
  lost: string[] = [],
  chunkElements?: number,
) {
  return Array.from({ length: n }, (_, r) =>
    new PolledRing({
      rank: r,
      worldSize: n,
      generation: 3,
      kernel: new WasmReductionKernel(),
      right: links.right[r],
      left: links.left[r],
      spinMs: 0,
      chunkElements,
      onLinkLost: (peer, reason) => lost.push(`rank ${r} lost ${peer}: ${reason}`),
    }));
}

Deno.test({
  name:
    "polled ring: equals the documented reference bitwise on every rank (2–4 ranks, chunks, empty segments, back to back)",
  ignore: !available,
  async fn() {
    const cases: Array<[number, number | undefined]> = [[2, undefined], [3, undefined], [4, undefined], [
      3,
      4,
    ], [
      4,
      100,
    ]];
    for (const [n, chunkElements] of cases) {
      const links = await ringLinks(n);
      try {
        const all = rings(n, links, [], chunkElements);
        const lengths = [1, 3, 5, 1000, 4099, 65536];
        await assertEnginesMatchReference(all, lengths, 7, `n ${n}, chunks ${chunkElements}`);
        assert.ok(all.every((ring) => ring.inFlight === 0));
      } finally {
        links.close();
      }
    }
  },
});

Deno.test({
  name: "polled ring: spinUntil finishes a collective on this thread when the peers already sent",
  ignore: !available,
  async fn() {
    await withLinks(2, async (links) => {
      const [a, b] = rings(2, links);
      const x = seededGradients(1, 0, 0, 0, 777), y = seededGradients(1, 0, 1, 0, 777);
      const [xa, yb] = [x.slice(), y.slice()];
      const da = a.start(0, xa);
      const db = b.start(0, yb);
      // Each spin moves its own side; alternate until both are done (one thread plays both ranks).
      for (let i = 0; i < 1000 && (a.inFlight > 0 || b.inFlight > 0); i++) {
        a.spinUntil(performance.now() + 0.2);
        b.spinUntil(performance.now() + 0.2);
      }
      await Promise.all([da, db]);
      assert.deepEqual(new Uint32Array(xa.buffer), new Uint32Array(referenceRingMean([x, y]).buffer));
      assert.deepEqual(new Uint32Array(yb.buffer), new Uint32Array(xa.buffer));
      assert.ok(a.bucketTimes.get(0)!.firstChunkMs! > 0);
    });
  },
});

Deno.test({
  name: "polled ring: ranks that start different buckets fail with RingOrderError and report the link",
  ignore: !available,
  async fn() {
    await withLinks(2, async (links) => {
      const lost: string[] = [];
      const [a, b] = rings(2, links, lost);
      const da = a.start(0, new Float32Array(64));
      const db = b.start(1, new Float32Array(64));
      await driveAll([a, b], Promise.allSettled([da, db]));
      const results = await Promise.allSettled([da, db]);
      assert.ok(results.every((r) => r.status === "rejected"));
      assert.ok(results.some((r) => r.status === "rejected" && r.reason instanceof RingOrderError));
      assert.match(lost.join("\n"), /bucket/);
      await assert.rejects(a.start(2, new Float32Array(4)));
    });
  },
});

Deno.test({
  name: "polled ring: a peer that closes fails the collective and reports which rank was lost",
  ignore: !available,
  async fn() {
    await withLinks(2, async (links) => {
      const lost: string[] = [];
      const [a] = rings(2, links, lost);
      const done = a.start(0, new Float32Array(1024));
      links.right[1].close(); // rank 1's sending side: rank 0 receives nothing more
      assert.equal(a.spinUntil(performance.now() + 2000), false);
      await assert.rejects(done, /closed/);
      assert.match(lost[0], /rank 0 lost 1/);
    });
  },
});

Deno.test({
  name: "polled ring: a message from another generation is refused",
  ignore: !available,
  async fn() {
    await withLinks(2, async (links) => {
      const lost: string[] = [];
      const [a] = rings(2, links, lost);
      const done = a.start(0, new Float32Array(8));
      const head = encodeDataHead({
        generation: 2,
        collective: 0,
        bucket: 0,
        bucketLength: 8,
        phase: RingPhase.reduceScatter,
        step: 0,
        segment: 1,
        offset: 4,
        elementCount: 4,
      });
      const message = new Uint8Array(2 + head.length + 16);
      message.set([0x82, head.length + 16]);
      message.set(head, 2);
      links.right[1].trySend(message);
      a.spinUntil(performance.now() + 2000);
      await assert.rejects(done, /generation 2 arrived in generation 3/);
      assert.equal(lost.length, 1);
    });
  },
});

Deno.test({
  name:
    "polled ring: a collective started in the task where the previous one finished inside start() still completes",
  ignore: !available,
  async fn() {
    await withLinks(2, async (links) => {
      // Rank 1 is played by hand: its two messages for rank 0's collective `seq` (8 values, 2 ranks).
      const fromRank1 = (seq: number) =>
        [
          { phase: RingPhase.reduceScatter, segment: 1, offset: 4 },
          { phase: RingPhase.allGather, segment: 0, offset: 0 },
        ].map(({ phase, segment, offset }) => {
          const head = encodeDataHead({
            generation: 3,
            collective: seq,
            bucket: seq,
            bucketLength: 8,
            phase,
            step: 0,
            segment,
            offset,
            elementCount: 4,
          });
          const message = new Uint8Array(2 + head.length + 16);
          message.set([0x82, head.length + 16]);
          message.set(head, 2);
          message.set(new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer), 2 + head.length);
          return message;
        });
      const sendAll = (messages: Uint8Array[]) => {
        for (const message of messages) assert.equal(links.right[1].trySend(message), message.length);
      };
      const [a] = rings(2, links);
      sendAll(fromRank1(0));
      await new Promise((r) => setTimeout(r, 20)); // on a's socket before it starts
      const first = a.start(0, new Float32Array(8));
      assert.equal(a.completed, 1, "collective 0 finished inside start(): its messages were there");
      // Same task: collective 1, whose messages come later. Only the background loop can carry it.
      const second = a.start(1, new Float32Array(8));
      await first;
      await new Promise((r) => setTimeout(r, 0));
      sendAll(fromRank1(1));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finished = await Promise.race([
        second.then(() => true),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), 5000)),
      ]);
      clearTimeout(timer);
      assert.ok(finished, "collective 1 was left without a background loop");
    });
  },
});

Deno.test({
  name: "polled sockets carry the WebSocket upgrade, and a refusal reaches the dialer",
  ignore: !available,
  async fn() {
    const listener = PolledListener.listen("127.0.0.1");
    try {
      for (const ok of [true, false]) {
        const [accepted, dialed] = await Promise.all([
          listener.accept(),
          PolledSocket.dial("127.0.0.1", listener.port, 5000),
        ]);
        const answered = answerUpgrade(accepted!, (request) =>
          Promise.resolve(
            ok && request.headers.get("authorization") === "Bearer t"
              ? { ok: true as const }
              : { ok: false as const, status: 403, reason: "no" },
          ));
        const requested = requestUpgrade(dialed, "127.0.0.1", listener.port, "/polled?gen=0", {
          Authorization: ok ? "Bearer t" : "Bearer x",
        });
        if (ok) {
          const [rest, leftover] = await Promise.all([answered, requested]);
          assert.equal(rest?.length, 0);
          assert.equal(leftover.length, 0);
        } else {
          await assert.rejects(requested, /HTTP 403: no/);
          assert.equal(await answered, null);
        }
        accepted!.close();
        dialed.close();
      }
    } finally {
      listener.close();
    }
  },
});

Deno.test({
  name: "polled ring: refuses a chunk size out of range",
  ignore: !available,
  async fn() {
    await withLinks(2, (links) => {
      assert.throws(() => rings(2, links, [], 2), /chunkElements is out of range: current value is 2/);
    });
  },
});
