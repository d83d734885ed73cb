/**
 * EDF / EDF+ / BDF / BDF+ reader written against the format specifications (see `edf_format.ts`).
 * Every structural problem is an error that names the file, the field and its value; nothing is guessed.
 *
 * @module
 */
import {
  annotationLabel,
  bytesPerSample,
  type EdfAnnotation,
  type EdfFile,
  type EdfFormat,
  type EdfHeader,
  type EdfSignal,
  type EdfSignalHeader,
} from "./edf_format.ts";

/** A file that is not valid EDF/BDF; `reason` says why. */
export class EdfFormatError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`Cannot read ${file} as EDF/BDF: ${reason}`);
    this.name = "EdfFormatError";
  }
}

class FieldCursor {
  offset = 0;
  constructor(readonly bytes: Uint8Array, readonly file: string) {}

  ascii(length: number, field: string): string {
    const end = this.offset + length;
    if (end > this.bytes.length) {
      throw new EdfFormatError(
        this.file,
        `the header is truncated: field '${field}' needs bytes ${this.offset}..${end} but the file has ${this.bytes.length} bytes`,
      );
    }
    let s = "";
    for (let i = this.offset; i < end; i++) {
      const b = this.bytes[i];
      if (b < 32 || b > 126) {
        throw new EdfFormatError(
          this.file,
          `header field '${field}' holds the non-printable byte 0x${b.toString(16).padStart(2, "0")} ` +
            `at offset ${i}; the specification allows printable US-ASCII (32..126) only`,
        );
      }
      s += String.fromCharCode(b);
    }
    this.offset = end;
    return s;
  }

  number(length: number, field: string, integer: boolean): number {
    const raw = this.ascii(length, field).trim();
    return parseField(this.file, field, raw, integer);
  }
}

function parseField(file: string, field: string, raw: string, integer: boolean): number {
  const pattern = integer ? /^[+-]?\d+$/ : /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
  if (!pattern.test(raw)) {
    throw new EdfFormatError(
      file,
      `header field '${field}' must be ${integer ? "an integer" : "a number"}: current value is '${raw}'`,
    );
  }
  return Number(raw);
}

