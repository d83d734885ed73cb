import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { checkpointDirName, parseCheckpointDirName } from "../../src/checkpoint/checkpoint_layout.ts";
import { computeCheckpointHash } from "../../src/checkpoint/checkpoint_manifest.ts";
import { readCheckpoint, verifyCheckpoint } from "../../src/checkpoint/checkpoint_reader.ts";
import { CheckpointStateError } from "../../src/checkpoint/checkpoint_state.ts";
import { collectCodeVersion, lockfileDependencies } from "../../src/checkpoint/code_version.ts";
import { writeCheckpoint } from "../../src/checkpoint/checkpoint_writer.ts";
import { syntheticState } from "./synthetic_state.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "orion-ckpt-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listTree(root: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(rel ? join(root, rel) : root)) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) out.push(`${path}/`, ...await listTree(root, path));
    else out.push(path);
  }
  return out.sort();
}

const code = await collectCodeVersion();

Deno.test("checkpoint dir names are zero-padded to 9 digits and parse back", () => {
  assert.equal(checkpointDirName(50000), "ckpt-step000050000");
  assert.equal(checkpointDirName(0), "ckpt-step000000000");
  assert.equal(checkpointDirName(1234567890), "ckpt-step1234567890");
  assert.equal(parseCheckpointDirName("ckpt-step000050000"), 50000);
  assert.equal(parseCheckpointDirName("ckpt-step1234567890"), 1234567890);
  assert.equal(parseCheckpointDirName("ckpt-step50000"), null);
  assert.equal(parseCheckpointDirName("ckpt-step0000500001"), null, "10 digits must not have a leading zero");
  assert.equal(parseCheckpointDirName(".tmp-ckpt-step000050000-ab"), null);
  assert.throws(() => checkpointDirName(-1), CheckpointStateError);
  assert.throws(() => checkpointDirName(1.5), CheckpointStateError);
});

Deno.test("writeCheckpoint produces exactly the issue's layout and reads back bit-identically", async () => {
  await withTempDir(async (runDir) => {
    const state = syntheticState(7, { worldSize: 2, gpus: 2 });
    const info = await writeCheckpoint(runDir, 50000, state, { code });
    assert.equal(info.name, "ckpt-step000050000");
    assert.equal(info.dir, join(runDir, "ckpt-step000050000"));
    assert.equal(info.parentHash, null);
    assert.deepEqual(await listTree(runDir), [
      "ckpt-step000050000/",
      ...[
        "benchmarks/",
        "benchmarks/decoding_r2.json",
        "code_version.json",
        "config.json",
        "data_hashes/",
        "data_hashes/manifest.json",
        "dataloader/",
        "dataloader/cursor.json",
        "distributed/",
        "distributed/rank0.json",
        "distributed/rank1.json",
        "env.lock",
        "grad_scaler/",
        "grad_scaler/state.json",
        "lineage.json",
        "manifest.json",
        "metrics/",
        "metrics/snapshot.json",
        "model/",
        "model/ema.safetensors",
        "model/weights.safetensors",
        "optimizer/",
        "optimizer/state.json",
        "optimizer/state.safetensors",
        "rng/",
        "rng/cpu.json",
        "rng/gpu_0.json",
        "rng/gpu_1.json",
        "scheduler/",
        "scheduler/state.json",
      ].map((p) => `ckpt-step000050000/${p}`),
    ]);
    const loaded = await readCheckpoint(info.dir);
    assert.equal(loaded.step, 50000);
    assert.equal(loaded.hash, info.hash);
    assert.deepEqual(loaded.state, { ...state, lineage: { ...state.lineage, parentCheckpointHash: null } });
    // Tensors are typed views of the right kind, not copies of each element.
    assert.ok(loaded.state.model.weights["encoder.weight"].data instanceof Float32Array);
    assert.ok(loaded.state.optimizer.tensors["step/encoder.weight"].data instanceof BigInt64Array);
    // Manifest: format, step, every file's sha256, and the checkpoint hash over the sorted list.
    const manifest = JSON.parse(await Deno.readTextFile(join(info.dir, "manifest.json")));
    assert.equal(manifest.format, "orion.checkpoint");
    assert.equal(manifest.formatVersion, 1);
    assert.equal(manifest.step, 50000);
    assert.equal(manifest.files.length, info.files - 1);
    for (const f of manifest.files) {
      const bytes = await Deno.readFile(join(info.dir, f.path));
      assert.equal(createHash("sha256").update(bytes).digest("hex"), f.sha256, f.path);
      assert.equal(bytes.byteLength, f.bytes);
    }
    const lines = [...manifest.files].sort((a, b) => (a.path < b.path ? -1 : 1)).map((f) =>
      `${f.path}\t${f.sha256}\n`
    );
    assert.equal(createHash("sha256").update(lines.join("")).digest("hex"), info.hash);
    assert.equal(computeCheckpointHash(manifest.files), info.hash);
    // env.lock is deno.lock; code_version.json describes this process.
    const lock = await Deno.readFile(new URL("../../deno.lock", import.meta.url));
    assert.deepEqual(loaded.envLock, lock);
    assert.equal(loaded.codeVersion.deno, Deno.version.deno);
    assert.equal(loaded.codeVersion.typescript, Deno.version.typescript);
    assert.equal(
      loaded.codeVersion.orion.version,
      JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url))).version,
    );
    assert.deepEqual(loaded.codeVersion.dependencies, lockfileDependencies(new TextDecoder().decode(lock)));
    assert.equal(loaded.codeVersion.lockfileSha256, createHash("sha256").update(lock).digest("hex"));
  });
});

