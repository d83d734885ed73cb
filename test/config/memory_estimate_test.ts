import assert from "node:assert/strict";
import { estimatePoyoMemory, formatBytes, numel, POYO_PRESETS, poyoParameterTable } from "../../mod.ts";

const layout = {
  tokensPerWindow: 100,
  unitVocabSize: 1,
  sessionVocabSize: 1,
  modalities: [],
  numClasses: 1,
  numQueries: 1,
};

Deno.test("parameter table: poyo_1_3m counts what the contract's table gives by hand", () => {
  const k = { ...POYO_PRESETS.poyo_1_3m, dimHead: 64, latentStep: 0.125, patch: 16 };
  const D = 64, dh = 64, hc = 2, hs = 8, M = 16;
  const ffn = 2 * D + 8 * D * D + 8 * D + 4 * D * D + D;
  const cross = 4 * D + hc * dh * D + 2 * hc * dh * D + D * hc * dh + D;
  const self = 2 * D + 3 * hs * dh * D + D * hs * dh + D;
  const expected = 1 * (D / 2) + 1 * D + M * D + 2 * (cross + ffn) + 6 * (self + ffn) + 1 * D + 1;
  const table = poyoParameterTable(k, layout);
  assert.equal(table.reduce((n, p) => n + numel(p.shape), 0), expected);
  assert.ok(expected > 1.2e6 && expected < 1.3e6); // "~1.3M with a small vocabulary"
  const names = table.map((p) => p.name);
  assert.ok(names.includes("proc.5.ffn.w2.weight") && names.includes("dec_atn.to_kv.weight"));
  assert.deepEqual(table.find((p) => p.name === "enc_atn.to_kv.weight")!.shape, [2 * hc * dh, D]);
});

Deno.test("parameter table: value maps per modality, vocabularies and readout", () => {
  const k = {
    dim: 8,
    depth: 0,
    dimHead: 8,
    crossHeads: 1,
    selfHeads: 1,
    numLatents: 2,
    latentStep: 1,
    patch: 4,
  };
  const t = poyoParameterTable(k, {
    ...layout,
    unitVocabSize: 10,
    sessionVocabSize: 3,
    modalities: ["pupil", "eeg"],
    numClasses: 5,
  });
  const shape = (n: string) => t.find((p) => p.name === n)?.shape;
  assert.deepEqual(shape("unit_emb.weight"), [10, 4]);
  assert.deepEqual(shape("value_map.eeg.weight"), [4, 4]);
  assert.deepEqual(shape("value_map.pupil.bias"), [4]);
  assert.deepEqual(shape("session_emb.weight"), [3, 8]);
  assert.deepEqual(shape("readout.weight"), [5, 8]);
});

Deno.test("memory estimate: components scale as they should", () => {
  const kwargs = {
    dim: 64,
    depth: 2,
    dimHead: 16,
    crossHeads: 1,
    selfHeads: 2,
    numLatents: 16,
    latentStep: 0.5,
    patch: 16,
  };
  const base = {
    kwargs,
    layout: { ...layout, tokensPerWindow: 256 },
    trainWindow: 4,
    batchSize: 8,
    precision: "32-true",
    optimizer: "adamw",
    emaDecay: null,
  } as const;
  const a = estimatePoyoMemory(base);
  assert.equal(a.latents, 16 * 8);
  assert.equal(a.bytes.gradients, a.parameters * 4);
  assert.equal(a.bytes.optimizerState, a.parameters * 8);
  assert.equal(a.bytes.ema, 0);
  assert.equal(
    a.bytes.total,
    Object.entries(a.bytes).filter(([k]) => k !== "total").reduce((s, [, v]) => s + v, 0),
  );
  const b = estimatePoyoMemory({ ...base, batchSize: 16 });
  assert.equal(b.bytes.activations, 2 * a.bytes.activations);
  assert.equal(b.fixedBytes, a.fixedBytes);
  assert.ok(Math.abs(b.perSampleBytes - a.perSampleBytes) < 1e-6);
  const mixed = estimatePoyoMemory({
    ...base,
    precision: "bf16-mixed",
    optimizer: "sparse_lamb",
    emaDecay: 0.999,
  });
  // Activations stay f32; the 16-bit copies of the linear layers' inputs come on top.
  assert.ok(mixed.bytes.activations > a.bytes.activations);
  assert.ok(mixed.bytes.activations < a.bytes.activations * 1.5);
  assert.equal(mixed.bytes.halfPrecisionCopy, a.parameters * 2);
  assert.equal(mixed.bytes.ema, a.parameters * 4);
  assert.ok(mixed.bytes.optimizerState > a.bytes.optimizerState); // LAMB's update scratch
  // encoder attention scores [B, hc, L, N] f32 dominate here
  assert.equal(a.bytes.attentionWorkspace, 8 * 1 * 128 * 256 * 4);
  // Every layer is small enough for the materialized path: saved P and the backward's dS, per layer
  // (encoder [B, 1, L 128, N 256], two self-attentions [B, 2, 128, 128], decoder [B, 1, Q, 128]).
  const Q = layout.numQueries;
  assert.equal(
    a.bytes.attentionProbabilities,
    2 * 4 * 8 * (128 * 256 + 2 * 2 * 128 * 128 + Q * 128),
  );
  assert.equal(b.bytes.attentionProbabilities, 2 * a.bytes.attentionProbabilities);
  assert.equal(a.checkpointBytes, a.parameters * 12);
});

Deno.test("formatBytes uses binary units", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(3 * 2 ** 30), "3.00 GiB");
});
