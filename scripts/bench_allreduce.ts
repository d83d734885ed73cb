/**
 * All-reduce benchmark: bus bandwidth of Orion's ring all-reduce against raw TCP loopback bandwidth
 * measured in the same run, plus the reduction kernel (WASM SIMD vs JS loop) and the client-socket
 * small-message stall (round trips) that shaped the data plane.
 *
 * Usage: deno run --allow-read --allow-write --allow-env --allow-run --allow-net --allow-sys --allow-ffi scripts/bench_allreduce.ts
 *          [--ranks 2,4,8] [--sizes-mib 1,4,16,64,256] [--stripes 0,2,4] [--buffer shared,plain] [--receive direct,staged]
 *          [--kernel wasm-simd|js] [--compare-js] [--transport tcp-websocket|deno-websocket] [--compare-transport]
 *          [--stripe-min-mib N] [--raw-ring] [--block-ms B [--off-thread]] [--gap-ms G] [--polled on,off]
 *          [--issue sync,pipelined] [--iters N] [--warmup W] [--trace-calls] [--mesh on,off] [--mesh-max-mib M]
 *          [--compare-torch [--python python3] [--torch-script scripts/reference/allreduce_torch.py]]
 *          [--json runs/bench/allreduce.json]
 *
 * `--stripes`, `--buffer` and `--receive` take lists; every combination runs. `--stripes`: stripe counts
 * (0 = the single ring on the rank's thread; default: the ranks' own default, `defaultStripes()` within the
 * host's cores shared by its ranks). `--buffer shared` (default)
 * reduces buckets allocated in the striped ring's arena (`sharedBucket`, no copies), `plain` hands ordinary
 * Float32Arrays (copied in and out). `--stripe-min-mib`: buckets smaller than this run on the own-thread ring
 * even with stripes (default `stripeMinBytes()`: ranks × stripes × max(128 KiB, ranks × 32 KiB); 0 = every
 * size on the stripes); the `path` column says which ran. `--receive staged` makes the stripe workers read chunks into a private
 * buffer and copy them into the arena (one more copy per chunk) instead of reading them straight into it
 * (`direct`, the default). `--block-ms B`: each rank starts every timed all-reduce with `startBucket`, then
 * blocks its thread for B ms without spinning (`Atomics.wait`, as a training step's blocking buffer map
 * waits on the GPU), polls `pollCollectives` and awaits it; `--off-thread` passes `{ offThread: true }` (the stripes whatever the size). The time per
 * all-reduce then includes the block: B is the floor. `--gap-ms G`: each rank blocks its thread G ms before every
 * timed all-reduce (not timed), so each starts with idle threads and sockets, as a training step's last bucket
 * does. `--polled` (a list, default `on`): small buckets on the polled ring (`polled_ring.ts`, where it can
 * run; the rank's thread busy-polls its links) or on the event-loop ring (`off`); `path` says `polled` when
 * the polled ring reduced the bucket.
 *
 * `--mesh` (a list, default `on`): at 3..8 ranks with polled links, buckets up to the mesh's largest size
 * (`--mesh-max-mib`, default the ranks' own: `ORION_MESH_MAX_BYTES`, else `DEFAULT_MESH_MAX_BYTES`) that the
 * polled stripes take run on their meshes, the direct all-reduce (`polled_mesh.ts`, two hops; `path` says
 * `stripe-mesh`); `off` runs none.
 *
 * `--issue` (a list, default both): `sync` awaits each timed all-reduce before starting the next (the latency a
 * training step's last bucket sees); `pipelined` issues all `iters` at once and waits once at the end, as
 * nccl-tests times its collectives (throughput: a stripe moves on to the next collective when it finished its
 * parts of the previous one, not waiting for the other stripes). `--iters N` overrides the iterations per size;
 * `--warmup W` untimed all-reduces run before each size's timed ones (default 5, nccl-tests' default).
 * `sync` also reports rank 0's per-call spread: `medianMs`, `p90Ms`, `minMs`, `maxMs` (the headline `ms`
 * stays the mean, as nccl-tests reports). `--trace-calls` adds every rank's `sync` calls to the JSON
 * (`callTraces`: when each call was made and returned, when each stripe started and finished it, in ms since
 * the epoch, comparable across the host's ranks).
 *
 * `--compare-torch` then runs PyTorch's all-reduce over TCP (gloo; `scripts/reference/allreduce_torch.py`, with
 * `--python`) for the same rank counts, sizes, iterations and warm-ups, timed the same way, and prints and
 * stores its rows (`torch` in the JSON) against this run's raw TCP, with Orion's time ÷ gloo's per cell.
 *
 * Method: every rank is its own Deno process (joined through a real coordinator on loopback). For each size
 * the ranks run `--warmup` warm-up all-reduces, a barrier, `iters` timed all-reduces of one buffer, and a barrier;
 * time = (t_end − t_start) / iters on rank 0. algbw = bytes / time; busbw = algbw × 2(n−1)/n (nccl-tests).
 * Raw TCP: one sender process writes 1 GiB in 4 MiB writes to a receiver over 127.0.0.1 (best of 3).
 * `--raw-ring`: the loopback ceiling of a ring on this host, with no framing, reduction or copies of Orion's:
 * for each rank count n and stripe count k ≥ 1, n·k processes (k per ring position, each one stream)
 * each write 256 MiB to their right neighbour while reading as much from their left; link bandwidth =
 * k × 256 MiB / the slowest process's time. A ring all-reduce's bus bandwidth cannot exceed it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Coordinator } from "../src/distributed/coordinator.ts";
import { generateJoinSecret, joinSecretFromEnv } from "../src/distributed/join_token.ts";
import type { PeerTransportName } from "../src/distributed/peer_transport.ts";
import { BufferPool, connectRawWebSocket } from "../src/distributed/raw_websocket.ts";
import { joinJob } from "../src/distributed/rank_client.ts";
import { defaultStripes, type StripeReceive } from "../src/distributed/striped_all_reduce.ts";
import { runTorchReference } from "./reference/run_reference.ts";
import {
  jsReductionKernel,
  type ReductionKernel,
  type ReductionKernelName,
  WasmReductionKernel,
} from "../src/distributed/simd_add.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    ranks: { type: "string", default: "2,4,8" },
    "sizes-mib": { type: "string", default: "1,4,16,64,256" },
    kernel: { type: "string", default: "wasm-simd" },
    transport: { type: "string", default: "tcp-websocket" },
    stripes: { type: "string" },
    buffer: { type: "string", default: "shared" },
    receive: { type: "string", default: "direct" },
    "chunk-bytes": { type: "string", default: String(1024 * 1024) },
    "compare-transport": { type: "boolean", default: false },
    "compare-js": { type: "boolean", default: false },
    "raw-ring": { type: "boolean", default: false },
    "stripe-min-mib": { type: "string" },
    "block-ms": { type: "string", default: "0" },
    "off-thread": { type: "boolean", default: false },
    "gap-ms": { type: "string", default: "0" },
    "trace-calls": { type: "boolean", default: false },
    "compare-torch": { type: "boolean", default: false },
    python: { type: "string", default: "python3" },
    "torch-script": { type: "string", default: "scripts/reference/allreduce_torch.py" },
    polled: { type: "string", default: "on" },
    mesh: { type: "string", default: "on" },
    "mesh-max-mib": { type: "string" },
    issue: { type: "string", default: "sync,pipelined" },
    iters: { type: "string" },
    warmup: { type: "string", default: "5" },
    json: { type: "string", default: "runs/bench/allreduce.json" },
    // internal modes
    worker: { type: "boolean", default: false },
    "tcp-sender": { type: "string" },
    "ring-member": { type: "string" },
    coordinator: { type: "string" },
    "job-id": { type: "string" },
  },
});

const SELF = new URL(import.meta.url).pathname;
const FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
  "--allow-sys",
  "--allow-run",
  "--allow-ffi",
];
const MIB = 1024 * 1024;

function itersFor(sizeMib: number): number {
  return sizeMib <= 1 ? 20 : sizeMib <= 4 ? 10 : sizeMib <= 16 ? 5 : sizeMib <= 64 ? 3 : 2;
}

// ---------------------------------------------------------------------------------------------------
// Worker: one rank.
if (values.worker) {
  const sizes = values["sizes-mib"].split(",").map(Number);
  const ctx = await joinJob({
    coordinatorUrl: values.coordinator!,
    jobId: values["job-id"]!,
    secret: joinSecretFromEnv(),
    dataHostname: "127.0.0.1",
    advertiseHost: "127.0.0.1",
    kernel: values.kernel as ReductionKernelName,
    transport: values.transport as PeerTransportName,
    chunkBytes: Number(values["chunk-bytes"]),
    ...(values.stripes !== undefined ? { stripes: Number(values.stripes) } : {}),
    stripeReceive: values.receive as StripeReceive,
    polledRing: values.polled === "on",
    ...(values.mesh === "off"
      ? { meshMaxBytes: 0 }
      : values["mesh-max-mib"] !== undefined
      ? { meshMaxBytes: Math.round(Number(values["mesh-max-mib"]) * MIB) }
      : {}),
    ...(values["stripe-min-mib"] !== undefined
      ? { stripeMinBytes: Math.round(Number(values["stripe-min-mib"]) * MIB) }
      : {}),
    // Ranks share few cores here: tolerate long scheduling gaps instead of declaring the coordinator lost.
    coordinatorTimeoutMs: 60_000,
    log: () => {},
  });
  const results: WorkerResult[] = [];
  const traces: CallTrace[] = []; // --trace-calls: this rank's sync calls
  const blockMs = Number(values["block-ms"]);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const offThread = values["off-thread"];
  const gapMs = Number(values["gap-ms"]);
  const warmup = Number(values.warmup);
  /** Drives the polled ring and waits on the stripes (this thread) until `done` settles. */
  const driveUntil = async (done: Promise<unknown>) => {
    let settled = false;
    done.then(() => settled = true, () => settled = true);
    // The event-loop ring (polled off, no stripes for this size) needs the event loop: just wait.
    if (!ctx.polledRing) return void await done;
    while (!settled) {
      ctx.pollCollectives(performance.now() + 50);
      await Promise.resolve();
    }
    await done;
  };
  for (const sizeMib of sizes) {
    const length = (sizeMib * MIB) / 4;
    const shared = values.buffer === "shared";
    const buffer = (shared ? ctx.sharedBucket(length) : new Float32Array(length)).fill(ctx.rank + 1);
    for (let w = 0; w < warmup; w++) await ctx.allReduceMean([buffer]);
    const iters = values.iters !== undefined ? Number(values.iters) : itersFor(sizeMib);
    const path = ctx.onStripes(length) || (offThread && ctx.stripes > 0)
      ? ctx.onMesh(length) ? "stripe-mesh" as const : "stripes" as const
      : ctx.polledRing
      ? "polled" as const
      : "ring" as const;
    for (const issue of values.issue.split(",") as IssueMode[]) {
      await ctx.barrier(`start ${sizeMib} ${issue}`);
      const t0 = performance.now();
      let reducingMs = 0; // with a gap: the time in the all-reduces only
      // Where an all-reduce's time goes on this rank (the collective's own timeline, `collectiveTimes`): from
      // the call to the collective's start, the collective, and from its end to the call's return.
      const split = { startLagMs: 0, collectiveMs: 0, endLagMs: 0 };
      const callMs: number[] = []; // sync: each call's time on this rank
      if (issue === "pipelined") {
        // nccl-tests' timing: every all-reduce issued at once (in order; each reduces the previous one's
        // result in place), one wait at the end. A stripe moves on to its next collective as soon as it
        // finished its parts of the previous one, without waiting for the other stripes.
        const all = Array.from({ length: iters }, () => ctx.startBucket(0, buffer, { offThread }));
        await driveUntil(Promise.all(all));
        await ctx.flush();
      } else {
        for (let i = 0; i < iters; i++) {
          // Idle between collectives, as a training step's thread is between its last bucket and the next
          // step's (blocked in buffer maps): what a collective costs when the ranks' threads and sockets were
          // idle.
          if (gapMs > 0) Atomics.wait(sleeper, 0, 0, gapMs);
          const i0 = performance.now();
          if (blockMs > 0) {
            // A training step's thread: it starts the bucket, then blocks without spinning (as a buffer map
            // waits on the GPU), then polls.
            const done = ctx.startBucket(0, buffer, { offThread });
            Atomics.wait(sleeper, 0, 0, blockMs);
            ctx.pollCollectives();
            await done;
            await ctx.flush();
          } else await ctx.allReduceMean([buffer]);
          const i1 = performance.now();
          reducingMs += i1 - i0;
          callMs.push(i1 - i0);
          const times = ctx.collectiveTimes(0);
          if (values["trace-calls"]) {
            const epoch = (ms: number) => +(performance.timeOrigin + ms).toFixed(3);
            traces.push({
              sizeMib,
              call: i,
              calledMs: epoch(i0),
              returnedMs: epoch(i1),
              stripes: (times?.stripes ?? []).map((t) => ({
                stripe: t.stripe,
                startMs: epoch(t.startMs),
                endMs: epoch(t.endMs),
              })),
            });
          }
          if (times) {
            split.startLagMs += times.startMs - i0;
            split.collectiveMs += times.endMs - times.startMs;
            split.endLagMs += i1 - times.endMs;
          }
        }
      }
      const elapsedMs = performance.now() - t0;
      await ctx.barrier(`end ${sizeMib} ${issue}`);
      const seconds = (gapMs > 0 && issue === "sync" ? reducingMs : elapsedMs) / 1000 / iters;
      const perIteration = (ms: number) => (issue === "sync" ? ms / iters : 0);
      results.push({
        sizeMib,
        iters,
        issue,
        seconds,
        stripes: ctx.stripes,
        stripesUsed: path.startsWith("stripe") ? (offThread ? ctx.stripes : ctx.stripesFor(length)) : 0,
        path,
        blockMs,
        gapMs,
        startLagMs: perIteration(split.startLagMs),
        collectiveMs: perIteration(split.collectiveMs),
        endLagMs: perIteration(split.endLagMs),
        spread: spreadOf(callMs),
      });
    }
    if (shared) ctx.releaseSharedBucket(buffer);
  }
  if (ctx.rank === 0) console.log(JSON.stringify(results));
  if (values["trace-calls"]) console.log(JSON.stringify({ traceRank: ctx.rank, calls: traces }));
  await ctx.close();
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------
// TCP sender: write 1 GiB to the given port.
if (values["tcp-sender"]) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(values["tcp-sender"]) });
  conn.setNoDelay(true);
  const block = new Uint8Array(4 * MIB);
  for (let sent = 0; sent < 1024 * MIB; sent += block.length) {
    let off = 0;
    while (off < block.length) off += await conn.write(block.subarray(off));
  }
  conn.close();
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------
// Raw ring member: "listenPort,rightPort,bytes". Reports "ready" once linked, starts on a line from stdin.
if (values["ring-member"]) {
  const [listenPort, rightPort, bytes] = values["ring-member"].split(",").map(Number);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: listenPort });
  const accepted = listener.accept();
  let right: Deno.TcpConn | null = null;
  for (let attempt = 0; !right; attempt++) {
    right = await Deno.connect({ hostname: "127.0.0.1", port: rightPort }).catch((error) => {
      if (attempt > 500) throw error;
      return new Promise<null>((r) => setTimeout(() => r(null), 20));
    });
  }
  right.setNoDelay(true);
  const left = await accepted;
  console.log("ready");
  await Deno.stdin.readable.getReader().read(); // "go"
  const t0 = performance.now();
  const block = new Uint8Array(4 * MIB);
  const sending = (async () => {
    for (let sent = 0; sent < bytes; sent += block.length) {
      const part = block.subarray(0, Math.min(block.length, bytes - sent));
      let off = 0;
      while (off < part.length) off += await right!.write(part.subarray(off));
    }
  })();
  const inbox = new Uint8Array(4 * MIB);
  for (let received = 0; received < bytes;) {
    const n = await left.read(inbox);
    if (n === null) throw new Error("left neighbour closed early");
    received += n;
  }
  await sending;
  console.log(JSON.stringify({ seconds: (performance.now() - t0) / 1000 }));
  right.close();
  left.close();
  listener.close();
  Deno.exit(0);
}

