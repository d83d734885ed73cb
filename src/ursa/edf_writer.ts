/**
 * An EDF / EDF+ / BDF / BDF+ writer, written independently of the reader (it shares only the types), used
 * by the demo corpus and by the round-trip tests.
 *
 * @module
 */
import { annotationLabel, bytesPerSample, type EdfFormat } from "./edf_format.ts";

/** One signal to write, in physical units. */
export interface EdfWriterSignal {
  label: string;
  samplingRate: number;
  samples: Float32Array;
  physicalDimension?: string;
  physicalMin: number;
  physicalMax: number;
  /** Defaults: the full range of the format (−32768..32767 or −8388608..8388607). */
  digitalMin?: number;
  digitalMax?: number;
  transducer?: string;
  prefiltering?: string;
}

/** One annotation to write (EDF+/BDF+ only). */
export interface EdfWriterAnnotation {
  onset: number;
  duration?: number;
  text: string;
}

/** What to write. */
export interface EdfWriterInput {
  format: EdfFormat;
  signals: EdfWriterSignal[];
  annotations?: EdfWriterAnnotation[];
  /** Seconds per data record (default 1). */
  recordDuration?: number;
  patientId?: string;
  recordingId?: string;
  /** Start of recording (default 2026-01-01 00:00:00 UTC, so output is deterministic). */
  start?: Date;
}

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];

/** Formats a number into at most `width` ASCII characters, or throws. */
export function formatEdfNumber(value: number, width = 8): string {
  if (!Number.isFinite(value)) {
    throw new Error(`Cannot write ${value} into an EDF header field: it is not finite`);
  }
  let text = String(value);
  if (text.length <= width) return text;
  for (let digits = width; digits >= 1; digits--) {
    text = Number(value.toPrecision(digits)).toString();
    if (text.length <= width && !text.includes("e")) return text;
  }
  throw new Error(`Cannot write ${value} into a ${width}-character EDF header field`);
}

function field(text: string, width: number, name: string): string {
  if (text.length > width) {
    throw new Error(`Cannot write EDF header field '${name}' as '${text}' exceeds ${width} characters`);
  }
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    if (code < 32 || code > 126) {
      throw new Error(`Cannot write EDF header field '${name}' as it holds a non-ASCII character`);
    }
  }
  return text.padEnd(width, " ");
}

function encodeTal(onset: number, duration: number | undefined, texts: string[]): Uint8Array {
  const sign = onset < 0 ? "-" : "+";
  const head = `${sign}${formatSeconds(Math.abs(onset))}${
    duration === undefined ? "" : `\x15${formatSeconds(duration)}`
  }`;
  return new TextEncoder().encode(`${head}\x14${texts.map((t) => `${t}\x14`).join("")}\x00`);
}

function formatSeconds(s: number): string {
  // Up to microseconds, no exponent, no trailing zeros.
  return s.toFixed(6).replace(/\.?0+$/, "");
}

/**
 * Encodes a file. Signals shorter than the record grid are padded with the digital value of physical 0
 * (clamped) in their last record.
 *
 * @example
 * ```ts
 * const bytes = writeEdf({
 *   format: "edf+",
 *   signals: [{ label: "Fz", samplingRate: 256, samples: new Float32Array(512), physicalMin: -500, physicalMax: 500 }],
 *   annotations: [{ onset: 0, duration: 2, text: "cognitive_load=1" }],
 * });
 * ```
 */
