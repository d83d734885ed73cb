/**
 * Tape-based reverse-mode autograd.
 *
 * Every op that runs while gradient recording is on and has an input that requires a gradient attaches
 * a {@linkcode GradNode} to its output. {@linkcode backward} walks the graph from the loss in reverse
 * creation order (deterministic), calls each node's backward, and sums gradients that meet at a tensor.
 * Leaf tensors with an attached `grad` buffer (parameters) accumulate into it, so several backward
 * passes before an optimizer step accumulate gradients (gradient accumulation). A leaf accumulates as soon as
 * every node that consumes it has run its backward (a dependency count), not when the walk reaches the leaf's
 * own (low) id: a parameter's gradient is final early in the walk, which lets the step engine read gradient
 * buckets back while backward continues ({@linkcode BackwardOptions.onLeafReady}). The sums are the same as
 * accumulating at the end, in the same order; only the place of the accumulate in the command stream moves.
 *
 * @module
 */
import type { GradNode, Tensor } from "./tensor.ts";

let recording = true;

/** Whether ops currently record tape nodes. */
export function isGradEnabled(): boolean {
  return recording;
}

/**
 * Runs `fn` without recording tape nodes (evaluation, optimizer updates).
 *
 * @example
 * ```ts
 * import { noGrad } from "./autograd.ts";
 * const n = noGrad(() => 1 + 1);
 * console.log(n); // 2
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  const prev = recording;
  recording = false;
  try {
    return fn();
  } finally {
    recording = prev;
  }
}

/** Whether an op over `inputs` must record a node. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  if (!recording) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/**
 * Attaches a tape node to `output` when any input requires a gradient; returns `output`.
 * `backward` receives the output's gradient and returns one gradient (or null) per input.
 */
export function record(
  op: string,
  inputs: readonly Tensor[],
  output: Tensor,
  backward: (gradOutput: Tensor) => (Tensor | null)[],
): Tensor {
  if (!needsGrad(inputs)) return output;
  output.requiresGrad = true;
  const node: GradNode = { op, inputs, backward };
  output.node = node;
  return output;
}

/** The function that sums two gradients of the same shape (provided by the ops layer to avoid a cycle). */
export type GradAdder = {
  /** `a + b` as a new tensor. */
  add(a: Tensor, b: Tensor): Tensor;
  /** `target += g` in place. */
  accumulate(target: Tensor, g: Tensor): void;
  /** A tensor of ones shaped like `t`. */
  onesLike(t: Tensor): Tensor;
  /** A fresh copy of `t` that outlives the current scope (a leaf's first gradient). */
  persistentCopy(t: Tensor): Tensor;
};

let adder: GradAdder | null = null;

/** Installs the gradient-summing kernels (done once by `src/ops/mod.ts`). */
export function installGradAdder(a: GradAdder): void {
  adder = a;
}

/** Options of {@linkcode backward}. */
export interface BackwardOptions {
  /**
   * Called once per leaf that requires a gradient, right after its gradient for this pass was recorded
   * (accumulated into `leaf.grad`, or stored as a fresh `grad`) — the moment every consumer's backward has
   * run, in the walk's deterministic order. Commands recorded afterwards never touch that gradient again in
   * this pass. Leaves that receive no gradient (a consumer returned null) are reported too.
   */
  onLeafReady?: (leaf: Tensor) => void;
}

/**
 * Back-propagates from `root` (a scalar loss unless `gradRoot` is given) into every leaf that requires a
 * gradient. Leaves with a `grad` tensor accumulate into it; other leaves get a fresh `grad`.
 *
 * @example
 * ```ts ignore
 * const loss = crossEntropy(logits, labels, weights);
 * backward(loss, undefined, { onLeafReady: (p) => console.log(`${p.name} is final`) });
 * ```
 */
export function backward(root: Tensor, gradRoot?: Tensor, options: BackwardOptions = {}): void {
  if (!adder) throw new Error("Cannot run backward as the ops layer is not loaded: import src/ops/mod.ts");
  const add = adder;
  if (!root.requiresGrad) {
    throw new Error(
      `Cannot run backward from a tensor that does not require a gradient (shape [${root.shape}])`,
    );
  }
  // Collect every tensor reachable through nodes; process in decreasing creation id (a valid reverse
  // topological order, since an op's output is created after its inputs).
  const seen = new Map<number, Tensor>();
  const stack: Tensor[] = [root];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t.id)) continue;
    seen.set(t.id, t);
    if (t.node) { for (const i of t.node.inputs) if (i.requiresGrad && !seen.has(i.id)) stack.push(i); }
  }
  const order = [...seen.values()].sort((a, b) => b.id - a.id);
  // Consumers still to run per leaf (one per input edge).
  const pending = new Map<number, number>();
  for (const t of order) {
    if (!t.node) continue;
    for (const i of t.node.inputs) {
      if (i.requiresGrad && !i.node) pending.set(i.id, (pending.get(i.id) ?? 0) + 1);
    }
  }
  const grads = new Map<number, Tensor>();
  grads.set(root.id, gradRoot ?? noGrad(() => add.onesLike(root)));
  const finalizeLeaf = (leaf: Tensor) => {
    pending.delete(leaf.id);
    const g = grads.get(leaf.id);
    if (g) {
      grads.delete(leaf.id);
      if (leaf.grad) add.accumulate(leaf.grad, g);
      else leaf.grad = add.persistentCopy(g);
    }
    options.onLeafReady?.(leaf);
  };
  const consumed = (input: Tensor) => {
    if (input.node || !input.requiresGrad) return;
    const left = pending.get(input.id)! - 1;
    if (left === 0) finalizeLeaf(input);
    else pending.set(input.id, left);
  };
  noGrad(() => {
    for (const t of order) {
      if (!t.node) {
        // A leaf nothing consumes (the root itself); consumed leaves were finalized eagerly.
        if (grads.has(t.id)) finalizeLeaf(t);
        continue;
      }
      const g = grads.get(t.id);
      if (!g) {
        t.node.inputs.forEach(consumed);
        continue;
      }
      grads.delete(t.id);
      const inputGrads = t.node.backward(g);
      t.node.inputs.forEach((input, i) => {
        const gi = inputGrads[i];
        if (gi && input.requiresGrad) {
          const prev = grads.get(input.id);
          grads.set(input.id, prev ? add.add(prev, gi) : gi);
        }
        consumed(input);
      });
    }
  });
}