/** Parses only the header (fixed part and signal headers) of `bytes`. */
export function parseEdfHeader(bytes: Uint8Array, file = "<bytes>"): EdfHeader {
  if (bytes.length < 256) {
    throw new EdfFormatError(
      file,
      `the file has ${bytes.length} bytes, fewer than the 256-byte fixed header`,
    );
  }
  let format: EdfFormat;
  const cursor = new FieldCursor(bytes, file);
  if (bytes[0] === 0xff) {
    cursor.offset = 1;
    const magic = cursor.ascii(7, "version");
    if (magic !== "BIOSEMI") {
      throw new EdfFormatError(
        file,
        `a BDF version field must read 0xFF "BIOSEMI": current value is '${magic}'`,
      );
    }
    format = "bdf";
  } else {
    const version = cursor.ascii(8, "version");
    if (version.trim() !== "0") {
      throw new EdfFormatError(
        file,
        `the EDF version field must be "0": current value is '${version.trim()}'`,
      );
    }
    format = "edf";
  }
  const patientId = cursor.ascii(80, "local patient identification").trimEnd();
  const recordingId = cursor.ascii(80, "local recording identification").trimEnd();
  const startDate = cursor.ascii(8, "startdate");
  const startTime = cursor.ascii(8, "starttime");
  if (!/^\d\d\.\d\d\.\d\d$/.test(startDate)) {
    throw new EdfFormatError(file, `the start date must be dd.mm.yy: current value is '${startDate}'`);
  }
  if (!/^\d\d\.\d\d\.\d\d$/.test(startTime)) {
    throw new EdfFormatError(file, `the start time must be hh.mm.ss: current value is '${startTime}'`);
  }
  const headerBytes = cursor.number(8, "number of bytes in header record", true);
  const reserved = cursor.ascii(44, "reserved").trimEnd();
  let discontinuous = false;
  if (reserved.startsWith("EDF+") || reserved.startsWith("BDF+")) {
    const plus = reserved.slice(0, 5);
    if (plus !== "EDF+C" && plus !== "EDF+D" && plus !== "BDF+C" && plus !== "BDF+D") {
      throw new EdfFormatError(
        file,
        `the reserved field must start with EDF+C or EDF+D: current value is '${reserved}'`,
      );
    }
    if ((format === "edf") !== plus.startsWith("EDF")) {
      throw new EdfFormatError(
        file,
        `the reserved field '${plus}' does not match the ${format.toUpperCase()} version field`,
      );
    }
    format = format === "edf" ? "edf+" : "bdf+";
    discontinuous = plus.endsWith("D");
  }
  const numRecordsField = cursor.number(8, "number of data records", true);
  const recordDuration = cursor.number(8, "duration of a data record", false);
  const ns = cursor.number(4, "number of signals", true);
  if (ns < 1) {
    throw new EdfFormatError(file, `the number of signals must be at least 1: current value is ${ns}`);
  }
  if (headerBytes !== 256 * (ns + 1)) {
    throw new EdfFormatError(
      file,
      `the header byte count must be 256 × (signals + 1) = ${
        256 * (ns + 1)
      } for ${ns} signals: current value is ${headerBytes}`,
    );
  }
  if (bytes.length < headerBytes) {
    throw new EdfFormatError(
      file,
      `the header is truncated: it declares ${headerBytes} bytes but the file has ${bytes.length}`,
    );
  }
  if (!(recordDuration >= 0)) {
    throw new EdfFormatError(
      file,
      `the data record duration must not be negative: current value is ${recordDuration}`,
    );
  }
  const column = <T>(length: number, name: string, read: (raw: string, i: number) => T): T[] =>
    Array.from({ length: ns }, (_, i) => read(cursor.ascii(length, `${name} of signal ${i + 1}`), i));
  const labels = column(16, "label", (s) => s.trim());
  const transducers = column(80, "transducer type", (s) => s.trim());
  const dimensions = column(8, "physical dimension", (s) => s.trim());
  const num = (name: string, integer: boolean) =>
    column(
      8,
      name,
      (s, i) => parseField(file, `${name} of signal ${i + 1} (${labels[i]})`, s.trim(), integer),
    );
  const physicalMin = num("physical minimum", false);
  const physicalMax = num("physical maximum", false);
  const digitalMin = num("digital minimum", true);
  const digitalMax = num("digital maximum", true);
  const prefiltering = column(80, "prefiltering", (s) => s.trim());
  const samplesPerRecord = num("nr of samples in each data record", true);
  column(32, "reserved", (s) => s);

  const limit = bytesPerSample(format) === 2 ? 32768 : 8388608;
  const signals: EdfSignalHeader[] = labels.map((label, i) => {
    const where = `signal ${i + 1} (${label})`;
    if (
      Math.min(digitalMin[i], digitalMax[i]) < -limit || Math.max(digitalMin[i], digitalMax[i]) > limit - 1
    ) {
      throw new EdfFormatError(
        file,
        `the digital range of ${where} must lie within ${-limit}..${limit - 1}: current value is ${
          digitalMin[i]
        }..${digitalMax[i]}`,
      );
    }
    if (digitalMax[i] <= digitalMin[i]) {
      throw new EdfFormatError(
        file,
        `the digital maximum of ${where} must exceed its minimum: current value is ${digitalMin[i]}..${
          digitalMax[i]
        }`,
      );
    }
    if (physicalMax[i] === physicalMin[i]) {
      throw new EdfFormatError(
        file,
        `the physical minimum and maximum of ${where} are both ${physicalMin[i]}`,
      );
    }
    if (samplesPerRecord[i] < 1) {
      throw new EdfFormatError(
        file,
        `the samples per data record of ${where} must be at least 1: current value is ${samplesPerRecord[i]}`,
      );
    }
    return {
      label,
      transducer: transducers[i],
      physicalDimension: dimensions[i],
      physicalMin: physicalMin[i],
      physicalMax: physicalMax[i],
      digitalMin: digitalMin[i],
      digitalMax: digitalMax[i],
      prefiltering: prefiltering[i],
      samplesPerRecord: samplesPerRecord[i],
    };
  });
  const recordBytes = signals.reduce((sum, s) => sum + s.samplesPerRecord, 0) * bytesPerSample(format);
  const dataBytes = bytes.length - headerBytes;
  let numRecords = numRecordsField;
  if (numRecords === -1) {
    if (dataBytes % recordBytes !== 0) {
      throw new EdfFormatError(
        file,
        `the record count is -1 (unknown) and the ${dataBytes} data bytes are not a whole number of ${recordBytes}-byte records`,
      );
    }
    numRecords = dataBytes / recordBytes;
  } else if (numRecords < 0) {
    throw new EdfFormatError(
      file,
      `the number of data records must be -1 or at least 0: current value is ${numRecords}`,
    );
  } else if (dataBytes < numRecords * recordBytes) {
    throw new EdfFormatError(
      file,
      `the data is truncated: the header declares ${numRecords} records of ${recordBytes} bytes ` +
        `(${headerBytes + numRecords * recordBytes} bytes in all) but the file has ${bytes.length} bytes`,
    );
  } else if (dataBytes > numRecords * recordBytes) {
    throw new EdfFormatError(
      file,
      `the file has ${
        dataBytes - numRecords * recordBytes
      } bytes after its ${numRecords} declared data records`,
    );
  }
  const hasOrdinary = signals.some((s) => s.label !== annotationLabel(format));
  if (recordDuration === 0 && hasOrdinary) {
    throw new EdfFormatError(file, "the data record duration is 0 but the file has ordinary signals");
  }
  return {
    format,
    patientId,
    recordingId,
    startDate,
    startTime,
    headerBytes,
    reserved,
    numRecords,
    recordDuration,
    discontinuous,
    signals,
  };
}

