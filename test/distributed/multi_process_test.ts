/**
 * Multi-process tests: every rank is its own Deno process on loopback, started by the real local launcher
 * (coordinator + node agent) running the synthetic program.
 */
import assert from "node:assert/strict";
import { referenceRingMean } from "../../src/distributed/ring_all_reduce.ts";
import { Coordinator } from "../../src/distributed/coordinator.ts";
import { generateJoinSecret } from "../../src/distributed/join_token.ts";
import {
  bytesOf,
  DENO_FLAGS,
  launchSynthetic,
  makeJob,
  readProgress,
  readStops,
  referenceFinalParams,
  spawnCollect,
  stepInputs,
  SYNTHETIC_PROGRAM,
  waitFor,
} from "./fixtures/harness.ts";

const finals = new Map<string, Uint8Array>();

async function checkRun(
  worldSize: number,
  kernel: "wasm-simd" | "js",
  transport: string,
  expectRouting?: { env: Record<string, string>; buckets: Array<"stripes" | "ring"> },
) {
  const job = await makeJob({ gpusPerNode: worldSize, steps: 6, recordSteps: 2 });
  try {
    const run = launchSynthetic(job.configPath, [
      "--run-dir",
      `${job.dir}/run`,
      "--kernel",
      kernel,
      "--transport",
      transport,
      "--stripes",
      "1",
    ], expectRouting?.env);
    const { code, output } = await run.done;
    assert.equal(code, 0, output);
    assert.match(output, /job completed/);
    for (let step = 1; step <= 2; step++) {
      const inputs = stepInputs(job.settings, step, worldSize);
      for (const [b, perRank] of inputs.entries()) {
        const expected = bytesOf(referenceRingMean(perRank));
        for (let r = 0; r < worldSize; r++) {
          const got = await Deno.readFile(`${job.settings.outDir}/allreduce/s${step}_r${r}_b${b}.bin`);
          assert.deepEqual(
            got,
            expected,
            `step ${step} bucket ${b} rank ${r} differs from the reference sum order`,
          );
        }
      }
    }
    const expectedFinal = bytesOf(referenceFinalParams(job.settings, worldSize));
    for (let r = 0; r < worldSize; r++) {
      assert.deepEqual(await Deno.readFile(`${job.settings.outDir}/final/rank${r}.bin`), expectedFinal);
    }
    if (expectRouting) {
      for (let r = 0; r < worldSize; r++) {
        const routing = JSON.parse(
          await Deno.readTextFile(`${job.settings.outDir}/progress/routing_rank${r}.json`),
        );
        assert.deepEqual(routing, { stripes: 1, buckets: expectRouting.buckets }, `rank ${r}`);
      }
    }
    const mapping = JSON.parse(await Deno.readTextFile(`${job.dir}/run/distributed/node0_gpus.json`));
    assert.equal(mapping.ranks.length, worldSize);
    finals.set(`${worldSize}`, expectedFinal);
  } finally {
    await Deno.remove(job.dir, { recursive: true });
  }
}

Deno.test("2 ranks (processes): ring all-reduce is bitwise the reference order and identical on every rank", async () => {
  // One stripe. By default buckets under 2 ranks × 1 stripe × 64 KiB (polled; 128 KiB on the event-loop
  // stripes) stay on the own-thread ring: both paths in one job, the same bits. ORION_STRIPE_MIN_BYTES=0
  // sends every bucket through the stripe.
  await checkRun(2, "wasm-simd", "tcp-websocket", { env: {}, buckets: ["ring", "stripes", "ring"] });
  await checkRun(2, "wasm-simd", "tcp-websocket", {
    env: { ORION_STRIPE_MIN_BYTES: "0" },
    buckets: ["stripes", "stripes", "stripes"],
  });
});

Deno.test("3 ranks (processes, JS kernel, Deno WebSocket transport): same bits as the reference, identical on every rank", async () => {
  await checkRun(3, "js", "deno-websocket");
});

