/**
 * The node agent's verdict wait for a rank that exits 76 ("coordinator lost") while the coordinator still
 * answers the agent, against a scripted coordinator: a restart is planned → the rank is respawned; the job
 * failed → it ends at once; no word → it ends after `orphanGraceMs`.
 */
import assert from "node:assert/strict";
import { encodeControl, type ToRank } from "../../src/distributed/control_messages.ts";
import { generateJoinSecret } from "../../src/distributed/join_token.ts";
import { runNodeAgent } from "../../src/distributed/node_agent.ts";

/** A coordinator stand-in: accepts the agent's socket and runs `script` on it. */
function scriptedCoordinator(script: (send: (message: ToRank) => void) => Promise<void>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => void script((message) => socket.send(encodeControl(message)));
    return response;
  });
  return { url: `ws://127.0.0.1:${server.addr.port}/join`, close: () => server.shutdown() };
}

/** A rank that exits 76 on its first start (after the agent has connected) and 0 on the next. */
function rankProgram(marker: string): string[] {
  const code = `const f = ${JSON.stringify(marker)};
try { Deno.statSync(f); Deno.exit(0); } catch { /* first start */ }
await new Promise((r) => setTimeout(r, 400));
Deno.writeTextFileSync(f, "exited 76");
Deno.exit(76);`;
  return [Deno.execPath(), "eval", code];
}

async function exited(marker: string): Promise<void> {
  for (;;) {
    try {
      await Deno.stat(marker);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

const failed = (restartPlanned: boolean): ToRank => ({
  t: "generation_failed",
  generation: 0,
  reason: "test: rank 0 disconnected",
  restartPlanned,
  members: [],
});

for (
  const [name, verdict, expected] of [
    ["a restart planned after the exit: the rank is respawned", true, { exitCode: 0, starts: [2] }],
    ["the job failed: the rank's slot ends at once", false, { exitCode: 76, starts: [1] }],
    ["no verdict: the slot ends after orphanGraceMs", null, { exitCode: 76, starts: [1] }],
  ] as const
) {
  Deno.test(`node agent, a rank exits 76 while the coordinator answers — ${name}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "orion_agent_" });
    const marker = `${dir}/exited`;
    const coordinator = scriptedCoordinator(async (send) => {
      await exited(marker);
      await new Promise((r) => setTimeout(r, 300)); // the agent saw the exit first
      if (verdict !== null) send(failed(verdict));
    });
    const lines: string[] = [];
    try {
      const t0 = Date.now();
      const result = await runNodeAgent({
        coordinatorUrl: coordinator.url,
        jobId: "agent-test",
        secret: generateJoinSecret(),
        pins: [{ localRank: 0, pciBusId: null, driPrime: null }],
        maxRestarts: 2,
        workerArgv: () => rankProgram(marker),
        orphanGraceMs: verdict === null ? 1500 : 20_000,
        host: "test",
        log: (line) => lines.push(line),
      });
      const ms = Date.now() - t0;
      assert.deepEqual(result, expected, lines.join("\n"));
      assert.match(lines.join("\n"), /exited with code 76 \(it saw no coordinator\)/);
      // A verdict ends the wait at once, long before the 20 s grace.
      if (verdict !== null) assert.ok(ms < 10_000, `${ms} ms\n${lines.join("\n")}`);
      else assert.match(lines.join("\n"), /no restart came: job over/);
    } finally {
      await coordinator.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