/** Loopback link bandwidth of a raw ring of `n` positions × `k` streams (see `--raw-ring`). */
async function rawRingGBps(n: number, k: number, bytes = 256 * MIB): Promise<number> {
  const ports = Array.from({ length: n * k }, () => {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    return port;
  });
  const members = ports.map((port, q) => {
    const [i, j] = [Math.floor(q / k), q % k];
    const right = ports[((i + 1) % n) * k + j];
    return new Deno.Command(Deno.execPath(), {
      args: ["run", ...FLAGS, SELF, "--ring-member", `${port},${right},${bytes}`],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
  });
  const readers = members.map((m) => m.stdout.pipeThrough(new TextDecoderStream()).getReader());
  const nextLine = async (reader: ReadableStreamDefaultReader<string>) => {
    const { value, done } = await reader.read();
    if (done) throw new Error("a raw ring member exited early");
    return value.trim();
  };
  await Promise.all(readers.map(nextLine)); // every member linked
  await Promise.all(members.map(async (m) => {
    const writer = m.stdin.getWriter();
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close();
  }));
  const seconds = await Promise.all(
    readers.map(async (r) => JSON.parse(await nextLine(r)).seconds as number),
  );
  await Promise.all(members.map((m) => m.status));
  return (k * bytes) / Math.max(...seconds) / 1e9;
}

async function rawTcpGBps(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  let best = 0;
  for (let rep = 0; rep < 3; rep++) {
    const sender = new Deno.Command(Deno.execPath(), {
      args: ["run", ...FLAGS, SELF, "--tcp-sender", String(port)],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    const conn = await listener.accept();
    const buffer = new Uint8Array(4 * MIB);
    let received = 0;
    let t0 = 0;
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      if (received === 0) t0 = performance.now();
      received += n;
    }
    const seconds = (performance.now() - t0) / 1000;
    conn.close();
    await sender.status;
    best = Math.max(best, received / seconds / 1e9);
  }
  listener.close();
  return best;
}

/**
 * How the timed all-reduces are issued: `sync` awaits each before starting the next (a collective's latency,
 * as the last bucket of a training step sees it); `pipelined` issues them all and waits once at the end
 * (nccl-tests' timing: throughput, consecutive collectives overlapping where they can).
 */
type IssueMode = "sync" | "pipelined";

/**
 * One rank's `sync` call with `--trace-calls`, in ms since the epoch (comparable across the host's ranks):
 * when the call was made and returned, and when each stripe that took part started and finished it.
 */
interface CallTrace {
  sizeMib: number;
  call: number;
  calledMs: number;
  returnedMs: number;
  stripes: { stripe: number; startMs: number; endMs: number }[];
}

/** Rank 0's per-call times of a `sync` run (ms); all 0 for `pipelined`, which times the batch only. */
interface CallSpread {
  medianMs: number;
  p90Ms: number;
  minMs: number;
  maxMs: number;
}

/** The spread of per-call times (nearest-rank percentiles), or zeros when none were timed one by one. */
function spreadOf(ms: number[]): CallSpread {
  if (ms.length === 0) return { medianMs: 0, p90Ms: 0, minMs: 0, maxMs: 0 };
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return { medianMs: at(0.5), p90Ms: at(0.9), minMs: sorted[0], maxMs: sorted[sorted.length - 1] };
}

interface WorkerResult {
  sizeMib: number;
  iters: number;
  issue: IssueMode;
  seconds: number;
  stripes: number;
  /** Stripes that reduced the bucket (`stripesFor`; 0 on the own-thread ring). */
  stripesUsed: number;
  /** Which reduced the bucket: the stripes' rings or meshes, or the own-thread ring (event-loop or polled). */
  path: "stripes" | "stripe-mesh" | "ring" | "polled";
  /** The rank's thread blocked this long after starting each all-reduce (`--block-ms`). */
  blockMs: number;
  /** The rank's thread blocked this long before each all-reduce, not timed (`--gap-ms`). */
  gapMs: number;
  /**
   * Rank 0's mean split of one all-reduce (ms): from the call to the collective's start (the first stripe's,
   * on stripes), the collective (to the last stripe's end), and from its end until the call returned.
   */
  startLagMs: number;
  collectiveMs: number;
  endLagMs: number;
  spread: CallSpread;
}

interface RunSpec {
  n: number;
  kernel: string;
  transport: string;
  /** null: the ranks' default (`defaultStripes()` within the host's cores shared by its ranks). */
  stripes: number | null;
  buffer: string;
  receive: string;
  polled: "on" | "off";
  mesh: "on" | "off";
}

async function allReduceRun(spec: RunSpec, sizes: number[]) {
  const { n, kernel, transport, stripes } = spec;
  const secret = generateJoinSecret();
  const jobId = `bench-${n}-${Date.now()}`;
  const coordinator = await Coordinator.start({
    jobId,
    secret,
    worldSize: n,
    hostname: "127.0.0.1",
    log: () => {},
    heartbeatTimeoutMs: 30_000,
  });
  const workers = Array.from({ length: n }, () =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...FLAGS,
        SELF,
        "--worker",
        "--coordinator",
        coordinator.url(),
        "--job-id",
        jobId,
        "--sizes-mib",
        sizes.join(","),
        "--kernel",
        kernel,
        "--transport",
        transport,
        "--chunk-bytes",
        values["chunk-bytes"],
        ...(stripes !== null ? ["--stripes", String(stripes)] : []),
        "--buffer",
        spec.buffer,
        "--receive",
        spec.receive,
        ...(values["stripe-min-mib"] !== undefined ? ["--stripe-min-mib", values["stripe-min-mib"]] : []),
        "--block-ms",
        values["block-ms"],
        "--gap-ms",
        values["gap-ms"],
        ...(values["off-thread"] ? ["--off-thread"] : []),
        "--polled",
        spec.polled,
        "--mesh",
        spec.mesh,
        ...(values["mesh-max-mib"] !== undefined ? ["--mesh-max-mib", values["mesh-max-mib"]] : []),
        "--issue",
        values.issue,
        ...(values.iters !== undefined ? ["--iters", values.iters] : []),
        "--warmup",
        values.warmup,
        ...(values["trace-calls"] ? ["--trace-calls"] : []),
      ],
      env: { ORION_JOIN_SECRET: secret },
      stdout: "piped",
      stderr: "inherit",
    }).output());
  const outputs = await Promise.all(workers);
  await coordinator.finished;
  await coordinator.close();
  const lines = outputs.flatMap((o) => new TextDecoder().decode(o.stdout).split("\n"));
  const text = lines.find((t) => t.startsWith("["));
  if (!text) throw new Error(`no result from rank 0 (exit codes ${outputs.map((o) => o.code).join(",")})`);
  const traces = lines.filter((t) => t.startsWith('{"traceRank"')).map((t) =>
    JSON.parse(t) as { traceRank: number; calls: CallTrace[] }
  ).sort((a, b) => a.traceRank - b.traceRank);
  return { results: JSON.parse(text) as WorkerResult[], traces };
}

