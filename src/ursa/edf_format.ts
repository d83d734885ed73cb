/**
 * Types shared by the EDF/EDF+/BDF reader and writer (European Data Format, Kemp et al. 1992; EDF+,
 * Kemp & Olivan 2003; BDF: BioSemi's 24-bit variant). Byte layout of the header:
 *
 * | bytes | field |
 * |---|---|
 * | 8 | version: "0" (EDF) or 0xFF + "BIOSEMI" (BDF) |
 * | 80 / 80 | local patient / local recording identification |
 * | 8 / 8 | start date dd.mm.yy / start time hh.mm.ss |
 * | 8 | number of header bytes = 256 · (ns + 1) |
 * | 44 | reserved: "EDF+C" / "EDF+D" (EDF+), "24BIT" (BDF), "BDF+C" / "BDF+D" (BDF+) |
 * | 8 / 8 / 4 | number of data records (-1 = unknown) / record duration, s / ns signals |
 * | ns × (16, 80, 8, 8, 8, 8, 8, 80, 8, 32) | label, transducer, physical dimension, physical min, physical max, digital min, digital max, prefiltering, samples per record, reserved |
 *
 * Each data record holds, signal after signal, its samples per record as little-endian two's complement
 * integers of 2 (EDF) or 3 (BDF) bytes. Physical value = (digital − dmin) · (pmax − pmin) / (dmax − dmin) + pmin.
 * EDF+ annotation signals ("EDF Annotations" / "BDF Annotations") carry Time-stamped Annotation Lists:
 * `+onset[\x15duration]\x14text\x14…\x14\x00`; the first TAL of every record is the record's start time.
 *
 * @module
 */

/** File flavours. */
export type EdfFormat = "edf" | "edf+" | "bdf" | "bdf+";

/** The per-signal header fields. */
export interface EdfSignalHeader {
  label: string;
  transducer: string;
  physicalDimension: string;
  physicalMin: number;
  physicalMax: number;
  digitalMin: number;
  digitalMax: number;
  prefiltering: string;
  samplesPerRecord: number;
}

/** The fixed header fields. */
export interface EdfHeader {
  format: EdfFormat;
  patientId: string;
  recordingId: string;
  /** "dd.mm.yy" as written. */
  startDate: string;
  /** "hh.mm.ss" as written. */
  startTime: string;
  headerBytes: number;
  reserved: string;
  numRecords: number;
  recordDuration: number;
  /** EDF+D / BDF+D: records may be discontinuous. */
  discontinuous: boolean;
  signals: EdfSignalHeader[];
}

/** One EDF+ annotation. */
export interface EdfAnnotation {
  /** Seconds from the file start. */
  onset: number;
  /** Seconds, or null when the TAL gives none. */
  duration: number | null;
  text: string;
}

/** One ordinary (non-annotation) signal with its physical samples. */
export interface EdfSignal {
  header: EdfSignalHeader;
  samplingRate: number;
  physical: Float32Array;
}

/** A parsed file. */
export interface EdfFile {
  header: EdfHeader;
  signals: EdfSignal[];
  annotations: EdfAnnotation[];
}

/** Bytes per sample of a format. */
export function bytesPerSample(format: EdfFormat): 2 | 3 {
  return format === "bdf" || format === "bdf+" ? 3 : 2;
}

/** Label of the annotation signal of a format. */
export function annotationLabel(format: EdfFormat): string {
  return format === "bdf" || format === "bdf+" ? "BDF Annotations" : "EDF Annotations";
}
