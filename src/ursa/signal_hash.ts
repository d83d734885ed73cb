/**
 * Content addresses. `recording_hash` is the sha256 of a recording's canonical signal bytes:
 * the UTF-8 line `orion-signal-v1\n`, then the JSON `{"channels":[...],"sampling_rate":r,"num_samples":n}`
 * and a newline, then every channel's samples as float32 little-endian, channel after channel. The bytes
 * depend on the signal only (not on the file format, the participant or the import time).
 *
 * @module
 */
import { createHash } from "node:crypto";

/** sha256 (hex) of a recording's canonical signal bytes. */
export function recordingHashOf(channels: string[], samplingRate: number, samples: Float32Array[]): string {
  const hash = createHash("sha256");
  const numSamples = samples.length === 0 ? 0 : samples[0].length;
  hash.update(
    `orion-signal-v1\n${
      JSON.stringify({ channels, sampling_rate: samplingRate, num_samples: numSamples })
    }\n`,
  );
  for (const channel of samples) {
    if (channel.length !== numSamples) {
      throw new Error(
        `Cannot hash a recording whose channels differ in length: ${channel.length} vs ${numSamples}`,
      );
    }
    hash.update(new Uint8Array(channel.buffer, channel.byteOffset, channel.byteLength));
  }
  return hash.digest("hex");
}

/** sha256 (hex) of the JSON of a value with object keys sorted. */
export function hashJson(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex");
}

/** JSON with object keys sorted recursively, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
