/**
 * Crash safety: a child process writing a checkpoint is SIGKILLed at protocol stages and at random
 * moments (including in the middle of writing a large file). Afterwards the previous checkpoint must
 * still verify, and the new one must be either absent or complete; resume cleans the leftovers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { findLatestValidCheckpoint, verifyCheckpoint } from "../../src/checkpoint/checkpoint_reader.ts";
import { collectCodeVersion } from "../../src/checkpoint/code_version.ts";
import { writeCheckpoint } from "../../src/checkpoint/checkpoint_writer.ts";
import { hash32, syntheticState } from "./synthetic_state.ts";

const FIXTURE = new URL("./fixtures/crash_writer.ts", import.meta.url).pathname;
const code = await collectCodeVersion({ git: false });

interface KillOutcome {
  stages: string[];
  completed: boolean;
}

/** Runs the child until it prints `trigger` (then waits `delayMs`) or finishes; SIGKILLs it if still alive. */
async function runAndKill(
  runDir: string,
  step: number,
  pauseAt: string,
  trigger: string,
  delayMs: number,
): Promise<KillOutcome> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", FIXTURE, runDir, String(step), pauseAt],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stages: string[] = [];
  let completed = false;
  let buffer = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let killed = false;
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      stages.push(line);
      if (line.startsWith("DONE")) completed = true;
      if (line === trigger && !killed) {
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        try {
          child.kill("SIGKILL");
        } catch { /* already exited */ }
        killed = true;
      }
    }
  }
  const status = await child.status;
  const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
  if (!killed) assert.ok(status.success, `child failed: ${stderr}`);
  else {assert.ok(
      completed || status.signal === "SIGKILL" || status.success,
      `unexpected exit ${JSON.stringify(status)} ${stderr}`,
    );}
  return { stages, completed };
}

async function checkAfterCrash(
  runDir: string,
  previousHash: string,
  step: number,
): Promise<{ outcome: "absent" | "complete"; scratch: string[] }> {
  const scratch: string[] = [];
  for await (const e of Deno.readDir(runDir)) {
    if (!e.name.startsWith(".tmp-")) continue;
    const weights = await Deno.lstat(join(runDir, e.name, "model", "weights.safetensors")).catch(() => null);
    scratch.push(`${e.name.slice(0, 22)}… weights ${weights === null ? "absent" : `${weights.size} bytes`}`);
  }
  const previous = await verifyCheckpoint(join(runDir, "ckpt-step000000100"));
  assert.ok(previous.ok, `previous checkpoint damaged: ${JSON.stringify(previous)}`);
  assert.equal(previous.manifest.checkpointHash, previousHash);
  const newDir = join(runDir, `ckpt-step${String(step).padStart(9, "0")}`);
  const exists = await Deno.lstat(newDir).then(() => true, () => false);
  if (exists) {
    const v = await verifyCheckpoint(newDir);
    assert.ok(v.ok, `new checkpoint exists but is incomplete: ${JSON.stringify(v)}`);
  }
  // Resume sees the newest complete checkpoint and removes scratch dirs.
  const found = await findLatestValidCheckpoint(runDir, {
    onWarning: (m) => assert.fail(`unexpected warning ${m}`),
  });
  assert.ok(found);
  assert.equal(found.checkpoint.step, exists ? step : 100);
  const names = (await Array.fromAsync(Deno.readDir(runDir))).map((e) => e.name).sort();
  assert.deepEqual(names, exists ? ["ckpt-step000000100", newDir.split("/").pop()] : ["ckpt-step000000100"]);
  return { outcome: exists ? "complete" : "absent", scratch };
}

Deno.test({
  name:
    "SIGKILL at every protocol stage and at random moments leaves old checkpoints intact and the new one absent or complete",
  sanitizeResources: false,
  fn: async () => {
    const runDir = await Deno.makeTempDir({ prefix: "orion-ckpt-crash-" });
    try {
      const previous = await writeCheckpoint(runDir, 100, syntheticState(100), { code });
      const scenarios: {
        pauseAt: string;
        trigger: string;
        delayMs: number;
        expect?: "absent" | "complete";
      }[] = [
        { pauseAt: "temp_created", trigger: "PAUSED", delayMs: 0, expect: "absent" },
        // Killed in the middle of writing model/weights.safetensors (8 MiB+), after its first MiB.
        { pauseAt: "mid_write:model/weights.safetensors", trigger: "PAUSED", delayMs: 0, expect: "absent" },
        // Killed right after a file finished, while the next one starts.
        { pauseAt: "none", trigger: "file_written:model/ema.safetensors", delayMs: 0, expect: "absent" },
        { pauseAt: "files_synced", trigger: "PAUSED", delayMs: 0, expect: "absent" },
        { pauseAt: "manifest_written", trigger: "PAUSED", delayMs: 0, expect: "absent" },
        { pauseAt: "renamed", trigger: "PAUSED", delayMs: 0, expect: "complete" },
      ];
      // Random moments after the write starts, from a counter-based generator (seeded, reproducible).
      for (let i = 0; i < 4; i++) {
        scenarios.push({ pauseAt: "none", trigger: "WRITING", delayMs: hash32(2026, 5, i) % 120 });
      }
      const outcomes: string[] = [];
      let step = 200;
      for (const s of scenarios) {
        step += 100;
        const { stages } = await runAndKill(runDir, step, s.pauseAt, s.trigger, s.delayMs);
        const { outcome, scratch } = await checkAfterCrash(runDir, previous.hash, step);
        if (s.expect !== undefined) {
          assert.equal(outcome, s.expect, `${s.pauseAt}/${s.trigger}: ${stages.join(",")}`);
        }
        if (s.expect === "absent") {
          assert.equal(scratch.length, 1, "the kill interrupted a write in progress");
        }
        if (s.pauseAt.startsWith("mid_write:")) assert.match(scratch[0], /weights [0-9]+ bytes/);
        outcomes.push(
          `kill ${s.delayMs}ms after ${s.trigger} → ${outcome}; last stage ${stages.at(-1)}; scratch ${
            scratch.join(", ") || "none"
          }`,
        );
        // Keep exactly one previous checkpoint around for the next scenario.
        const newDir = join(runDir, `ckpt-step${String(step).padStart(9, "0")}`);
        await Deno.remove(newDir, { recursive: true }).catch(() => {});
      }
      console.log(outcomes.join("\n"));
      // After all the crashes a normal write still works.
      const after = await writeCheckpoint(runDir, 5000, syntheticState(5000), {
        code,
        parentHash: previous.hash,
      });
      assert.ok((await verifyCheckpoint(after.dir)).ok);
    } finally {
      await Deno.remove(runDir, { recursive: true });
    }
  },
});
