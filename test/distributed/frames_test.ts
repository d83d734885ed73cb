import assert from "node:assert/strict";
import { decodeToCoordinator, encodeControl } from "../../src/distributed/control_messages.ts";
import {
  closeReason,
  decodeFrame,
  encodeControlFrame,
  encodeDataFrame,
  FrameError,
  FrameType,
  MAX_CHUNK_ELEMENTS,
  MAX_MESSAGE_BYTES,
  RingPhase,
} from "../../src/distributed/frames.ts";

const header = {
  generation: 3,
  collective: 9,
  bucket: 2,
  bucketLength: 100,
  phase: RingPhase.allGather,
  step: 1,
  segment: 4,
  offset: 20,
  elementCount: 5,
};

Deno.test("frames: data and control frames round-trip", () => {
  const values = new Float32Array([1, -2, 3.5, NaN, -0]);
  const frame = decodeFrame(encodeDataFrame(header, values));
  assert.equal(frame.type, FrameType.data);
  if (frame.type !== FrameType.data) return;
  assert.deepEqual(frame.header, header);
  assert.deepEqual(new Uint32Array(frame.values.slice().buffer), new Uint32Array(values.buffer));
  const hello = {
    t: "hello" as const,
    role: "rank" as const,
    host: "h",
    advertiseHost: null,
    nodeRank: 1,
    localRank: 0,
    dataPort: 4000,
    pid: 12,
  };
  assert.deepEqual(decodeToCoordinator(encodeControl(hello)), hello);
});

Deno.test("frames: every malformed shape is a FrameError with a reason", () => {
  const good = new Uint8Array(encodeDataFrame(header, new Float32Array(5)));
  const patch = (f: (v: DataView, b: Uint8Array) => void) => {
    const copy = good.slice();
    f(new DataView(copy.buffer), copy);
    return copy.buffer;
  };
  const cases: Array<[unknown, RegExp]> = [
    ["text", /text message/],
    [new ArrayBuffer(3), /too short/],
    [patch((v) => v.setUint32(0, 0xdeadbeef, true)), /bad magic/],
    [patch((v) => v.setUint16(4, 2, true)), /version 2/],
    [patch((v) => v.setUint16(6, 7, true)), /unknown frame type 7/],
    [patch((v) => v.setUint32(8, 1, true)), /disagrees/],
    [patch((v) => v.setUint32(12, 1, true)), /reserved/],
    [patch((v) => v.setUint8(16 + 16, 9)), /ring phase/],
    [patch((v) => v.setUint32(16 + 28, 6, true)), /elementCount 6/],
    [patch((v) => v.setUint32(16 + 24, 99, true)), /overruns/],
    [new ArrayBuffer(MAX_MESSAGE_BYTES + 1), /too large/],
    [encodeControlFrame(new Uint8Array([0xc1])).buffer, /.*/],
  ];
  for (const [message, reason] of cases) {
    assert.throws(() => {
      const frame = decodeFrame(message);
      if (frame.type === FrameType.control) decodeToCoordinator(message);
    }, (e: unknown) => e instanceof FrameError && reason.test(e.reason));
  }
  assert.throws(
    () =>
      encodeDataFrame(
        { ...header, elementCount: MAX_CHUNK_ELEMENTS + 1 },
        new Float32Array(MAX_CHUNK_ELEMENTS + 1),
      ),
    FrameError,
  );
  assert.ok(
    encodeDataFrame({
      ...header,
      bucketLength: MAX_CHUNK_ELEMENTS,
      offset: 0,
      elementCount: MAX_CHUNK_ELEMENTS,
    }, new Float32Array(MAX_CHUNK_ELEMENTS)).byteLength <= MAX_MESSAGE_BYTES,
  );
});

Deno.test("frames: close reasons fit the 123-byte limit", () => {
  assert.equal(closeReason("short"), "short");
  const long = closeReason("é".repeat(200));
  assert.ok(new TextEncoder().encode(long).length <= 123);
});
