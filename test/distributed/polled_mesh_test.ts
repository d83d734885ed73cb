import assert from "node:assert/strict";
import { encodeDataHead, RingPhase } from "../../src/distributed/frames.ts";
import { type MeshLinks, PolledMesh } from "../../src/distributed/polled_mesh.ts";
import { PolledRing } from "../../src/distributed/polled_ring.ts";
import { spinPolledUntil } from "../../src/distributed/polled_progress.ts";
import { PolledListener, PolledSocket, polledSockets } from "../../src/distributed/polled_socket.ts";
import { RingOrderError } from "../../src/distributed/ring_all_reduce.ts";
import { jsReductionKernel, WasmReductionKernel } from "../../src/distributed/simd_add.ts";
import { assertEnginesMatchReference } from "./fixtures/drive_polled.ts";
import { assertSameBits } from "./fixtures/same_bits.ts";
import { seededGradients } from "./fixtures/seeded_gradients.ts";

const available = polledSockets() !== null;

/**
 * n ranks' mesh links on loopback: for every ordered pair (r, q), rank q dials rank r and rank r sends to q on
 * the accepted socket. `links[r][q]` is rank r's pair of links to q.
 */
async function meshLinks(n: number): Promise<{ links: Array<Array<MeshLinks | null>>; close(): void }> {
  const links: Array<Array<MeshLinks | null>> = Array.from(
    { length: n },
    (_, r) => Array.from({ length: n }, (_, q) => (q === r ? null : ({} as MeshLinks))),
  );
  const sockets: PolledSocket[] = [];
  const listener = PolledListener.listen("127.0.0.1");
  try {
    for (let r = 0; r < n; r++) {
      for (let q = 0; q < n; q++) {
        if (q === r) continue;
        const [accepted, dialed] = await Promise.all([
          listener.accept(),
          PolledSocket.dial("127.0.0.1", listener.port, 5000),
        ]);
        links[r][q]!.send = accepted!;
        links[q][r]!.receive = dialed;
        sockets.push(accepted!, dialed);
      }
    }
  } finally {
    listener.close();
  }
  return { links, close: () => sockets.forEach((s) => s.close()) };
}

function meshes(
  n: number,
  links: Array<Array<MeshLinks | null>>,
  lost: string[] = [],
  chunkElements?: number,
): PolledMesh[] {
  return Array.from({ length: n }, (_, r) =>
    new PolledMesh({
      rank: r,
      worldSize: n,
      generation: 3,
      kernel: r % 2 === 0 ? new WasmReductionKernel() : jsReductionKernel,
      links: links[r],
      spinMs: 0,
      chunkElements,
      onLinkLost: (peer, reason) => lost.push(`rank ${r} lost ${peer}: ${reason}`),
    }));
}

Deno.test({
  name:
    "polled mesh: equals the ring's reference bitwise on every rank (3–5 ranks, chunks, empty segments, back to back)",
  ignore: !available,
  async fn() {
    const cases: Array<[number, number | undefined]> = [
      [3, undefined],
      [4, undefined],
      [5, undefined],
      [
        3,
        4,
      ],
      [4, 100],
      [5, 8],
    ];
    for (const [n, chunkElements] of cases) {
      const { links, close } = await meshLinks(n);
      try {
        const all = meshes(n, links, [], chunkElements);
        const lengths = [1, 3, 5, 13, 1000, 4099, 65536];
        await assertEnginesMatchReference(all, lengths, 11, `n ${n}, chunks ${chunkElements}`);
        assert.ok(all.every((mesh) => mesh.inFlight === 0 && !mesh.busy));
        assert.deepEqual(all.map((m) => m.completed), all.map(() => lengths.length));
      } finally {
        close();
      }
    }
  },
});

