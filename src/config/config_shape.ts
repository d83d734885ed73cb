/**
 * Compile-time agreement between a config's hand-written public types and its zod schema. The public types
 * are explicit interfaces (fast to check, documented field by field, no zod types in the public API); each
 * config module asserts with {@link SameShape} that its interfaces and its schema describe the same values,
 * so the two cannot drift apart without `deno check` failing.
 *
 * @module
 */
import type { z } from "zod";

/** A schema output without zod's brand. */
export type Unbranded<T> = Omit<T, typeof z.$brand>;

/** A schema output with zod's brand removed from it and from every branded section inside it. */
export type DeepUnbranded<T> = T extends readonly unknown[] ? { [I in keyof T]: DeepUnbranded<T[I]> }
  : T extends { [z.$brand]: unknown } ? { [K in keyof Unbranded<T>]: DeepUnbranded<Unbranded<T>[K]> }
  : T;

/** `true` when `A` and `B` are assignable to each other, else `false`. */
export type SameShape<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