Deno.test("uninterrupted 2-rank run (reference for the kill test) equals the in-test reference", async () => {
  const job = await makeJob({
    gpusPerNode: 2,
    steps: 12,
    checkpointEvery: 3,
    stepDelayMs: 0,
    recordSteps: 0,
  });
  try {
    const { code, output } = await launchSynthetic(job.configPath, ["--run-dir", `${job.dir}/run`]).done;
    assert.equal(code, 0, output);
    const got = await Deno.readFile(`${job.settings.outDir}/final/rank0.bin`);
    assert.deepEqual(got, bytesOf(referenceFinalParams(job.settings, 2)));
    assert.deepEqual(await Deno.readFile(`${job.settings.outDir}/final/rank1.bin`), got);
    finals.set("2-long", got);
  } finally {
    await Deno.remove(job.dir, { recursive: true });
  }
});

Deno.test("SIGKILLed rank: detected at once, others stop, restart from the committed checkpoint ends bit-exact", async () => {
  const job = await makeJob({
    gpusPerNode: 2,
    steps: 12,
    checkpointEvery: 3,
    stepDelayMs: 60,
    recordSteps: 0,
  });
  try {
    const run = launchSynthetic(job.configPath, ["--run-dir", `${job.dir}/run`, "--max-restarts", "2"]);
    const out = job.settings.outDir;
    const victim = await waitFor(
      async () => {
        const p = await readProgress(out, 1);
        return p && p.generation === 0 && p.step >= 5 ? p : undefined;
      },
      60_000,
      "rank 1 to reach step 5",
    );
    const killedAt = Date.now();
    Deno.kill(victim.pid, "SIGKILL");
    const stop = await waitFor(
      async () => (await readStops(out)).find((s) => s.rank === 0),
      10_000,
      "rank 0 to stop",
    );
    const detectionMs = stop.at - killedAt;
    console.log(`killed rank detected and rank 0 stopped after ${detectionMs} ms: ${stop.reason}`);
    assert.ok(detectionMs < 1000, `detection took ${detectionMs} ms`);
    assert.equal(stop.kind, "stopped");
    const { code, output } = await run.done;
    assert.equal(code, 0, output);
    // Whichever is seen first: the coordinator's socket to rank 1 closing, or rank 0's data link from it.
    assert.match(
      output,
      /generation 0 failed: (rank 1 .* disconnected \(connection dropped\)|rank 0 lost its link to rank 1: (stripe \d |polled )?link (from|to) rank 1 closed)/,
    );
    assert.match(output, /generation 1: assigned 2 ranks .* resume step 3/);
    const expected = bytesOf(referenceFinalParams(job.settings, 2));
    for (let r = 0; r < 2; r++) assert.deepEqual(await Deno.readFile(`${out}/final/rank${r}.bin`), expected);
    // Byte-identical to the uninterrupted run of the previous test (same settings, stepDelayMs aside).
    const uninterrupted = finals.get("2-long");
    assert.ok(uninterrupted, "the uninterrupted run must run first");
    for (let r = 0; r < 2; r++) {
      assert.deepEqual(await Deno.readFile(`${out}/final/rank${r}.bin`), uninterrupted);
    }
  } finally {
    await Deno.remove(job.dir, { recursive: true });
  }
});

Deno.test("a rank that wrongly saw the coordinator lost (exit 76) is respawned when the coordinator restarts", async () => {
  // A starved coordinator looks lost to a rank, which exits 76 ("job over"); the coordinator is alive and
  // restarts the generation that rank left, so the agent must bring the rank back rather than wait forever.
  const job = await makeJob({
    gpusPerNode: 2,
    steps: 12,
    checkpointEvery: 3,
    stepDelayMs: 30,
    recordSteps: 0,
    exitAt: { step: 5, code: 76 },
  });
  try {
    const run = launchSynthetic(job.configPath, ["--run-dir", `${job.dir}/run`, "--max-restarts", "2"]);
    // Without the respawn the next generation waits for rank 1 forever: give up after 60 s.
    const timer = setTimeout(() => Deno.kill(run.child.pid, "SIGKILL"), 60_000);
    const { code, output } = await run.done.finally(() => clearTimeout(timer));
    assert.equal(code, 0, output);
    assert.match(
      output,
      /local rank 1 \(pid \d+\) left (a|the) generation the coordinator restarts; restart 1\/2/,
    );
    assert.match(output, /generation 1: assigned 2 ranks .* resume step 3/);
    const expected = bytesOf(referenceFinalParams(job.settings, 2));
    for (let r = 0; r < 2; r++) {
      assert.deepEqual(await Deno.readFile(`${job.settings.outDir}/final/rank${r}.bin`), expected);
    }
  } finally {
    await Deno.remove(job.dir, { recursive: true });
  }
});

