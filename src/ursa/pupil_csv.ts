/**
 * Pupil / eye-tracker CSV parsing. Accepted layout: a header line, then one row per sample, separated by
 * `,` `;` or tabs. Column names (case-insensitive):
 * - time: `timestamp` / `time` / `t` (seconds) or `timestamp_ms` / `time_ms` (milliseconds) — required;
 * - diameters: `left_diameter` / `pupil_left` / `left`, `right_diameter` / `pupil_right` / `right` — at least one;
 * - validity: `validity` (both eyes) or `left_validity` / `right_validity`; 1/true/valid = valid, 0 = not.
 * Invalid, empty, non-numeric or non-positive diameters become NaN (a blink or tracking loss). Rows must be
 * in time order on a regular grid; missing rows (a gap of k sample periods) are filled with NaN.
 *
 * @module
 */

/** A parsed pupil recording. */
export interface PupilRecording {
  channels: string[];
  samplingRate: number;
  /** Time of the first sample, seconds (session clock). */
  timeOffset: number;
  samples: Float32Array[];
}

/** A CSV that cannot be imported; the message names the file, the row or column, and the fix. */
export class PupilCsvError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`Cannot import ${file} as pupil CSV: ${reason}`);
    this.name = "PupilCsvError";
  }
}

const TIME_S = ["timestamp", "time", "t", "time_s", "timestamp_s"];
const TIME_MS = ["timestamp_ms", "time_ms"];
const LEFT = ["left_diameter", "pupil_left", "left", "diameter_left"];
const RIGHT = ["right_diameter", "pupil_right", "right", "diameter_right"];

/**
 * Parses pupil CSV text.
 *
 * @example
 * ```ts
 * const rec = parsePupilCsv("timestamp,left_diameter,right_diameter,validity\n0,3.1,3.2,1\n0.0166667,3.1,3.2,1\n", "x.csv");
 * console.log(rec.samplingRate);
 * ```
 */
export function parsePupilCsv(
  text: string,
  file = "<csv>",
  options: { samplingRate?: number } = {},
): PupilRecording {
  const lines = text.split(/\r?\n/).filter((l) => l.trim().length > 0);
  if (lines.length < 3) {
    throw new PupilCsvError(
      file,
      `it has ${lines.length} non-empty lines; a header and at least 2 rows are needed`,
    );
  }
  const delimiter = lines[0].includes("\t") ? "\t" : lines[0].includes(";") ? ";" : ",";
  const names = lines[0].split(delimiter).map((n) => n.trim().toLowerCase().replace(/^"|"$/g, ""));
  const find = (options: string[]) => names.findIndex((n) => options.includes(n));
  let timeColumn = find(TIME_S);
  let timeScale = 1;
  if (timeColumn < 0) {
    timeColumn = find(TIME_MS);
    timeScale = 1e-3;
  }
  if (timeColumn < 0) {
    throw new PupilCsvError(
      file,
      `no time column: expected one of ${[...TIME_S, ...TIME_MS].join(", ")}; current columns are ${
        names.join(", ")
      }`,
    );
  }
  const left = find(LEFT);
  const right = find(RIGHT);
  if (left < 0 && right < 0) {
    throw new PupilCsvError(
      file,
      `no diameter column: expected ${LEFT[0]} and/or ${RIGHT[0]}; current columns are ${names.join(", ")}`,
    );
  }
  const both = find(["validity", "valid"]);
  const leftValid = find(["left_validity", "validity_left"]);
  const rightValid = find(["right_validity", "validity_right"]);
  const eyes: { name: string; column: number; validity: number }[] = [];
  if (left >= 0) eyes.push({ name: "pupil_left", column: left, validity: leftValid >= 0 ? leftValid : both });
  if (right >= 0) {
    eyes.push({ name: "pupil_right", column: right, validity: rightValid >= 0 ? rightValid : both });
  }

  const times: number[] = [];
  const values: number[][] = eyes.map(() => []);
  for (let r = 1; r < lines.length; r++) {
    const cells = lines[r].split(delimiter).map((c) => c.trim());
    if (cells.length !== names.length) {
      throw new PupilCsvError(
        file,
        `row ${
          r + 1
        } has ${cells.length} cells but the header has ${names.length} (a truncated or malformed line)`,
      );
    }
    const t = Number(cells[timeColumn]) * timeScale;
    if (cells[timeColumn] === "" || !Number.isFinite(t)) {
      throw new PupilCsvError(
        file,
        `row ${r + 1} has a non-numeric time: current value is '${cells[timeColumn]}'`,
      );
    }
    if (times.length > 0 && t <= times[times.length - 1]) {
      throw new PupilCsvError(
        file,
        `row ${r + 1} has time ${t} s, not after the previous row's ${
          times[times.length - 1]
        } s; sort the file by time`,
      );
    }
    times.push(t);
    eyes.forEach((eye, e) => {
      const d = cells[eye.column] === "" ? Number.NaN : Number(cells[eye.column]);
      const validText = eye.validity >= 0 ? cells[eye.validity].toLowerCase() : "1";
      const valid = validText === "1" || validText === "true" || validText === "valid";
      values[e].push(valid && Number.isFinite(d) && d > 0 ? d : Number.NaN);
    });
  }
  const diffs = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  const t0 = times[0];
  const span = times[times.length - 1] - t0;
  let samplingRate = options.samplingRate ?? 0;
  if (!options.samplingRate) {
    // Median step, refined over the whole span (timestamps are often rounded), snapped to an integer rate
    // when within 0.1 % of one. The refinement is
    // kept only when it moves the median rate by under 1 %.
    const median = diffs[Math.floor(diffs.length / 2)];
    const refined = Math.max(1, Math.round(span / median)) / span;
    const rate = Math.abs(refined * median - 1) < 0.01 ? refined : 1 / median;
    samplingRate = Math.abs(rate - Math.round(rate)) < 1e-3 * rate ? Math.round(rate) : rate;
  }
  const period = 1 / samplingRate;
  const n = Math.round((times[times.length - 1] - t0) / period) + 1;
  const samples = eyes.map(() => new Float32Array(n).fill(Number.NaN));
  for (let i = 0; i < times.length; i++) {
    const exact = (times[i] - t0) / period;
    const index = Math.round(exact);
    if (Math.abs(exact - index) > 0.25) {
      throw new PupilCsvError(
        file,
        `row ${i + 2} at ${times[i]} s is off the ${samplingRate} Hz sample grid by ${
          ((exact - index) * period * 1000).toFixed(2)
        } ms; ` +
          `resample the file to a regular rate or pass --rate`,
      );
    }
    eyes.forEach((_, e) => samples[e][index] = values[e][i]);
  }
  return { channels: eyes.map((e) => e.name), samplingRate, timeOffset: t0, samples };
}
