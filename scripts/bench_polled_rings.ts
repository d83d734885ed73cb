/**
 * Polled rings without Orion's rank machinery: what `k` rings of `n` ranks on one host reach when each ring is
 * a bare {@link PolledRing} (no coordinator, no stripe hand-off), back-to-back collectives, rank 0 timing.
 * It separates the rings' own cost from how the stripes are driven:
 *
 * - `--threads` (default): one process per rank, the `k` rings on `k` Worker threads of it (as the stripes);
 *   `--processes`: `k × n` single-threaded processes;
 * - `--striped`: each ring reduces its stripe's parts of one `size`-byte bucket (`stripeSegmentBounds`, as a
 *   stripe does) instead of a bucket of `size / k` of its own; `--shared`: the bucket lives in a shared
 *   WebAssembly memory (as the stripes' arena);
 * - `--coupled` (threads only): the rank's thread starts every collective on all `k` rings at once and waits
 *   for all of them before the next (as a striped all-reduce awaited one by one); otherwise each ring runs its
 *   collectives back to back on its own.
 *
 * Usage: deno run --allow-read --allow-write --allow-run --allow-ffi --allow-env scripts/bench_polled_rings.ts
 *          [--ranks 4] [--rings 4] [--sizes-mib 0.5,1,2] [--threads|--processes] [--striped] [--shared]
 *          [--coupled] [--spin-ms 1] [--json PATH]
 * Prints, per ring and size, ms per collective on rank 0 (`size` is the whole bucket over all rings).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { PolledRing } from "../src/distributed/polled_ring.ts";
import { PolledListener, PolledSocket } from "../src/distributed/polled_socket.ts";
import { stripeSegmentBounds } from "../src/distributed/ring_all_reduce.ts";
import { WasmReductionKernel } from "../src/distributed/simd_add.ts";

/** One ring member's job (a process's argument, or a Worker's message). */
interface Member {
  rank: number;
  ranks: number;
  ring: number;
  rings: number;
  dir: string;
  sizesMib: number[];
  striped: boolean;
  shared: boolean;
  spinMs: number;
  /** Coupled: [collectives started, ring collectives finished] of the rank's thread. */
  sync?: SharedArrayBuffer;
}

interface RingResult {
  ring: number;
  sizeMib: number;
  ms: number;
}

const WARMUP = 20;
const itersFor = (mib: number) => (mib <= 1 ? 300 : 100);

