/**
 * Orion's differentiable GPU ops. Importing this module also installs the gradient-summing kernels the
 * autograd engine uses.
 *
 * @module
 */
import { installGradAdder } from "../tensor/autograd.ts";
import { accumulateInto, add, fullLike, persistentCopy } from "./elementwise.ts";

installGradAdder({ add, accumulate: accumulateInto, onesLike: (t) => fullLike(t, 1), persistentCopy });

export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./matmul.ts";
export * from "./shape.ts";
export * from "./layer_norm.ts";
export * from "./gelu.ts";
export * from "./softmax.ts";
export * from "./embedding.ts";
export * from "./dropout.ts";
export * from "./loss.ts";
export * from "./philox.ts";
