import assert from "node:assert/strict";
// The pure-JS entry point: the package root (node-index.js) reads an environment variable at import,
// which would make every `orion` command need --allow-env.
import { Packr } from "msgpackr/pack";
import { encodeControl } from "../../src/distributed/control_messages.ts";
import { Coordinator } from "../../src/distributed/coordinator.ts";
import {
  encodeControlFrame,
  encodeDataFrame,
  FRAME_HEADER_BYTES,
  MAX_MESSAGE_BYTES,
  RingPhase,
} from "../../src/distributed/frames.ts";
import { generateJoinSecret, mintJoinToken } from "../../src/distributed/join_token.ts";
import { joinJob } from "../../src/distributed/rank_client.ts";

/** xorshift32, seeded: the fuzz corpus is the same on every run. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return {
    int: (n: number) => next() % n,
    bytes: (n: number) => Uint8Array.from({ length: n }, () => next() & 0xff),
  };
}

const packr = new Packr({ useRecords: false });

/** One malformed message of a seeded kind; never a valid rank hello (so fuzzing cannot join the rendezvous). */
function malformed(r: ReturnType<typeof rng>): { kind: string; data: Uint8Array | string } {
  const agentHello = encodeControl({
    t: "hello",
    role: "agent",
    host: "fuzz",
    advertiseHost: null,
    nodeRank: null,
    localRank: null,
    dataPort: null,
    pid: 1,
  });
  const withHeader = (payload: Uint8Array, patch: (v: DataView) => void) => {
    const frame = encodeControlFrame(payload);
    patch(new DataView(frame.buffer));
    return frame;
  };
  switch (r.int(11)) {
    case 0:
      return { kind: "random bytes", data: r.bytes(r.int(64)) };
    case 1:
      return { kind: "garbage msgpack", data: encodeControlFrame(r.bytes(1 + r.int(200))) };
    case 2:
      return {
        kind: "bad length field",
        data: withHeader(r.bytes(8), (v) => v.setUint32(8, r.int(1 << 30), true)),
      };
    case 3:
      return {
        kind: "bad version",
        data: withHeader(packr.pack({ t: "heartbeat" }), (v) => v.setUint16(4, 2 + r.int(100), true)),
      };
    case 4:
      return {
        kind: "bad magic",
        data: withHeader(packr.pack({ t: "heartbeat" }), (v) => v.setUint32(0, r.int(2 ** 32), true)),
      };
    case 5:
      return {
        kind: "bad type",
        data: withHeader(packr.pack({ t: "heartbeat" }), (v) => v.setUint16(6, 3 + r.int(1000), true)),
      };
    case 6: {
      const wrong = [
        { t: "barrier", seq: 0, name: "x" },
        { t: "hello", role: "rank", host: "h" },
        {
          t: "hello",
          role: "rank",
          host: "",
          advertiseHost: null,
          nodeRank: null,
          localRank: null,
          dataPort: 0,
          pid: 1,
        },
        { t: "ckpt_part", step: -1, rank: 0 },
        { t: "nope" },
        [1, 2, 3],
        "hello",
        {
          t: "hello",
          role: "agent",
          host: "h",
          advertiseHost: null,
          nodeRank: null,
          localRank: null,
          dataPort: null,
          pid: 1,
          extra: 1,
        },
      ];
      return { kind: "schema violation", data: encodeControlFrame(packr.pack(wrong[r.int(wrong.length)])) };
    }
    case 7:
      return {
        kind: "data frame to coordinator",
        data: new Uint8Array(encodeDataFrame({
          generation: 0,
          collective: 0,
          bucket: 0,
          bucketLength: 4,
          phase: RingPhase.reduceScatter,
          step: 0,
          segment: 0,
          offset: 0,
          elementCount: 4,
        }, new Float32Array(4))),
      };
    case 8:
      return { kind: "text", data: "x".repeat(r.int(100)) };
    case 9: {
      // Mutated agent hello: flip 1–4 bytes in the payload (may stay valid: then it is just an agent).
      const copy = agentHello.slice();
      for (let i = 0, n = 1 + r.int(4); i < n; i++) {
        const at = FRAME_HEADER_BYTES + r.int(copy.length - FRAME_HEADER_BYTES);
        copy[at] ^= 1 << r.int(8);
      }
      return { kind: "mutated agent hello", data: copy };
    }
    default:
      return { kind: "truncated frame", data: agentHello.slice(0, r.int(agentHello.length)) };
  }
}

