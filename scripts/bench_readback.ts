/**
 * Read-back latency of Deno's WebGPU: how long `GPUBuffer.mapAsync` takes to resolve when the GPU has nothing
 * left to do (the copy into the mappable buffer already finished), for several sizes, next to
 * `GPUQueue.onSubmittedWorkDone` on an idle queue. This is the floor of every synchronous GPU→host transfer
 * (a data-parallel rank's gradient read-back, `Gpu.sync`), whatever the GPU — unless the bytes are taken when
 * the `mapAsync` call returns (`Gpu.read` rows, early maps on vs off; `src/gpu/early_map.ts`).
 *
 * Usage: deno run --allow-read --allow-env --allow-ffi scripts/bench_readback.ts [--reps 15] [--json PATH]
 * Prints one line per measurement and a JSON line last.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Gpu } from "../src/gpu/gpu.ts";

const args = parseArgs({
  options: { reps: { type: "string", default: "15" }, json: { type: "string" } },
});
const reps = Number(args.values.reps);
const adapter = await navigator.gpu.requestAdapter();
if (!adapter) throw new Error("Cannot measure read-back latency as no WebGPU adapter was found");
const device = await adapter.requestDevice();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const rows: { what: string; bytes: number; medianMs: number; minMs: number; maxMs: number }[] = [];
const record = (what: string, bytes: number, ms: number[]) => {
  const row = { what, bytes, medianMs: median(ms), minMs: Math.min(...ms), maxMs: Math.max(...ms) };
  rows.push(row);
  console.log(
    `${what} (${bytes} B): median ${row.medianMs.toFixed(2)} ms, min ${row.minMs.toFixed(2)}, max ${
      row.maxMs.toFixed(2)
    }`,
  );
};

{
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    device.queue.submit([device.createCommandEncoder().finish()]);
    await device.queue.onSubmittedWorkDone(); // the queue is idle from here on
    const t0 = performance.now();
    await device.queue.onSubmittedWorkDone();
    ms.push(performance.now() - t0);
  }
  record("onSubmittedWorkDone, idle queue", 0, ms);
}
for (const bytes of [256, 1 << 20, 16 << 20]) {
  const src = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const dst = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(src, 0, dst, 0, bytes);
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone(); // the copy is done: mapping has nothing to wait for
    const t0 = performance.now();
    await dst.mapAsync(GPUMapMode.READ);
    ms.push(performance.now() - t0);
    dst.unmap();
  }
  record("mapAsync after the copy finished", bytes, ms);
  src.destroy();
  dst.destroy();
}
// Orion's read-back round trip (`Gpu.read`: record the copy, submit, bytes in hand) on an idle GPU, with
// early maps (bytes taken when the mapAsync call returns, src/gpu/early_map.ts) and without (the promise).
for (const earlyMaps of [true, false]) {
  const gpu = await Gpu.create({ earlyMaps });
  for (const bytes of [256, 1 << 20, 16 << 20]) {
    const buf = gpu.pool.acquire(bytes, "bench.readback");
    await gpu.read(buf, 0, bytes); // the staging buffer's first map is always awaited
    const ms: number[] = [];
    for (let i = 0; i < reps; i++) {
      await gpu.sync();
      const t0 = performance.now();
      await gpu.read(buf, 0, bytes);
      ms.push(performance.now() - t0);
    }
    record(`Gpu.read, early maps ${gpu.earlyMaps ? "on" : "off"}`, bytes, ms);
    gpu.pool.release(buf);
  }
  gpu.destroy();
}
// Host side of a read-back once mapped: Deno's getMappedRange copies the mapped range into a new
// ArrayBuffer for READ maps (its memory page-faults on first touch), which the caller then copies into its
// destination (here memory reused across reps, as Gpu.readbackInto does). Whole range vs slices.
const copies: { bytes: number; sliceBytes: number; medianMs: number; gbPerS: number }[] = [];
for (const bytes of [4 << 20, 16 << 20, 32 << 20, 64 << 20, 128 << 20]) {
  const src = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const dst = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(src, 0, dst, 0, bytes);
  device.queue.submit([encoder.finish()]);
  const into = new Uint8Array(bytes).fill(1);
  for (const sliceBytes of [bytes, 1 << 20, 256 << 10]) {
    const ms: number[] = [];
    for (let i = 0; i < Math.min(reps, 7); i++) {
      await dst.mapAsync(GPUMapMode.READ);
      const t0 = performance.now();
      for (let at = 0; at < bytes; at += sliceBytes) {
        into.set(new Uint8Array(dst.getMappedRange(at, Math.min(sliceBytes, bytes - at))), at);
      }
      ms.push(performance.now() - t0);
      dst.unmap();
    }
    const m = median(ms);
    copies.push({ bytes, sliceBytes, medianMs: m, gbPerS: bytes / m / 1e6 });
    console.log(
      `getMappedRange + copy of ${bytes >> 20} MiB in ${sliceBytes >> 10} KiB slices: median ${
        m.toFixed(2)
      } ms (${(bytes / m / 1e6).toFixed(2)} GB/s)`,
    );
  }
  src.destroy();
  dst.destroy();
}
// The other direction: queue.writeBuffer from host memory (the gradient sync's write-back), whole vs slices;
// CPU time of the calls (wgpu copies into a staging buffer there), then until the queue is done.
const writes: { bytes: number; sliceBytes: number; medianMs: number; gbPerS: number; doneMs: number }[] = [];
for (const bytes of [4 << 20, 32 << 20, 128 << 20]) {
  const target = device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  const from = new Uint8Array(bytes).fill(3);
  for (const sliceBytes of [bytes, 1 << 20]) {
    const ms: number[] = [];
    const done: number[] = [];
    for (let i = 0; i < Math.min(reps, 7); i++) {
      const t0 = performance.now();
      for (let at = 0; at < bytes; at += sliceBytes) {
        device.queue.writeBuffer(target, at, from, at, Math.min(sliceBytes, bytes - at));
      }
      const t1 = performance.now();
      device.queue.submit([]);
      await device.queue.onSubmittedWorkDone();
      ms.push(t1 - t0);
      done.push(performance.now() - t0);
    }
    const m = median(ms);
    writes.push({ bytes, sliceBytes, medianMs: m, gbPerS: bytes / m / 1e6, doneMs: median(done) });
    console.log(
      `writeBuffer of ${bytes >> 20} MiB in ${sliceBytes >> 10} KiB slices: calls median ${
        m.toFixed(2)
      } ms (${(bytes / m / 1e6).toFixed(2)} GB/s), until done ${median(done).toFixed(2)} ms`,
    );
  }
  target.destroy();
}
const result = {
  name: "readback",
  adapter: adapter.info?.description ?? "",
  deno: Deno.version.deno,
  rows,
  copies,
  writes,
};
if (args.values.json) await Deno.writeTextFile(args.values.json, JSON.stringify(result, null, 2));
console.log(JSON.stringify(result));
