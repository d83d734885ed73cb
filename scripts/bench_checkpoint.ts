/**
 * Checkpoint storage benchmark: write and verified-read throughput, and how much a background write
 * stalls a training loop running on the same thread.
 *
 * Usage: deno run --allow-read --allow-write --allow-run --allow-env scripts/bench_checkpoint.ts
 *          [--mb 50] [--reps 3] [--step-ms 20] [--dir /tmp] [--json]
 *
 * Measures:
 * - `writeCheckpoint` throughput (MB/s, including every fsync and the rename);
 * - `readCheckpoint` throughput (read + sha256 of every file + safetensors parse);
 * - event-loop gaps while `CheckpointWriter` writes in the background (a 1 ms timer's worst delay);
 * - training stall: a synthetic loop of CPU-bound steps (`--step-ms` of busy work, then a yield, like
 *   waiting for the GPU) runs with and without a background write; the stall is the extra wall time,
 *   reported per checkpoint and as a percentage of one step.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { readCheckpoint } from "../src/checkpoint/checkpoint_reader.ts";
import type { CheckpointState, TensorSet } from "../src/checkpoint/checkpoint_state.ts";
import { collectCodeVersion } from "../src/checkpoint/code_version.ts";
import { CheckpointWriter, writeCheckpoint } from "../src/checkpoint/checkpoint_writer.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mb: { type: "string", default: "50" },
    reps: { type: "string", default: "3" },
    "step-ms": { type: "string", default: "20" },
    dir: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const targetMb = Number(values.mb);
const reps = Number(values.reps);
const stepMs = Number(values["step-ms"]);

/** Deterministic state of about `mb` MiB: weights, EMA and two Adam moments of equal size. */
function benchState(mb: number, seed: number): CheckpointState {
  const elements = Math.max(64, Math.floor((mb * 2 ** 20) / 16 / 64) * 64);
  const fill = (k: number) => {
    const a = new Float32Array(elements);
    for (let i = 0; i < elements; i++) a[i] = Math.fround(Math.sin(seed * 7919 + k * 104729 + i));
    return a;
  };
  const set = (k: number): TensorSet => ({
    "layers.weight": { dtype: "F32", shape: [elements / 64, 64], data: fill(k) },
  });
  return {
    config: { bench: true, mb },
    model: { weights: set(1), ema: set(2) },
    optimizer: {
      tensors: {
        "exp_avg/layers.weight": set(3)["layers.weight"],
        "exp_avg_sq/layers.weight": set(4)["layers.weight"],
      },
      state: { paramGroups: [{ lr: 1e-3 }], step: seed },
    },
    scheduler: { step: seed },
    rng: { cpu: { key: [1, 2], counter: seed }, gpu: [{ key: [3, 4], counter: seed }] },
    dataloader: { epoch: 0, position: seed },
    dataHashes: { recordings: [] },
    metrics: { loss: 1 },
    lineage: { parentRun: null, stepsConsumed: seed },
  };
}

function busy(ms: number): void {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  if (x < 0) console.log(x);
}

/** Runs synthetic training steps until `steps` ran and `until()` holds; returns each step's wall ms. */
async function trainLoop(
  steps: number,
  onStep?: (i: number) => void,
  until: () => boolean = () => true,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < steps || !until(); i++) {
    const t0 = performance.now();
    onStep?.(i);
    busy(stepMs);
    await new Promise((r) => setTimeout(r, 0));
    times.push(performance.now() - t0);
  }
  return times;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const root = await Deno.makeTempDir({ prefix: "orion-bench-ckpt-", dir: values.dir });
