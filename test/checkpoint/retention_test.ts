import assert from "node:assert/strict";
import { join } from "node:path";
import { verifyCheckpoint } from "../../src/checkpoint/checkpoint_reader.ts";
import { ckptCommand } from "../../src/checkpoint/ckpt_command.ts";
import { collectCodeVersion } from "../../src/checkpoint/code_version.ts";
import { CheckpointWriter, writeCheckpoint } from "../../src/checkpoint/checkpoint_writer.ts";
import { metricValue, planRetention, type RetentionCandidate } from "../../src/checkpoint/retention.ts";
import { syntheticState } from "./synthetic_state.ts";

const code = await collectCodeVersion({ git: false });

function candidate(
  step: number,
  valLoss: number | null,
  hash: string | null = step.toString(16).padStart(64, "0"),
): RetentionCandidate {
  return {
    name: `ckpt-step${String(step).padStart(9, "0")}`,
    dir: `/runs/r/ckpt-step${String(step).padStart(9, "0")}`,
    step,
    hash,
    metrics: valLoss === null ? {} : { val_loss: valLoss, eval: { acc: 1 - valLoss } },
  };
}

Deno.test("planRetention keeps last ∪ best ∪ every-N ∪ pinned, with reasons", () => {
  const losses = [0.9, 0.5, 0.7, 0.2, 0.8, 0.6, 0.95, 0.4, 0.85, 0.99];
  const cands = losses.map((l, i) => candidate((i + 1) * 1000, l));
  cands.push(candidate(11000, null));
  const plan = planRetention(cands, {
    keepLast: 2,
    keepBest: { k: 2, metric: "val_loss", mode: "min" },
    keepEvery: 5000,
  }, ["ckpt-step000003000", "/runs/r/ckpt-step000007000", candidate(9000, 0).hash!, "ckpt-step000099999"]);
  const keep = Object.fromEntries(plan.keep.map((d) => [d.step, d.reasons]));
  assert.deepEqual(Object.keys(keep).map(Number).sort((a, b) => a - b), [
    3000,
    4000,
    5000,
    7000,
    8000,
    9000,
    10000,
    11000,
  ]);
  assert.match(keep[11000].join(), /last 2 \(#1 newest\)/);
  assert.match(keep[10000].join(), /last 2 \(#2 newest\),every 5000 steps/);
  assert.match(keep[4000].join(), /best 2 by val_loss \(min\): #1 with 0\.2/);
  assert.match(keep[8000].join(), /best 2 by val_loss \(min\): #2 with 0\.4/);
  assert.match(keep[5000].join(), /every 5000 steps/);
  assert.match(keep[3000].join(), /pinned by ckpt-step000003000/);
  assert.match(keep[7000].join(), /pinned by \/runs\/r\/ckpt-step000007000/);
  assert.match(keep[9000].join(), /pinned by 0+2328/);
  assert.deepEqual(plan.delete.map((d) => d.step), [6000, 2000, 1000]);
  assert.deepEqual(plan.unmatchedPins, ["ckpt-step000099999"]);
  // max mode over a dotted path.
  const best = planRetention(cands, { keepLast: 1, keepBest: { k: 1, metric: "eval.acc", mode: "max" } });
  assert.deepEqual(best.keep.map((d) => d.step), [11000, 4000]);
  assert.equal(metricValue({ "a.b": 3, a: { b: 4 } }, "a.b"), 3, "a literal dotted key wins");
  assert.equal(metricValue({ a: "x" }, "a"), null);
});

Deno.test("planRetention never deletes unreadable checkpoints and refuses keepLast < 1", () => {
  const plan = planRetention([candidate(1, 0.1), candidate(2, 0.2, null), candidate(3, 0.3)], {
    keepLast: 1,
  });
  assert.deepEqual(plan.keep.map((d) => d.step), [3, 2]);
  assert.match(plan.keep[1].reasons[0], /manifest unreadable/);
  assert.deepEqual(plan.delete.map((d) => d.step), [1]);
  assert.throws(
    () => planRetention([], { keepLast: 0 }),
    /Cannot use retention policy as keepLast is invalid/,
  );
});

async function makeRun(): Promise<string> {
  const runDir = await Deno.makeTempDir({ prefix: "orion-ckpt-gc-" });
  const losses = [0.5, 0.1, 0.4, 0.3, 0.6, 0.7];
  let parent: string | null = null;
  for (let i = 0; i < losses.length; i++) {
    const info = await writeCheckpoint(
      runDir,
      (i + 1) * 100,
      syntheticState(i, { metrics: { val_loss: losses[i] } }),
      {
        code,
        parentHash: parent,
      },
    );
    parent = info.hash;
  }
  return runDir;
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const c = await ckptCommand(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code: c, out: out.join("\n"), err: err.join("\n") };
}

const dirs = async (runDir: string) =>
  (await Array.fromAsync(Deno.readDir(runDir))).map((e) => e.name).sort();

Deno.test("ckpt gc --dry-run deletes nothing; gc deletes exactly the plan and keeps best/last/pinned", async () => {
  const runDir = await makeRun();
  try {
    await Deno.mkdir(join(runDir, ".tmp-ckpt-step000000700-abcdef"));
    const before = await dirs(runDir);
    const args = [
      "gc",
      runDir,
      "--keep-last",
      "2",
      "--keep-best",
      "1",
      "--metric",
      "val_loss",
      "--mode",
      "min",
      "--pin",
      "ckpt-step000000300",
    ];
    const dry = await run([...args, "--dry-run"]);
    assert.equal(dry.code, 0, dry.err);
    assert.deepEqual(await dirs(runDir), before, "dry run touched nothing (not even scratch dirs)");
    assert.match(dry.out, /delete\? ckpt-step000000100/);
    assert.match(dry.out, /delete\? ckpt-step000000400/);
    assert.match(dry.out, /would delete 2 of 6 checkpoint\(s\) \(dry run: nothing deleted\)/);
    const real = await run(args);
    assert.equal(real.code, 0, real.err);
    assert.deepEqual(await dirs(runDir), [
      "ckpt-step000000200",
      "ckpt-step000000300",
      "ckpt-step000000500",
      "ckpt-step000000600",
    ]);
    assert.match(real.out, /removed stale \.tmp-ckpt-step000000700-abcdef/);
    for (const d of await dirs(runDir)) assert.ok((await verifyCheckpoint(join(runDir, d))).ok, d);
    const json = await run(["gc", runDir, "--dry-run", "--json", "--keep-last", "1"]);
    const parsed = JSON.parse(json.out);
    assert.deepEqual(parsed.delete.map((d: { step: number }) => d.step), [500, 300, 200]);
    assert.equal((await run(["gc", runDir, "--keep-last", "0"])).code, 2);
    assert.equal((await run(["gc", runDir, "--keep-best", "1"])).code, 2);
    assert.equal((await run(["gc"])).code, 2);
    assert.equal((await run(["gc", runDir, "--bogus"])).code, 2);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("CheckpointWriter applies retention after each write, keeping pins and the new checkpoint", async () => {
  const runDir = await Deno.makeTempDir({ prefix: "orion-ckpt-gcw-" });
  try {
    const pins = new Set<string>();
    const writer = new CheckpointWriter(runDir, {
      code,
      retention: {
        policy: { keepLast: 2, keepBest: { k: 1, metric: "val_loss", mode: "min" } },
        pins: () => pins,
      },
    });
    const losses = [0.5, 0.1, 0.4, 0.3, 0.6];
    for (let i = 0; i < losses.length; i++) {
      if (i === 1) pins.add("ckpt-step000000100"); // e.g. a pending benchmark references it
      if (i === 4) pins.clear(); // the benchmark finished
      await writer.submit((i + 1) * 100, syntheticState(i, { metrics: { val_loss: losses[i] } }));
      if (i === 3) {
        assert.deepEqual(
          await dirs(runDir),
          [100, 200, 300, 400].map((s) => `ckpt-step000000${s}`),
          "pinned 100 kept",
        );
      }
    }
    await writer.close();
    assert.deepEqual(await dirs(runDir), ["ckpt-step000000200", "ckpt-step000000400", "ckpt-step000000500"]);
    assert.deepEqual(writer.lastWritten?.retention?.delete.map((d) => d.step), [300, 100]);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("ckpt show and ckpt verify report content and failures", async () => {
  const runDir = await makeRun();
  try {
    const dir = join(runDir, "ckpt-step000000200");
    const shown = await run(["show", dir]);
    assert.equal(shown.code, 0, shown.err);
    assert.match(shown.out, /^checkpoint {2}.*ckpt-step000000200$/m);
    assert.match(shown.out, /^step {8}200$/m);
    assert.match(shown.out, /^parent {6}[0-9a-f]{64}$/m);
    assert.match(shown.out, /model\/weights\.safetensors/);
    assert.match(shown.out, /^ {2}val_loss: 0\.1$/m);
    assert.match(shown.out, /^ {2}decoding_r2: \{"at":1,"r2":0\.5\}$/m);
    assert.match(shown.out, /^ {2}stepsConsumed: 1$/m);
    assert.match(shown.out, /^ {2}recordings: \[1 items\]$/m);
    assert.match(shown.out, /^verified {4}ok$/m);
    const asJson = JSON.parse((await run(["show", dir, "--json"])).out);
    assert.equal(asJson.manifest.step, 200);
    assert.equal(asJson.verification.ok, true);

    const ok = await run(["verify", runDir]);
    assert.equal(ok.code, 0);
    assert.equal(ok.out.split("\n").filter((l) => l.startsWith("ok ")).length, 6);
    await Deno.writeFile(join(dir, "rng", "cpu.json"), new TextEncoder().encode("{}"));
    const bad = await run(["verify", runDir]);
    assert.equal(bad.code, 1);
    assert.match(
      bad.out,
      /FAILED {2}ckpt-step000000200\n {2}rng\/cpu\.json: has 2 bytes but the manifest says/,
    );
    const badShow = await run(["show", dir]);
    assert.equal(badShow.code, 1);
    assert.match(badShow.out, /^verified {4}FAILED: rng\/cpu\.json/m);
    assert.equal((await run(["verify", join(runDir, "nope")])).code, 1);
    assert.equal((await run(["frobnicate"])).code, 2);
    assert.equal((await run(["help"])).code, 0);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