function readInt(bytes: Uint8Array, offset: number, width: 2 | 3): number {
  if (width === 2) {
    const v = bytes[offset] | (bytes[offset + 1] << 8);
    return v >= 0x8000 ? v - 0x10000 : v;
  }
  const v = bytes[offset] | (bytes[offset + 1] << 8) | (bytes[offset + 2] << 16);
  return v >= 0x800000 ? v - 0x1000000 : v;
}

/** The text with control characters shown as "·". */
function printable(text: string): string {
  return Array.from(text, (ch) => (ch.charCodeAt(0) < 32 ? "·" : ch)).join("");
}

const TAL_ONSET = /^[+-]\d+(\.\d*)?$/;
const TAL_DURATION = /^\d+(\.\d*)?$/;

/** Parses the TALs of one record's annotation bytes; returns the record start time and the annotations. */
function parseTals(
  file: string,
  record: number,
  data: Uint8Array,
): { start: number | null; annotations: EdfAnnotation[] } {
  const annotations: EdfAnnotation[] = [];
  let start: number | null = null;
  let i = 0;
  let first = true;
  while (i < data.length) {
    if (data[i] === 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < data.length && data[end] !== 0) end++;
    if (end === data.length) {
      throw new EdfFormatError(
        file,
        `the annotation list of data record ${record} is not terminated by a 0 byte`,
      );
    }
    const tal = new TextDecoder("utf-8", { fatal: false }).decode(data.subarray(i, end));
    const parts = tal.split("\x14");
    if (parts.length < 2 || parts[parts.length - 1] !== "") {
      throw new EdfFormatError(
        file,
        `a TAL in data record ${record} does not end with byte 20: '${printable(tal)}'`,
      );
    }
    const [onsetText, durationText] = parts[0].split("\x15");
    if (!TAL_ONSET.test(onsetText) || (durationText !== undefined && !TAL_DURATION.test(durationText))) {
      throw new EdfFormatError(
        file,
        `a TAL in data record ${record} has a malformed onset/duration '${parts[0].replace("\x15", "·")}'`,
      );
    }
    const onset = Number(onsetText);
    const duration = durationText === undefined ? null : Number(durationText);
    const texts = parts.slice(1, -1);
    if (first) {
      // The record's time-keeping TAL: its first annotation is empty.
      if (texts.length === 0 || texts[0] !== "") {
        throw new EdfFormatError(file, `data record ${record} does not start with a time-keeping TAL`);
      }
      start = onset;
      texts.shift();
      first = false;
    }
    for (const text of texts) annotations.push({ onset, duration, text });
    i = end + 1;
  }
  return { start, annotations };
}

