/**
 * The generated matmul kernel: source properties (straight-line code, one loop), configuration
 * validation and device-limit fallback, correctness against the f64 reference and bitwise equality with
 * the general kernel (every transpose, ragged edges, bias/alpha/beta epilogue, shared-B batches), and the
 * autotune cache (write, read back, deterministic choice).
 */
import assert from "node:assert/strict";
import { Tensor } from "../../src/tensor/tensor.ts";
import { matmulInto } from "../../src/ops/mod.ts";
import {
  chooseMatmulConfig,
  configFits,
  DEFAULT_MATMUL_TILE_CONFIGS,
  defaultMatmulConfig,
  dispatchGeneratedMatmul,
  generateMatmulWgsl,
  MATMUL_TILE_CONFIGS,
  matmulConfigName,
  matmulProblem,
  matmulProblemKey,
  type MatmulTileConfig,
  matmulVariantFor,
  parseMatmulConfigName,
  setMatmulTuning,
  tileConfig,
  validateTileConfig,
  workgroupBytes,
} from "../../src/ops/matmul_codegen.ts";
import { autotuneCachePath, autotuneMatmul, loadMatmulTuning } from "../../src/ops/autotune.ts";
import { assertClose, randomF32, REDUCTION, rng } from "../reference/compare.ts";
import { refMatmul } from "../reference/ops.ts";
import { testGpu } from "./op_harness.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

const problem = matmulProblem;

