import assert from "node:assert/strict";
import "../../src/bench/bench_commands.ts";
import { lookupCommand } from "../../src/cli/command_registry.ts";
import { recordingIO } from "../../src/cli/cli_io.ts";
import { defaultPreflightContext } from "../../src/config/preflight_environment.ts";

Deno.test("bench_commands registers orion eval / orion bench and the suite registry for the pre-flight", async () => {
  const evalCmd = lookupCommand("eval"), benchCmd = lookupCommand("bench");
  assert.ok(evalCmd && benchCmd);
  assert.match(evalCmd.usage, /--suite KEY/);
  const io = recordingIO();
  const ctx = { cwd: Deno.cwd(), io, preflight: {}, debug: false };
  assert.equal(await benchCmd.run(["ls", "--json"], ctx), 0);
  const listed = JSON.parse(io.stdout[0]) as { key: string; metrics: string[] }[];
  assert.ok(listed.some((s) => s.key === "cognitive_load_eval@1" && s.metrics.includes("macro_f1")));
  const preflight = defaultPreflightContext();
  assert.equal(preflight.benchSuiteExists?.("cognitive_load_eval@1"), true);
  assert.equal(preflight.benchSuiteExists?.("cognitive_load_eval@2"), false);
  assert.ok(preflight.knownBenchSuites?.().includes("cognitive_load_eval@1"));
});