function reductionKernelGBps(): { wasmSimd: number; js: number } {
  const elements = MIB; // one 4 MiB chunk
  const local = new Float32Array(elements).fill(1);
  const received = new Float32Array(elements).fill(0.5);
  const measure = (kernel: ReductionKernel) => {
    for (let k = 0; k < 8; k++) kernel.addInto(received, local);
    const reps = 64;
    const t0 = performance.now();
    for (let k = 0; k < reps; k++) kernel.addInto(received, local);
    const seconds = (performance.now() - t0) / 1000;
    return (reps * elements * 4) / seconds / 1e9;
  };
  return { wasmSimd: measure(new WasmReductionKernel()), js: measure(jsReductionKernel) };
}

/**
 * Median round trip of a 16 KiB message sent by a client and echoed by a Deno.upgradeWebSocket server:
 * Deno's client `WebSocket` (Nagle on: the ~44 ms stall) vs Orion's TCP_NODELAY client (raw_websocket.ts).
 */
async function smallMessageRoundTripMs(): Promise<{ denoClient: number; orionClient: number }> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rounds = async (send: () => void, arm: (resolve: () => void) => void) => {
    const samples: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        arm(resolve);
        send();
      });
      samples.push(performance.now() - t0);
    }
    return median(samples);
  };
  const deno = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  deno.binaryType = "arraybuffer";
  await new Promise((r) => deno.onopen = r);
  const denoClient = await rounds(() => deno.send(new Uint8Array(16384)), (r) => deno.onmessage = () => r());
  deno.close();
  const orion = await connectRawWebSocket("127.0.0.1", server.addr.port, "/", {}, {
    pool: new BufferPool(),
    maxPayload: 1 << 20,
  });
  let resolveOrion = () => {};
  orion.onmessage = () => resolveOrion();
  orion.start();
  const orionClient = await rounds(() => orion.send(new ArrayBuffer(16384)), (r) => resolveOrion = r);
  orion.close();
  await server.shutdown();
  return { denoClient, orionClient };
}

