/**
 * TCP sockets driven by the calling thread: the C library's `socket`/`send`/`recv`/`poll` through Deno's FFI
 * (Linux), non-blocking, so a collective can busy-poll its links instead of sleeping in the event loop.
 *
 * Why: a small all-reduce is a chain of message hops, and each hop through Deno's TCP sockets costs an
 * event-loop turn on each side plus, when the thread was asleep, its wake-up. On the 2 × H200 host a 0.25 MiB
 * two-rank all-reduce starting on idle threads took 0.68 ms through the event loop and 0.48 ms polled, and a
 * 0.5 MiB one on 4 ranks 1.06 and 0.69 ms (`docs/distributed.md`, "Polled ring"). NCCL's proxies poll for the
 * same reason.
 *
 * {@link PolledSocket} offers both: `trySend`/`tryRecv` (never block; for the polled ring's progress loop,
 * with {@link waitAny} to sleep in `poll(2)` for at most a given time), and `ready`/`read`/`write` promises
 * that wait in `poll(2)` on a runtime thread (for handshakes and background progress), so it also serves as a
 * {@link HandshakeStream} for the WebSocket upgrade. Only IPv4 addresses are supported.
 *
 * {@link polledSockets} returns null where the C library cannot be loaded (not Linux, no `--allow-ffi`):
 * callers then keep Deno's own sockets.
 *
 * @module
 */
import type { HandshakeStream } from "./raw_websocket.ts";

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_ERROR = 4;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_MORE = 0x8000;
/** `poll(2)` event bits. */
export const POLLIN = 1;
/** `poll(2)` event bits. */
export const POLLOUT = 4;
const EINTR = 4;
const EAGAIN = 11;
const EINPROGRESS = 115;
const SHUT_RDWR = 2;
/** Socket buffer sizes asked for (the kernel caps them at `net.core.{w,r}mem_max`). */
const BUFFER_BYTES = 4 * 1024 * 1024;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  pollOffThread: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let loaded: Libc | null | undefined;

/**
 * The C library's socket calls, or null where they cannot be used (not Linux, FFI not permitted, no
 * `libc.so.6`). Loaded once per thread.
 *
 * @example
 * ```ts ignore
 * if (polledSockets() === null) console.log("using Deno's sockets only");
 * ```
 */
export function polledSockets(): Libc | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (Deno.build.os !== "linux") return null;
  try {
    loaded = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch {
    loaded = null;
  }
  return loaded;
}

function libc(): Libc {
  const c = polledSockets();
  if (!c) {
    throw new Error(
      "Cannot use polled sockets as the C library is not loadable here (Linux and --allow-ffi)",
    );
  }
  return c;
}

function errno(c: Libc): number {
  const at = c.__errno_location();
  return at === null ? 0 : new Deno.UnsafePointerView(at).getInt32();
}

/** The 4 bytes of an IPv4 address, `localhost` as 127.0.0.1; null for anything else (names, IPv6). */
export function ipv4Bytes(host: string): Uint8Array | null {
  if (host === "localhost") return new Uint8Array([127, 0, 0, 1]);
  const parts = host.split(".");
  if (parts.length !== 4) return null;
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return bytes.every((b) => b >= 0 && b <= 255) ? new Uint8Array(bytes) : null;
}

function socketAddress(ip: Uint8Array, port: number): Uint8Array<ArrayBuffer> {
  const address = new Uint8Array(16);
  const view = new DataView(address.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port, false);
  address.set(ip, 4);
  return address;
}

function setIntOption(c: Libc, fd: number, level: number, name: number, value: number): void {
  c.setsockopt(fd, level, name, new Uint8Array(new Int32Array([value]).buffer), 4);
}

function newSocket(c: Libc): number {
  const fd = c.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`Cannot open a TCP socket: errno ${errno(c)}`);
  return fd;
}

/**
 * Waits in `poll(2)` on a runtime thread (this thread stays free) until one of `fds` is ready for its
 * `events` or `timeoutMs` passed. Resolves with the ready count (0 on timeout, negative on error).
 */
async function pollOffThread(
  c: Libc,
  entries: ReadonlyArray<{ fd: number; events: number }>,
  timeoutMs: number,
): Promise<number> {
  const table = new Uint8Array(8 * entries.length);
  const view = new DataView(table.buffer);
  entries.forEach(({ fd, events }, i) => {
    view.setInt32(8 * i, fd, true);
    view.setInt16(8 * i + 4, events, true);
  });
  return await c.pollOffThread(table, BigInt(entries.length), Math.max(0, Math.ceil(timeoutMs)));
}

