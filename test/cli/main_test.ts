import assert from "node:assert/strict";
import { join } from "node:path";
import {
  configHash,
  listCommands,
  parseRunConfig,
  parseSerializedRunConfig,
  POYO,
  registerCommand,
  registerTrainRunner,
  serializeConfig,
  type TrainRequest,
} from "../../mod.ts";
import { BASE_CONFIG, fakePreflight, listTree, runOrion, writeConfig } from "./cli_fixtures.ts";
import { pipelineRunner, registerPipelineRunner } from "../../src/cli/train_runner.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "orion-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("help lists every registered command, including ones other modules register", async () => {
  registerCommand({
    name: "zz-test",
    summary: "a command registered by a test",
    usage: "orion zz-test",
    run: () => Promise.resolve(0),
  });
  const help = await runOrion(["help"], "/");
  assert.equal(help.code, 0);
  for (const c of listCommands()) assert.match(help.stdout, new RegExp(`^  ${c.name}\\s+`, "m"));
  assert.match(help.stdout, /zz-test\s+a command registered by a test/);
  assert.equal((await runOrion(["--help"], "/")).code, 0);
  const none = await runOrion([], "/");
  assert.equal(none.code, 2);
  assert.match(none.stderr, /usage: orion <command>/);
});

Deno.test("--help and -h work on every command and print its usage", async () => {
  for (const c of listCommands()) {
    for (const flag of ["--help", "-h"]) {
      const r = await runOrion([c.name, flag], "/");
      assert.equal(r.code, 0, `${c.name} ${flag}`);
      assert.equal(r.stdout, c.usage);
    }
  }
  assert.equal(
    (await runOrion(["help", "train"], "/")).stdout,
    listCommands().find((c) => c.name === "train")!.usage,
  );
});

Deno.test("usage errors exit 2 with a message and no stack trace", async () => {
  const unknown = await runOrion(["trian"], "/");
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "trian" \(did you mean "train"\?\)/);
  const noFile = await runOrion(["train"], "/");
  assert.equal(noFile.code, 2);
  assert.match(noFile.stderr, /Cannot train without a config file/);
  assert.match(noFile.stderr, /usage: orion train/);
  const badFlag = await runOrion(["train", "x.ts", "--dryrun"], "/");
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /--dryrun/);
  for (const r of [unknown, noFile, badFlag]) assert.doesNotMatch(r.text, /^\s+at /m);
});

Deno.test("train --dry-run of a valid config exits 0, prints the estimate and the resolved config, writes nothing", async () => {
  await withTempDir(async (dir) => {
    const file = await writeConfig(dir, BASE_CONFIG);
    const before = await listTree(dir);
    const r = await runOrion(
      ["train", file, "--dry-run", "--print-config", "--set", "training.lr=1e-4"],
      dir,
    );
    assert.equal(r.code, 0, r.text);
    assert.match(r.stdout, /memory estimate per GPU: /);
    const json = r.stdout.slice(r.stdout.indexOf("{\n"), r.stdout.lastIndexOf("}") + 1);
    const config = parseSerializedRunConfig(json);
    assert.equal(config.training.lr, 1e-4);
    assert.match(r.stdout, new RegExp(`config ${configHash(config)}`));
    assert.deepEqual(await listTree(dir), before);
  });
});

Deno.test("train without a registered training loop exits 1 with a clear message and writes nothing", async () => {
  await withTempDir(async (dir) => {
    registerTrainRunner(undefined);
    const file = await writeConfig(dir, BASE_CONFIG);
    const r = await runOrion(["train", file], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /training loop is not available/);
    assert.match(r.stderr, /--dry-run/);
    assert.deepEqual(await listTree(dir), [file.slice(dir.length + 1)]);
  });
});

Deno.test("train hands the resolved config to the registered runner and returns its exit code", async () => {
  await withTempDir(async (dir) => {
    const requests: TrainRequest[] = [];
    registerTrainRunner((request) => {
      requests.push(request);
      return Promise.resolve(7);
    });
    try {
      const file = await writeConfig(dir, BASE_CONFIG);
      const r = await runOrion(["train", file, "--set", "model.kwargs.depth=3"], dir);
      assert.equal(r.code, 7, r.text);
      assert.equal(requests.length, 1);
      const req = requests[0];
      assert.equal(req.config.model.kwargs.depth, 3);
      assert.equal(req.runDir, join(dir, "runs", "base_run"));
      assert.equal(req.resume, null);
      assert.deepEqual(parseSerializedRunConfig(req.serializedConfig), req.config);
      assert.equal(req.configHash, configHash(req.config));
      assert.ok(req.preflight.ok);
    } finally {
      registerTrainRunner(undefined);
    }
  });
});

