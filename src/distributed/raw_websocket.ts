/**
 * A minimal RFC 6455 WebSocket endpoint over a Deno TCP connection, for the bulk data plane.
 *
 * Why not Deno's `WebSocket`/`Deno.upgradeWebSocket`: every received message becomes a fresh, zero-filled
 * ArrayBuffer, which capped one loopback stream at ~0.9 GB/s here, and client sockets leave Nagle on
 * (the ~44 ms small-message stall). This endpoint speaks the same protocol (HTTP/1.1 upgrade with
 * `Sec-WebSocket-Accept`, binary frames, client frames masked, close/ping handling) but:
 * - sets TCP_NODELAY on both ends;
 * - reads each frame's payload straight into a pooled buffer ({@link BufferPool}) and hands the buffer over;
 * - writes header and payload without copying and returns the buffer to the pool once written.
 *
 * Limits: binary frames only, no fragmentation, no extensions; payloads over `maxPayload` close the link.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { closeReason } from "./frames.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_HANDSHAKE_BYTES = 16 * 1024;

/** Reusable ArrayBuffers keyed by exact size (frames of one size repeat: chunk size, tails). */
export class BufferPool {
  readonly #free = new Map<number, ArrayBuffer[]>();
  #pooledBytes = 0;
  constructor(readonly maxPooledBytes = 256 * 1024 * 1024) {}

  /** A buffer of exactly `bytes` bytes (contents undefined). */
  take(bytes: number): ArrayBuffer {
    const list = this.#free.get(bytes);
    const buffer = list?.pop();
    if (buffer) {
      this.#pooledBytes -= bytes;
      return buffer;
    }
    return new ArrayBuffer(bytes);
  }

  /** Returns a buffer nobody uses any more. */
  give(buffer: ArrayBuffer): void {
    if (this.#pooledBytes + buffer.byteLength > this.maxPooledBytes) return;
    let list = this.#free.get(buffer.byteLength);
    if (!list) this.#free.set(buffer.byteLength, list = []);
    list.push(buffer);
    this.#pooledBytes += buffer.byteLength;
  }
}

/**
 * Receives binary messages in two parts so their bulk can be read straight to where it belongs: the first
 * `headBytes` bytes are read into a small buffer, `target` (called with them and the message length)
 * names where the rest goes (exactly `messageBytes − headBytes` bytes), and `done` runs once it is there.
 * Either callback may throw to refuse the message: the link then closes with code 4400 and the reason.
 * Messages shorter than `headBytes` are refused the same way.
 */
export interface SplitReceiver {
  readonly headBytes: number;
  target(head: Uint8Array, messageBytes: number): Uint8Array;
  done(head: Uint8Array, rest: Uint8Array): void;
}

/** What the server decides about an upgrade request. */
export type UpgradeDecision = { ok: true } | { ok: false; status: number; reason: string };

/** The parsed upgrade request handed to the authorizer. */
export interface UpgradeRequest {
  /** Path with query, e.g. "/peer?gen=0". */
  target: string;
  /** Header names lower-cased. */
  headers: Map<string, string>;
}

async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID));
  return Buffer.from(digest).toString("base64");
}

/**
 * The header of a final (unfragmented) frame with `opcode` and a payload of `length` bytes (RFC 6455 §5.2):
 * 2, 4 or 10 bytes, plus 4 zero bytes for the masking key when `masked` (a client's frame; the caller fills
 * the key in).
 */
export function frameHeader(opcode: number, length: number, masked: boolean): Uint8Array<ArrayBuffer> {
  const extra = masked ? 4 : 0;
  const size = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const h = new Uint8Array(size + extra);
  h[0] = 0x80 | opcode;
  h[1] = (masked ? 0x80 : 0) | (length < 126 ? length : length < 65536 ? 126 : 127);
  if (size === 4) new DataView(h.buffer).setUint16(2, length);
  else if (size === 10) new DataView(h.buffer).setBigUint64(2, BigInt(length));
  return h;
}

