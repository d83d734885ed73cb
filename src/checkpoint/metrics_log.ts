/**
 * `metrics.jsonl` of a run directory: one JSON object per line, each with an integer `step`.
 *
 * Crash safety: every entry is one `write` of a complete line in append mode, so a crash can at worst
 * leave a torn last line (no trailing newline); readers ignore it and {@link MetricsLog.open} cuts it off.
 * {@link rewindMetrics} rewrites the file through a temporary sibling + fsync + rename, so a crash leaves
 * either the old or the rewound file. Lines are not fsynced one by one (a process crash loses nothing the
 * OS accepted); call {@link MetricsLog.sync} before a checkpoint to survive machine crashes too.
 *
 * @module
 */
import { join } from "node:path";
import { canonicalJson, CheckpointStateError, type JsonValue } from "./checkpoint_state.ts";
import { fsyncDirectory, randomHex } from "./durable_fs.ts";

/** File name of the metrics log inside a run directory. */
export const METRICS_FILE = "metrics.jsonl";

/** One metrics line. */
export interface MetricsEntry {
  [key: string]: JsonValue;
  /** The optimizer step the metrics belong to. */
  step: number;
}

/** Thrown when `metrics.jsonl` holds a malformed complete line. */
export class MetricsLogError extends Error {
  /** @param line 1-based line number. */
  constructor(readonly path: string, readonly line: number, reason: string) {
    super(`Cannot read metrics log ${path} as line ${line} ${reason}: fix or remove that line`);
    this.name = "MetricsLogError";
  }
}

function encodeEntry(entry: MetricsEntry): Uint8Array {
  if (!Number.isSafeInteger(entry?.step) || entry.step < 0) {
    throw new CheckpointStateError(
      "metrics.step",
      `Cannot log metrics as field step must be a non-negative integer: current value is ${entry?.step}`,
    );
  }
  return new TextEncoder().encode(canonicalJson(entry, "metrics", 0));
}

interface ParsedLog {
  entries: MetricsEntry[];
  /** Raw text of each complete line (without the newline), aligned with `entries`. */
  lines: string[];
  /** Byte length of the complete lines (where a torn tail starts). */
  completeBytes: number;
  tornTail: boolean;
}

async function parseLog(path: string): Promise<ParsedLog> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { entries: [], lines: [], completeBytes: 0, tornTail: false };
    }
    throw e;
  }
  const lastNewline = bytes.lastIndexOf(0x0a);
  const completeBytes = lastNewline + 1;
  const text = new TextDecoder().decode(bytes.subarray(0, completeBytes));
  const lines = text.length === 0 ? [] : text.slice(0, -1).split("\n");
  const entries = lines.map((line, i) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new MetricsLogError(path, i + 1, "is not valid JSON");
    }
    const step = (value as { step?: unknown } | null)?.step;
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new MetricsLogError(path, i + 1, "is not a JSON object");
    }
    if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
      throw new MetricsLogError(path, i + 1, `has no non-negative integer step (current value is ${step})`);
    }
    return value as MetricsEntry;
  });
  return { entries, lines, completeBytes, tornTail: completeBytes < bytes.byteLength };
}

/**
 * Reads a run's metrics log, ignoring a torn last line.
 *
 * @throws {MetricsLogError} for a malformed complete line.
 * @example
 * ```ts
 * import { readMetrics } from "./metrics_log.ts";
 * const { entries } = await readMetrics("runs/demo");
 * ```
 */
export async function readMetrics(runDir: string): Promise<{ entries: MetricsEntry[]; tornTail: boolean }> {
  const { entries, tornTail } = await parseLog(join(runDir, METRICS_FILE));
  return { entries, tornTail };
}

/**
 * Drops every entry with `step > checkpointStep` (and a torn last line), so that a run resumed from that
 * checkpoint never logs a step twice. Atomic: temporary sibling, fsync, rename, fsync of the run directory.
 *
 * @returns how many entries were kept and removed.
 * @example
 * ```ts
 * import { rewindMetrics } from "./metrics_log.ts";
 * await rewindMetrics("runs/demo", 50000); // before resuming from ckpt-step000050000
 * ```
 */
export async function rewindMetrics(
  runDir: string,
  checkpointStep: number,
): Promise<{ kept: number; removed: number }> {
  const path = join(runDir, METRICS_FILE);
  const log = await parseLog(path);
  const keptLines = log.lines.filter((_, i) => log.entries[i].step <= checkpointStep);
  const removed = log.entries.length - keptLines.length;
  if (removed === 0 && !log.tornTail) return { kept: keptLines.length, removed };
  const temp = join(runDir, `.${METRICS_FILE}.tmp-${randomHex(6)}`);
  try {
    const file = await Deno.open(temp, { write: true, createNew: true });
    try {
      const bytes = new TextEncoder().encode(keptLines.map((l) => `${l}\n`).join(""));
      let at = 0;
      while (at < bytes.byteLength) at += await file.write(bytes.subarray(at));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
  await fsyncDirectory(runDir);
  return { kept: keptLines.length, removed };
}

/**
 * An open metrics log to append to.
 *
 * @example
 * ```ts
 * import { MetricsLog } from "./metrics_log.ts";
 * const log = await MetricsLog.open("runs/demo");
 * await log.append({ step: 1, loss: 2.3 });
 * await log.close();
 * ```
 */
export class MetricsLog {
  #file: Deno.FsFile;
  #tail: Promise<void> = Promise.resolve();

  private constructor(readonly path: string, file: Deno.FsFile) {
    this.#file = file;
  }

  /** Opens (creating) `<runDir>/metrics.jsonl` for appending, cutting off a torn last line first. */
  static async open(runDir: string): Promise<MetricsLog> {
    await Deno.mkdir(runDir, { recursive: true });
    const path = join(runDir, METRICS_FILE);
    const log = await parseLog(path);
    if (log.tornTail) await Deno.truncate(path, log.completeBytes);
    return new MetricsLog(path, await Deno.open(path, { append: true, create: true }));
  }

  /** Appends one entry as one line; appends are applied in call order. */
  append(entry: MetricsEntry): Promise<void> {
    const bytes = encodeEntry(entry);
    const write = this.#tail.then(async () => {
      let at = 0;
      while (at < bytes.byteLength) at += await this.#file.write(bytes.subarray(at));
    });
    this.#tail = write.catch(() => {});
    return write;
  }

  /** Waits for pending appends and fsyncs the file. */
  async sync(): Promise<void> {
    await this.#tail;
    await this.#file.sync();
  }

  /** Waits for pending appends and closes the file. */
  async close(): Promise<void> {
    await this.#tail;
    this.#file.close();
  }
}

/**
 * Appends one entry to `<runDir>/metrics.jsonl` (opening and closing the file).
 *
 * @example
 * ```ts
 * import { appendMetrics } from "./metrics_log.ts";
 * await appendMetrics("runs/demo", { step: 10, loss: 1.25 });
 * ```
 */
export async function appendMetrics(runDir: string, entry: MetricsEntry): Promise<void> {
  const log = await MetricsLog.open(runDir);
  try {
    await log.append(entry);
  } finally {
    await log.close();
  }
}