/** Runs one ring member; returns rank 0's times (empty elsewhere). */
async function runMember(m: Member): Promise<RingResult[]> {
  const listener = PolledListener.listen("127.0.0.1");
  const dir = `${m.dir}/ring${m.ring}`;
  Deno.mkdirSync(dir, { recursive: true });
  Deno.writeTextFileSync(`${dir}/${m.rank}.tmp`, String(listener.port));
  Deno.renameSync(`${dir}/${m.rank}.tmp`, `${dir}/${m.rank}`);
  const left = (m.rank - 1 + m.ranks) % m.ranks;
  let leftPort = 0;
  while (!leftPort) {
    try {
      leftPort = Number(Deno.readTextFileSync(`${dir}/${left}`));
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  const [right, leftSocket] = await Promise.all([
    listener.accept(),
    PolledSocket.dial("127.0.0.1", leftPort, 10_000),
  ]);
  listener.close();
  const ring = new PolledRing({
    rank: m.rank,
    worldSize: m.ranks,
    generation: 0,
    kernel: new WasmReductionKernel(),
    right: right!,
    left: leftSocket,
    spinMs: m.spinMs,
    onLinkLost: (peer, reason) => {
      throw new Error(`ring ${m.ring}: link to rank ${peer} lost: ${reason}`);
    },
  });
  const sync = m.sync ? new Int32Array(m.sync) : null;
  let started = 0;
  const results: RingResult[] = [];
  for (const sizeMib of m.sizesMib) {
    // `--striped`: the whole bucket, this ring's parts of it; otherwise a bucket of its own, size / rings.
    const length = Math.round(sizeMib * 262_144 / (m.striped ? 1 : m.rings));
    const memory = m.shared
      ? new WebAssembly.Memory({ initial: Math.ceil(length * 4 / 65_536) + 1, maximum: 65_536, shared: true })
      : null;
    const data = (memory ? new Float32Array(memory.buffer, 0, length) : new Float32Array(length)).fill(
      m.rank + 1,
    );
    const segments = m.striped ? stripeSegmentBounds(length, m.ranks, m.ring, m.rings) : undefined;
    const collective = async () => {
      if (sync) {
        started++;
        while (Atomics.load(sync, 0) < started) { /* the rank's thread starts every ring at once */ }
      }
      const done = ring.start(0, data, segments);
      ring.spinUntil(performance.now() + 1000);
      await done;
      if (sync) Atomics.add(sync, 1, 1);
    };
    for (let i = 0; i < WARMUP; i++) await collective();
    const iters = itersFor(sizeMib);
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) await collective();
    if (m.rank === 0) results.push({ ring: m.ring, sizeMib, ms: (performance.now() - t0) / iters });
    await new Promise((r) => setTimeout(r, 30));
  }
  leftSocket.close();
  right!.close();
  return results;
}

interface WorkerScope {
  onmessage: ((e: MessageEvent<Member>) => void) | null;
  postMessage(results: RingResult[]): void;
}

if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  const scope = self as unknown as WorkerScope;
  scope.onmessage = async (e) => scope.postMessage(await runMember(e.data));
} else {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      ranks: { type: "string", default: "4" },
      rings: { type: "string", default: "4" },
      "sizes-mib": { type: "string", default: "0.5,1,2" },
      processes: { type: "boolean", default: false },
      threads: { type: "boolean", default: false },
      striped: { type: "boolean", default: false },
      shared: { type: "boolean", default: false },
      coupled: { type: "boolean", default: false },
      "spin-ms": { type: "string", default: "1" },
      json: { type: "string" },
      // internal: one process of the run
      member: { type: "string" },
    },
  });
  const ranks = Number(values.ranks);
  const rings = Number(values.rings);
  const sizesMib = values["sizes-mib"].split(",").map(Number);
  for (const [name, value, min] of [["--ranks", ranks, 2], ["--rings", rings, 1]] as const) {
    if (!Number.isInteger(value) || value < min || value > 64) {
      throw new Error(`Cannot read ${name} as a count: current value is ${value}; use an integer ${min}..64`);
    }
  }
  if (values.coupled && values.processes) {
    throw new Error("Cannot couple rings that run in separate processes: use --coupled with --threads");
  }
  const member = (rank: number, ring: number, dir: string): Member => ({
    rank,
    ranks,
    ring,
    rings,
    dir,
    sizesMib,
    striped: values.striped,
    shared: values.shared,
    spinMs: Number(values["spin-ms"]),
  });
  if (values.member) {
    // One process: a rank with its rings on Worker threads, or one ring of one rank.
    const m = JSON.parse(values.member) as Member & { threads: boolean };
    let results: RingResult[];
    if (!m.threads) results = await runMember(m);
    else {
      const sync = values.coupled ? new SharedArrayBuffer(8) : undefined;
      const counters = sync ? new Int32Array(sync) : null;
      const workers = Array.from({ length: rings }, () => new Worker(import.meta.url, { type: "module" }));
      const all = Promise.all(workers.map((worker, ring) =>
        new Promise<RingResult[]>((resolve) => {
          worker.onmessage = (e: MessageEvent<RingResult[]>) => resolve(e.data);
          worker.postMessage({ ...m, ring, ...(sync ? { sync } : {}) });
        })
      ));
      if (counters) {
        // Start collective i on every ring, then wait until every ring finished it.
        const total = sizesMib.reduce((sum, mib) => sum + WARMUP + itersFor(mib), 0);
        for (let i = 1; i <= total; i++) {
          Atomics.store(counters, 0, i);
          while (Atomics.load(counters, 1) < i * rings) { /* spin */ }
        }
      }
      results = (await all).flat();
      for (const worker of workers) worker.terminate();
    }
    if (m.rank === 0) console.log(JSON.stringify(results));
    Deno.exit(0);
  }
  const dir = Deno.makeTempDirSync({ prefix: "orion_polled_rings_" });
  const threads = !values.processes;
  const spawn = (m: Member & { threads: boolean }) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        "--allow-ffi",
        "--allow-env",
        new URL(import.meta.url).pathname,
        ...(values.coupled ? ["--coupled"] : []),
        "--rings",
        String(rings),
        "--sizes-mib",
        values["sizes-mib"],
        "--member",
        JSON.stringify(m),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
  const members = threads
    ? Array.from({ length: ranks }, (_, rank) => ({ ...member(rank, 0, dir), threads }))
    : Array.from(
      { length: ranks * rings },
      (_, i) => ({ ...member(i % ranks, Math.floor(i / ranks), dir), threads }),
    );
  const outputs = await Promise.all(members.map(spawn));
  Deno.removeSync(dir, { recursive: true });
  const failed = outputs.filter((o) => !o.success);
  if (failed.length) throw new Error(`${failed.length} ring processes failed (exit ${failed[0].code})`);
  const results = outputs.flatMap((o) =>
    new TextDecoder().decode(o.stdout).split("\n").filter((l) => l.startsWith("[")).flatMap((l) =>
      JSON.parse(l) as RingResult[]
    )
  ).sort((a, b) => a.sizeMib - b.sizeMib || a.ring - b.ring);
  const mode = `${threads ? "threads" : "processes"}${values.striped ? ", striped" : ""}${
    values.shared ? ", shared memory" : ""
  }${values.coupled ? ", coupled" : ""}`;
  for (const sizeMib of sizesMib) {
    const times = results.filter((r) => r.sizeMib === sizeMib).map((r) => r.ms);
    console.log(
      `${ranks} ranks × ${rings} rings (${mode}), ${sizeMib} MiB: ms per collective by ring ${
        times.map((t) => t.toFixed(3)).join(", ")
      }; slowest ${Math.max(...times).toFixed(3)}`,
    );
  }
  if (values.json) {
    Deno.writeTextFileSync(
      values.json,
      JSON.stringify({ ranks, rings, mode, spinMs: Number(values["spin-ms"]), results }, null, 1),
    );
  }
}