Deno.test("generated matmul source: one loop (over K tiles), no function-local arrays, all FMAs unrolled", () => {
  for (const c of MATMUL_TILE_CONFIGS) {
    for (
      const p of [
        problem(256, 256, 64, false, false),
        problem(130, 257, 33, true, true, { bias: true, alpha: 2, beta: 1 }),
      ]
    ) {
      const code = generateMatmulWgsl(c, matmulVariantFor(p, c));
      const name = matmulConfigName(c);
      assert.equal(code.match(/\bfor\s*\(/g)?.length, 1, `${name}: exactly one loop`);
      assert.equal(code.match(/\bwhile\b|\bloop\b/g), null, `${name}: no other loops`);
      const body = code.slice(code.indexOf("fn main"));
      assert.equal(/array</.test(body), false, `${name}: no array declared inside the function`);
      assert.equal(code.match(/var<workgroup>/g)?.length, 2, `${name}: two workgroup arrays`);
      const fmas = code.match(/= fma\(/g)?.length ?? 0;
      const unroll = c.buffers === 2 ? 2 : 1; // two buffers: the K loop is unrolled by two
      assert.equal(
        fmas,
        (c.threadM * c.threadN / 4) * c.tileK * unroll,
        `${name}: FMAs per K tile, unrolled`,
      );
      const inLoop = body.slice(body.indexOf("for ("));
      assert.equal(inLoop.match(/workgroupBarrier\(\)/g)?.length, 2, `${name}: barriers in the loop`);
      assert.equal(/\[[^\]]*\(t & 1u\)/.test(code), false, `${name}: no buffer index computed at run time`);
    }
  }
});

Deno.test("tile configs: names round-trip, bad configs are rejected with the reason", () => {
  for (const c of MATMUL_TILE_CONFIGS) {
    validateTileConfig(c);
    assert.deepEqual(parseMatmulConfigName(matmulConfigName(c)), c);
  }
  assert.throws(() => validateTileConfig(tileConfig(128, 128, 16, 6, 8)), /threadM must be 4 or 8/);
  assert.throws(
    () => validateTileConfig(tileConfig(128, 128, 6, 8, 8)),
    /tileK must be a positive multiple of 4/,
  );
  assert.throws(
    () => validateTileConfig(tileConfig(128, 128, 16, 8, 8, { pad: 2 })),
    /pad must be a multiple of 4/,
  );
  assert.throws(() => validateTileConfig(tileConfig(64, 64, 8, 4, 4)), /multiples of 256 threads/);
  assert.throws(() => parseMatmulConfigName("128x128"), /expected the form/);
});

Deno.test("tile configs: workgroup storage limits decide what runs", () => {
  const software = { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
  const h200 = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024 };
  assert.equal(workgroupBytes(tileConfig(128, 128, 16, 8, 8)), 33792);
  assert.equal(configFits(tileConfig(128, 128, 16, 8, 8), software), false);
  assert.equal(configFits(tileConfig(128, 128, 16, 8, 8), h200), true);
  const big = defaultMatmulConfig({ m: 4096, n: 4096 }, h200)!;
  assert.equal(matmulConfigName(big), matmulConfigName(MATMUL_TILE_CONFIGS[0]));
  const bigT = defaultMatmulConfig({ m: 4096, n: 4096, transA: true }, h200)!;
  assert.equal(bigT.tileK, 16, `A transposed takes the K-16 tile: ${matmulConfigName(bigT)}`);
  const fewTiles = defaultMatmulConfig({ m: 1000, n: 1000 }, h200)!;
  assert.ok(
    fewTiles.tileM * fewTiles.tileN <= 128 * 64,
    `64 big tiles → smaller: ${matmulConfigName(fewTiles)}`,
  );
  const batched = defaultMatmulConfig({ m: 1000, n: 1000, batch: 4 }, h200)!;
  assert.equal(batched.tileM * batched.tileN, 128 * 128, "4 batches fill the GPU with 128×128 tiles");
  const soft = defaultMatmulConfig({ m: 4096, n: 4096 }, software)!;
  assert.ok(workgroupBytes(soft) <= 16384, `${matmulConfigName(soft)} fits 16 KiB`);
  const narrow = defaultMatmulConfig({ m: 4096, n: 64 }, h200)!;
  assert.ok(narrow.tileN <= 64, `an output 64 wide gets a tile ≤ 64 wide: ${matmulConfigName(narrow)}`);
  assert.equal(
    defaultMatmulConfig({ m: 4096, n: 4096 }, { ...software, maxComputeWorkgroupStorageSize: 4096 }),
    null,
  );
});

Deno.test("tile configs: outputs wider than 32 take the leading defaults; narrow, tiny and tall-K ones the small tiles", () => {
  assert.equal(DEFAULT_MATMUL_TILE_CONFIGS.length, 12);
  assert.deepEqual(DEFAULT_MATMUL_TILE_CONFIGS, MATMUL_TILE_CONFIGS.slice(0, 12));
  const small = MATMUL_TILE_CONFIGS.slice(12).map(matmulConfigName);
  const limits = [
    { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 },
    { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024 },
  ];
  const name = (p: Parameters<typeof defaultMatmulConfig>[0], l: (typeof limits)[number]) =>
    matmulConfigName(defaultMatmulConfig(p, l)!);
  for (const l of limits) {
    for (const batch of [1, 4, 32]) {
      for (const [m, n] of [[512, 64], [64, 512], [1000, 1000], [4096, 4096]]) {
        for (const transA of [false, true]) {
          const c = name({ m, n, batch, transA, k: 64 }, l);
          assert.ok(!small.includes(c), `${batch}×${m}×${n}: ${c}`);
        }
      }
    }
    // At most 32 rows or columns: a 32-row / 32-column tile (K-16 variant below K 32).
    assert.equal(name({ m: 32, n: 512, k: 4096 }, l), "32x64x32_t4x4_b1_p4_g8");
    assert.equal(name({ m: 256, n: 16, k: 1024, batch: 81 }, l), "64x32x32_t4x4_b1_p4_g8");
    assert.equal(name({ m: 83200, n: 32, k: 16 }, l), "64x32x16_t4x4_b1_p4_g8");
    assert.equal(name({ m: 33, n: 17, k: 64 }, l), "64x32x32_t4x4_b1_p4_g8");
    assert.equal(name({ m: 32, n: 16, k: 512, batch: 162 }, l), "32x32x16_t4x4_b1_p4_g8");
    // Tall K with few threads (under 32768): 32×64×32; with enough, the default tile.
    assert.equal(name({ m: 4096, n: 64, k: 1536 }, l), "32x64x32_t4x4_b1_p4_g8");
    assert.equal(name({ m: 128, n: 64, k: 2600, batch: 64 }, l), "32x64x32_t4x4_b1_p4_g8");
    assert.ok(!small.includes(name({ m: 512, n: 64, k: 2600, batch: 32 }, l)));
    // Short K keeps the big tiles whatever the grid.
    assert.ok(!small.includes(name({ m: 4096, n: 64, k: 128 }, l)));
  }
});

Deno.test({
  ...opts,
  name:
    "chooseMatmulConfig: the 32×32 tile for tiny problems, clear error for a config over the device limit",
  fn: async () => {
    const gpu = await testGpu();
    for (const [m, n, k] of [[5, 7, 3], [32, 3, 64], [128, 64, 1]]) {
      assert.equal(
        matmulConfigName(chooseMatmulConfig(gpu, problem(m, n, k, false, false))!),
        "32x32x16_t4x4_b1_p4_g8",
        `${m}×${n}×${k}`,
      );
    }
    assert.equal(chooseMatmulConfig(gpu, problem(512, 512, 512, false, false), "general"), null);
    assert.ok(chooseMatmulConfig(gpu, problem(512, 512, 512, false, false)));
    const tooBig = tileConfig(128, 128, 64, 8, 8);
    assert.ok(workgroupBytes(tooBig) > gpu.device.limits.maxComputeWorkgroupStorageSize);
    assert.throws(
      () => chooseMatmulConfig(gpu, problem(512, 512, 512, false, false), tooBig),
      /Cannot run matmul tile config 128x128x64.*bytes of workgroup memory.*the device allows/,
    );
  },
});

/** Runs one product through the forced config and the general kernel; checks f64 ref and bitwise match. */
async function checkProduct(
  config: MatmulTileConfig,
  batch: number,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  epilogue: { bias?: boolean; alpha?: number; beta?: number } = {},
): Promise<void> {
  const gpu = await testGpu();
  const random = rng(m * 7 + n * 13 + k);
  const sa = transA ? [k, m] : [m, k];
  const sb = transB ? [n, k] : [k, n];
  const ha = randomF32(batch * m * k, random);
  const hb = randomF32(batch * k * n, random);
  const hbias = randomF32(n, random);
  const hc = randomF32(batch * m * n, random);
  const a = Tensor.fromArray(gpu, ha, batch > 1 ? [batch, ...sa] : sa);
  const b = Tensor.fromArray(gpu, hb, batch > 1 ? [batch, ...sb] : sb);
  const bias = epilogue.bias ? Tensor.fromArray(gpu, hbias, [n]) : undefined;
  const outShape = batch > 1 ? [batch, m, n] : [m, n];
  const cGen = Tensor.fromArray(gpu, hc, outShape);
  const cGen2 = Tensor.fromArray(gpu, hc, outShape);
  const cRef = Tensor.fromArray(gpu, hc, outShape);
  const o = { transA, transB, bias, alpha: epilogue.alpha, beta: epilogue.beta };
  try {
    matmulInto(cGen, a, b, { ...o, kernel: config });
    matmulInto(cGen2, a, b, { ...o, kernel: config });
    matmulInto(cRef, a, b, { ...o, kernel: "general" });
    const got = await cGen.toArray();
    const again = await cGen2.toArray();
    const general = await cRef.toArray();
    const ref = refMatmul(batch, m, n, k, transA, transB, false).forward(
      [ha, hb].map((x) => Float64Array.from(x)),
    );
    const alpha = epilogue.alpha ?? 1;
    const beta = epilogue.beta ?? 0;
    for (let i = 0; i < ref.length; i++) {
      ref[i] = alpha * ref[i] + (epilogue.bias ? hbias[i % n] : 0) + beta * hc[i];
    }
    const what = `${matmulConfigName(config)} b${batch} ${m}×${n}×${k} tA=${transA} tB=${transB} ${
      JSON.stringify(epilogue)
    }`;
    assertClose(what, got, ref, REDUCTION);
    let differ = 0;
    for (let i = 0; i < got.length; i++) {
      if (!Object.is(got[i], general[i]) || !Object.is(got[i], again[i])) differ++;
    }
    assert.equal(differ, 0, `${what}: ${differ} elements differ bitwise from the general kernel or a rerun`);
  } finally {
    for (const t of [a, b, bias, cGen, cGen2, cRef]) t?.dispose();
  }
}

const BIG = tileConfig(128, 128, 8, 8, 8, { pad: 0 });
const SMALL = tileConfig(64, 64, 16, 4, 4, { buffers: 1 });
const WIDE = tileConfig(64, 128, 16, 4, 8, { pad: 0, buffers: 1, groupM: 0 });
/** 4 load slots per thread: k-contiguous operands are transposed in registers (16 KiB). */
const DEEP = tileConfig(64, 64, 32, 8, 4, { buffers: 1, pad: 0 });

for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
  Deno.test({
    ...opts,
    name:
      `generated matmul tA=${transA} tB=${transB}: 128×128×64 aligned and 130×257×33 ragged vs f64 and general`,
    fn: async () => {
      await checkProduct(BIG, 1, 128, 128, 64, transA, transB);
      await checkProduct(SMALL, 1, 130, 257, 33, transA, transB, { bias: true });
    },
  });
}

Deno.test({
  ...opts,
  name: "generated matmul epilogues: bias, alpha, beta (accumulate), 128-bit and scalar stores",
  fn: async () => {
    await checkProduct(BIG, 1, 132, 68, 36, false, true, { bias: true, alpha: 0.5, beta: 1 });
    await checkProduct(WIDE, 1, 70, 131, 21, true, false, { alpha: -2, beta: 0.25 });
    await checkProduct(SMALL, 3, 40, 20, 12, false, false, { bias: true, beta: 1 });
  },
});

Deno.test({
  ...opts,
  name: "generated matmul with register-transposed loads (4 slots per thread): aligned and ragged",
  fn: async () => {
    await checkProduct(DEEP, 1, 128, 64, 64, false, true);
    await checkProduct(DEEP, 1, 70, 67, 45, false, true, { bias: true });
    await checkProduct(DEEP, 2, 68, 72, 36, false, false, { beta: 1 });
  },
});

// The small tiles only the autotuner picks (tall-K products with a small output): bitwise equal to the
// general kernel over every transpose, ragged edges, a batch, and the epilogue.
for (const config of MATMUL_TILE_CONFIGS.slice(12)) {
  Deno.test({
    ...opts,
    name: `generated matmul ${
      matmulConfigName(config)
    } (tuning candidate): bitwise equal to the general kernel`,
    fn: async () => {
      for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
        await checkProduct(config, 1, 70, 37, 45, transA, transB, { bias: true });
        await checkProduct(config, 3, 64, 32, 80, transA, transB);
      }
      await checkProduct(config, 2, 33, 66, 21, false, true, { alpha: -2, beta: 0.25 });
    },
  });
}

