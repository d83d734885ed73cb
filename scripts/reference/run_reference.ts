/**
 * Runs one of the PyTorch reference scripts of this folder for a benchmark's `--compare-torch` and returns the
 * JSON it wrote (`--json <temporary file>` is appended to `args`).
 *
 * @example
 * ```ts ignore
 * import { runTorchReference } from "./run_reference.ts";
 * const gloo = await runTorchReference("python3", "scripts/reference/allreduce_torch.py", ["--ranks", "2"]);
 * ```
 *
 * @module
 */

/** Runs `python script ...args --json <tmp>` (output shown as it comes) and returns the parsed JSON. */
export async function runTorchReference(python: string, script: string, args: string[]): Promise<unknown> {
  const out = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const run = await new Deno.Command(python, {
      args: [script, ...args, "--json", out],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!run.success) {
      throw new Error(
        `Cannot compare with PyTorch as ${python} ${script} ${
          args[0] ?? ""
        } failed: exit code is ${run.code}`,
      );
    }
    return JSON.parse(await Deno.readTextFile(out));
  } finally {
    await Deno.remove(out).catch(() => {});
  }
}
