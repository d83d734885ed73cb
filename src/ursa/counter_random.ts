/**
 * Counter-based randomness: `hashKeys(seed, ...keys)` mixes a seed and integer/string keys into 32 bits
 * (MurmurHash3's finalizer over each word), so any (seed, key...) tuple has its own independent value
 * with no shared state. `RandomStream` turns such a key into a fast sequential generator (sfc32) for bulk
 * noise; one stream per (seed, participant, session, channel, purpose) keeps generation order-independent.
 *
 * @module
 */

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function words(key: number | string): number[] {
  if (typeof key === "number") return [key >>> 0, Math.floor(key / 4294967296) >>> 0];
  const out: number[] = [key.length];
  for (let i = 0; i < key.length; i++) out.push(key.charCodeAt(i));
  return out;
}

/** 32-bit hash of (seed, ...keys). */
export function hashKeys(seed: number, ...keys: (number | string)[]): number {
  let h = fmix32((seed >>> 0) ^ 0x9e3779b9);
  for (const key of keys) {
    for (const w of words(key)) h = fmix32((h ^ w) + Math.imul(h, 0x27d4eb2f) + 0x165667b1);
    h = fmix32(h ^ 0xdeadbeef);
  }
  return h;
}

/** A uniform value in [0, 1) keyed by (seed, ...keys). */
export function uniformAt(seed: number, ...keys: (number | string)[]): number {
  return hashKeys(seed, ...keys) / 4294967296;
}

/** A sequential generator (sfc32) seeded from (seed, ...keys). */
export class RandomStream {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | null = null;

  constructor(seed: number, ...keys: (number | string)[]) {
    this.#a = hashKeys(seed, ...keys, 1);
    this.#b = hashKeys(seed, ...keys, 2);
    this.#c = hashKeys(seed, ...keys, 3);
    this.#d = 1;
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Standard normal (Box–Muller, pairs). */
  normal(): number {
    if (this.#spare !== null) {
      const s = this.#spare;
      this.#spare = null;
      return s;
    }
    const u = 1 - this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.uniform() * (i + 1));
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }
}