Deno.test("code version records the git commit and dirty flag of the checkout", async () => {
  const out = await new Deno.Command("git", {
    args: ["rev-parse", "HEAD"],
    cwd: new URL("../..", import.meta.url),
  }).output();
  if (!out.success) return; // not a git checkout (e.g. a packaged copy): nothing to compare against
  assert.equal(code.version.git.commit, new TextDecoder().decode(out.stdout).trim());
  assert.equal(typeof code.version.git.dirty, "boolean");
  const noGit = await collectCodeVersion({ git: false });
  assert.equal(noGit.version.git.commit, null);
  assert.equal(noGit.version.git.error, "git lookup disabled");
});

Deno.test("content hash is independent of time and place; lineage chains parents", async () => {
  await withTempDir(async (root) => {
    const a = await writeCheckpoint(join(root, "a"), 10, syntheticState(3), { code });
    const b = await writeCheckpoint(join(root, "b"), 10, syntheticState(3), { code });
    assert.equal(a.hash, b.hash, "same state → same checkpoint hash");
    const c = await writeCheckpoint(join(root, "a"), 20, syntheticState(4), { code, parentHash: a.hash });
    assert.notEqual(c.hash, a.hash);
    const loaded = await readCheckpoint(c.dir);
    assert.equal(loaded.manifest.parentHash, a.hash);
    assert.equal(loaded.state.lineage.parentCheckpointHash, a.hash);
    // An explicit lineage parent wins over the option.
    const explicit = syntheticState(5);
    explicit.lineage.parentCheckpointHash = c.hash;
    const d = await writeCheckpoint(join(root, "a"), 30, explicit, { code, parentHash: a.hash });
    assert.equal(d.parentHash, c.hash);
  });
});

Deno.test("optional parts are omitted and come back absent", async () => {
  await withTempDir(async (runDir) => {
    const state = syntheticState(1, { benchmarks: false, gpus: 0 });
    delete state.gradScaler;
    delete state.model.ema;
    const info = await writeCheckpoint(runDir, 1, state, { code });
    const tree = await listTree(info.dir);
    assert.ok(
      !tree.some((p) => p.startsWith("grad_scaler") || p.startsWith("distributed") || p.includes("ema")),
    );
    assert.ok(tree.includes("benchmarks/"), "benchmarks/ always exists");
    const loaded = await readCheckpoint(info.dir);
    assert.equal(loaded.state.gradScaler, undefined);
    assert.equal(loaded.state.model.ema, undefined);
    assert.equal(loaded.state.distributed, undefined);
    assert.deepEqual(loaded.state.rng.gpu, []);
    assert.deepEqual(loaded.state.benchmarks, {});
  });
});

