import assert from "node:assert/strict";
import { join } from "node:path";
import {
  appendMetrics,
  METRICS_FILE,
  MetricsLog,
  MetricsLogError,
  readMetrics,
  rewindMetrics,
} from "../../src/checkpoint/metrics_log.ts";
import { CheckpointStateError } from "../../src/checkpoint/checkpoint_state.ts";

async function withRunDir(fn: (runDir: string) => Promise<void>): Promise<void> {
  const runDir = await Deno.makeTempDir({ prefix: "orion-metrics-" });
  try {
    await fn(runDir);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
}

Deno.test("metrics log: appends in order, rewinds to a checkpoint step, and a resumed run logs no step twice", async () => {
  await withRunDir(async (runDir) => {
    const log = await MetricsLog.open(runDir);
    const appends = [];
    for (let step = 1; step <= 10; step++) appends.push(log.append({ step, loss: 1 / step, split: "train" }));
    appends.push(log.append({ step: 5, val_loss: 0.3, split: "val" })); // an eval entry logged later
    await Promise.all(appends);
    await log.sync();
    await log.close();
    assert.deepEqual((await readMetrics(runDir)).entries.map((e) => e.step), [
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
      10,
      5,
    ]);
    // Crash after step 10, resume from the checkpoint at step 6.
    assert.deepEqual(await rewindMetrics(runDir, 6), { kept: 7, removed: 4 });
    const kept = (await readMetrics(runDir)).entries;
    assert.deepEqual(kept.map((e) => e.step), [1, 2, 3, 4, 5, 6, 5]);
    assert.deepEqual(kept[0], { step: 1, loss: 1, split: "train" });
    const resumed = await MetricsLog.open(runDir);
    for (let step = 7; step <= 8; step++) await resumed.append({ step, loss: 1 / step, split: "train" });
    await resumed.close();
    const train = (await readMetrics(runDir)).entries.filter((e) => e.split === "train").map((e) => e.step);
    assert.deepEqual(train, [1, 2, 3, 4, 5, 6, 7, 8], "no step logged twice");
    assert.deepEqual(await rewindMetrics(runDir, 100), { kept: 9, removed: 0 });
    assert.equal(
      (await Array.fromAsync(Deno.readDir(runDir))).filter((e) => e.name !== METRICS_FILE).length,
      0,
      "no temp files left",
    );
  });
});

Deno.test("metrics log: a torn last line is ignored, cut off on open and dropped by rewind", async () => {
  await withRunDir(async (runDir) => {
    await appendMetrics(runDir, { step: 1, loss: 2 });
    await appendMetrics(runDir, { step: 2, loss: 1 });
    const path = join(runDir, METRICS_FILE);
    await Deno.writeTextFile(path, '{"step":3,"lo', { append: true }); // crash in the middle of a write
    assert.deepEqual(await readMetrics(runDir), {
      entries: [{ loss: 2, step: 1 }, { loss: 1, step: 2 }],
      tornTail: true,
    });
    await appendMetrics(runDir, { step: 3, loss: 0.5 });
    assert.equal(
      await Deno.readTextFile(path),
      '{"loss":2,"step":1}\n{"loss":1,"step":2}\n{"loss":0.5,"step":3}\n',
    );
    await Deno.writeTextFile(path, '{"step":4', { append: true });
    assert.deepEqual(await rewindMetrics(runDir, 3), { kept: 3, removed: 0 });
    assert.equal((await readMetrics(runDir)).tornTail, false);
  });
});

Deno.test("metrics log: refuses malformed lines and entries without a step; an empty run has no metrics", async () => {
  await withRunDir(async (runDir) => {
    assert.deepEqual(await readMetrics(runDir), { entries: [], tornTail: false });
    assert.deepEqual(await rewindMetrics(runDir, 5), { kept: 0, removed: 0 });
    await assert.rejects(() => appendMetrics(runDir, { loss: 1 } as never), CheckpointStateError);
    await assert.rejects(() => appendMetrics(runDir, { step: 1, loss: NaN }), /non-finite/);
    const path = join(runDir, METRICS_FILE);
    await Deno.writeTextFile(path, '{"step":1}\nnot json\n{"step":3}\n');
    await assert.rejects(
      () => readMetrics(runDir),
      (e: unknown) => e instanceof MetricsLogError && e.line === 2,
    );
    await assert.rejects(() => rewindMetrics(runDir, 1), MetricsLogError);
    assert.equal(
      await Deno.readTextFile(path),
      '{"step":1}\nnot json\n{"step":3}\n',
      "refusal loses nothing",
    );
    await Deno.writeTextFile(path, '{"step":-1}\n');
    await assert.rejects(() => readMetrics(runDir), /line 1 has no non-negative integer step/);
  });
});
