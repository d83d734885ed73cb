/**
 * Which data-parallel gradient buckets backward has finished, for cutting a synced step into segments.
 *
 * @module
 */
import type { Tensor } from "../tensor/tensor.ts";

/**
 * Tracks which gradient buckets are final during backward: a bucket is final once every parameter overlapping
 * it was reported by autograd's `onLeafReady`. Buckets are released strictly in index order.
 *
 * @example
 * ```ts ignore
 * const readiness = new BucketReadiness(store.all(), sync.buckets(store.totalElements));
 * backward(loss, undefined, { onLeafReady: (leaf) => cutAfter(readiness.leafReady(leaf)) });
 * cutAfter(readiness.rest());
 * ```
 */
export class BucketReadiness {
  readonly #bucketsOfLeaf = new Map<Tensor, number[]>();
  readonly #pending: number[];
  #next = 0;

  constructor(
    params: readonly { slot: { offset: number; size: number }; value: Tensor }[],
    buckets: readonly (readonly [number, number])[],
  ) {
    this.#pending = buckets.map(() => 0);
    for (const { slot, value } of params) {
      const hit: number[] = [];
      buckets.forEach(([a, b], i) => {
        if (slot.offset < b && slot.offset + slot.size > a) hit.push(i);
      });
      for (const i of hit) this.#pending[i]++;
      this.#bucketsOfLeaf.set(value, hit);
    }
  }

  /** Marks `leaf` final; returns the buckets (in order) that may now be read. */
  leafReady(leaf: Tensor): number[] {
    const hit = this.#bucketsOfLeaf.get(leaf);
    if (!hit) return [];
    this.#bucketsOfLeaf.delete(leaf);
    for (const i of hit) this.#pending[i]--;
    const out: number[] = [];
    while (this.#next < this.#pending.length && this.#pending[this.#next] === 0) out.push(this.#next++);
    return out;
  }

  /** The buckets not released yet (parameters backward never reached), in order. */
  rest(): number[] {
    const out: number[] = [];
    while (this.#next < this.#pending.length) out.push(this.#next++);
    return out;
  }
}
