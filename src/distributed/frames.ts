/**
 * Orion's wire format: every WebSocket message between coordinator, ranks and peers is one binary frame.
 *
 * ```
 * offset size  field
 *      0    4  magic "ORIN"
 *      4    2  version (u16 LE, currently 1)
 *      6    2  type (u16 LE: 1 = control, 2 = data)
 *      8    4  payload length in bytes (u32 LE), must equal message length − 16
 *     12    4  reserved, must be 0
 *     16    …  payload
 * ```
 *
 * A control payload is one msgpack value (see `control_messages.ts`). A data payload is a 32-byte chunk header
 * followed by `elementCount` little-endian f32 values (see {@link DataChunkHeader}). A whole message never
 * exceeds {@link MAX_MESSAGE_BYTES} (4 MiB), far below Deno's 64 MiB frame limit.
 *
 * @module
 */

/** Frame magic, the ASCII bytes "ORIN". */
export const FRAME_MAGIC = 0x4e49524f; // "ORIN" read as u32 LE
/** Current wire version; a frame with any other version is refused. */
export const FRAME_VERSION = 1;
/** Bytes before the payload. */
export const FRAME_HEADER_BYTES = 16;
/** Bytes of the data-chunk header at the start of a data payload. */
export const DATA_HEADER_BYTES = 32;
/** Largest message (header included) any endpoint sends or accepts. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Largest number of f32 values in one data chunk. */
export const MAX_CHUNK_ELEMENTS = Math.floor(
  (MAX_MESSAGE_BYTES - FRAME_HEADER_BYTES - DATA_HEADER_BYTES) / 4,
);

/** Frame types. */
export const FrameType = { control: 1, data: 2 } as const;
/** A frame type value. */
export type FrameType = typeof FrameType[keyof typeof FrameType];

/** Ring all-reduce phases carried in data chunks. */
export const RingPhase = { reduceScatter: 0, allGather: 1 } as const;
/** A ring phase value. */
export type RingPhase = typeof RingPhase[keyof typeof RingPhase];

/** WebSocket close codes used by Orion (4000–4999 is the application range). */
export const CloseCode = {
  normal: 1000,
  /** Malformed frame, wrong version, unexpected message. */
  protocolError: 4400,
  /** The coordinator stopped this generation (a rank was lost). */
  stopped: 4409,
  /** The job is over (completed or failed); no more joins. */
  jobOver: 4410,
  /** No hello / heartbeat in time. */
  timeout: 4408,
} as const;

/** Why a frame was refused; `reason` fits a WebSocket close reason (≤ 123 bytes). */
export class FrameError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "FrameError";
  }
}

/** Header of one all-reduce chunk (the first 32 bytes of a data payload). */
export interface DataChunkHeader {
  /** Generation of the job the collective belongs to (stale chunks are refused). */
  generation: number;
  /** Per-rank sequence number of the collective (k-th bucket started on this rank). */
  collective: number;
  /** Bucket index the sender started at that sequence number; must match the receiver's. */
  bucket: number;
  /** Total f32 elements in the bucket. */
  bucketLength: number;
  /** Ring phase. */
  phase: RingPhase;
  /** Step within the phase, 0..worldSize−2. */
  step: number;
  /** Segment index, 0..worldSize−1. */
  segment: number;
  /** First element of the chunk within the bucket. */
  offset: number;
  /** Number of f32 values in the chunk. */
  elementCount: number;
}

/** A decoded frame: control frames carry raw payload bytes (msgpack), data frames a typed view. */
export type Frame =
  | { type: typeof FrameType.control; payload: Uint8Array }
  | {
    type: typeof FrameType.data;
    header: DataChunkHeader;
    /** The chunk's values: a view into `buffer` (no copy). */
    values: Float32Array;
    /** The whole message, reusable as the outgoing message of the next ring step. */
    buffer: ArrayBuffer;
  };

function writeFrameHeader(view: DataView, type: FrameType, payloadBytes: number): void {
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint16(4, FRAME_VERSION, true);
  view.setUint16(6, type, true);
  view.setUint32(8, payloadBytes, true);
  view.setUint32(12, 0, true);
}