/** The byte stream a handshake runs over: a Deno TCP connection, or a polled socket (`polled_socket.ts`). */
export interface HandshakeStream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

async function writeAll(conn: HandshakeStream, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Reads an HTTP head (up to CRLFCRLF); returns the head text and any bytes read past it. */
async function readHead(conn: HandshakeStream): Promise<{ head: string; rest: Uint8Array }> {
  const buffer = new Uint8Array(MAX_HANDSHAKE_BYTES);
  let length = 0;
  while (length < buffer.length) {
    const n = await conn.read(buffer.subarray(length));
    if (n === null) throw new Error("connection closed during the WebSocket handshake");
    length += n;
    for (let i = Math.max(3, length - n); i < length; i++) {
      if (buffer[i - 3] === 13 && buffer[i - 2] === 10 && buffer[i - 1] === 13 && buffer[i] === 10) {
        return {
          head: new TextDecoder().decode(buffer.subarray(0, i + 1)),
          rest: buffer.slice(i + 1, length),
        };
      }
    }
  }
  throw new Error(`WebSocket handshake larger than ${MAX_HANDSHAKE_BYTES} bytes`);
}

function parseHeaders(lines: string[]): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
};

/**
 * Server side of the upgrade handshake on `conn`: reads the request, asks `authorize`, answers `101`.
 * Returns the bytes read past the request, or null after answering a refusal (`authorize` said no or the
 * request was not a WebSocket upgrade) and closing `conn`.
 */