Deno.test("hung rank (SIGSTOP): detected within 5 s, others stop, the agent reaps it and the job restarts", async () => {
  const job = await makeJob({
    gpusPerNode: 2,
    steps: 9,
    checkpointEvery: 3,
    stepDelayMs: 40,
    recordSteps: 0,
  });
  try {
    const run = launchSynthetic(job.configPath, ["--run-dir", `${job.dir}/run`, "--max-restarts", "2"]);
    const out = job.settings.outDir;
    const victim = await waitFor(
      async () => {
        const p = await readProgress(out, 1);
        return p && p.generation === 0 && p.step >= 4 ? p : undefined;
      },
      60_000,
      "rank 1 to reach step 4",
    );
    const frozenAt = Date.now();
    Deno.kill(victim.pid, "SIGSTOP");
    const stop = await waitFor(
      async () => (await readStops(out)).find((s) => s.rank === 0),
      10_000,
      "rank 0 to stop",
    );
    const detectionMs = stop.at - frozenAt;
    console.log(`hung rank detected and rank 0 stopped after ${detectionMs} ms: ${stop.reason}`);
    assert.ok(detectionMs <= 5000, `detection took ${detectionMs} ms`);
    assert.match(stop.reason, /missed heartbeats/);
    const { code, output } = await run.done;
    assert.equal(code, 0, output);
    assert.match(output, /SIGKILL/);
    const expected = bytesOf(referenceFinalParams(job.settings, 2));
    for (let r = 0; r < 2; r++) assert.deepEqual(await Deno.readFile(`${out}/final/rank${r}.bin`), expected);
  } finally {
    await Deno.remove(job.dir, { recursive: true });
  }
});

Deno.test("a rank that announces a busy phase may block its thread past the heartbeat timeout; without it, it is declared hung", async () => {
  for (const announce of [true, false]) {
    const job = await makeJob({
      gpusPerNode: 2,
      steps: 6,
      checkpointEvery: 3,
      recordSteps: 0,
      // 6 s without heartbeats, past the coordinator's default 4 s and the ranks' 5 s.
      block: { step: 2, ms: 6000, ...(announce ? { announceMs: 20_000 } : {}) },
    });
    try {
      const run = launchSynthetic(job.configPath, ["--run-dir", `${job.dir}/run`, "--max-restarts", "1"]);
      const { code, output } = await run.done;
      assert.equal(code, 0, output);
      const out = job.settings.outDir;
      const expected = bytesOf(referenceFinalParams(job.settings, 2));
      for (let r = 0; r < 2; r++) {
        assert.deepEqual(await Deno.readFile(`${out}/final/rank${r}.bin`), expected);
      }
      if (announce) {
        assert.match(output, /announced up to 20000 ms without heartbeats: test: blocking/);
        assert.doesNotMatch(
          output,
          /missed heartbeats|generation 1/,
          "an announced busy rank was declared hung",
        );
      } else {
        // The same block unannounced: a hung rank, restarted from the last checkpoint (same final bytes).
        assert.match(output, /missed heartbeats/);
      }
    } finally {
      await Deno.remove(job.dir, { recursive: true });
    }
  }
});