/**
 * One connected, non-blocking TCP socket (TCP_NODELAY, 4 MiB buffers asked for).
 *
 * @example
 * ```ts ignore
 * const listener = PolledListener.listen("127.0.0.1");
 * const [a, b] = await Promise.all([listener.accept(), PolledSocket.dial("127.0.0.1", listener.port, 5000)]);
 * a.trySend(new Uint8Array([1, 2, 3]));
 * ```
 */
export class PolledSocket implements HandshakeStream {
  readonly #c: Libc;
  #fd: number;
  /** Off-thread polls in flight: the descriptor stays open until they return. */
  #offThread = 0;
  #closing = false;

  private constructor(c: Libc, fd: number) {
    this.#c = c;
    this.#fd = fd;
    setIntOption(c, fd, IPPROTO_TCP, TCP_NODELAY, 1);
    setIntOption(c, fd, SOL_SOCKET, SO_SNDBUF, BUFFER_BYTES);
    setIntOption(c, fd, SOL_SOCKET, SO_RCVBUF, BUFFER_BYTES);
  }

  /** @internal Wraps an accepted descriptor. */
  static fromAccepted(c: Libc, fd: number): PolledSocket {
    return new PolledSocket(c, fd);
  }

  /** Connects to `host` (an IPv4 address) : `port`; rejects when refused or after `timeoutMs`. */
  static async dial(host: string, port: number, timeoutMs: number): Promise<PolledSocket> {
    const c = libc();
    const ip = ipv4Bytes(host);
    if (!ip) throw new Error(`Cannot dial ${host} over a polled socket: use an IPv4 address`);
    const fd = newSocket(c);
    try {
      if (c.connect(fd, socketAddress(ip, port), 16) !== 0) {
        const code = errno(c);
        if (code !== EINPROGRESS) throw new Error(`connect to ${host}:${port} failed: errno ${code}`);
        const ready = await pollOffThread(c, [{ fd, events: POLLOUT }], timeoutMs);
        if (ready <= 0) throw new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`);
        const result = new Int32Array(1);
        c.getsockopt(
          fd,
          SOL_SOCKET,
          SO_ERROR,
          new Uint8Array(result.buffer),
          new Uint8Array(new Uint32Array([4]).buffer),
        );
        if (result[0] !== 0) throw new Error(`connect to ${host}:${port} failed: errno ${result[0]}`);
      }
      return new PolledSocket(c, fd);
    } catch (error) {
      c.close(fd);
      throw error;
    }
  }

  /** The descriptor (−1 once closed). */
  get fd(): number {
    return this.#fd;
  }

  /**
   * Sends what the kernel takes of `bytes` now; returns the count (0 when its buffer is full). `more` tells
   * the kernel more bytes of the same message follow at once (MSG_MORE). Throws when the link failed.
   */
  trySend(bytes: Uint8Array, more = false): number {
    if (bytes.length === 0) return 0;
    const n = Number(
      this.#c.send(
        this.#fd,
        bytes,
        BigInt(bytes.length),
        MSG_DONTWAIT | MSG_NOSIGNAL | (more ? MSG_MORE : 0),
      ),
    );
    if (n >= 0) return n;
    const code = errno(this.#c);
    if (code === EAGAIN || code === EINTR) return 0;
    throw new Error(`send failed: errno ${code}`);
  }

  /** Receives what has arrived into `into`; returns the count (0 when nothing has). Throws when closed. */
  tryRecv(into: Uint8Array): number {
    if (into.length === 0) return 0;
    const n = Number(this.#c.recv(this.#fd, into, BigInt(into.length), MSG_DONTWAIT));
    if (n > 0) return n;
    if (n === 0) throw new Error("the peer closed the connection");
    const code = errno(this.#c);
    if (code === EAGAIN || code === EINTR) return 0;
    throw new Error(`recv failed: errno ${code}`);
  }

  /** Waits off this thread until readable / writable or `timeoutMs`; false when closed meanwhile. */
  async ready(events: number, timeoutMs: number): Promise<boolean> {
    if (this.#fd < 0) return false;
    this.#offThread++;
    try {
      await pollOffThread(this.#c, [{ fd: this.#fd, events }], timeoutMs);
    } finally {
      this.#offThread--;
      if (this.#closing && this.#offThread === 0) this.#release();
    }
    return this.#fd >= 0 && !this.#closing;
  }

  /**
   * Waits off this thread until one of `entries` is ready for its events or `timeoutMs` passed (one `poll(2)`
   * over all of them); closed sockets are left out, and none open returns at once.
   */
  static async readyAny(
    entries: ReadonlyArray<{ socket: PolledSocket; events: number }>,
    timeoutMs: number,
  ): Promise<void> {
    const open = entries.filter(({ socket }) => socket.#fd >= 0 && !socket.#closing);
    if (open.length === 0) return;
    for (const { socket } of open) socket.#offThread++;
    try {
      await pollOffThread(
        open[0].socket.#c,
        open.map(({ socket, events }) => ({ fd: socket.#fd, events })),
        timeoutMs,
      );
    } finally {
      for (const { socket } of open) {
        socket.#offThread--;
        if (socket.#closing && socket.#offThread === 0) socket.#release();
      }
    }
  }

  /** {@link HandshakeStream}: reads at least one byte (null when closed). */
  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#closing) return null;
      let n: number;
      try {
        n = this.tryRecv(p);
      } catch {
        return null;
      }
      if (n > 0) return n;
      await this.ready(POLLIN, 1000);
    }
  }

  /** {@link HandshakeStream}: writes at least one byte. */
  async write(p: Uint8Array): Promise<number> {
    for (;;) {
      if (this.#closing) throw new Error("write on a closed socket");
      const n = this.trySend(p);
      if (n > 0) return n;
      await this.ready(POLLOUT, 1000);
    }
  }

  /** Shuts the connection down and closes the descriptor (once no off-thread poll uses it). */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#c.shutdown(this.#fd, SHUT_RDWR);
    if (this.#offThread === 0) this.#release();
  }

  #release(): void {
    if (this.#fd < 0) return;
    this.#c.close(this.#fd);
    this.#fd = -1;
  }
}

/** A listening polled socket on an ephemeral port. */
export class PolledListener {
  readonly #c: Libc;
  readonly #fd: number;
  readonly port: number;
  #closed = false;
  #accepting = 0;

  private constructor(c: Libc, fd: number, port: number) {
    this.#c = c;
    this.#fd = fd;
    this.port = port;
  }

  /** Listens on `hostname` (an IPv4 address, `0.0.0.0` for all, or `localhost`), port chosen by the kernel. */
  static listen(hostname: string): PolledListener {
    const c = libc();
    const ip = ipv4Bytes(hostname);
    if (!ip) throw new Error(`Cannot listen on ${hostname} with a polled socket: use an IPv4 address`);
    const fd = newSocket(c);
    setIntOption(c, fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (c.bind(fd, socketAddress(ip, 0), 16) !== 0 || c.listen(fd, 64) !== 0) {
      const code = errno(c);
      c.close(fd);
      throw new Error(`Cannot listen on ${hostname}: errno ${code}`);
    }
    const address = new Uint8Array(16);
    c.getsockname(fd, address, new Uint8Array(new Uint32Array([16]).buffer));
    return new PolledListener(c, fd, new DataView(address.buffer).getUint16(2, false));
  }

  /** The next connection; null once the listener closed. */
  async accept(): Promise<PolledSocket | null> {
    this.#accepting++;
    try {
      while (!this.#closed) {
        const fd = this.#c.accept4(this.#fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) return PolledSocket.fromAccepted(this.#c, fd);
        const code = errno(this.#c);
        if (code !== EAGAIN && code !== EINTR) throw new Error(`accept failed: errno ${code}`);
        await pollOffThread(this.#c, [{ fd: this.#fd, events: POLLIN }], 200);
      }
      return null;
    } finally {
      this.#accepting--;
      if (this.#closed && this.#accepting === 0) this.#c.close(this.#fd);
    }
  }

  /** Stops listening (pending accepts resolve null within 200 ms). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#c.shutdown(this.#fd, SHUT_RDWR);
    if (this.#accepting === 0) this.#c.close(this.#fd);
  }
}

/**
 * Blocks this thread in `poll(2)` until one of `sockets` is ready for its events or `timeoutMs` passed. For
 * a progress loop that has spun long enough without news.
 */
export function waitAny(
  sockets: ReadonlyArray<{ socket: PolledSocket; events: number }>,
  timeoutMs: number,
  table: Uint8Array<ArrayBuffer>,
): void {
  const c = libc();
  const view = new DataView(table.buffer);
  sockets.forEach(({ socket, events }, i) => {
    view.setInt32(8 * i, socket.fd, true);
    view.setInt16(8 * i + 4, events, true);
    view.setInt16(8 * i + 6, 0, true);
  });
  c.poll(table, BigInt(sockets.length), Math.max(0, Math.ceil(timeoutMs)));
}