Deno.test({
  name: "polled mesh: a rank's ring and mesh move together in one spin and agree bitwise with each other",
  ignore: !available,
  async fn() {
    const n = 3;
    const mesh = await meshLinks(n);
    // The ring's links: rank r sends to r + 1 on a link r + 1 dialed.
    const listener = PolledListener.listen("127.0.0.1");
    const right: PolledSocket[] = [];
    const left: PolledSocket[] = [];
    for (let r = 0; r < n; r++) {
      const [accepted, dialed] = await Promise.all([
        listener.accept(),
        PolledSocket.dial("127.0.0.1", listener.port, 5000),
      ]);
      right[r] = accepted!;
      left[(r + 1) % n] = dialed;
    }
    listener.close();
    try {
      const meshAll = meshes(n, mesh.links);
      const ringAll = Array.from({ length: n }, (_, r) =>
        new PolledRing({
          rank: r,
          worldSize: n,
          generation: 3,
          kernel: new WasmReductionKernel(),
          right: right[r],
          left: left[r],
          spinMs: 0,
          onLinkLost: () => {},
        }));
      const inputs = Array.from({ length: n }, (_, r) => seededGradients(5, n, r, 0, 777));
      const viaMesh = inputs.map((x) => x.slice());
      const viaRing = inputs.map((x) => x.slice());
      const done = Promise.all([
        ...meshAll.map((m, r) => m.start(0, viaMesh[r])),
        ...ringAll.map((g, r) => g.start(0, viaRing[r])),
      ]);
      // Rank 0's thread spins its ring and mesh together; the others move in the background meanwhile.
      const deadline = performance.now() + 10_000;
      let settled = false;
      done.then(() => settled = true, () => settled = true);
      while (!settled && performance.now() < deadline) {
        for (let r = 1; r < n; r++) {
          meshAll[r].progress();
          ringAll[r].progress();
        }
        spinPolledUntil([ringAll[0], meshAll[0]], performance.now() + 1, 0);
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      await done;
      for (let r = 0; r < n; r++) assertSameBits(viaMesh[r], viaRing[r], `rank ${r}`);
    } finally {
      mesh.close();
      [...right, ...left].forEach((s) => s.close());
    }
  },
});

/** One message as rank `from` would send it to rank 0 (8 values, 3 ranks: segments of 4, 4, 0). */
function handMessage(
  fields: { generation?: number; collective?: number; phase: number; segment: number; offset: number },
) {
  const head = encodeDataHead({
    generation: fields.generation ?? 3,
    collective: fields.collective ?? 0,
    bucket: 0,
    bucketLength: 8,
    phase: fields.phase as RingPhase,
    step: 0,
    segment: fields.segment,
    offset: fields.offset,
    elementCount: 4,
  });
  const message = new Uint8Array(2 + head.length + 16);
  message.set([0x82, head.length + 16]);
  message.set(head, 2);
  message.set(new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer), 2 + head.length);
  return message;
}

Deno.test({
  name: "polled mesh: a message out of schedule or from another generation is refused with the sender named",
  ignore: !available,
  async fn() {
    for (
      const [fields, pattern] of [
        [
          { phase: RingPhase.allGather, segment: 1, offset: 4 },
          /expects phase 0, step 0, segment 1, offset 4/,
        ],
        [{ phase: RingPhase.reduceScatter, segment: 1, offset: 4, generation: 2 }, /generation 2 arrived/],
        [{ phase: RingPhase.reduceScatter, segment: 1, offset: 4, collective: 1 }, /collective #1 arrived/],
      ] as const
    ) {
      const { links, close } = await meshLinks(3);
      try {
        const lost: string[] = [];
        const [a] = meshes(3, links, lost);
        const done = a.start(0, new Float32Array(8));
        links[2][0]!.send.trySend(handMessage(fields)); // as rank 2
        assert.equal(a.spinUntil(performance.now() + 2000), false);
        await assert.rejects(
          done,
          (error: Error) => error instanceof RingOrderError && pattern.test(error.message),
        );
        assert.equal(lost.length, 1);
        assert.match(lost[0], /^rank 0 lost 2: bad data from rank 2/);
        await assert.rejects(a.start(1, new Float32Array(4)));
      } finally {
        close();
      }
    }
  },
});

Deno.test({
  name: "polled mesh: a peer that closes fails the collective and reports which rank was lost",
  ignore: !available,
  async fn() {
    const { links, close } = await meshLinks(3);
    try {
      const lost: string[] = [];
      const [a] = meshes(3, links, lost);
      const done = a.start(0, new Float32Array(1024));
      links[1][0]!.send.close(); // rank 1's sending side to rank 0
      assert.equal(a.spinUntil(performance.now() + 2000), false);
      await assert.rejects(done, /closed/);
      assert.match(lost[0], /rank 0 lost 1: mesh link from rank 1 closed/);
    } finally {
      close();
    }
  },
});

Deno.test("polled mesh: links that do not fit the world are refused", () => {
  assert.throws(
    () =>
      new PolledMesh({
        rank: 0,
        worldSize: 3,
        generation: 0,
        kernel: jsReductionKernel,
        links: [null, null],
        spinMs: 0,
        onLinkLost: () => {},
      }),
    /expected 3 entries, null at rank 0 only/,
  );
});
