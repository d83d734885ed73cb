/**
 * Canonical JSON (object keys sorted recursively, no whitespace) and its sha256, the basis of config hashes.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Recursively sorts object keys; rejects values JSON cannot carry exactly (undefined, functions, NaN, ±Infinity). */
export function canonicalize(value: unknown, path = ""): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new Error(
        `Cannot write ${path || "value"} as canonical JSON as it is not finite: current value is ${value}`,
      );
    }
    return value;
  }
  if (Array.isArray(value)) return value.map((v, i) => canonicalize(v, `${path}.${i}`));
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value as object).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v === undefined) continue;
      out[key] = canonicalize(v, path ? `${path}.${key}` : key);
    }
    return out;
  }
  throw new Error(
    `Cannot write ${
      path || "value"
    } as canonical JSON as it is a ${typeof value}: serialize it to a name first`,
  );
}

/** Canonical JSON text: sorted keys, no whitespace (or indented with `indent` spaces). */
export function canonicalJson(value: unknown, indent = 0): string {
  return JSON.stringify(canonicalize(value), null, indent || undefined);
}

/** `sha256:<hex>` of the canonical JSON of `value`. */
export function sha256OfCanonicalJson(value: unknown): string {
  return `sha256:${createHash("sha256").update(canonicalJson(value)).digest("hex")}`;
}
