/**
 * Shared-suite cases forcing the generated matmul kernel (src/ops/matmul_codegen.ts), forward and
 * backward (the backward products use the same forced configuration): every transpose combination,
 * the bias epilogue, batches, tile-aligned and ragged sizes (partial tiles, odd sizes that need scalar
 * loads). Both configurations fit 16 KiB of workgroup memory, so they run on every adapter; one is
 * single-buffered, the other double-buffered.
 */
import { matmul } from "../../src/ops/mod.ts";
import { matmulConfigName, type MatmulTileConfig, tileConfig } from "../../src/ops/matmul_codegen.ts";
import { REDUCTION } from "../reference/compare.ts";
import { refMatmul } from "../reference/ops.ts";
import type { OpCase } from "./op_harness.ts";

/** The default for large problems: 128×128 tile, BK 8, one padded buffer (8.3 KiB). */
const BIG: MatmulTileConfig = tileConfig(128, 128, 8, 8, 8, { buffers: 1 });
/** 64×64 tile, BK 16, two unpadded buffers (16 KiB). */
const SMALL: MatmulTileConfig = tileConfig(64, 64, 16, 4, 4, { pad: 0 });

function fastCases(): OpCase[] {
  const out: OpCase[] = [];
  const shapes: [number, number, number, number, MatmulTileConfig, boolean][] = [
    [1, 128, 128, 64, BIG, false], // tile-aligned: no bounds checks, 128-bit loads
    [1, 130, 257, 33, BIG, true], // ragged and odd: scalar loads, every edge checked
    [2, 68, 36, 20, SMALL, false], // batched, partial tiles with 128-bit loads
    [1, 70, 45, 19, SMALL, true], // odd sizes under the small tile
  ];
  for (const [batch, m, n, k, config, bias] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const sa = transA ? [k, m] : [m, k];
        const sb = transB ? [n, k] : [k, n];
        const inputs = [{ shape: batch > 1 ? [batch, ...sa] : sa }, {
          shape: batch > 1 ? [batch, ...sb] : sb,
        }];
        if (bias) inputs.push({ shape: [n] });
        out.push({
          name:
            `matmul (generated ${
              matmulConfigName(config)
            }) b${batch} ${m}×${n}×${k} tA=${transA} tB=${transB}` +
            (bias ? " +bias" : ""),
          inputs,
          gpu: ([a, b, c]) => matmul(a, b, { transA, transB, bias: c, kernel: config }),
          ref: refMatmul(batch, m, n, k, transA, transB, bias),
          tol: REDUCTION,
        });
      }
    }
  }
  return out;
}

/** Cases of this file. */
export const matmulFastCases: OpCase[] = fastCases();