Deno.test("fuzz: thousands of malformed frames close only their connection; the coordinator keeps serving", async () => {
  const secret = generateJoinSecret();
  let logged = 0;
  const coordinator = await Coordinator.start({
    jobId: "fuzz",
    secret,
    worldSize: 2,
    hostname: "127.0.0.1",
    log: () => logged++,
  });
  try {
    const r = rng(20240611);
    const total = 2000;
    const kinds = new Map<string, number>();
    const closeCodes = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < total) {
        next++;
        const { kind, data } = malformed(r);
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
        const token = await mintJoinToken(secret, {
          job: "fuzz",
          role: kind.includes("agent hello") ? "agent" : "rank",
        });
        const socket = new WebSocket(coordinator.url(), { headers: { authorization: `Bearer ${token}` } });
        const closed = Promise.withResolvers<number>();
        socket.onclose = (e) => closed.resolve(e.code);
        socket.onerror = () => {};
        socket.onopen = () => {
          socket.send(data);
          // A frame that happened to be valid leaves the socket open: close it ourselves after a moment.
          setTimeout(() => socket.readyState === WebSocket.OPEN && socket.close(1000), 150);
        };
        const code = await closed.promise;
        closeCodes.set(code, (closeCodes.get(code) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    // Two oversized messages (over the 4 MiB limit) as well.
    for (let i = 0; i < 2; i++) {
      const token = await mintJoinToken(secret, { job: "fuzz", role: "rank" });
      const socket = new WebSocket(coordinator.url(), { headers: { authorization: `Bearer ${token}` } });
      const closed = Promise.withResolvers<number>();
      socket.onclose = (e) => closed.resolve(e.code);
      socket.onopen = () => socket.send(new Uint8Array(MAX_MESSAGE_BYTES + 1 + i * 1000));
      assert.equal(await closed.promise, 4400);
    }
    console.log(
      `fuzz: ${total + 2} frames, kinds ${JSON.stringify(Object.fromEntries(kinds))}, ` +
        `close codes ${
          JSON.stringify(Object.fromEntries(closeCodes))
        }, malformed=${coordinator.stats.malformedFrames}`,
    );
    assert.ok(coordinator.stats.malformedFrames >= total * 0.9, `${coordinator.stats.malformedFrames}`);
    assert.ok((closeCodes.get(4400) ?? 0) >= total * 0.9);
    assert.equal(coordinator.phase, "rendezvous");
    assert.equal(coordinator.generation, 0);
    assert.ok(logged > 0);

    // Still serving: a real 2-rank job forms, all-reduces and completes.
    const join = (i: number) =>
      joinJob({
        coordinatorUrl: coordinator.url(),
        jobId: "fuzz",
        secret,
        localRank: i,
        dataHostname: "127.0.0.1",
        advertiseHost: "127.0.0.1",
        log: () => {},
      });
    const sessions = await Promise.all([join(0), join(1)]);
    const data = sessions.map((s) => new Float32Array(10_000).fill(s.rank));
    await Promise.all(sessions.map((s, i) => s.allReduceMean([data[i]])));
    for (const d of data) assert.ok(d.every((v) => v === 0.5));
    await Promise.all(sessions.map((s) => s.close()));
    assert.equal((await coordinator.finished).status, "completed");
  } finally {
    await coordinator.close();
  }
});
