import assert from "node:assert/strict";
import { COMPLETION_SLOTS } from "../../src/distributed/stripe_ring.ts";
import { StripeStartSlots } from "../../src/distributed/stripe_start_slots.ts";

Deno.test("start slots: descriptors read back as published, bf16 offsets included, across the slot wrap", () => {
  const slots = new StripeStartSlots(new SharedArrayBuffer(StripeStartSlots.BYTES + 64), 64);
  assert.equal(slots.published, 0);
  for (let seq = 0; seq < COMPLETION_SLOTS + 5; seq++) {
    const start = {
      bucket: seq % 7,
      offset: 4 * seq,
      length: seq * 3 + 1,
      bf16Offset: seq % 2 ? 2 * seq : null,
      stripes: 1 + seq % 4,
    };
    slots.publish(seq, start);
    assert.equal(slots.published, seq + 1);
    assert.deepEqual(slots.read(seq), start);
  }
});

Deno.test("start slots: waitForStart returns at once when a start is published, else after the wait", () => {
  const slots = new StripeStartSlots(new SharedArrayBuffer(StripeStartSlots.BYTES), 0);
  slots.publish(0, { bucket: 0, offset: 0, length: 4, bf16Offset: null, stripes: 1 });
  const t0 = performance.now();
  assert.equal(slots.waitForStart(2, 0, 1000), true); // collective 0 is there for a stripe that has not run it
  assert.ok(performance.now() - t0 < 500);
  assert.equal(slots.waitForStart(2, 1, 15), false); // none past 0: times out
  assert.ok(performance.now() - t0 >= 15);
  assert.equal(slots.lingering(2), false, "the flag is down after the wait");
});

Deno.test("start slots: a stripe lingering on another thread is woken by publish and shows its flag", async () => {
  const buffer = new SharedArrayBuffer(StripeStartSlots.BYTES);
  const slots = new StripeStartSlots(buffer, 0);
  const source = `
    import { StripeStartSlots } from ${
    JSON.stringify(new URL("../../src/distributed/stripe_start_slots.ts", import.meta.url).href)
  };
    self.onmessage = (e) => {
      const slots = new StripeStartSlots(e.data, 0);
      const t0 = performance.now();
      const woke = slots.waitForStart(1, 0, 10_000);
      self.postMessage({ woke, ms: performance.now() - t0, read: slots.read(0) });
    };`;
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  try {
    const reply = new Promise<{ woke: boolean; ms: number; read: unknown }>((resolve) =>
      worker.onmessage = (e) => resolve(e.data)
    );
    worker.postMessage(buffer);
    const deadline = performance.now() + 10_000;
    while (!slots.lingering(1)) {
      assert.ok(performance.now() < deadline, "the worker never raised its lingering flag");
      await new Promise((r) => setTimeout(r, 1));
    }
    slots.publish(0, { bucket: 5, offset: 64, length: 8, bf16Offset: 128, stripes: 3 });
    const { woke, ms, read } = await reply;
    assert.equal(woke, true);
    assert.ok(ms < 10_000, `woken by publish, not by the timeout (waited ${ms} ms)`);
    assert.deepEqual(read, { bucket: 5, offset: 64, length: 8, bf16Offset: 128, stripes: 3 });
    assert.equal(slots.lingering(1), false);
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
});
