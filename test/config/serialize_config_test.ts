import assert from "node:assert/strict";
import {
  ConfigError,
  configHash,
  CURRENT_CONFIG_VERSION,
  FinetuneFrom,
  parseRunConfig,
  parseSerializedConfig,
  parseSerializedRunConfig,
  POYO,
  RunConfig,
  serializeConfig,
  TrainingPipeline,
} from "../../mod.ts";
import seed from "../../configs/cognitive_load_v3_baseline.ts";

Deno.test("round trip: serialize → parse gives an identical resolved config (cls by modelName)", () => {
  const text = serializeConfig(seed);
  const doc = JSON.parse(text);
  assert.equal(doc.config_version, CURRENT_CONFIG_VERSION);
  assert.equal(doc.kind, "run");
  assert.equal(doc.config.model.cls, "POYO");
  assert.match(doc.hash, /^sha256:[0-9a-f]{64}$/);
  assert.equal(doc.hash, configHash(seed));
  const back = parseSerializedRunConfig(text);
  assert.deepEqual(back, seed);
  assert.equal(back.model.cls, POYO);
  // serializing the parsed-back config gives the same bytes
  assert.equal(serializeConfig(back), text);
});

Deno.test("the canonical text has sorted keys and is independent of the order fields were written in", () => {
  const a = parseRunConfig({
    name: "order",
    model: { cls: POYO, kwargs: { depth: 2, dim: 64 } },
    training: { lr: 1e-3, seed: 3 },
  });
  const b = parseRunConfig({
    training: { seed: 3, lr: 1e-3 },
    model: { kwargs: { dim: 64, depth: 2 }, cls: POYO },
    name: "order",
  });
  assert.equal(serializeConfig(a), serializeConfig(b));
  const keys = Object.keys(JSON.parse(serializeConfig(a)).config);
  assert.deepEqual(keys, [...keys].sort());
});

Deno.test("the hash changes with any field and survives JSON round trips", () => {
  const a = parseRunConfig({ name: "h", model: { cls: POYO } });
  const b = parseRunConfig({ name: "h", model: { cls: POYO }, training: { lr: 3.0000001e-4 } });
  assert.notEqual(configHash(a), configHash(b));
  assert.equal(configHash(parseSerializedRunConfig(JSON.parse(serializeConfig(a)))), configHash(a));
});

Deno.test("a hand-edited document is rejected unless its hash is removed", () => {
  const doc = JSON.parse(serializeConfig(parseRunConfig({ name: "edit", model: { cls: POYO } })));
  doc.config.training.lr = 1;
  assert.throws(
    () => parseSerializedConfig(doc),
    (e) => e instanceof ConfigError && e.problems[0].path === "hash",
  );
  delete doc.hash;
  assert.equal(parseSerializedRunConfig(doc).training.lr, 1);
});

Deno.test("pipelines round-trip too", () => {
  const pre = RunConfig({ name: "pre", model: { cls: POYO, kwargs: { dim: 64 } } });
  const ft = RunConfig({
    name: "ft",
    model: { cls: POYO, kwargs: { dim: 64 } },
    initFrom: FinetuneFrom({ run: pre }),
  });
  const p = TrainingPipeline({ name: "pipe", stages: [pre, ft] });
  const text = serializeConfig(p);
  assert.equal(JSON.parse(text).kind, "pipeline");
  assert.deepEqual(parseSerializedConfig(text), p);
  assert.throws(() => parseSerializedRunConfig(text), ConfigError);
});

Deno.test("migration: a version-0 document (snake_case, Lightning-1 precision) reads as the same config", () => {
  const v0 = {
    config_version: 0,
    name: "legacy_run",
    runs_dir: "old_runs",
    data: {
      ursa_query: { participants: ["p001", "p002"], exclude_participants: ["p002"], modalities: ["eeg"] },
      train_window: 5,
      train_split: 0.9,
    },
    model: { cls: "POYO", kwargs: { dim: 128, dim_head: 32, num_latents: 32, self_heads: 4, t_max: 4 } },
    training: {
      batch_size: 8,
      max_steps: 1000,
      optimizer: "lamb",
      ckpt_every_n_steps: 100,
      val_every_n_steps: 100,
      precision: "bf16",
      keep_last_k: 2,
    },
    infra: { gpus_per_node: 2, max_restarts: 3 },
  };
  const migrated = parseSerializedRunConfig(JSON.stringify(v0));
  const expected = parseRunConfig({
    name: "legacy_run",
    runsDir: "old_runs",
    data: {
      ursaQuery: { participants: ["p001", "p002"], excludeParticipants: ["p002"], modalities: ["eeg"] },
      trainWindow: 5,
      trainSplit: 0.9,
    },
    model: { cls: POYO, kwargs: { dim: 128, dimHead: 32, numLatents: 32, selfHeads: 4, tMax: 4 } },
    training: {
      batchSize: 8,
      maxSteps: 1000,
      optimizer: "lamb",
      ckptEveryNSteps: 100,
      valEveryNSteps: 100,
      precision: "bf16-mixed",
      keepLastK: 2,
    },
    infra: { gpusPerNode: 2, maxRestarts: 3 },
  });
  assert.deepEqual(migrated, expected);
  // and it is written back as the current version
  assert.equal(JSON.parse(serializeConfig(migrated)).config_version, CURRENT_CONFIG_VERSION);
});

Deno.test("a migrated document with a typo still reports the field path", () => {
  assert.throws(
    () =>
      parseSerializedConfig({
        config_version: 0,
        name: "x",
        model: { cls: "POYO" },
        training: { batch_szie: 4 },
      }),
    (e) =>
      e instanceof ConfigError && e.problems[0].path === "training.batchSzie" &&
      /batchSize/.test(e.problems[0].fix),
  );
});

Deno.test("unknown (newer) versions fail naming the version needed; a missing version fails clearly", () => {
  assert.throws(
    () => parseSerializedConfig({ config_version: 7, kind: "run", config: {} }),
    (e) =>
      e instanceof ConfigError && e.problems[0].path === "config_version" &&
      /config_version 7/.test(e.problems[0].message) && /reads config_version 7/.test(e.problems[0].fix),
  );
  assert.throws(
    () => parseSerializedConfig({ kind: "run", config: {} }),
    (e) => e instanceof ConfigError && /without an integer config_version/.test(e.problems[0].message),
  );
  assert.throws(
    () => parseSerializedConfig("{not json"),
    (e) => e instanceof ConfigError && /not JSON/.test(e.message),
  );
});

Deno.test("serializing a config whose model class is not registered fails with the fix", () => {
  class Unregistered {
    static readonly modelName = "Unregistered";
    static readonly kwargsSchema = POYO.kwargsSchema;
  }
  const run = parseRunConfig({ name: "u", model: { cls: Unregistered } });
  assert.throws(
    () => serializeConfig(run),
    (e) => e instanceof ConfigError && /registerModelClass/.test(e.problems[0].fix),
  );
});
