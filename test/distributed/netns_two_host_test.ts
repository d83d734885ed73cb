/**
 * Two "hosts" on one machine: two network namespaces joined by a veth pair (10.231.x.1 ↔ 10.231.x.2). Node 0
 * (coordinator + one rank) runs in one namespace, node 1 (one rank) in the other; the ring traffic crosses
 * the veth link. Needs root (CAP_NET_ADMIN); otherwise the test is skipped with the reason.
 */
import assert from "node:assert/strict";
import { generateJoinSecret } from "../../src/distributed/join_token.ts";
import {
  bytesOf,
  DENO_FLAGS,
  makeJob,
  referenceFinalParams,
  spawnCollect,
  SYNTHETIC_PROGRAM,
} from "./fixtures/harness.ts";

function ip(args: string[]): { ok: boolean; text: string } {
  try {
    const out = new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).outputSync();
    return {
      ok: out.success,
      text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
    };
  } catch (error) {
    return { ok: false, text: (error as Error).message };
  }
}

function probeNetns(): string | null {
  const name = `orion_probe_${Deno.pid}`;
  const added = ip(["netns", "add", name]);
  if (!added.ok) return `ip netns add failed (${added.text.trim()}); needs root / CAP_NET_ADMIN and iproute2`;
  ip(["netns", "del", name]);
  return null;
}

const skipReason = probeNetns();
if (skipReason) console.warn(`netns two-host test SKIPPED: ${skipReason}`);

Deno.test({
  name: "two hosts via network namespaces + veth: 2-node job completes bit-exact with traffic over the link",
  ignore: skipReason !== null,
  fn: async () => {
    const tag = (Deno.pid % 250) + 1;
    const [nsA, nsB] = [`orion_a_${Deno.pid}`, `orion_b_${Deno.pid}`];
    const [vethA, vethB] = [`ova${Deno.pid}`.slice(0, 15), `ovb${Deno.pid}`.slice(0, 15)];
    const [ipA, ipB] = [`10.231.${tag}.1`, `10.231.${tag}.2`];
    const setup = [
      ["netns", "add", nsA],
      ["netns", "add", nsB],
      ["link", "add", vethA, "type", "veth", "peer", "name", vethB],
      ["link", "set", vethA, "netns", nsA],
      ["link", "set", vethB, "netns", nsB],
      ["-n", nsA, "addr", "add", `${ipA}/24`, "dev", vethA],
      ["-n", nsB, "addr", "add", `${ipB}/24`, "dev", vethB],
      ["-n", nsA, "link", "set", vethA, "up"],
      ["-n", nsB, "link", "set", vethB, "up"],
      ["-n", nsA, "link", "set", "lo", "up"],
      ["-n", nsB, "link", "set", "lo", "up"],
    ];
    const job = await makeJob({
      gpusPerNode: 1,
      nodes: 2,
      steps: 6,
      bucketLengths: [300_000, 17],
      recordSteps: 0,
    });
    try {
      for (const args of setup) {
        const r = ip(args);
        assert.ok(r.ok, `ip ${args.join(" ")}: ${r.text}`);
      }
      const env = { ORION_JOIN_SECRET: generateJoinSecret() };
      const common = [
        "--nodes",
        "2",
        "--gpus-per-node",
        "1",
        "--coordinator-host",
        ipA,
        "--port",
        "29411",
        "--job-id",
        "netns",
      ];
      const node = (ns: string, rank: number, self: string) =>
        spawnCollect([
          "ip",
          "netns",
          "exec",
          ns,
          Deno.execPath(),
          "run",
          ...DENO_FLAGS,
          SYNTHETIC_PROGRAM,
          "launch",
          job.configPath,
          ...common,
          "--node-rank",
          String(rank),
          "--host",
          self,
          "--run-dir",
          `${job.dir}/run${rank}`,
        ], env);
      const node0 = node(nsA, 0, ipA);
      const node1 = node(nsB, 1, ipB);
      const [r0, r1] = await Promise.all([node0.done, node1.done]);
      assert.equal(r0.code, 0, r0.output);
      assert.equal(r1.code, 0, r1.output);
      assert.match(r0.output, /assigned 2 ranks \(0=10\.231\.\d+\.1\/0, 1=10\.231\.\d+\.2\/0\)/);
      const expected = bytesOf(referenceFinalParams(job.settings, 2));
      for (let r = 0; r < 2; r++) {
        assert.deepEqual(await Deno.readFile(`${job.settings.outDir}/final/rank${r}.bin`), expected);
      }
      // The ring crossed the veth link: 6 steps x 300k floats x 4 B x (2(n-1)/n = 1) ≈ 7.2 MB each way.
      const stats = JSON.parse(ip(["-n", nsB, "-j", "-s", "link", "show", vethB]).text)[0].stats64;
      console.log(`veth ${vethB}: rx ${stats.rx.bytes} B, tx ${stats.tx.bytes} B`);
      assert.ok(stats.rx.bytes > 6 * 300_000 * 4 && stats.tx.bytes > 6 * 300_000 * 4);
    } finally {
      ip(["netns", "del", nsA]);
      ip(["netns", "del", nsB]);
      await Deno.remove(job.dir, { recursive: true });
    }
  },
});