// ---------------------------------------------------------------------------------------------------
const rankCounts = values.ranks.split(",").map(Number);
const sizes = values["sizes-mib"].split(",").map(Number);
const kernel = values.kernel;
for (const issue of values.issue.split(",")) {
  if (issue !== "sync" && issue !== "pipelined") {
    throw new Error(
      `Cannot read --issue as an issue mode: current value is "${issue}"; use sync, pipelined or both`,
    );
  }
}
if (values.iters !== undefined && !(Number.isInteger(Number(values.iters)) && Number(values.iters) >= 1)) {
  throw new Error(
    `Cannot read --iters as an iteration count: current value is "${values.iters}"; use an integer ≥ 1`,
  );
}
if (!(Number.isInteger(Number(values.warmup)) && Number(values.warmup) >= 0)) {
  throw new Error(
    `Cannot read --warmup as a warm-up count: current value is "${values.warmup}"; use an integer ≥ 0`,
  );
}
console.error(
  `[bench] ${navigator.hardwareConcurrency} CPU threads; ranks ${rankCounts}; sizes ${sizes} MiB`,
);
const tcp = await rawTcpGBps();
console.error(`[bench] raw TCP loopback (1 stream, best of 3): ${tcp.toFixed(2)} GB/s`);
const kernels = reductionKernelGBps();
console.error(
  `[bench] reduction add on 4 MiB chunks: WASM SIMD ${kernels.wasmSimd.toFixed(2)} GB/s, JS loop ${
    kernels.js.toFixed(2)
  } GB/s`,
);
const latency = await smallMessageRoundTripMs();
console.error(
  `[bench] 16 KiB client round trip: Deno WebSocket client ${latency.denoClient.toFixed(2)} ms, ` +
    `Orion TCP_NODELAY client ${latency.orionClient.toFixed(2)} ms`,
);