Deno.test("a rank busy in many short blocks (announced) does not take the coordinator for lost", async () => {
  // Compiling pipelines one after another: 2.5 s blocks with an event-loop turn between them, 10 s in all.
  // Each block is too short for the rank to see that its own thread was blocked, and the coordinator's
  // messages wait in the socket; it must not judge the coordinator's silence while it announced being busy.
  const job = await makeJob({
    gpusPerNode: 2,
    steps: 6,
    checkpointEvery: 3,
    recordSteps: 0,
    block: { step: 2, ms: 10_000, sliceMs: 2500, announceMs: 20_000 },
  });
  try {
    const run = launchSynthetic(job.configPath, ["--run-dir", `${job.dir}/run`, "--max-restarts", "1"]);
    const { code, output } = await run.done;
    assert.equal(code, 0, output);
    assert.doesNotMatch(output, /coordinator lost|no message from the coordinator|generation 1/, output);
    const expected = bytesOf(referenceFinalParams(job.settings, 2));
    for (let r = 0; r < 2; r++) {
      assert.deepEqual(await Deno.readFile(`${job.settings.outDir}/final/rank${r}.bin`), expected);
    }
  } finally {
    await Deno.remove(job.dir, { recursive: true });
  }
});

Deno.test("frozen coordinator (launcher SIGSTOPped): ranks detect the silence and exit with a clear message", async () => {
  const job = await makeJob({
    gpusPerNode: 2,
    steps: 10_000,
    checkpointEvery: 1000,
    stepDelayMs: 20,
    recordSteps: 0,
  });
  const run = launchSynthetic(job.configPath, ["--run-dir", `${job.dir}/run`]);
  try {
    const out = job.settings.outDir;
    await waitFor(async () => ((await readProgress(out, 0))?.step ?? 0) >= 3 || undefined, 60_000, "step 3");
    const frozenAt = Date.now();
    Deno.kill(run.child.pid, "SIGSTOP");
    const stops = await waitFor(
      async () => {
        const s = await readStops(out);
        return s.length === 2 ? s : undefined;
      },
      15_000,
      "both ranks to stop",
    );
    for (const stop of stops) {
      assert.equal(stop.kind, "coordinator_lost");
      assert.match(stop.reason, /no message from the coordinator/);
      const ms = stop.at - frozenAt;
      console.log(`rank ${stop.rank} detected the frozen coordinator after ${ms} ms`);
      assert.ok(ms < 7000, `${ms} ms`);
    }
  } finally {
    Deno.kill(run.child.pid, "SIGKILL");
    await run.done;
    await Deno.remove(job.dir, { recursive: true });
  }
});

Deno.test("coordinator crash (sockets dropped): rank processes exit 76 with a clear message", async () => {
  const job = await makeJob({
    gpusPerNode: 2,
    steps: 10_000,
    checkpointEvery: 1000,
    stepDelayMs: 20,
    recordSteps: 0,
  });
  const secret = generateJoinSecret();
  const config = JSON.parse(await Deno.readTextFile(job.configPath));
  const coordinator = await Coordinator.start({
    jobId: "crash-test",
    secret,
    worldSize: 2,
    config,
    hostname: "127.0.0.1",
    log: () => {},
  });
  const workers = [0, 1].map((i) =>
    spawnCollect(
      [
        Deno.execPath(),
        "run",
        ...DENO_FLAGS,
        SYNTHETIC_PROGRAM,
        "worker",
        "--coordinator",
        coordinator.url(),
        "--job-id",
        "crash-test",
        "--local-rank",
        String(i),
      ],
      { ORION_JOIN_SECRET: secret },
    )
  );
  try {
    await waitFor(
      async () => ((await readProgress(job.settings.outDir, 1))?.step ?? 0) >= 3 || undefined,
      60_000,
      "step 3",
    );
    const crashedAt = Date.now();
    await coordinator.abort();
    for (const worker of workers) {
      const { code, output } = await worker.done;
      assert.equal(code, 76, output);
      assert.match(
        output,
        /coordinator lost, exiting: the coordinator at ws:\/\/127\.0\.0\.1:\d+\/join closed the connection/,
      );
    }
    const stops = await readStops(job.settings.outDir);
    assert.equal(stops.length, 2);
    for (const stop of stops) {
      console.log(`rank ${stop.rank} saw the coordinator crash after ${stop.at - crashedAt} ms`);
      assert.ok(stop.at - crashedAt < 1000);
    }
  } finally {
    for (const worker of workers) {
      try {
        worker.child.kill("SIGKILL");
      } catch { /* exited */ }
      await worker.done;
    }
    await Deno.remove(job.dir, { recursive: true });
  }
});