// Tiny products (K below one K tile, outputs of a few rows or columns) run the 32×32 tile under "auto".
Deno.test({
  ...opts,
  name:
    "generated matmul 32x32x16 on tiny products (K 1–15, 1–5 rows or columns): bitwise equal to the general kernel",
  fn: async () => {
    const tiny = tileConfig(32, 32, 16, 4, 4, { buffers: 1 });
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
      await checkProduct(tiny, 1, 5, 7, 3, transA, transB, { bias: true });
      await checkProduct(tiny, 1, 32, 3, 64, transA, transB);
      await checkProduct(tiny, 2, 1, 64, 1, transA, transB, { beta: 1 });
      await checkProduct(tiny, 1, 70, 2, 15, transA, transB);
    }
  },
});

Deno.test({
  ...opts,
  name: "generated matmul: batch with B shared (stride 0) matches the per-batch reference",
  fn: async () => {
    const gpu = await testGpu();
    const [batch, m, n, k] = [3, 66, 72, 40];
    const random = rng(5);
    const ha = randomF32(batch * m * k, random);
    const hb = randomF32(k * n, random);
    const a = Tensor.fromArray(gpu, ha, [batch, m, k]);
    const b = Tensor.fromArray(gpu, hb, [k, n]);
    const c = Tensor.empty(gpu, [batch, m, n]);
    try {
      const p = {
        batch,
        m,
        n,
        k,
        transA: false,
        transB: false,
        strideA: m * k,
        strideB: 0,
        bias: false,
        alpha: 1,
        beta: 0,
      };
      dispatchGeneratedMatmul(gpu, SMALL, p, { a: a.binding(), b: b.binding(), c: c.binding() });
      const got = await c.toArray();
      const want = new Float64Array(batch * m * n);
      const one = refMatmul(1, m, n, k, false, false, false);
      for (let i = 0; i < batch; i++) {
        want.set(
          one.forward([Float64Array.from(ha.subarray(i * m * k, (i + 1) * m * k)), Float64Array.from(hb)]),
          i * m * n,
        );
      }
      assertClose("shared-B batch", got, want, REDUCTION);
    } finally {
      for (const t of [a, b, c]) t.dispose();
    }
  },
});