export async function answerUpgrade(
  conn: HandshakeStream,
  authorize: (request: UpgradeRequest) => Promise<UpgradeDecision>,
): Promise<Uint8Array | null> {
  const refuse = async (status: number, reason: string) => {
    const body = new TextEncoder().encode(reason);
    const head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    try {
      await writeAll(conn, new Uint8Array([...new TextEncoder().encode(head), ...body]));
    } catch { /* peer gone */ }
    conn.close();
    return null;
  };
  let head: string, rest: Uint8Array;
  try {
    ({ head, rest } = await readHead(conn));
  } catch (error) {
    return await refuse(400, (error as Error).message);
  }
  const [requestLine, ...headerLines] = head.split("\r\n");
  const [method, target] = requestLine.split(" ");
  const headers = parseHeaders(headerLines);
  const key = headers.get("sec-websocket-key");
  if (
    method !== "GET" || !target || headers.get("upgrade")?.toLowerCase() !== "websocket" || !key ||
    headers.get("sec-websocket-version") !== "13"
  ) {
    return await refuse(400, "expected a WebSocket upgrade (GET, Upgrade: websocket, version 13)");
  }
  const decision = await authorize({ target, headers });
  if (!decision.ok) return await refuse(decision.status, decision.reason);
  await writeAll(
    conn,
    new TextEncoder().encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n\r\n`,
    ),
  );
  return rest;
}

/**
 * Client side of the upgrade handshake on `conn` (to `host`:`port`, path `target`, extra `headers` such as
 * Authorization). Returns the bytes read past the response; throws when refused.
 */
export async function requestUpgrade(
  conn: HandshakeStream,
  host: string,
  port: number,
  target: string,
  headers: Record<string, string>,
): Promise<Uint8Array> {
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  const lines = [
    `GET ${target} HTTP/1.1`,
    `Host: ${host.includes(":") ? `[${host}]` : host}:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  await writeAll(conn, new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
  const { head, rest } = await readHead(conn);
  const [statusLine, ...headerLines] = head.split("\r\n");
  const status = Number(statusLine.split(" ")[1]);
  if (status !== 101) {
    const body = new TextDecoder().decode(rest);
    throw new Error(`WebSocket upgrade refused with HTTP ${status}: ${body}`);
  }
  if (parseHeaders(headerLines).get("sec-websocket-accept") !== await acceptKey(key)) {
    throw new Error("WebSocket upgrade answered with a wrong Sec-WebSocket-Accept");
  }
  return rest;
}

/**
 * Server side of the handshake on an accepted TCP connection. Returns the open socket, or null after
 * answering a refusal (`authorize` said no or the request was not a WebSocket upgrade) and closing.
 */
export async function acceptRawWebSocket(
  conn: Deno.TcpConn,
  authorize: (request: UpgradeRequest) => Promise<UpgradeDecision>,
  options: { pool: BufferPool; maxPayload: number },
): Promise<RawWebSocket | null> {
  const rest = await answerUpgrade(conn, authorize);
  if (rest === null) return null;
  conn.setNoDelay(true);
  return new RawWebSocket(conn, "server", rest, options.pool, options.maxPayload);
}

/** Client side: dials, upgrades with `headers` (e.g. Authorization), returns the open socket. */
export async function connectRawWebSocket(
  host: string,
  port: number,
  target: string,
  headers: Record<string, string>,
  options: { pool: BufferPool; maxPayload: number },
): Promise<RawWebSocket> {
  const conn = await Deno.connect({ hostname: host, port });
  try {
    conn.setNoDelay(true);
    const rest = await requestUpgrade(conn, host, port, target, headers);
    return new RawWebSocket(conn, "client", rest, options.pool, options.maxPayload);
  } catch (error) {
    try {
      conn.close();
    } catch { /* closed */ }
    throw error;
  }
}

/**
 * One open WebSocket over TCP. Set `onmessage` / `onclose`, then call {@link start} to begin reading.
 * `onmessage` receives a pooled buffer: give it back to the pool (directly, or via `send`) when done.
 */
export class RawWebSocket {
  /** A binary message arrived (the buffer belongs to the receiver now). */
  onmessage: (buffer: ArrayBuffer) => void = () => {};
  /** The link ended; `code` 1006 means it dropped without a close frame. */
  onclose: (code: number, reason: string) => void = () => {};
  /** Total payload bytes queued for sending. */
  bytesSent = 0;

  readonly #conn: Deno.Conn;
  readonly #role: "server" | "client";
  #pending: Uint8Array;
  readonly #pool: BufferPool;
  readonly #maxPayload: number;
  readonly #queue: Array<{
    header: Uint8Array;
    parts: Uint8Array[];
    pooled: ArrayBuffer | null;
    written: (() => void) | null;
  }> = [];
  #splitReceiver: SplitReceiver | null = null;
  #writing = false;
  #closed = false;
  /** Set when a write failed: nothing more is sent, the read side still delivers what already arrived. */
  #writeBroken = false;
  #drainWaiters: Array<() => void> = [];

  constructor(
    conn: Deno.Conn,
    role: "server" | "client",
    leftover: Uint8Array,
    pool: BufferPool,
    maxPayload: number,
  ) {
    this.#conn = conn;
    this.#role = role;
    this.#pending = leftover;
    this.#pool = pool;
    this.#maxPayload = maxPayload;
  }

  /** True until the link closed. */
  get open(): boolean {
    return !this.#closed;
  }

  /**
   * Reads binary messages through `receiver` instead of `onmessage` (call before {@link start}).
   */
  receiveSplit(receiver: SplitReceiver): void {
    this.#splitReceiver = receiver;
  }

  /** Starts the read loop. */
  start(): void {
    this.#readLoop().catch((error) => this.#finish(1006, (error as Error).message));
  }

  /**
   * Queues one binary message. When `giveBackToPool` is true the buffer returns to the pool once written.
   */
  send(buffer: ArrayBuffer, giveBackToPool = false): void {
    if (this.#closed || this.#writeBroken) {
      if (giveBackToPool) this.#pool.give(buffer);
      return;
    }
    this.bytesSent += buffer.byteLength;
    this.#enqueue(0x2, new Uint8Array(buffer), giveBackToPool ? buffer : null);
  }

  /**
   * Queues one binary message made of `parts` (written without copying on a server-side link; a client
   * masks a copy). `written` runs once every byte was handed to the OS; it never runs when the link
   * closes first. The parts must stay unchanged until then.
   */
  sendParts(parts: Uint8Array[], written?: () => void): void {
    if (this.#closed || this.#writeBroken) return;
    let length = 0;
    for (const part of parts) length += part.length;
    this.bytesSent += length;
    const header = this.#header(0x2, length);
    if (this.#role === "client") {
      const joined = new Uint8Array(length);
      let offset = 0;
      for (const part of parts) {
        joined.set(part, offset);
        offset += part.length;
      }
      parts = [this.#mask(header, joined)];
    }
    this.#queue.push({ header, parts, pooled: null, written: written ?? null });
    if (!this.#writing) void this.#writeLoop();
  }

  /** Resolves when every queued message was written (or the link closed). */
  drain(): Promise<void> {
    if (this.#closed || (!this.#writing && this.#queue.length === 0)) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#drainWaiters.push(resolve);
    return promise;
  }

  /** Sends a close frame (best effort) and closes the TCP connection. */
  close(code = 1000, reason = ""): void {
    if (this.#closed) return;
    const text = new TextEncoder().encode(closeReason(reason));
    const payload = new Uint8Array(2 + text.length);
    new DataView(payload.buffer).setUint16(0, code);
    payload.set(text, 2);
    const header = this.#header(0x8, payload.length);
    const masked = this.#role === "client" ? this.#mask(header, payload) : payload;
    // Queued data is dropped: a close means the collective is being abandoned.
    this.#queue.length = 0;
    const frame = new Uint8Array(header.length + masked.length);
    frame.set(header);
    frame.set(masked, header.length);
    this.#closed = true;
    writeAll(this.#conn, frame).catch(() => {}).finally(() => {
      try {
        this.#conn.close();
      } catch { /* closed */ }
    });
    this.#releaseDrain();
    this.onclose(code, reason);
  }

  #header(opcode: number, length: number): Uint8Array {
    return frameHeader(opcode, length, this.#role === "client");
  }

  /** Client frames must be masked: fills the key into the header's last 4 bytes, returns a masked copy. */
  #mask(header: Uint8Array, payload: Uint8Array): Uint8Array {
    const key = crypto.getRandomValues(new Uint8Array(4));
    header.set(key, header.length - 4);
    const out = new Uint8Array(payload.length);
    for (let i = 0; i < payload.length; i++) out[i] = payload[i] ^ key[i & 3];
    return out;
  }

  #enqueue(opcode: number, payload: Uint8Array, pooled: ArrayBuffer | null): void {
    if (this.#writeBroken) return;
    const header = this.#header(opcode, payload.length);
    const body = this.#role === "client" ? this.#mask(header, payload) : payload;
    this.#queue.push({ header, parts: [body], pooled, written: null });
    if (!this.#writing) void this.#writeLoop();
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const item = this.#queue.shift()!;
        if (item.parts.length === 1 && item.parts[0].length < 4096) {
          const payload = item.parts[0];
          const frame = new Uint8Array(item.header.length + payload.length);
          frame.set(item.header);
          frame.set(payload, item.header.length);
          await writeAll(this.#conn, frame);
        } else {
          await writeAll(this.#conn, item.header);
          for (const part of item.parts) await writeAll(this.#conn, part);
        }
        if (item.pooled) this.#pool.give(item.pooled);
        item.written?.();
      }
    } catch (error) {
      // The peer is gone, but its last messages (a coordinator's "stop", a close frame) may still wait
      // to be read: let the read loop deliver them and report the close; give it a moment at most.
      this.#writeBroken = true;
      this.#queue.length = 0;
      const reason = `write failed: ${(error as Error).message}`;
      setTimeout(() => this.#finish(1006, reason), 200);
    } finally {
      this.#writing = false;
      if (this.#queue.length === 0) this.#releaseDrain();
    }
  }

  #releaseDrain(): void {
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  /** Reads exactly `target.length` bytes (from leftover bytes first). */
  async #readExact(target: Uint8Array): Promise<boolean> {
    let offset = 0;
    if (this.#pending.length > 0) {
      const take = Math.min(this.#pending.length, target.length);
      target.set(this.#pending.subarray(0, take));
      this.#pending = this.#pending.subarray(take);
      offset = take;
    }
    while (offset < target.length) {
      const n = await this.#conn.read(target.subarray(offset));
      if (n === null) return false;
      offset += n;
    }
    return true;
  }

  async #readLoop(): Promise<void> {
    const head = new Uint8Array(14);
    while (!this.#closed) {
      if (!await this.#readExact(head.subarray(0, 2))) return this.#finish(1006, "connection closed");
      const fin = (head[0] & 0x80) !== 0;
      const opcode = head[0] & 0x0f;
      const masked = (head[1] & 0x80) !== 0;
      let length = head[1] & 0x7f;
      if ((head[0] & 0x70) !== 0) {
        return this.#protocolError("reserved bits set (no extensions are negotiated)");
      }
      if (!fin) return this.#protocolError("fragmented frames are not supported");
      if (masked !== (this.#role === "server")) {
        return this.#protocolError(
          this.#role === "server" ? "client frame not masked" : "server frame masked",
        );
      }
      if (length === 126) {
        if (!await this.#readExact(head.subarray(2, 4))) return this.#finish(1006, "connection closed");
        length = new DataView(head.buffer).getUint16(2);
      } else if (length === 127) {
        if (!await this.#readExact(head.subarray(2, 10))) return this.#finish(1006, "connection closed");
        const big = new DataView(head.buffer).getBigUint64(2);
        length = big > BigInt(this.#maxPayload) ? this.#maxPayload + 1 : Number(big);
      }
      const key = new Uint8Array(4);
      if (masked && !await this.#readExact(key)) return this.#finish(1006, "connection closed");
      if (length > this.#maxPayload) {
        return this.#protocolError(`frame of ${length} bytes exceeds ${this.#maxPayload}`);
      }
      const isData = opcode === 0x2;
      const split = this.#splitReceiver;
      if (isData && split) {
        if (masked) return this.#protocolError("masked frames cannot be received in two parts");
        if (length < split.headBytes) {
          return this.#protocolError(
            `message of ${length} bytes is shorter than its ${split.headBytes}-byte head`,
          );
        }
        const headBytes = new Uint8Array(split.headBytes);
        if (!await this.#readExact(headBytes)) return this.#finish(1006, "connection closed");
        let rest: Uint8Array;
        try {
          rest = split.target(headBytes, length);
          if (rest.length !== length - split.headBytes) {
            throw new Error(`receive target of ${rest.length} bytes for ${length - split.headBytes}`);
          }
        } catch (error) {
          return this.#protocolError((error as Error).message);
        }
        if (!await this.#readExact(rest)) return this.#finish(1006, "connection closed");
        try {
          split.done(headBytes, rest);
        } catch (error) {
          return this.#protocolError((error as Error).message);
        }
        continue;
      }
      const buffer = isData ? this.#pool.take(length) : new ArrayBuffer(length);
      const bytes = new Uint8Array(buffer);
      if (!await this.#readExact(bytes)) return this.#finish(1006, "connection closed");
      if (masked) { for (let i = 0; i < bytes.length; i++) bytes[i] ^= key[i & 3]; }
      if (isData) this.onmessage(buffer);
      else if (opcode === 0x8) {
        const code = length >= 2 ? new DataView(buffer).getUint16(0) : 1005;
        const reason = length > 2 ? new TextDecoder().decode(bytes.subarray(2)) : "";
        return this.#finish(code, reason);
      } else if (opcode === 0x9) this.#enqueue(0xa, bytes, null);
      else if (opcode === 0xa) continue;
      else {return this.#protocolError(
          opcode === 0x1 ? "text frame; binary only" : `unknown opcode ${opcode}`,
        );}
    }
  }

  #protocolError(reason: string): void {
    this.close(4400, reason);
  }

  #finish(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    try {
      this.#conn.close();
    } catch { /* closed */ }
    this.#releaseDrain();
    this.onclose(code, reason);
  }
}
