import assert from "node:assert/strict";
import { driPrimeFromBusId, planGpuPins } from "../../src/distributed/gpu_pinning.ts";
import { pbsJobScript } from "../../src/distributed/launch_pbs.ts";
import { skypilotTaskYaml } from "../../src/distributed/launch_skypilot.ts";
import { slurmBatchScript } from "../../src/distributed/launch_slurm.ts";
import { DENO_FLAGS, spawnCollect, SYNTHETIC_PROGRAM } from "./fixtures/harness.ts";

const plan = {
  jobName: "poyo-test",
  configPath: "configs/poyo's run.json",
  nodes: 3,
  gpusPerNode: 4,
  port: 29400,
  maxRestarts: 2,
  programCommand: "deno run -A mod.ts",
  account: "proj",
  walltime: "00:30:00",
};

async function bashSyntax(script: string): Promise<void> {
  const out = await new Deno.Command("bash", { args: ["-n"], stdin: "piped", stderr: "piped" }).spawn();
  const writer = out.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const { code, stderr } = await out.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

Deno.test("GPU pinning: nvidia-smi bus ids become DRI_PRIME values like bootstrap.sh's gpu_bus", () => {
  assert.equal(driPrimeFromBusId("00000000:1B:00.0"), "pci-0000_1b_00_0");
  assert.equal(driPrimeFromBusId("00000001:C3:1F.7\n"), "pci-0001_c3_1f_7");
  assert.equal(driPrimeFromBusId("0000:18:00.0"), "pci-0000_18_00_0");
  assert.throws(() => driPrimeFromBusId("GPU-1234"), /DDDD:BB:SS.F/);
  assert.deepEqual(planGpuPins(2, []), [
    { localRank: 0, pciBusId: null, driPrime: null },
    { localRank: 1, pciBusId: null, driPrime: null },
  ]);
  assert.deepEqual(planGpuPins(1, ["00000000:18:00.0", "00000000:2A:00.0"])[0].driPrime, "pci-0000_18_00_0");
  assert.throws(() => planGpuPins(4, ["00000000:18:00.0"]), /only 1 GPUs were found/);
});

Deno.test("Slurm script: srun one agent per node with SLURM_PROCID / SLURM_JOB_NODELIST; valid bash", async () => {
  const script = slurmBatchScript(plan);
  for (
    const needle of [
      "#SBATCH --nodes=3",
      "#SBATCH --gpus-per-node=4",
      "--requeue",
      "srun ",
      "SLURM_PROCID",
      "SLURM_JOB_NODELIST",
      "--max-restarts 2",
      "'\"'\"'",
    ]
  ) {
    assert.ok(script.includes(needle), needle);
  }
  assert.ok(
    !script.includes("ORION_JOIN_SECRET=") || script.includes("openssl rand"),
    "no secret value in artifact",
  );
  await bashSyntax(script);
});

Deno.test("PBS script: mpiexec one agent per node with PMI_RANK / $PBS_NODEFILE; valid bash", async () => {
  const script = pbsJobScript(plan);
  for (
    const needle of [
      "#PBS -l select=3:ngpus=4",
      "mpiexec -n 3 --ppn 1",
      "PMI_RANK",
      "$PBS_NODEFILE",
      "#PBS -A proj",
    ]
  ) {
    assert.ok(script.includes(needle), needle);
  }
  await bashSyntax(script);
});

Deno.test("SkyPilot YAML: num_nodes, accelerators, Deno from npm, SKYPILOT_* env; setup and run are valid bash", async () => {
  const yaml = skypilotTaskYaml({ ...plan, accelerators: "H200:4" });
  const topLevel = yaml.split("\n").filter((l) => /^[a-z_]+:/.test(l)).map((l) => l.split(":")[0]);
  assert.deepEqual(topLevel, ["name", "num_nodes", "resources", "workdir", "secrets", "setup", "run"]);
  for (
    const needle of [
      "num_nodes: 3",
      "  accelerators: H200:4",
      "npm install -g --silent deno@2.9.6",
      "SKYPILOT_NODE_RANK",
      "SKYPILOT_NODE_IPS",
      "SKYPILOT_NUM_GPUS_PER_NODE",
      "ORION_JOIN_SECRET: null",
    ]
  ) {
    assert.ok(yaml.includes(needle), needle);
  }
  const block = (key: string) => {
    const lines = yaml.split("\n");
    const start = lines.indexOf(`${key}: |`);
    const body = [];
    for (let i = start + 1; i < lines.length && (lines[i].startsWith("  ") || lines[i] === ""); i++) {
      body.push(lines[i].slice(2));
    }
    return body.join("\n");
  };
  await bashSyntax(block("setup"));
  await bashSyntax(block("run"));
});

Deno.test("launch CLI: --dry-run prints the artifact (local: the plan, starting nothing); without the scheduler it writes it and prints the submit command", async () => {
  const dir = await Deno.makeTempDir({ prefix: "orion_launch_" });
  try {
    await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify({ infra: { nodes: 2, gpusPerNode: 2 } }));
    const run = (args: string[]) =>
      spawnCollect([
        Deno.execPath(),
        "run",
        ...DENO_FLAGS,
        SYNTHETIC_PROGRAM,
        "launch",
        `${dir}/cfg.json`,
        ...args,
      ], {
        PATH: "/usr/bin:/bin",
      }).done;
    const dry = await run(["--backend", "slurm", "--dry-run"]);
    assert.equal(dry.code, 0, dry.output);
    assert.match(dry.output, /#SBATCH --nodes=2/);
    // Local: what this host would run, and nothing started (no coordinator, no run directory).
    const local = await run([
      "--backend",
      "local",
      "--coordinator-host",
      "10.0.0.1",
      "--dry-run",
      "--run-dir",
      `${dir}/r`,
    ]);
    assert.equal(local.code, 0, local.output);
    assert.match(local.output, /dry run\): job cfg, node 0 of 2, 2 rank\(s\) here, world size 4/);
    assert.match(local.output, /local rank 1: the software adapter/);
    assert.doesNotMatch(local.output, /coordinator ws:/);
    await assert.rejects(Deno.stat(`${dir}/r`), Deno.errors.NotFound);
    const wrote = await run(["--backend", "pbs", "--out", `${dir}/job.pbs`]);
    assert.equal(wrote.code, 0, wrote.output);
    assert.match(
      wrote.output,
      /qsub is not on PATH here; submit with:\n {2}qsub -v ORION_JOIN_SECRET .*job\.pbs/,
    );
    assert.match(await Deno.readTextFile(`${dir}/job.pbs`), /mpiexec -n 2 --ppn 1/);
    const help = await spawnCollect([
      Deno.execPath(),
      "run",
      ...DENO_FLAGS,
      SYNTHETIC_PROGRAM,
      "worker",
      "--help",
    ]).done;
    assert.match(help.output, /Exit codes: 0 done, 75 stopped for a restart/);
    const bad = await run(["--backend", "kubernetes"]);
    assert.equal(bad.code, 2);
    assert.match(bad.output, /backend "kubernetes" as it is unknown/);
    const noSecret = await run(["--backend", "local", "--coordinator-host", "10.0.0.1"]);
    assert.equal(noSecret.code, 2);
    assert.match(noSecret.output, /ORION_JOIN_SECRET is unset/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs an artifact with fake scheduler tools and a fake `deno` that prints its arguments. */
async function runWithShims(script: string, env: Record<string, string>): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "orion_shims_" });
  try {
    const tool = async (name: string, body: string) => {
      await Deno.writeTextFile(`${dir}/${name}`, `#!/bin/bash\n${body}\n`, { mode: 0o755 });
    };
    await tool("deno", 'echo "deno $*"');
    await tool("scontrol", "echo node-a; echo node-b; echo node-c");
    await tool("hostname", 'echo "host-of-$SLURM_PROCID"');
    // srun / mpiexec: run the trailing `bash -c CMD` once per node with the scheduler's rank variable.
    await tool("srun", 'for i in 0 1 2; do SLURM_PROCID=$i "${@: -3}"; done');
    await tool("mpiexec", 'for i in 0 1 2; do PMI_RANK=$i "${@: -3}"; done');
    await Deno.writeTextFile(
      `${dir}/nodefile`,
      ["node-a", "node-a", "node-b", "node-b", "node-c", "node-c"].join("\n") + "\n",
    );
    await Deno.writeTextFile(`${dir}/job.sh`, script);
    const out = await new Deno.Command("bash", {
      args: [`${dir}/job.sh`],
      env: {
        ...env,
        PATH: `${dir}:/usr/bin:/bin`,
        ORION_JOIN_SECRET: "s".repeat(32),
        PBS_NODEFILE: `${dir}/nodefile`,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout).trim().split("\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("artifacts run under fake schedulers: each node's agent gets its node rank, the head and its own address", async () => {
  const slurm = await runWithShims(slurmBatchScript(plan), {
    SLURM_JOB_NODELIST: "node-[a-c]",
    SLURM_JOB_ID: "42",
  });
  assert.equal(slurm.length, 3);
  for (const [i, line] of slurm.entries()) {
    assert.match(
      line,
      new RegExp(
        `--node-rank ${i} --coordinator-host node-a --port 29400 --host host-of-${i} --job-id orion-42`,
      ),
    );
    assert.match(line, /launch configs\/poyo's run\.json --backend local --nodes 3 --gpus-per-node 4/);
  }
  const pbs = await runWithShims(pbsJobScript(plan), { PBS_JOBID: "123.polaris-pbs-01" });
  assert.equal(pbs.length, 3);
  for (const [i, line] of pbs.entries()) {
    assert.match(
      line,
      new RegExp(
        `--node-rank ${i} --coordinator-host node-a --port 29400 --host node-${"abc"[i]} --job-id orion-123 `,
      ),
    );
  }
  const yaml = skypilotTaskYaml(plan);
  const lines = yaml.split("\n");
  const run = lines.slice(lines.indexOf("run: |") + 1).map((l) => l.slice(2)).join("\n");
  for (const rank of [0, 2]) {
    const [line] = await runWithShims(run, {
      SKYPILOT_NODE_RANK: String(rank),
      SKYPILOT_NODE_IPS: "10.0.0.5\n10.0.0.6\n10.0.0.7",
      SKYPILOT_NUM_GPUS_PER_NODE: "4",
      SKYPILOT_TASK_ID: "sky-1",
    });
    assert.match(
      line,
      new RegExp(
        `--node-rank ${rank} --coordinator-host 10.0.0.5 --port 29400 --host 10.0.0.${
          5 + rank
        } --job-id orion-sky-1`,
      ),
    );
  }
});