Deno.test("invalid states are refused before anything is written", async () => {
  await withTempDir(async (runDir) => {
    const cases: [(s: ReturnType<typeof syntheticState>) => void, RegExp][] = [
      [(s) => (s.scheduler.lr = NaN), /scheduler\.lr .*non-finite.*NaN/],
      [
        (s) => (s.rng.cpu.counter = 5n as unknown as number),
        /rng\.cpu\.counter .*64-bit counters as decimal strings/,
      ],
      [(s) => (s.config.when = new Date() as unknown as string), /config\.when .*instance of Date/],
      [(s) => (s.metrics.list = [1, undefined as unknown as number]), /metrics\.list\[1\]/],
      [
        (s) => (s.model.weights.w = { dtype: "F32", shape: [3], data: new Float32Array(2) }),
        /model\.weights.*needs 12 bytes/,
      ],
      [
        (s) => (s.optimizer.tensors.x = { dtype: "F16", shape: [1], data: new Float32Array(1) }),
        /optimizer\.tensors.*Uint16Array/,
      ],
      [(s) => (s.benchmarks = { "../evil": 1 }), /benchmark "\.\.\/evil"/],
      [(s) => (s.lineage.stepsConsumed = -1), /lineage\.stepsConsumed/],
      [(s) => (s.lineage.parentCheckpointHash = "abc"), /parentCheckpointHash/],
      [(s) => (s.distributed = []), /distributed/],
    ];
    for (const [mutate, message] of cases) {
      const state = syntheticState(2);
      mutate(state);
      await assert.rejects(() => writeCheckpoint(runDir, 5, state, { code }), (e: unknown) => {
        assert.ok(e instanceof CheckpointStateError, String(e));
        assert.match(e.message, message);
        assert.match(e.message, /^Cannot /);
        return true;
      });
    }
    assert.deepEqual(await listTree(runDir).catch(() => []), []);
  });
});

Deno.test("rewriting an existing step: identical is a no-op, different valid is refused, corrupt is replaced", async () => {
  await withTempDir(async (runDir) => {
    const first = await writeCheckpoint(runDir, 100, syntheticState(1), { code });
    const again = await writeCheckpoint(runDir, 100, syntheticState(1), { code });
    assert.equal(again.alreadyExisted, true);
    assert.equal(again.hash, first.hash);
    await assert.rejects(
      () => writeCheckpoint(runDir, 100, syntheticState(2), { code }),
      /a different valid checkpoint already exists there/,
    );
    assert.equal((await readCheckpoint(first.dir)).hash, first.hash, "refusal leaves the old one intact");
    const replaced = await writeCheckpoint(runDir, 100, syntheticState(2), { code, onExisting: "replace" });
    assert.notEqual(replaced.hash, first.hash);
    assert.equal((await readCheckpoint(replaced.dir)).hash, replaced.hash);
    // Corrupt it, then write again: replaced without being asked.
    await Deno.writeTextFile(join(replaced.dir, "config.json"), "{}");
    assert.equal((await verifyCheckpoint(replaced.dir)).ok, false);
    const repaired = await writeCheckpoint(runDir, 100, syntheticState(3), { code });
    assert.equal((await verifyCheckpoint(repaired.dir)).ok, true);
    assert.deepEqual((await listTree(runDir)).filter((p) => !p.includes("/")), [], "no scratch dirs left");
    assert.deepEqual((await Array.fromAsync(Deno.readDir(runDir))).map((e) => e.name), [
      "ckpt-step000000100",
    ]);
  });
});

Deno.test("writeCheckpoint removes stale scratch dirs of crashed writes and deletions", async () => {
  await withTempDir(async (runDir) => {
    await Deno.mkdir(join(runDir, ".tmp-ckpt-step000000005-deadbeef0000/model"), { recursive: true });
    await Deno.writeTextFile(
      join(runDir, ".tmp-ckpt-step000000005-deadbeef0000/model/weights.safetensors"),
      "x",
    );
    await Deno.mkdir(join(runDir, ".trash-ckpt-step000000001-cafe"), { recursive: true });
    await writeCheckpoint(runDir, 6, syntheticState(6), { code });
    assert.deepEqual((await Array.fromAsync(Deno.readDir(runDir))).map((e) => e.name), [
      "ckpt-step000000006",
    ]);
  });
});
