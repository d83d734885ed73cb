/**
 * The safetensors file format, written and read by our own code.
 *
 * Layout (https://github.com/huggingface/safetensors, "Format"):
 * `u64 little-endian N` · `N bytes of UTF-8 JSON header` · `byte buffer`. The header maps tensor names to
 * `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the byte buffer) plus an optional
 * `"__metadata__"` object of string → string. The header may end with spaces (0x20); our writer pads it so
 * that the byte buffer starts at a multiple of 8. Tensors are little-endian, row-major, and tile the byte
 * buffer exactly: no gaps, no overlaps, nothing after the last tensor.
 *
 * The reader trusts nothing: every length, offset, count and type is checked before it is used, and a
 * malformed file is refused with a {@link SafetensorsError} naming the problem.
 *
 * @module
 */
import {
  JsonNonIntegerNumber,
  parseStrictJson,
  StrictJsonError,
  type StrictJsonValue,
} from "./strict_json.ts";

/** Element types of the format with a whole number of bytes per element. */
export const SAFETENSORS_DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;

/** A safetensors element type, e.g. `"F32"`, `"BF16"`, `"I64"`. */
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BYTES;

/** The typed array a tensor of each dtype is viewed as (16-bit floats are raw `Uint16Array` bits). */
export interface SafetensorsDtypeArray {
  BOOL: Uint8Array;
  U8: Uint8Array;
  I8: Int8Array;
  F8_E5M2: Uint8Array;
  F8_E4M3: Uint8Array;
  F8_E8M0: Uint8Array;
  I16: Int16Array;
  U16: Uint16Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I32: Int32Array;
  U32: Uint32Array;
  F32: Float32Array;
  F64: Float64Array;
  I64: BigInt64Array;
  U64: BigUint64Array;
}

/** Any typed array a tensor can be read as. */
export type TensorTypedArray = SafetensorsDtypeArray[SafetensorsDtype];

type TypedArrayConstructor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorTypedArray;
  readonly BYTES_PER_ELEMENT: number;
};

const VIEW_CONSTRUCTOR: Record<SafetensorsDtype, TypedArrayConstructor> = {
  BOOL: Uint8Array,
  U8: Uint8Array,
  I8: Int8Array,
  F8_E5M2: Uint8Array,
  F8_E4M3: Uint8Array,
  F8_E8M0: Uint8Array,
  I16: Int16Array,
  U16: Uint16Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I32: Int32Array,
  U32: Uint32Array,
  F32: Float32Array,
  F64: Float64Array,
  I64: BigInt64Array,
  U64: BigUint64Array,
};

/** Typed arrays accepted when writing each dtype, besides raw `Uint8Array` bytes (accepted for all). */
const WRITABLE_CONSTRUCTORS: Record<SafetensorsDtype, readonly string[]> = {
  BOOL: ["Uint8Array"],
  U8: ["Uint8Array"],
  I8: ["Int8Array"],
  F8_E5M2: ["Uint8Array"],
  F8_E4M3: ["Uint8Array"],
  F8_E8M0: ["Uint8Array"],
  I16: ["Int16Array"],
  U16: ["Uint16Array"],
  F16: ["Uint16Array", "Float16Array"],
  BF16: ["Uint16Array"],
  I32: ["Int32Array"],
  U32: ["Uint32Array"],
  F32: ["Float32Array"],
  F64: ["Float64Array"],
  I64: ["BigInt64Array"],
  U64: ["BigUint64Array"],
};

/** Default ceiling on the JSON header size: 100 MB, as in the reference implementation. */
export const DEFAULT_MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = "__metadata__";
const RESERVED_NAMES = new Set([METADATA_KEY, "__proto__"]);
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Machine-readable kind of a {@link SafetensorsError}. */
export type SafetensorsErrorCode =
  | "file_too_small"
  | "header_too_large"
  | "header_beyond_file"
  | "header_not_utf8"
  | "header_not_json"
  | "header_not_object"
  | "bad_metadata"
  | "bad_tensor_name"
  | "bad_tensor_info"
  | "unknown_dtype"
  | "bad_shape"
  | "bad_offsets"
  | "size_mismatch"
  | "offset_out_of_range"
  | "overlap"
  | "gap"
  | "trailing_bytes"
  | "bad_input"
  | "unsupported_host";