const rows: Array<Record<string, number | string>> = [];
/** `--trace-calls`: every rank's `sync` calls, per job. */
const callTraces: Array<
  {
    ranks: number;
    stripes: number | null;
    mesh: string;
    perRank: { traceRank: number; calls: CallTrace[] }[];
  }
> = [];
const transport = values.transport;
const stripeCounts: Array<number | null> = values.stripes === undefined
  ? [null]
  : values.stripes.split(",").map((x) => {
    const count = Number(x);
    if (!Number.isInteger(count) || count < 0 || count > 64) {
      throw new Error(
        `Cannot run with --stripes ${values.stripes}: current value is "${x}"; use integers 0..64`,
      );
    }
    return count;
  });
const buffers = values.buffer.split(",");
const receives = values.receive.split(",");
for (const b of buffers) {
  if (b !== "shared" && b !== "plain") {
    throw new Error(`Cannot run with --buffer ${values.buffer}: use shared, plain`);
  }
}
for (const r of receives) {
  if (r !== "direct" && r !== "staged") {
    throw new Error(`Cannot run with --receive ${values.receive}: use direct, staged`);
  }
}
const polledModes = values.polled.split(",").map((mode) => {
  if (mode !== "on" && mode !== "off") {
    throw new Error(`Cannot run with --polled ${values.polled}: use on, off`);
  }
  return mode;
});
const meshModes = values.mesh.split(",").map((mode) => {
  if (mode !== "on" && mode !== "off") {
    throw new Error(`Cannot run with --mesh ${values.mesh}: use on, off`);
  }
  return mode;
});
const runs: RunSpec[] = [];
for (const n of rankCounts) {
  for (const stripes of stripeCounts) {
    // Buffer and receive modes only apply to stripes (the single ring copies through pooled buffers).
    const combos = stripes === 0
      ? [["plain", "pooled"]]
      : buffers.flatMap((buffer) => receives.map((receive) => [buffer, receive]));
    for (const [buffer, receive] of combos) {
      for (const polled of polledModes) {
        for (const mesh of meshModes) {
          runs.push({ n, kernel, transport, stripes, buffer, receive, polled, mesh });
        }
      }
    }
  }
}
if (values["compare-js"]) {
  for (const n of rankCounts) {
    const other = kernel === "js" ? "wasm-simd" : "js";
    runs.push({
      n,
      kernel: other,
      transport,
      stripes: 0,
      buffer: "plain",
      receive: "pooled",
      polled: "off",
      mesh: "off",
    });
  }
}
if (values["compare-transport"]) {
  const other = transport === "deno-websocket" ? "tcp-websocket" : "deno-websocket";
  for (const n of rankCounts) {
    runs.push({
      n,
      kernel,
      transport: other,
      stripes: 0,
      buffer: "plain",
      receive: "pooled",
      polled: "off",
      mesh: "off",
    });
  }
}
const rawRing: Array<{ ranks: number; streams: number; linkGBps: number; pctOfTcp: number }> = [];
if (values["raw-ring"]) {
  for (const n of rankCounts) {
    for (const k of new Set(stripeCounts.map((s) => Math.max(1, s ?? defaultStripes())))) {
      const link = await rawRingGBps(n, k);
      rawRing.push({
        ranks: n,
        streams: k,
        linkGBps: +link.toFixed(3),
        pctOfTcp: +((link / tcp) * 100).toFixed(1),
      });
      console.error(
        `[bench] raw TCP ring, ${n} positions × ${k} streams: ${link.toFixed(2)} GB/s per link (${
          ((link / tcp) * 100).toFixed(0)
        } % of one stream)`,
      );
    }
  }
}
for (const spec of runs) {
  const { n, kernel: k, transport: t } = spec;
  const { results, traces } = await allReduceRun(spec, sizes);
  if (traces.length) callTraces.push({ ranks: n, stripes: spec.stripes, mesh: spec.mesh, perRank: traces });
  for (const r of results) {
    const algbw = (r.sizeMib * MIB) / r.seconds / 1e9;
    const busbw = algbw * (2 * (n - 1)) / n;
    rows.push({
      ranks: n,
      kernel: k,
      transport: t,
      stripes: r.stripes,
      stripesUsed: r.stripesUsed,
      path: r.path,
      mesh: spec.mesh,
      buffer: spec.buffer,
      receive: spec.receive,
      sizeMib: r.sizeMib,
      issue: r.issue,
      blockMs: r.blockMs,
      gapMs: r.gapMs,
      iters: r.iters,
      ms: +(r.seconds * 1000).toFixed(2),
      algbwGBps: +algbw.toFixed(3),
      busbwGBps: +busbw.toFixed(3),
      pctOfTcp: +((busbw / tcp) * 100).toFixed(1),
      startLagMs: +r.startLagMs.toFixed(3),
      collectiveMs: +r.collectiveMs.toFixed(3),
      endLagMs: +r.endLagMs.toFixed(3),
      medianMs: +r.spread.medianMs.toFixed(3),
      p90Ms: +r.spread.p90Ms.toFixed(3),
      minMs: +r.spread.minMs.toFixed(3),
      maxMs: +r.spread.maxMs.toFixed(3),
    });
    console.error(
      `[bench] n=${n} ${k} ${t} stripes ${r.stripes} (${r.path}) ${spec.buffer}/${spec.receive} ${r.sizeMib} MiB: ${
        (r.seconds * 1000).toFixed(1)
      } ms, busbw ${busbw.toFixed(3)} GB/s`,
    );
  }
}

