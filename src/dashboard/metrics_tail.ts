/**
 * Reading a run's `metrics.jsonl` while it grows: {@link MetricsTail} reads only the bytes appended since
 * the last call (complete lines only — a line being written is picked up next time), and starts over when
 * the file was replaced or shortened (a resume rewinds the log through a rename). Lines that are not
 * metrics are skipped, never fatal: the dashboard shows what it can.
 *
 * @module
 */
import { join } from "node:path";
import { METRICS_FILE } from "../checkpoint/metrics_log.ts";

/** One training step's metrics line. */
export interface TrainPoint {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  /** Seconds since the epoch when the step's metrics were read back. */
  time: number;
}

/** One validation line. */
export interface ValPoint {
  step: number;
  valLoss: number;
  valAccuracy: number;
  time: number;
}

/** The metrics of a run as read so far. */
export interface RunMetrics {
  train: TrainPoint[];
  val: ValPoint[];
  /** Complete lines that were not metrics (malformed JSON or unknown shape). */
  skippedLines: number;
}

function parseLine(line: string, into: RunMetrics): void {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(line);
  } catch {
    into.skippedLines++;
    return;
  }
  const num = (k: string) => (typeof v?.[k] === "number" ? v[k] as number : NaN);
  const step = num("step");
  if (!Number.isFinite(step)) {
    into.skippedLines++;
    return;
  }
  if (typeof v.loss === "number") {
    into.train.push({
      step,
      loss: num("loss"),
      gradNorm: num("grad_norm"),
      lr: num("lr"),
      time: num("time"),
    });
  } else if (typeof v.val_loss === "number" || typeof v.val_accuracy === "number") {
    into.val.push({ step, valLoss: num("val_loss"), valAccuracy: num("val_accuracy"), time: num("time") });
  } else into.skippedLines++;
}

/** Follows one run's `metrics.jsonl`. */
export class MetricsTail {
  readonly path: string;
  #offset = 0;
  #ino: number | null = null;
  #metrics: RunMetrics = { train: [], val: [], skippedLines: 0 };
  /** How many times the log was found replaced or shortened (each time everything was re-read). */
  restarts = 0;

  /** Follows `<runDir>/metrics.jsonl`. */
  constructor(runDir: string) {
    this.path = join(runDir, METRICS_FILE);
  }

  /** The metrics read so far. */
  get metrics(): RunMetrics {
    return this.#metrics;
  }

  /** Reads what was appended since the last call; resolves to true when anything changed. */
  async refresh(): Promise<boolean> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(this.path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      const had = this.#metrics.train.length + this.#metrics.val.length > 0;
      if (had) this.#reset();
      return had;
    }
    let changed = false;
    if ((this.#ino !== null && info.ino !== this.#ino) || info.size < this.#offset) {
      this.#reset();
      this.restarts++;
      changed = true;
    }
    this.#ino = info.ino;
    if (info.size === this.#offset) return changed;
    const file = await Deno.open(this.path, { read: true });
    let bytes: Uint8Array;
    try {
      await file.seek(this.#offset, Deno.SeekMode.Start);
      bytes = new Uint8Array(info.size - this.#offset);
      let at = 0;
      while (at < bytes.byteLength) {
        const n = await file.read(bytes.subarray(at));
        if (n === null) break;
        at += n;
      }
      bytes = bytes.subarray(0, at);
    } finally {
      file.close();
    }
    const end = bytes.lastIndexOf(0x0a) + 1;
    if (end === 0) return changed;
    for (const line of new TextDecoder().decode(bytes.subarray(0, end)).split("\n")) {
      if (line.trim()) parseLine(line, this.#metrics);
    }
    this.#offset += end;
    return true;
  }

  #reset(): void {
    this.#offset = 0;
    this.#ino = null;
    this.#metrics = { train: [], val: [], skippedLines: 0 };
  }
}

/**
 * Reads a run's whole metrics log once.
 *
 * @example
 * ```ts
 * import { readRunMetrics } from "./metrics_tail.ts";
 * const { train, val } = await readRunMetrics("runs/demo");
 * console.log(train.length, val.at(-1)?.valAccuracy);
 * ```
 */
export async function readRunMetrics(runDir: string): Promise<RunMetrics> {
  const tail = new MetricsTail(runDir);
  await tail.refresh();
  return tail.metrics;
}

/**
 * Training throughput in samples per second at each logged step, measured over the steps logged in the
 * preceding `windowSeconds` (metrics are read back in bursts, so neighbouring lines can share a timestamp).
 * A step that goes backwards or a pause longer than `gapSeconds` (a resume) starts a new measurement.
 *
 * @example
 * ```ts
 * import { readRunMetrics, throughputPoints } from "./metrics_tail.ts";
 * const { train } = await readRunMetrics("runs/demo");
 * throughputPoints(train, 16); // [[step, samples/s], ...] with 16 samples per step (batchSize × accumulation)
 * ```
 */
export function throughputPoints(
  train: readonly TrainPoint[],
  samplesPerStep: number,
  windowSeconds = 2,
  gapSeconds = 60,
): [number, number][] {
  const out: [number, number][] = [];
  let segmentStart = 0;
  let j = 0;
  for (let i = 0; i < train.length; i++) {
    const p = train[i];
    if (!Number.isFinite(p.time)) continue;
    if (i > 0 && (p.step <= train[i - 1].step || p.time - train[i - 1].time > gapSeconds)) {
      segmentStart = i;
      j = i;
    }
    while (j + 1 < i && p.time - train[j + 1].time >= windowSeconds) j++;
    if (j < segmentStart) j = segmentStart;
    const base = train[j];
    const dt = p.time - base.time;
    if (i === j || dt < Math.min(windowSeconds, 0.25)) continue;
    out.push([p.step, ((p.step - base.step) * samplesPerStep) / dt]);
  }
  return out;
}
