/**
 * `orion` as users run it: `deno run mod.ts ...` in a subprocess. Checks exit codes, the no-stack-trace rule,
 * `ORION_DEBUG=1`, and the message when Deno permissions are missing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { listTree, MOD_URL, writeConfig } from "./cli_fixtures.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const TASK_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run",
];
const STACK_LINE = /^\s+at .*:\d+:\d+\)?$/m;

async function orion(denoFlags: string[], args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...denoFlags, "mod.ts", ...args],
    cwd: REPO,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "orion-subprocess-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// The slurm backend leaves the adapter check to its workers, so these runs do not depend on this machine's GPU.
const portable = (runs: string) => ["--set", `runsDir=${runs}`, "--set", "infra.backend=slurm"];

Deno.test("deno run mod.ts train configs/run.ts --dry-run exits 0 and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const r = await orion(TASK_FLAGS, [
      "train",
      "configs/run.ts",
      "--dry-run",
      ...portable(join(dir, "runs")),
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Dry run: pre-flight passed for run demo_poyo_small/);
    assert.deepEqual(await listTree(dir), []);
  });
});

Deno.test("a bad config exits 2 listing its problems, without a stack trace", async () => {
  await withTempDir(async (dir) => {
    const r = await orion(TASK_FLAGS, [
      "train",
      "configs/run.ts",
      "--dry-run",
      ...portable(join(dir, "runs")),
      "--set",
      "training.lr=fast",
      "--set",
      "model.kwargs.dim=63",
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /error at training\.lr = "fast"/);
    assert.match(r.stderr, /error at model\.kwargs\.dim = 63/);
    assert.doesNotMatch(r.stderr + r.stdout, STACK_LINE);
    assert.deepEqual(await listTree(dir), []);
  });
});

Deno.test("a config module that throws: exit 2, stack trace only with ORION_DEBUG=1", async () => {
  await withTempDir(async (dir) => {
    const file = await writeConfig(dir, `import "${MOD_URL}";\nthrow new Error("broken config module");\n`);
    const plain = await orion(TASK_FLAGS, ["train", file, "--dry-run"]);
    assert.equal(plain.code, 2);
    assert.match(plain.stderr, /importing it failed: broken config module/);
    assert.doesNotMatch(plain.stderr, STACK_LINE);
    const debug = await orion(TASK_FLAGS, ["train", file, "--dry-run"], { ORION_DEBUG: "1" });
    assert.equal(debug.code, 2);
    assert.match(debug.stderr, STACK_LINE);
  });
});

Deno.test("missing Deno permissions name the flag and the task instead of a stack trace", async () => {
  await withTempDir(async (dir) => {
    const noWrite = await orion(["--allow-read", "--allow-env"], [
      "train",
      "configs/run.ts",
      "--dry-run",
      ...portable(join(dir, "runs")),
    ]);
    assert.equal(noWrite.code, 2);
    assert.match(noWrite.stderr, /--allow-write/);
    assert.match(noWrite.stderr, /deno task train <config\.ts>/);
    assert.doesNotMatch(noWrite.stderr, STACK_LINE);
    assert.deepEqual(await listTree(dir), []);
  });
  const bare = await orion([], ["resume"]);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /--allow-read/);
  assert.match(bare.stderr, /deno task orion resume/);
  assert.doesNotMatch(bare.stderr, STACK_LINE);
});