const header = [
  "ranks",
  "kernel",
  "transport",
  "stripes",
  "stripesUsed",
  "path",
  "mesh",
  "buffer",
  "receive",
  "sizeMib",
  "issue",
  "blockMs",
  "gapMs",
  "iters",
  "ms",
  "algbwGBps",
  "busbwGBps",
  "pctOfTcp",
  "startLagMs",
  "collectiveMs",
  "endLagMs",
  "medianMs",
  "p90Ms",
  "minMs",
  "maxMs",
];
console.log(`\nRaw TCP loopback: ${tcp.toFixed(2)} GB/s (target: busbw >= 40% of it)\n`);
console.log(`| ${header.join(" | ")} |`);
console.log(`|${header.map(() => "---").join("|")}|`);
for (const row of rows) console.log(`| ${header.map((h) => row[h]).join(" | ")} |`);
if (rawRing.length) {
  console.log(`\nRaw TCP ring (link bandwidth, the ceiling of a ring's bus bandwidth):\n`);
  console.log("| ranks | streams | linkGBps | pctOfTcp |\n|---|---|---|---|");
  for (const r of rawRing) console.log(`| ${r.ranks} | ${r.streams} | ${r.linkGBps} | ${r.pctOfTcp} |`);
}
// --compare-torch: PyTorch's all-reduce over TCP (gloo), the same cells, against this run's raw TCP.
let torch: Array<Record<string, number | string>> | null = null;
if (values["compare-torch"]) {
  const gloo = await runTorchReference(values.python, values["torch-script"], [
    "--ranks",
    rankCounts.join(","),
    "--sizes-mib",
    sizes.join(","),
    "--warmup",
    values.warmup,
    ...(values.iters !== undefined ? ["--iters", values.iters] : []),
  ]) as { rows: Array<{ ranks: number; sizeMib: number; issue: string; ms: number; busbwGBps: number }> };
  torch = gloo.rows.map((g) => {
    // Orion's default run of the same cell (the first job of that rank count), if there is one.
    const orion = rows.find((r) => r.ranks === g.ranks && r.sizeMib === g.sizeMib && r.issue === g.issue);
    return {
      ...g,
      pctOfTcp: +((g.busbwGBps / tcp) * 100).toFixed(1),
      ...(orion ? { orionMs: orion.ms, orionOverGloo: +(Number(orion.ms) / g.ms).toFixed(3) } : {}),
    };
  });
  console.log(
    `\nPyTorch gloo, same cells (raw TCP ${tcp.toFixed(2)} GB/s; orionOverGloo < 1: Orion faster):\n`,
  );
  console.log("| ranks | sizeMib | issue | ms | busbwGBps | pctOfTcp | orionMs | orionOverGloo |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of torch) {
    console.log(
      `| ${r.ranks} | ${r.sizeMib} | ${r.issue} | ${r.ms} | ${r.busbwGBps} | ${r.pctOfTcp} | ${
        r.orionMs ?? ""
      } | ${r.orionOverGloo ?? ""} |`,
    );
  }
}
const report = {
  date: new Date().toISOString(),
  cpuThreads: navigator.hardwareConcurrency,
  deno: Deno.version.deno,
  rawTcpGBps: +tcp.toFixed(3),
  warmupPerSize: Number(values.warmup),
  reductionAddGBps: { wasmSimd: +kernels.wasmSimd.toFixed(2), js: +kernels.js.toFixed(2) },
  smallMessageRoundTripMs: {
    denoClient: +latency.denoClient.toFixed(2),
    orionClient: +latency.orionClient.toFixed(2),
  },
  rows,
  rawRing,
  ...(callTraces.length ? { callTraces } : {}),
  ...(torch ? { torch } : {}),
};
if (values.json) {
  await Deno.mkdir(values.json.split("/").slice(0, -1).join("/") || ".", { recursive: true });
  await Deno.writeTextFile(values.json, JSON.stringify(report, null, 2) + "\n");
  console.error(`[bench] wrote ${values.json}`);
}