/**
 * Parses a whole EDF/EDF+/BDF/BDF+ file. Ordinary signals come back in physical units; annotations from
 * every annotation signal, sorted by onset.
 *
 * @example
 * ```ts
 * const edf = parseEdf(await Deno.readFile("rec.edf"), "rec.edf");
 * console.log(edf.signals.map((s) => `${s.header.label} @ ${s.samplingRate} Hz`));
 * ```
 */
export function parseEdf(bytes: Uint8Array, file = "<bytes>"): EdfFile {
  const header = parseEdfHeader(bytes, file);
  const width = bytesPerSample(header.format);
  const isPlus = header.format === "edf+" || header.format === "bdf+";
  const annotationSignals = header.signals.map((s) => isPlus && s.label === annotationLabel(header.format));
  if (isPlus && !annotationSignals.some((a) => a)) {
    throw new EdfFormatError(
      file,
      `an ${header.format.toUpperCase()} file must have an '${annotationLabel(header.format)}' signal`,
    );
  }
  const recordSamples = header.signals.reduce((sum, s) => sum + s.samplesPerRecord, 0);
  const recordBytes = recordSamples * width;
  const signals: EdfSignal[] = [];
  const offsets: number[] = [];
  let offset = 0;
  for (const s of header.signals) {
    offsets.push(offset);
    offset += s.samplesPerRecord * width;
  }
  header.signals.forEach((s, k) => {
    if (annotationSignals[k]) return;
    const physical = new Float32Array(s.samplesPerRecord * header.numRecords);
    const gain = (s.physicalMax - s.physicalMin) / (s.digitalMax - s.digitalMin);
    for (let r = 0; r < header.numRecords; r++) {
      let at = header.headerBytes + r * recordBytes + offsets[k];
      const base = r * s.samplesPerRecord;
      for (let i = 0; i < s.samplesPerRecord; i++, at += width) {
        physical[base + i] = (readInt(bytes, at, width) - s.digitalMin) * gain + s.physicalMin;
      }
    }
    signals.push({ header: s, samplingRate: s.samplesPerRecord / header.recordDuration, physical });
  });
  const annotations: EdfAnnotation[] = [];
  for (let r = 0; r < header.numRecords; r++) {
    let recordStart: number | null = null;
    header.signals.forEach((s, k) => {
      if (!annotationSignals[k]) return;
      const at = header.headerBytes + r * recordBytes + offsets[k];
      const parsed = parseTals(file, r, bytes.subarray(at, at + s.samplesPerRecord * width));
      if (recordStart === null) recordStart = parsed.start;
      annotations.push(...parsed.annotations);
    });
    if (isPlus) {
      if (recordStart === null) throw new EdfFormatError(file, `data record ${r} has no time-keeping TAL`);
      const expected = r * header.recordDuration;
      if (Math.abs(recordStart - expected) > 1e-6 * Math.max(1, expected)) {
        throw new EdfFormatError(
          file,
          header.discontinuous
            ? `the EDF+D records are discontinuous (record ${r} starts at ${recordStart} s, not ${expected} s); gaps are not supported, convert to EDF+C`
            : `data record ${r} of this EDF+C file starts at ${recordStart} s instead of ${expected} s`,
        );
      }
    }
  }
  annotations.sort((a, b) => a.onset - b.onset);
  return { header, signals, annotations };
}
