/**
 * Collecting the matmul problems a piece of recording issues, for the autotuner (`autotune.ts`): which
 * shapes a training step multiplies is easiest learned by recording one and listening to `matmulInto`.
 *
 * Collected are the products whose kernel a tuning table can change: `matmulInto` calls under the `"auto"`
 * choice that run the generated or the general kernel — including the batched partial product inside a
 * split-K weight gradient, which is an ordinary `"auto"` product. Not collected: the split-K decision itself
 * (`splitKChunk`, a function of the shape that tuning never touches), calls that force a kernel (a split's
 * tail, tests, benchmarks) and empty products.
 *
 * @module
 */
import { type MatmulProblem, matmulProblemKey } from "./matmul_codegen.ts";

/** The active sinks, innermost last (nested collections all see every problem). */
const sinks: Map<string, MatmulProblem>[] = [];

/**
 * Called by `matmulInto` for every product a tuning table could affect; a no-op unless
 * {@linkcode collectMatmulProblems} is running.
 */
export function noteMatmulProblem(p: MatmulProblem): void {
  if (sinks.length === 0) return;
  const key = matmulProblemKey(p);
  for (const sink of sinks) if (!sink.has(key)) sink.set(key, { ...p });
}

/**
 * Runs `fn` (which records GPU work; it is not awaited, so it must be synchronous) and returns its result
 * with the matmul problems it issued: one per tuning key (`matmulProblemKey`: batch, sizes, transposes),
 * the first one seen for that key, in first-seen order.
 *
 * @example
 * ```ts ignore
 * const { problems } = collectMatmulProblems(() => model.loss(batch, { training: true }));
 * await autotuneMatmul(gpu, problems);
 * ```
 */
export function collectMatmulProblems<T>(fn: () => T): { result: T; problems: MatmulProblem[] } {
  const sink = new Map<string, MatmulProblem>();
  sinks.push(sink);
  try {
    const result = fn();
    if (result instanceof Promise) {
      throw new TypeError(
        "Cannot collect matmul problems of an async function as its recording may go on after the " +
          "collection ends: current value is a Promise (collect around the synchronous recording instead)",
      );
    }
    return { result, problems: [...sink.values()] };
  } finally {
    sinks.splice(sinks.indexOf(sink), 1);
  }
}