Deno.test("resume: by name, by run directory, by checkpoint directory; pre-flight requires the run to exist", async () => {
  await withTempDir(async (dir) => {
    const config = parseRunConfig({
      name: "old_run",
      model: { cls: POYO, kwargs: { dim: 64, depth: 1 } },
      data: { trainWindow: 2 },
    });
    const runDir = join(dir, "runs", "old_run");
    const ckptDir = join(runDir, "ckpt-step000000100");
    await Deno.mkdir(ckptDir, { recursive: true });
    await Deno.writeTextFile(join(runDir, "config.json"), serializeConfig(config));
    const requests: TrainRequest[] = [];
    registerTrainRunner((request) => (requests.push(request), Promise.resolve(0)));
    try {
      assert.equal((await runOrion(["resume", "old_run"], dir)).code, 0);
      assert.equal((await runOrion(["resume", runDir], dir)).code, 0);
      assert.equal((await runOrion(["resume", ckptDir], dir)).code, 0);
      assert.equal((await runOrion(["resume"], dir)).code, 0);
      assert.deepEqual(requests.map((r) => r.resume?.checkpointDir ?? null), [null, null, ckptDir, null]);
      for (const r of requests) {
        assert.deepEqual(r.config, config);
        assert.equal(r.runDir, runDir);
        assert.equal(r.configHash, configHash(config));
      }
      const dry = await runOrion(["resume", "old_run", "--dry-run"], dir);
      assert.equal(dry.code, 0);
      assert.match(dry.stdout, /Dry run: pre-flight passed for resuming run old_run/);
      assert.equal(requests.length, 4);
    } finally {
      registerTrainRunner(undefined);
    }
    const missing = await runOrion(["resume", "no_such_run"], dir);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Cannot resume "no_such_run"/);
    const noRunner = await runOrion(["resume", "old_run"], dir);
    assert.equal(noRunner.code, 1);
    assert.match(noRunner.stderr, /training loop is not available/);
  });
});

Deno.test("resume reads the config from the newest checkpoint when the run directory has none, and checks its hash", async () => {
  await withTempDir(async (dir) => {
    const config = parseRunConfig({ name: "ck_only", model: { cls: POYO, kwargs: { dim: 64, depth: 1 } } });
    const runDir = join(dir, "runs", "ck_only");
    await Deno.mkdir(join(runDir, "ckpt-step000000050"), { recursive: true });
    await Deno.writeTextFile(join(runDir, "ckpt-step000000050", "config.json"), serializeConfig(config));
    const ok = await runOrion(["resume", "ck_only", "--dry-run"], dir);
    assert.equal(ok.code, 0, ok.text);
    const edited = serializeConfig(config).replace('"lr": 0.0003', '"lr": 0.5');
    await Deno.writeTextFile(join(runDir, "ckpt-step000000050", "config.json"), edited);
    const bad = await runOrion(["resume", "ck_only", "--dry-run"], dir);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /error at hash = /);
  });
});

Deno.test("a pipeline config is pre-flighted stage by stage; without a pipeline runner it exits 1", async () => {
  await withTempDir(async (dir) => {
    const mod = new URL("../../mod.ts", import.meta.url).href;
    const file = await writeConfig(
      dir,
      `import { FinetuneFrom, POYO, RunConfig, TrainingPipeline } from "${mod}";
       const pre = RunConfig({ name: "pre", data: { trainWindow: 4, ursaQuery: { participants: ["p001"] } }, model: { cls: POYO, kwargs: { dim: 64, depth: 1 } }, training: { batchSize: 4 } });
       const ft = RunConfig({ name: "ft", data: { trainWindow: 4, ursaQuery: { participants: ["p002"] } }, model: { cls: POYO, kwargs: { dim: 64, depth: 1 } }, training: { batchSize: 4 },
         initFrom: FinetuneFrom({ run: pre, weightOverrides: ["unit_emb", "session_emb"], freezeUntilStep: 100 }) });
       export default TrainingPipeline({ name: "pre_then_ft", stages: [pre, ft] });`,
    );
    const dry = await runOrion(["train", file, "--dry-run"], dir, fakePreflight());
    assert.equal(dry.code, 0, dry.text);
    assert.match(dry.stdout, /Pre-flight of pipeline "pre_then_ft": passed \(2 stage\(s\)\)/);
    const bad = await runOrion(
      ["train", file, "--dry-run", "--set", "stages.1.training.lr=-1"],
      dir,
      fakePreflight(),
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /error at stages\.1\.training\.lr = -1/);
    const registered = pipelineRunner(); // src/pipeline registers the real one
    try {
      registerPipelineRunner(undefined);
      const run = await runOrion(["train", file], dir, fakePreflight());
      assert.equal(run.code, 1);
      assert.match(run.stderr, /pipeline runner is not available/);
    } finally {
      registerPipelineRunner(registered);
    }
  });
});
