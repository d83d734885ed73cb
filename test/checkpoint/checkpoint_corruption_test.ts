import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { CheckpointIntegrityError } from "../../src/checkpoint/checkpoint_integrity_error.ts";
import { computeCheckpointHash } from "../../src/checkpoint/checkpoint_manifest.ts";
import {
  findLatestValidCheckpoint,
  readCheckpoint,
  verifyCheckpoint,
} from "../../src/checkpoint/checkpoint_reader.ts";
import { collectCodeVersion } from "../../src/checkpoint/code_version.ts";
import { writeCheckpoint } from "../../src/checkpoint/checkpoint_writer.ts";
import { syntheticState } from "./synthetic_state.ts";

const code = await collectCodeVersion({ git: false });

async function withCheckpoint(fn: (dir: string, runDir: string) => Promise<void>): Promise<void> {
  const runDir = await Deno.makeTempDir({ prefix: "orion-ckpt-corrupt-" });
  try {
    const info = await writeCheckpoint(runDir, 1000, syntheticState(11, { worldSize: 2 }), { code });
    await fn(info.dir, runDir);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
}

async function expectRefused(dir: string, file: string, reason: RegExp): Promise<void> {
  await assert.rejects(() => readCheckpoint(dir), (e: unknown) => {
    assert.ok(e instanceof CheckpointIntegrityError, String(e));
    const problem = e.problems.find((p) => p.file === file);
    assert.ok(problem, `no problem names ${file}: ${JSON.stringify(e.problems)}`);
    assert.match(problem.reason, reason);
    assert.ok(e.message.includes(file), e.message);
    assert.match(e.message, /^Cannot load checkpoint .* as it fails verification: /);
    return true;
  });
  const v = await verifyCheckpoint(dir);
  assert.equal(v.ok, false);
}

async function snapshotFiles(dir: string): Promise<Map<string, Uint8Array>> {
  const manifest = JSON.parse(await Deno.readTextFile(join(dir, "manifest.json")));
  const out = new Map<string, Uint8Array>();
  for (const f of manifest.files) out.set(f.path, await Deno.readFile(join(dir, f.path)));
  out.set("manifest.json", await Deno.readFile(join(dir, "manifest.json")));
  return out;
}

async function restore(dir: string, files: Map<string, Uint8Array>): Promise<void> {
  for (const [path, bytes] of files) await Deno.writeFile(join(dir, path), bytes);
}

Deno.test("truncated, bit-flipped, deleted and extended files in every part are refused naming the file", async () => {
  await withCheckpoint(async (dir) => {
    const original = await snapshotFiles(dir);
    const paths = [...original.keys()].filter((p) => p !== "manifest.json");
    assert.equal(paths.length, 19, `only ${paths.length} files`);
    for (const path of paths) {
      const bytes = original.get(path)!;
      const full = join(dir, path);
      // Truncated.
      await Deno.writeFile(full, bytes.subarray(0, Math.floor(bytes.byteLength / 2)));
      await expectRefused(dir, path, /bytes but the manifest says .*truncated/);
      // Extended.
      await Deno.writeFile(full, new Uint8Array([...bytes, 0x20]));
      await expectRefused(dir, path, /extended/);
      // One bit flipped (same size).
      if (bytes.byteLength > 0) {
        const flipped = bytes.slice();
        flipped[Math.floor(flipped.byteLength * 0.7)] ^= 0x04;
        await Deno.writeFile(full, flipped);
        await expectRefused(dir, path, /content does not match the manifest: sha256/);
      }
      // Deleted.
      await Deno.remove(full);
      await expectRefused(dir, path, /listed in the manifest but missing/);
      await Deno.writeFile(full, bytes);
      assert.equal((await verifyCheckpoint(dir)).ok, true, `restored ${path}`);
    }
  });
});

Deno.test("extra files, symlinks and a missing or altered manifest are refused", async () => {
  await withCheckpoint(async (dir) => {
    const original = await snapshotFiles(dir);
    await Deno.writeTextFile(join(dir, "model", "stray.bin"), "x");
    await expectRefused(dir, "model/stray.bin", /not listed in the manifest \(extra file\)/);
    await Deno.remove(join(dir, "model", "stray.bin"));
    await Deno.mkdir(join(dir, "new_part"));
    await Deno.writeTextFile(join(dir, "new_part", "x.json"), "{}");
    await expectRefused(dir, "new_part/x.json", /extra file/);
    await Deno.remove(join(dir, "new_part"), { recursive: true });
    await Deno.symlink("/etc/hostname", join(dir, "benchmarks", "link.json"));
    await expectRefused(dir, "benchmarks/link.json", /symbolic link/);
    await Deno.remove(join(dir, "benchmarks", "link.json"));

    await Deno.remove(join(dir, "manifest.json"));
    await expectRefused(dir, "manifest.json", /missing \(the checkpoint write did not complete\)/);
    const manifestText = new TextDecoder().decode(original.get("manifest.json"));
    await Deno.writeTextFile(join(dir, "manifest.json"), manifestText.slice(0, 100));
    await expectRefused(dir, "manifest.json", /not valid UTF-8 JSON/);
    const m = JSON.parse(manifestText);
    await Deno.writeTextFile(join(dir, "manifest.json"), JSON.stringify({ ...m, step: 999 }));
    await expectRefused(dir, "manifest.json", /step says 999 but the directory name says 1000/);
    await Deno.writeTextFile(join(dir, "manifest.json"), JSON.stringify({ ...m, formatVersion: 2 }));
    await expectRefused(dir, "manifest.json", /field formatVersion/);
    await Deno.writeTextFile(
      join(dir, "manifest.json"),
      JSON.stringify({ ...m, files: [...m.files, { path: "../escape", sha256: "0".repeat(64), bytes: 0 }] }),
    );
    await expectRefused(dir, "manifest.json", /relative path/);
    // Swap one file's hash in the manifest without updating the checkpoint hash.
    const files = m.files.map((f: { path: string; sha256: string }) =>
      f.path === "config.json" ? { ...f, sha256: "f".repeat(64) } : f
    );
    await Deno.writeTextFile(join(dir, "manifest.json"), JSON.stringify({ ...m, files }));
    await expectRefused(dir, "manifest.json", /checkpointHash does not match its file list/);
    await restore(dir, original);
    assert.equal((await verifyCheckpoint(dir)).ok, true);
  });
});

Deno.test("a consistently re-hashed but malformed file is refused by content checks naming it", async () => {
  await withCheckpoint(async (dir) => {
    const original = await snapshotFiles(dir);
    const manifest = JSON.parse(await Deno.readTextFile(join(dir, "manifest.json")));
    const rewrite = async (path: string, bytes: Uint8Array) => {
      await restore(dir, original);
      await Deno.writeFile(join(dir, path), bytes);
      const files = manifest.files.map((f: { path: string }) =>
        f.path === path
          ? { path, sha256: createHash("sha256").update(bytes).digest("hex"), bytes: bytes.byteLength }
          : f
      );
      await Deno.writeTextFile(
        join(dir, "manifest.json"),
        JSON.stringify({ ...manifest, files, checkpointHash: computeCheckpointHash(files) }),
      );
    };
    // Overlapping offsets in a safetensors header.
    const header = new TextEncoder().encode(
      JSON.stringify({
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      }),
    );
    const evil = new Uint8Array(8 + header.byteLength + 12);
    new DataView(evil.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    evil.set(header, 8);
    await rewrite("model/weights.safetensors", evil);
    await expectRefused(
      dir,
      "model/weights.safetensors",
      /Cannot read safetensors .*weights\.safetensors as tensor "b" overlaps/,
    );
    // A huge header length.
    const huge = new Uint8Array(64);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 60n, true);
    await rewrite("model/weights.safetensors", huge);
    await expectRefused(dir, "model/weights.safetensors", /header length runs past the end of the file/);
    await rewrite("scheduler/state.json", new TextEncoder().encode("[1,2]"));
    await expectRefused(dir, "scheduler/state.json", /must hold a JSON object/);
    await rewrite(
      "lineage.json",
      new TextEncoder().encode('{"parentRun":null,"parentCheckpointHash":null,"stepsConsumed":-4}'),
    );
    await expectRefused(dir, "lineage.json", /stepsConsumed/);
  });
});

Deno.test("findLatestValidCheckpoint falls back to the newest valid one and warns why newer ones were skipped", async () => {
  const runDir = await Deno.makeTempDir({ prefix: "orion-ckpt-latest-" });
  try {
    assert.equal(
      await findLatestValidCheckpoint(runDir, { onWarning: () => assert.fail("no warning expected") }),
      null,
    );
    const a = await writeCheckpoint(runDir, 100, syntheticState(1), { code });
    const b = await writeCheckpoint(runDir, 200, syntheticState(2), { code, parentHash: a.hash });
    const c = await writeCheckpoint(runDir, 300, syntheticState(3), { code, parentHash: b.hash });
    await Deno.mkdir(join(runDir, ".tmp-ckpt-step000000400-0123456789ab"));
    await Deno.writeFile(join(c.dir, "model", "weights.safetensors"), new Uint8Array(3));
    await Deno.remove(join(b.dir, "manifest.json"));
    const warnings: string[] = [];
    const found = await findLatestValidCheckpoint(runDir, { onWarning: (m) => warnings.push(m) });
    assert.ok(found);
    assert.equal(found.checkpoint.step, 100);
    assert.equal(found.checkpoint.hash, a.hash);
    assert.deepEqual(found.skipped.map((s) => s.step), [300, 200]);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      /Skipped 2 newer checkpoint\(s\) that fail verification; using .*ckpt-step000000100/,
    );
    assert.match(warnings[0], /ckpt-step000000300: model\/weights\.safetensors: has 3 bytes/);
    assert.match(warnings[0], /ckpt-step000000200: manifest\.json: is missing/);
    assert.equal(
      await Deno.lstat(join(runDir, ".tmp-ckpt-step000000400-0123456789ab")).catch(() => null),
      null,
      "stale temp cleaned",
    );
    // Nothing valid left.
    await Deno.writeTextFile(join(a.dir, "config.json"), "{}");
    const none: string[] = [];
    assert.equal(await findLatestValidCheckpoint(runDir, { onWarning: (m) => none.push(m) }), null);
    assert.match(none[0], /no valid checkpoint remains/);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});
