/**
 * Ordered sending on a WebSocket with a cap on the socket's `bufferedAmount`: messages beyond the cap wait
 * in a JS queue and are handed over as the socket drains, so a fast producer never balloons the socket
 * buffer, and {@link SendQueue.drain} tells when everything was written.
 *
 * @module
 */

/** Default cap on bytes buffered inside the socket. */
export const DEFAULT_SEND_CAP_BYTES = 16 * 1024 * 1024;

/**
 * A FIFO in front of one WebSocket.
 *
 * @example
 * ```ts
 * const queue = new SendQueue(socket);
 * queue.send(chunk);
 * await queue.drain();
 * ```
 */
export class SendQueue {
  readonly #socket: WebSocket;
  readonly #capBytes: number;
  readonly #queue: Array<ArrayBuffer | Uint8Array<ArrayBuffer>> = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #drainWaiters: Array<() => void> = [];
  #closed = false;
  /** Total bytes passed to `send`. */
  bytesSent = 0;

  constructor(socket: WebSocket, capBytes = DEFAULT_SEND_CAP_BYTES) {
    this.#socket = socket;
    this.#capBytes = capBytes;
  }

  /** Queues `message`; it is sent after every earlier message. */
  send(message: ArrayBuffer | Uint8Array<ArrayBuffer>): void {
    if (this.#closed) return;
    this.bytesSent += message.byteLength;
    if (this.#queue.length === 0 && this.#socket.bufferedAmount < this.#capBytes) {
      this.#socket.send(message);
      return;
    }
    this.#queue.push(message);
    this.#schedule();
  }

  /** Resolves when the queue is empty and the socket's buffer is flushed (or the socket closed). */
  drain(): Promise<void> {
    if (this.#isDrained()) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#drainWaiters.push(resolve);
    this.#schedule();
    return promise;
  }

  /** Drops queued messages and releases drain waiters (the socket is closing). */
  close(): void {
    this.#closed = true;
    this.#queue.length = 0;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  #isDrained(): boolean {
    return this.#closed || this.#socket.readyState !== WebSocket.OPEN ||
      (this.#queue.length === 0 && this.#socket.bufferedAmount === 0);
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => this.#pump(), 1);
  }

  #pump(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    if (this.#socket.readyState !== WebSocket.OPEN) {
      this.close();
      return;
    }
    while (this.#queue.length > 0 && this.#socket.bufferedAmount < this.#capBytes) {
      this.#socket.send(this.#queue.shift()!);
    }
    if (this.#isDrained()) {
      for (const resolve of this.#drainWaiters.splice(0)) resolve();
      return;
    }
    this.#schedule();
  }
}