/** The only error the safetensors reader and writer throw for bad input. */
export class SafetensorsError extends Error {
  /**
   * @param code the kind of problem.
   * @param message a full sentence naming the source, the field and the offending value.
   */
  constructor(readonly code: SafetensorsErrorCode, message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}

/** One tensor to write. `data` holds exactly `product(shape) * bytesPerElement(dtype)` bytes. */
export interface SafetensorsTensorInput {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** A typed array matching `dtype` (see the dtype table in `docs/checkpoints.md`) or raw `Uint8Array` bytes. */
  data: ArrayBufferView;
}

/** The header entry of one tensor, validated. `begin`/`end` are relative to the byte buffer. */
export interface SafetensorsTensorLayout {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** A validated header: where every tensor lies in a file of `fileByteLength` bytes. */
export interface SafetensorsLayout {
  /** `8 + N`: the absolute offset of the byte buffer. */
  dataStart: number;
  fileByteLength: number;
  metadata: Record<string, string>;
  /** Tensors in byte-buffer order. */
  tensors: SafetensorsTensorLayout[];
}

/** One tensor read from a file. */
export interface SafetensorsTensor<D extends SafetensorsDtype = SafetensorsDtype> {
  dtype: D;
  shape: number[];
  /** A view into the file's bytes when the offset is aligned for the element type, else an aligned copy. */
  data: SafetensorsDtypeArray[D];
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  metadata: Record<string, string>;
  /** Tensors by name, in byte-buffer order. */
  tensors: Record<string, SafetensorsTensor>;
  /** How many tensors were viewed in place and how many had to be copied for alignment. */
  views: { zeroCopy: number; copied: number };
}

/** The bytes of a file to write: a small header followed by the tensors' own bytes (not copied). */
export interface SafetensorsEncoding {
  /** The 8-byte length prefix, the JSON header and its padding. */
  header: Uint8Array;
  /** Each tensor's bytes, in file order; views of the caller's arrays. */
  chunks: Uint8Array[];
  /** Total file size in bytes. */
  byteLength: number;
}

/** Options of the readers. */
export interface SafetensorsReadOptions {
  /** Name of the source used in error messages (a file path). */
  source?: string;
  /** Refuse headers larger than this many bytes (default {@link DEFAULT_MAX_HEADER_BYTES}). */
  maxHeaderBytes?: number;
}

/** Bytes per element of `dtype`. */
export function dtypeByteSize(dtype: SafetensorsDtype): number {
  return SAFETENSORS_DTYPE_BYTES[dtype];
}

/** True when `value` names a supported dtype. */
export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === "string" && Object.hasOwn(SAFETENSORS_DTYPE_BYTES, value);
}

function describe(value: unknown): string {
  if (value instanceof JsonNonIntegerNumber) return value.text;
  if (typeof value === "bigint") return `${value}n`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${value.byteLength} bytes)`;
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Counts elements of a validated shape; refuses counts beyond 2^53. */
function elementCount(shape: readonly number[], fail: (why: string) => never): number {
  let count = 1;
  for (const dim of shape) {
    count *= dim;
    if (!Number.isSafeInteger(count)) fail(`its element count exceeds 2^53`);
  }
  return count;
}

function checkTensorName(name: string, fail: (code: SafetensorsErrorCode, why: string) => never): void {
  if (name.length === 0) fail("bad_tensor_name", "a tensor name is empty");
  if (RESERVED_NAMES.has(name)) fail("bad_tensor_name", `the tensor name ${describe(name)} is reserved`);
}

function assertLittleEndianHost(): void {
  if (!LITTLE_ENDIAN_HOST) {
    throw new SafetensorsError(
      "unsupported_host",
      "Cannot use safetensors as this host is big-endian: the format is little-endian and byte swapping is not implemented",
    );
  }
}

/**
 * Lays out tensors and metadata as a safetensors file without copying tensor data.
 * Tensors are ordered by element size (largest first), then by name, so every tensor's offset is a
 * multiple of its element size and readers can view it in place.
 *
 * @throws {SafetensorsError} for an invalid name, dtype, shape, metadata value or data length.
 * @example
 * ```ts
 * import { encodeSafetensors } from "./safetensors.ts";
 * const enc = encodeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
 * console.log(enc.byteLength);
 * ```
 */
export function encodeSafetensors(
  tensors: Readonly<Record<string, SafetensorsTensorInput>>,
  metadata: Readonly<Record<string, string>> = {},
): SafetensorsEncoding {
  assertLittleEndianHost();
  const fail = (code: SafetensorsErrorCode, why: string): never => {
    throw new SafetensorsError(code, `Cannot write safetensors as ${why}`);
  };
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    checkTensorName(name, fail);
    if (!isSafetensorsDtype(t.dtype)) {
      fail(
        "unknown_dtype",
        `tensor ${describe(name)} has an unknown dtype: current value is ${describe(t.dtype)}`,
      );
    }
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(
        "bad_shape",
        `tensor ${describe(name)} shape must be an array of non-negative integers: current value is ${
          describe(t.shape)
        }`,
      );
    }
    if (!ArrayBuffer.isView(t.data) || t.data instanceof DataView) {
      fail(
        "bad_input",
        `tensor ${describe(name)} data must be a typed array: current value is ${describe(t.data)}`,
      );
    }
    const kind = t.data.constructor.name;
    if (kind !== "Uint8Array" && !WRITABLE_CONSTRUCTORS[t.dtype].includes(kind)) {
      fail(
        "bad_input",
        `tensor ${describe(name)} with dtype ${t.dtype} needs ${
          WRITABLE_CONSTRUCTORS[t.dtype].join(" or ")
        } (or raw Uint8Array bytes): current value is ${kind}`,
      );
    }
    const count = elementCount(t.shape, (why) => fail("bad_shape", `tensor ${describe(name)}: ${why}`));
    const expected = count * SAFETENSORS_DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== expected) {
      fail(
        "size_mismatch",
        `tensor ${
          describe(name)
        } of dtype ${t.dtype} and shape [${t.shape}] needs ${expected} bytes: current value is ${t.data.byteLength} bytes`,
      );
    }
  }
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") {
      fail(
        "bad_metadata",
        `__metadata__ values must be strings: current value of ${describe(key)} is ${describe(value)}`,
      );
    }
  }
  entries.sort(([na, a], [nb, b]) =>
    SAFETENSORS_DTYPE_BYTES[b.dtype] - SAFETENSORS_DTYPE_BYTES[a.dtype] || (na < nb ? -1 : na > nb ? 1 : 0)
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = { ...metadata };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    Object.defineProperty(header, name, {
      value: { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] },
      enumerable: true,
    });
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + padded);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.byteLength);
  return { header: head, chunks, byteLength: head.byteLength + offset };
}

/**
 * Serializes tensors into one contiguous safetensors byte array (copies the data; for large files
 * prefer {@link encodeSafetensors} and write the chunks).
 *
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors({ w: { dtype: "I32", shape: [1], data: new Int32Array([7]) } });
 * console.log(parseSafetensors(bytes).tensors.w.data);
 * ```
 */
export function serializeSafetensors(
  tensors: Readonly<Record<string, SafetensorsTensorInput>>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const enc = encodeSafetensors(tensors, metadata);
  const out = new Uint8Array(enc.byteLength);
  out.set(enc.header, 0);
  let at = enc.header.byteLength;
  for (const chunk of enc.chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/**
 * Reads the 8-byte header length and checks it against the file size and the header ceiling.
 *
 * @param prefix at least the first 8 bytes of the file.
 * @param fileByteLength the size of the whole file.
 * @returns N, the JSON header length in bytes.
 * @throws {SafetensorsError} when the file is shorter than 8 bytes or N is too large.
 */
export function readSafetensorsHeaderLength(
  prefix: Uint8Array,
  fileByteLength: number,
  options: SafetensorsReadOptions = {},
): number {
  const source = options.source ?? "<bytes>";
  const maxHeader = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (fileByteLength < 8 || prefix.byteLength < 8) {
    throw new SafetensorsError(
      "file_too_small",
      `Cannot read safetensors ${source} as it is shorter than the 8-byte header length: current size is ${fileByteLength} bytes`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileByteLength - 8)) {
    throw new SafetensorsError(
      "header_beyond_file",
      `Cannot read safetensors ${source} as its header length runs past the end of the file (${
        fileByteLength - 8
      } bytes after the length prefix): current value is ${n}`,
    );
  }
  if (n > BigInt(maxHeader)) {
    throw new SafetensorsError(
      "header_too_large",
      `Cannot read safetensors ${source} as its header length exceeds the ${maxHeader}-byte limit: current value is ${n}`,
    );
  }
  if (n < 2n) {
    throw new SafetensorsError(
      "header_not_json",
      `Cannot read safetensors ${source} as its header is too short to hold a JSON object: current length is ${n}`,
    );
  }
  return Number(n);
}

/**
 * Validates a header against the size of its file.
 *
 * @param prefix the file's first `8 + N` bytes (or more).
 * @param fileByteLength the size of the whole file.
 * @throws {SafetensorsError} for any malformed or inconsistent header.
 */
export function parseSafetensorsHeader(
  prefix: Uint8Array,
  fileByteLength: number,
  options: SafetensorsReadOptions = {},
): SafetensorsLayout {
  const source = options.source ?? "<bytes>";
  const fail = (code: SafetensorsErrorCode, why: string): never => {
    throw new SafetensorsError(code, `Cannot read safetensors ${source} as ${why}`);
  };
  const n = readSafetensorsHeaderLength(prefix, fileByteLength, options);
  if (prefix.byteLength < 8 + n) {
    fail("bad_input", `only ${prefix.byteLength} of the ${8 + n} header bytes were supplied`);
  }
  const headerBytes = prefix.subarray(8, 8 + n);
  if (headerBytes[0] !== 0x7b) {
    fail(
      "header_not_json",
      `its header must start with '{': current first byte is 0x${headerBytes[0].toString(16)}`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return fail("header_not_utf8", "its header is not valid UTF-8");
  }
  let parsed: StrictJsonValue;
  try {
    parsed = parseStrictJson(text, { maxDepth: 8 });
  } catch (e) {
    if (!(e instanceof StrictJsonError)) throw e;
    return fail(
      e.reason.startsWith("duplicate key") ? "bad_tensor_name" : "header_not_json",
      `its header is not valid JSON: ${e.message}`,
    );
  }
  if (
    parsed === null || typeof parsed !== "object" || Array.isArray(parsed) ||
    parsed instanceof JsonNonIntegerNumber
  ) {
    return fail(
      "header_not_object",
      `its header must be a JSON object: current value is ${describe(parsed)}`,
    );
  }
  const dataLength = fileByteLength - 8 - n;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorLayout[] = [];
  for (const name of Object.keys(parsed)) {
    const info = parsed[name];
    if (name === METADATA_KEY) {
      if (
        info === null || typeof info !== "object" || Array.isArray(info) ||
        info instanceof JsonNonIntegerNumber
      ) {
        fail("bad_metadata", `__metadata__ must be an object of strings: current value is ${describe(info)}`);
      }
      const meta = info as { [key: string]: StrictJsonValue };
      for (const key of Object.keys(meta)) {
        const value = meta[key];
        if (typeof value !== "string") {
          fail(
            "bad_metadata",
            `__metadata__ values must be strings: current value of ${describe(key)} is ${describe(value)}`,
          );
        }
        Object.defineProperty(metadata, key, { value, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    checkTensorName(name, fail);
    const where = `tensor ${describe(name)}`;
    if (
      info === null || typeof info !== "object" || Array.isArray(info) || info instanceof JsonNonIntegerNumber
    ) {
      fail(
        "bad_tensor_info",
        `${where} must be an object with dtype, shape and data_offsets: current value is ${describe(info)}`,
      );
    }
    const fields = info as { [key: string]: StrictJsonValue };
    for (const key of Object.keys(fields)) {
      if (key !== "dtype" && key !== "shape" && key !== "data_offsets") {
        fail("bad_tensor_info", `${where} has an unknown field: current value is ${describe(key)}`);
      }
    }
    const { dtype, shape, data_offsets: offsets } = fields;
    if (dtype === undefined || shape === undefined || offsets === undefined) {
      fail(
        "bad_tensor_info",
        `${where} must have dtype, shape and data_offsets: current fields are ${
          describe(Object.keys(fields))
        }`,
      );
    }
    if (!isSafetensorsDtype(dtype)) {
      fail("unknown_dtype", `${where} has an unknown dtype: current value is ${describe(dtype)}`);
    }
    const d = dtype as SafetensorsDtype;
    const isCount = (v: StrictJsonValue) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      fail(
        "bad_shape",
        `${where} shape must be an array of non-negative integers: current value is ${describe(shape)}`,
      );
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail(
        "bad_offsets",
        `${where} data_offsets must be two non-negative integers [begin, end]: current value is ${
          describe(offsets)
        }`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) {
      fail("bad_offsets", `${where} data_offsets begin after they end: current value is [${begin}, ${end}]`);
    }
    if (end > dataLength) {
      fail(
        "offset_out_of_range",
        `${where} data_offsets run past the ${dataLength}-byte data buffer: current value is [${begin}, ${end}]`,
      );
    }
    const dims = (shape as number[]).map((x) => x + 0);
    const count = elementCount(dims, (why) => fail("bad_shape", `${where}: ${why}`));
    const expected = count * SAFETENSORS_DTYPE_BYTES[d];
    if (!Number.isSafeInteger(expected) || expected !== end - begin) {
      fail(
        "size_mismatch",
        `${where} of dtype ${d} and shape [${dims}] needs ${expected} bytes: current data_offsets [${begin}, ${end}] span ${
          end - begin
        }`,
      );
    }
    tensors.push({ name, dtype: d, shape: dims, begin, end });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: SafetensorsTensorLayout | null = null;
  for (const t of tensors) {
    if (t.begin < covered) {
      fail(
        "overlap",
        `tensor ${describe(t.name)} overlaps tensor ${
          describe(previous?.name)
        }: current data_offsets are [${t.begin}, ${t.end}] and [${previous?.begin}, ${previous?.end}]`,
      );
    }
    if (t.begin > covered) {
      fail(
        "gap",
        `bytes ${covered}..${t.begin} of the data buffer belong to no tensor (the format forbids holes)`,
      );
    }
    covered = t.end;
    previous = t;
  }
  if (covered !== dataLength) {
    fail(
      "trailing_bytes",
      `bytes ${covered}..${dataLength} at the end of the data buffer belong to no tensor (the format forbids holes)`,
    );
  }
  return { dataStart: 8 + n, fileByteLength, metadata, tensors };
}

/**
 * Parses a whole safetensors file held in memory. Tensor arrays are views of `bytes` when their
 * absolute position is aligned for their element type (always the case for files of
 * {@link encodeSafetensors} read from an aligned buffer) and aligned copies otherwise.
 *
 * @throws {SafetensorsError} for any malformed or inconsistent input; never anything else.
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
 * const file = parseSafetensors(serializeSafetensors({ b: { dtype: "U8", shape: [3], data: new Uint8Array(3) } }));
 * console.log(file.tensors.b.shape); // [3]
 * ```
 */
export function parseSafetensors(bytes: Uint8Array, options: SafetensorsReadOptions = {}): SafetensorsFile {
  assertLittleEndianHost();
  const layout = parseSafetensorsHeader(bytes, bytes.byteLength, options);
  const tensors: Record<string, SafetensorsTensor> = {};
  const views = { zeroCopy: 0, copied: 0 };
  for (const t of layout.tensors) {
    const Ctor = VIEW_CONSTRUCTOR[t.dtype];
    const absolute = bytes.byteOffset + layout.dataStart + t.begin;
    const length = (t.end - t.begin) / Ctor.BYTES_PER_ELEMENT;
    let data: TensorTypedArray;
    if (absolute % Ctor.BYTES_PER_ELEMENT === 0) {
      data = new Ctor(bytes.buffer, absolute, length);
      views.zeroCopy++;
    } else {
      const copy = bytes.slice(layout.dataStart + t.begin, layout.dataStart + t.end);
      data = new Ctor(copy.buffer, 0, length);
      views.copied++;
    }
    Object.defineProperty(tensors, t.name, {
      value: { dtype: t.dtype, shape: t.shape, data },
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { metadata: layout.metadata, tensors, views };
}

/**
 * Reads and parses a safetensors file. The header length is checked against the file size before the
 * file is read, so a forged length never causes a large allocation.
 *
 * @throws {SafetensorsError} for malformed content; `Deno.errors.*` for I/O failures.
 */
export async function readSafetensorsFile(
  path: string,
  options: Omit<SafetensorsReadOptions, "source"> = {},
): Promise<SafetensorsFile> {
  const opts = { ...options, source: path };
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const prefix = new Uint8Array(Math.min(8, size));
  await readFull(file, prefix);
  readSafetensorsHeaderLength(prefix, size, opts);
  const bytes = new Uint8Array(size);
  bytes.set(prefix, 0);
  await readFull(file, bytes.subarray(prefix.byteLength));
  return parseSafetensors(bytes, opts);
}

async function readFull(file: Deno.FsFile, into: Uint8Array): Promise<void> {
  let at = 0;
  while (at < into.byteLength) {
    const n = await file.read(into.subarray(at));
    if (n === null) throw new Deno.errors.UnexpectedEof(`file ended after ${at} of ${into.byteLength} bytes`);
    at += n;
  }
}
