/**
 * Train/validation/test assignment by session (the recordings of one participant's session: EEG and pupil
 * recorded together), so no recording ever lands in two splits. A session's split depends only on the hash
 * of its key (`participant/session`) and the salt: u = first 32 bits of sha256("orion-split-v1/<salt>/<key>")
 * / 2³², train when u < trainSplit, val when u < trainSplit + valSplit, test otherwise. Adding sessions never
 * moves an existing one.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Split names. */
export type SplitName = "train" | "val" | "test";

/** Split fractions. */
export interface SplitRule {
  /** Fraction of sessions for training, in (0, 1]. */
  trainSplit: number;
  /** Fraction for validation (default 0); the rest is test. */
  valSplit?: number;
  /** Changes the assignment (default ""). */
  salt?: string;
}

/** The uniform value in [0, 1) a session key hashes to. */
export function splitUniform(key: string, salt = ""): number {
  const digest = createHash("sha256").update(`orion-split-v1/${salt}/${key}`).digest();
  return digest.readUInt32BE(0) / 4294967296;
}

/**
 * The split of a session.
 *
 * @example
 * ```ts
 * splitOf("p042/s1", { trainSplit: 0.8 }); // "train" or "test", forever
 * ```
 */
export function splitOf(key: string, rule: SplitRule): SplitName {
  const val = rule.valSplit ?? 0;
  if (!(rule.trainSplit > 0 && rule.trainSplit <= 1) || val < 0 || rule.trainSplit + val > 1 + 1e-12) {
    throw new Error(
      `Cannot split with trainSplit ${rule.trainSplit} and valSplit ${val}: need 0 < trainSplit ≤ 1, valSplit ≥ 0 and a sum ≤ 1`,
    );
  }
  const u = splitUniform(key, rule.salt);
  if (u < rule.trainSplit) return "train";
  if (u < rule.trainSplit + val) return "val";
  return "test";
}