export function writeEdf(input: EdfWriterInput): Uint8Array {
  const { format, signals } = input;
  const recordDuration = input.recordDuration ?? 1;
  const width = bytesPerSample(format);
  const isPlus = format === "edf+" || format === "bdf+";
  const annotations = [...(input.annotations ?? [])].sort((a, b) => a.onset - b.onset);
  if (!isPlus && annotations.length > 0) {
    throw new Error(`Cannot write annotations into plain ${format.toUpperCase()}: use ${format}+`);
  }
  const full = width === 2 ? 32768 : 8388608;
  const spr = signals.map((s) => {
    const n = s.samplingRate * recordDuration;
    if (Math.abs(n - Math.round(n)) > 1e-9 || n < 1) {
      throw new Error(
        `Cannot write signal '${s.label}' as ${s.samplingRate} Hz × ${recordDuration} s records is not a whole number of samples`,
      );
    }
    return Math.round(n);
  });
  const numRecords = Math.max(1, ...signals.map((s, i) => Math.ceil(s.samples.length / spr[i])));

  // Annotations go into the record that contains their onset (clamped to the file).
  const talsPerRecord: Uint8Array[][] = Array.from(
    { length: numRecords },
    (_, r) => [encodeTal(r * recordDuration, undefined, [""])],
  );
  for (const a of annotations) {
    const r = Math.min(numRecords - 1, Math.max(0, Math.floor(a.onset / recordDuration)));
    talsPerRecord[r].push(encodeTal(a.onset, a.duration, [a.text]));
  }
  const annotationBytes = isPlus
    ? Math.max(...talsPerRecord.map((t) => t.reduce((n, b) => n + b.length, 0)))
    : 0;
  const annotationSpr = isPlus ? Math.ceil(annotationBytes / width) : 0;

  const allSpr = isPlus ? [...spr, annotationSpr] : spr;
  const ns = allSpr.length;
  const headerBytes = 256 * (ns + 1);
  const recordBytes = allSpr.reduce((a, b) => a + b, 0) * width;
  const out = new Uint8Array(headerBytes + numRecords * recordBytes);

  const start = input.start ?? new Date(Date.UTC(2026, 0, 1));
  const dd = String(start.getUTCDate()).padStart(2, "0");
  const mm = String(start.getUTCMonth() + 1).padStart(2, "0");
  const yy = String(start.getUTCFullYear() % 100).padStart(2, "0");
  const time = [start.getUTCHours(), start.getUTCMinutes(), start.getUTCSeconds()].map((v) =>
    String(v).padStart(2, "0")
  )
    .join(".");
  const patientId = input.patientId ?? (isPlus ? "X X X X" : "");
  const recordingId = input.recordingId ??
    (isPlus ? `Startdate ${dd}-${MONTHS[start.getUTCMonth()]}-${start.getUTCFullYear()} X X X` : "");
  const reserved = format === "edf+"
    ? "EDF+C"
    : format === "bdf+"
    ? "BDF+C"
    : format === "bdf"
    ? "24BIT"
    : "";

  const headerSignals = signals.map((s) => ({
    label: s.label,
    transducer: s.transducer ?? "",
    dimension: s.physicalDimension ?? "",
    pmin: s.physicalMin,
    pmax: s.physicalMax,
    dmin: s.digitalMin ?? -full,
    dmax: s.digitalMax ?? full - 1,
    prefiltering: s.prefiltering ?? "",
  }));
  if (isPlus) {
    headerSignals.push({
      label: annotationLabel(format),
      transducer: "",
      dimension: "",
      pmin: -1,
      pmax: 1,
      dmin: -full,
      dmax: full - 1,
      prefiltering: "",
    });
  }
  let header = "";
  // BDF's version field is the byte 0xFF then "BIOSEMI" (the one byte outside ASCII a header may hold).
  header += format === "bdf" || format === "bdf+" ? "\u00ffBIOSEMI" : field("0", 8, "version");
  header += field(patientId, 80, "local patient identification");
  header += field(recordingId, 80, "local recording identification");
  header += `${dd}.${mm}.${yy}` + time;
  header += field(String(headerBytes), 8, "number of bytes in header record");
  header += field(reserved, 44, "reserved");
  header += field(String(numRecords), 8, "number of data records");
  header += field(formatEdfNumber(recordDuration), 8, "duration of a data record");
  header += field(String(ns), 4, "number of signals");
  const each = (f: (s: typeof headerSignals[number], i: number) => string) => headerSignals.map(f).join("");
  header += each((s) => field(s.label, 16, "label"));
  header += each((s) => field(s.transducer, 80, "transducer type"));
  header += each((s) => field(s.dimension, 8, "physical dimension"));
  header += each((s) => field(formatEdfNumber(s.pmin), 8, "physical minimum"));
  header += each((s) => field(formatEdfNumber(s.pmax), 8, "physical maximum"));
  header += each((s) => field(String(s.dmin), 8, "digital minimum"));
  header += each((s) => field(String(s.dmax), 8, "digital maximum"));
  header += each((s) => field(s.prefiltering, 80, "prefiltering"));
  header += each((_, i) => field(String(allSpr[i]), 8, "nr of samples in each data record"));
  header += each(() => " ".repeat(32));
  for (let i = 0; i < header.length; i++) out[i] = header.charCodeAt(i) & 0xff;

  const put = (at: number, v: number) => {
    out[at] = v & 0xff;
    out[at + 1] = (v >> 8) & 0xff;
    if (width === 3) out[at + 2] = (v >> 16) & 0xff;
  };
  for (let r = 0; r < numRecords; r++) {
    let at = headerBytes + r * recordBytes;
    signals.forEach((s, k) => {
      const h = headerSignals[k];
      // The header carries the physical limits as (possibly rounded) text: scale with those exact values.
      const pmin = Number(formatEdfNumber(h.pmin));
      const pmax = Number(formatEdfNumber(h.pmax));
      const scale = (h.dmax - h.dmin) / (pmax - pmin);
      for (let i = 0; i < spr[k]; i++, at += width) {
        const index = r * spr[k] + i;
        const value = index < s.samples.length ? s.samples[index] : 0;
        const digital = Math.round((value - pmin) * scale + h.dmin);
        put(at, Math.min(h.dmax, Math.max(h.dmin, Number.isFinite(digital) ? digital : h.dmin)));
      }
    });
    if (isPlus) {
      for (const tal of talsPerRecord[r]) {
        out.set(tal, at);
        at += tal.length;
      }
    }
  }
  return out;
}
