/** Training progress: rates count from the loop's start, not from the first batch of metrics to arrive. */
import assert from "node:assert/strict";
import { ProgressReporter } from "../../src/train/progress.ts";

Deno.test("progress: steps whose metrics arrive together are timed from the loop's start", async () => {
  const lines: string[] = [];
  const io = { out: (line: string) => lines.push(line), err: () => {} };
  const progress = new ProgressReporter(io, 100, 32, 10);
  progress.start(0);
  await new Promise((resolve) => setTimeout(resolve, 100));
  // One metrics read-back delivers steps 1..10 at once (as the trainer's ring does).
  for (let step = 1; step <= 10; step++) progress.step(step, 1, 1e-3);
  assert.equal(lines.length, 1);
  const rate = Number(/([\d.]+) samples\/s/.exec(lines[0])![1]);
  // 10 steps × 32 samples in ≥ 0.1 s: at most 3200 samples/s (timing from the arrival would say ~10⁸).
  assert.ok(rate > 0 && rate <= 3200, `rate ${rate} from: ${lines[0]}`);
});
