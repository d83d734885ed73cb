/**
 * The shared gradient-test suite: every op's GPU forward and backward against the f64 reference, and the
 * reference backward against finite differences. Cases come from `cases_*.ts`, one file per op family.
 */
import { checkOpCase, testGpu } from "./op_harness.ts";
import { coreCases } from "./cases_core.ts";
import { nnCases } from "./cases_nn.ts";
import { attentionCases } from "./cases_attention.ts";
import { matmulFastCases } from "./cases_matmul_fast.ts";

const all = [...coreCases, ...nnCases, ...attentionCases, ...matmulFastCases];

for (const c of all) {
  Deno.test({
    name: `op ${c.name}`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => await checkOpCase(await testGpu(), c),
  });
}