Deno.test({
  ...opts,
  name: "autotune: times candidates, caches the winner per adapter, reads it back, choice is deterministic",
  fn: async () => {
    const gpu = await testGpu();
    const home = await Deno.makeTempDir({ prefix: "orion_autotune_" });
    try {
      const p = problem(64, 64, 32, false, true);
      const candidates = [SMALL, WIDE];
      const first = await autotuneMatmul(gpu, [p], { home, candidates, targetMs: 2, warmupMs: 1 });
      assert.equal(first.length, 1);
      assert.equal(first[0].cached, false);
      assert.equal(first[0].timings.length, 3, "two configs and the general kernel timed");
      for (const t of first[0].timings) {
        assert.ok(t.ms > 0 && Number.isFinite(t.ms), `${t.kernel}: ${t.ms} ms`);
      }
      const path = autotuneCachePath(gpu, home);
      assert.match(path, /\/autotune\/[0-9a-f]{16}\.json$/);
      const file = JSON.parse(await Deno.readTextFile(path));
      assert.equal(file.matmul[matmulProblemKey(p)].best, first[0].best);
      // Cached: not re-timed, same answer.
      const second = await autotuneMatmul(gpu, [p], { home, candidates, targetMs: 2, warmupMs: 1 });
      assert.deepEqual(second, [{ key: first[0].key, best: first[0].best, timings: [], cached: true }]);
      setMatmulTuning(gpu, null);
      assert.deepEqual(await loadMatmulTuning(gpu, home), { [matmulProblemKey(p)]: first[0].best });
      const chosen = chooseMatmulConfig(gpu, p);
      assert.equal(chosen === null ? "general" : matmulConfigName(chosen), first[0].best);
      assert.equal(await loadMatmulTuning(gpu, `${home}/missing`), null);
    } finally {
      setMatmulTuning(gpu, null);
      await Deno.remove(home, { recursive: true });
    }
  },
});