try {
  const code = await collectCodeVersion();
  const state = benchState(targetMb, 1);

  // 1. Synchronous write and verified read throughput.
  const writes: number[] = [];
  const reads: number[] = [];
  let bytes = 0;
  for (let r = 0; r < reps; r++) {
    const runDir = `${root}/sync${r}`;
    const t0 = performance.now();
    const info = await writeCheckpoint(runDir, 1000, state, { code });
    writes.push(performance.now() - t0);
    bytes = info.bytes;
    const t1 = performance.now();
    await readCheckpoint(info.dir);
    reads.push(performance.now() - t1);
    await Deno.remove(runDir, { recursive: true });
  }
  const mbps = (ms: number) => bytes / 2 ** 20 / (ms / 1000);

  // 2. Event-loop gaps during a background write.
  const gaps: number[] = [];
  let last = performance.now();
  let ticking = true;
  const tick = () => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
    if (ticking) setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  await new Promise((r) => setTimeout(r, 100));
  const idleGaps = gaps.splice(0);
  const writer = new CheckpointWriter(`${root}/async`, { code });
  const t0 = performance.now();
  const pending = writer.submit(1000, state);
  const submitMs = performance.now() - t0;
  const bgInfo = await pending;
  const busyGaps = gaps.splice(0);
  ticking = false;

  // 3. Training stall: the same loop with and without a checkpoint written in the background.
  const snapshot = benchState(targetMb, 2); // in training this is the staging copy read back from the GPU
  await trainLoop(3); // warm-up
  const stalls: {
    stallMs: number;
    worstMs: number;
    baselineWorstMs: number;
    steps: number;
    writeMs: number;
  }[] = [];
  for (let r = 0; r < reps; r++) {
    const baselineSteps = await trainLoop(Math.max(20, Math.ceil((bgInfo.durationMs * 2) / stepMs)));
    let finished = false;
    const writeSteps = await trainLoop(1, (i) => {
      if (i === 0) writer.submit(2000 + r, snapshot).finally(() => (finished = true));
    }, () => finished);
    await writer.flush();
    const median = percentile(baselineSteps, 50);
    stalls.push({
      // Total extra wall time over the steps the write overlapped, and the worst single-step delay.
      stallMs: Math.max(0, sum(writeSteps) - median * writeSteps.length),
      worstMs: Math.max(0, Math.max(...writeSteps) - median),
      baselineWorstMs: Math.max(0, Math.max(...baselineSteps) - median),
      steps: writeSteps.length,
      writeMs: writer.lastWritten!.durationMs,
    });
  }
  const medianOf = (key: keyof (typeof stalls)[number]) => percentile(stalls.map((x) => x[key]), 50);
  const medianStep = stepMs;
  const stallMs = medianOf("stallMs");
  const worstStepDelayMs = medianOf("worstMs");
  const baselineWorstDelayMs = medianOf("baselineWorstMs");
  const writeSteps = { length: medianOf("steps") };
  const overlapped = medianOf("writeMs");

  const result = {
    checkpointMiB: bytes / 2 ** 20,
    write: { msMedian: percentile(writes, 50), mbPerS: mbps(percentile(writes, 50)) },
    verifiedRead: { msMedian: percentile(reads, 50), mbPerS: mbps(percentile(reads, 50)) },
    background: {
      submitMs,
      writeMs: bgInfo.durationMs,
      eventLoopGapMs: {
        idleMax: Math.max(...idleGaps),
        max: Math.max(...busyGaps),
        p99: percentile(busyGaps, 99),
      },
    },
    trainingStall: {
      stepMs,
      repetitions: stalls,
      stepsOverlapped: writeSteps.length,
      writeOverlappedMs: overlapped,
      stallPerCheckpointMs: stallMs,
      stallPercentOfStep: (100 * stallMs) / medianStep,
      worstStepDelayMs,
      baselineWorstStepDelayMs: baselineWorstDelayMs,
    },
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    const f = (n: number) => n.toFixed(1);
    console.log(`checkpoint size            ${f(result.checkpointMiB)} MiB`);
    console.log(
      `write (fsync+rename)       ${f(result.write.msMedian)} ms  ${
        f(result.write.mbPerS)
      } MiB/s (median of ${reps})`,
    );
    console.log(
      `verified read              ${f(result.verifiedRead.msMedian)} ms  ${
        f(result.verifiedRead.mbPerS)
      } MiB/s`,
    );
    console.log(`background submit()        ${result.background.submitMs.toFixed(3)} ms`);
    console.log(`background write           ${f(result.background.writeMs)} ms`);
    console.log(
      `event-loop gap             max ${f(result.background.eventLoopGapMs.max)} ms, p99 ${
        f(result.background.eventLoopGapMs.p99)
      } ms (idle max ${f(result.background.eventLoopGapMs.idleMax)} ms)`,
    );
    console.log(
      `training stall             ${f(stallMs)} ms per checkpoint = ${
        f(result.trainingStall.stallPercentOfStep)
      }% of a ${f(medianStep)} ms step (median of ${reps}; write overlapped ${writeSteps.length} steps, ${
        f(overlapped)
      } ms)`,
    );
    console.log(
      `worst single-step delay    ${f(worstStepDelayMs)} ms during the write (${
        f(baselineWorstDelayMs)
      } ms without; medians)`,
    );
  }
} finally {
  await Deno.remove(root, { recursive: true });
}