/** Wraps a control payload (msgpack bytes) in a frame. */
export function encodeControlFrame(payload: Uint8Array): Uint8Array<ArrayBuffer> {
  if (FRAME_HEADER_BYTES + payload.byteLength > MAX_MESSAGE_BYTES) {
    throw new FrameError(
      `Cannot send a control message as it is too large: current value is ${payload.byteLength} bytes, ` +
        `limit ${MAX_MESSAGE_BYTES - FRAME_HEADER_BYTES}; send bulk data through the data plane`,
    );
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  writeFrameHeader(new DataView(out.buffer), FrameType.control, payload.byteLength);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Writes a data-chunk header (frame header included) into a message buffer of the right size, at
 * `byteOffset` (default 0: the message's start).
 */
export function writeDataHeader(buffer: ArrayBuffer, header: DataChunkHeader, byteOffset = 0): void {
  const view = new DataView(buffer, byteOffset);
  writeFrameHeader(view, FrameType.data, DATA_HEADER_BYTES + header.elementCount * 4);
  const h = FRAME_HEADER_BYTES;
  view.setUint32(h + 0, header.generation, true);
  view.setUint32(h + 4, header.collective, true);
  view.setUint32(h + 8, header.bucket, true);
  view.setUint32(h + 12, header.bucketLength, true);
  view.setUint8(h + 16, header.phase);
  view.setUint8(h + 17, header.step);
  view.setUint16(h + 18, 0, true);
  view.setUint32(h + 20, header.segment, true);
  view.setUint32(h + 24, header.offset, true);
  view.setUint32(h + 28, header.elementCount, true);
}

/** Byte offset of the f32 values inside a data message. */
export const DATA_VALUES_OFFSET = FRAME_HEADER_BYTES + DATA_HEADER_BYTES;

/**
 * Builds a data message for `header` and copies `values` (length `header.elementCount`) into it; `allocate`
 * supplies the buffer (default `new ArrayBuffer`).
 */
export function encodeDataFrame(
  header: DataChunkHeader,
  values: Float32Array,
  allocate: (bytes: number) => ArrayBuffer = (bytes) => new ArrayBuffer(bytes),
): ArrayBuffer {
  if (values.length !== header.elementCount) {
    throw new FrameError(
      `Cannot encode a data chunk as elementCount disagrees with the values: current value is ` +
        `${header.elementCount} vs ${values.length}`,
    );
  }
  if (header.elementCount > MAX_CHUNK_ELEMENTS) {
    throw new FrameError(
      `Cannot encode a data chunk as it is too large: current value is ${header.elementCount} elements, ` +
        `limit ${MAX_CHUNK_ELEMENTS}`,
    );
  }
  const buffer = allocate(DATA_VALUES_OFFSET + values.length * 4);
  writeDataHeader(buffer, header);
  new Float32Array(buffer, DATA_VALUES_OFFSET, values.length).set(values);
  return buffer;
}

/**
 * Parses one received WebSocket message. Throws {@link FrameError} for anything that is not a
 * well-formed frame: text messages, short or oversized messages, bad magic/version/type/reserved bits,
 * a length field that disagrees with the message, or an inconsistent data-chunk header.
 */
export function decodeFrame(message: unknown): Frame {
  if (typeof message === "string") throw new FrameError("text message; Orion speaks binary frames only");
  let buffer: ArrayBuffer;
  if (message instanceof ArrayBuffer) buffer = message;
  else if (message instanceof Uint8Array) {
    buffer = message.byteOffset === 0 && message.byteLength === message.buffer.byteLength &&
        message.buffer instanceof ArrayBuffer
      ? message.buffer
      : message.slice().buffer;
  } else throw new FrameError("unsupported message type; expected binary");
  const length = buffer.byteLength;
  if (length < FRAME_HEADER_BYTES) {
    throw new FrameError(`frame too short: ${length} bytes < ${FRAME_HEADER_BYTES}`);
  }
  if (length > MAX_MESSAGE_BYTES) {
    throw new FrameError(`frame too large: ${length} bytes > ${MAX_MESSAGE_BYTES}`);
  }
  const view = new DataView(buffer);
  if (view.getUint32(0, true) !== FRAME_MAGIC) throw new FrameError("bad magic; not an Orion frame");
  const version = view.getUint16(4, true);
  if (version !== FRAME_VERSION) {
    throw new FrameError(`unsupported frame version ${version}; expected ${FRAME_VERSION}`);
  }
  const type = view.getUint16(6, true);
  const payloadBytes = view.getUint32(8, true);
  if (payloadBytes !== length - FRAME_HEADER_BYTES) {
    throw new FrameError(
      `length field ${payloadBytes} disagrees with payload of ${length - FRAME_HEADER_BYTES} bytes`,
    );
  }
  if (view.getUint32(12, true) !== 0) throw new FrameError("reserved header bits set");
  if (type === FrameType.control) {
    if (payloadBytes === 0) throw new FrameError("empty control frame");
    return { type, payload: new Uint8Array(buffer, FRAME_HEADER_BYTES, payloadBytes) };
  }
  if (type !== FrameType.data) throw new FrameError(`unknown frame type ${type}`);
  const header = parseDataChunkHeader(view, payloadBytes);
  return {
    type,
    header,
    values: new Float32Array(buffer, DATA_VALUES_OFFSET, header.elementCount),
    buffer,
  };
}

/** Validates the chunk header of a data payload of `payloadBytes` bytes (frame header already checked). */
function parseDataChunkHeader(view: DataView, payloadBytes: number): DataChunkHeader {
  if (payloadBytes < DATA_HEADER_BYTES) throw new FrameError(`data frame too short for its chunk header`);
  const h = FRAME_HEADER_BYTES;
  const phase = view.getUint8(h + 16);
  if (phase !== RingPhase.reduceScatter && phase !== RingPhase.allGather) {
    throw new FrameError(`unknown ring phase ${phase}`);
  }
  if (view.getUint16(h + 18, true) !== 0) throw new FrameError("reserved chunk-header bits set");
  const header: DataChunkHeader = {
    generation: view.getUint32(h + 0, true),
    collective: view.getUint32(h + 4, true),
    bucket: view.getUint32(h + 8, true),
    bucketLength: view.getUint32(h + 12, true),
    phase,
    step: view.getUint8(h + 17),
    segment: view.getUint32(h + 20, true),
    offset: view.getUint32(h + 24, true),
    elementCount: view.getUint32(h + 28, true),
  };
  if (header.elementCount * 4 !== payloadBytes - DATA_HEADER_BYTES) {
    throw new FrameError(
      `chunk elementCount ${header.elementCount} disagrees with ${
        payloadBytes - DATA_HEADER_BYTES
      } value bytes`,
    );
  }
  if (header.offset + header.elementCount > header.bucketLength) {
    throw new FrameError(
      `chunk [${header.offset}, +${header.elementCount}) overruns bucket of ${header.bucketLength}`,
    );
  }
  return header;
}

/**
 * Parses the first {@link DATA_VALUES_OFFSET} bytes of a data message whose total length is
 * `messageBytes`, before its values are read (so a receiver can read the values straight to where they
 * belong). Same checks as {@link decodeFrame}: magic, version, type, length field, reserved bits, and a
 * chunk header consistent with the message length. Throws {@link FrameError}.
 */
export function decodeDataHead(head: Uint8Array, messageBytes: number): DataChunkHeader {
  if (head.length < DATA_VALUES_OFFSET) {
    throw new FrameError(`data message head too short: ${head.length} bytes < ${DATA_VALUES_OFFSET}`);
  }
  if (messageBytes > MAX_MESSAGE_BYTES) {
    throw new FrameError(`frame too large: ${messageBytes} bytes > ${MAX_MESSAGE_BYTES}`);
  }
  const view = new DataView(head.buffer, head.byteOffset, DATA_VALUES_OFFSET);
  if (view.getUint32(0, true) !== FRAME_MAGIC) throw new FrameError("bad magic; not an Orion frame");
  const version = view.getUint16(4, true);
  if (version !== FRAME_VERSION) {
    throw new FrameError(`unsupported frame version ${version}; expected ${FRAME_VERSION}`);
  }
  const type = view.getUint16(6, true);
  if (type !== FrameType.data) {
    throw new FrameError(`expected a data frame on the data link, got type ${type}`);
  }
  const payloadBytes = view.getUint32(8, true);
  if (payloadBytes !== messageBytes - FRAME_HEADER_BYTES) {
    throw new FrameError(
      `length field ${payloadBytes} disagrees with payload of ${messageBytes - FRAME_HEADER_BYTES} bytes`,
    );
  }
  if (view.getUint32(12, true) !== 0) throw new FrameError("reserved header bits set");
  return parseDataChunkHeader(view, payloadBytes);
}

/** The {@link DATA_VALUES_OFFSET}-byte head (frame header + chunk header) of a data message. */
export function encodeDataHead(header: DataChunkHeader): Uint8Array<ArrayBuffer> {
  const head = new Uint8Array(DATA_VALUES_OFFSET);
  writeDataHeader(head.buffer, header);
  return head;
}

/** Trims a close reason to the 123-byte limit of the WebSocket protocol. */
export function closeReason(text: string): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= 123) return text;
  let cut = text.slice(0, 120);
  while (new TextEncoder().encode(cut + "...").length > 123) cut = cut.slice(0, -1);
  return cut + "...";
}
