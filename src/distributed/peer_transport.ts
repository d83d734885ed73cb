/**
 * The ring's links between neighbouring ranks, over one of two WebSocket implementations:
 *
 * - `tcp-websocket` (default): {@link RawWebSocket}, RFC 6455 over a Deno TCP socket with TCP_NODELAY and
 *   pooled receive buffers;
 * - `deno-websocket`: Deno's own `Deno.serve` + `Deno.upgradeWebSocket` / `new WebSocket()` (kept for
 *   comparison; ~0.9 GB/s per stream here).
 *
 * Either way each rank serves one accepted link (to its right neighbour, which dials it) and *sends* on it,
 * and dials its left neighbour and *receives* on that link: bulk bytes always leave from the accepted side.
 *
 * @module
 */
import {
  acceptRawWebSocket,
  type BufferPool,
  connectRawWebSocket,
  type RawWebSocket,
  type UpgradeDecision,
} from "./raw_websocket.ts";
import { SendQueue } from "./send_queue.ts";

/** Which WebSocket implementation carries the ring. */
export type PeerTransportName = "tcp-websocket" | "deno-websocket";

/** The link a rank sends on (accepted from its right neighbour). */
export interface SendingLink {
  /** Queues a message; the transport owns `buffer` afterwards (it may recycle it). */
  send(buffer: ArrayBuffer): void;
  /** Resolves when every queued byte was handed to the OS. */
  drain(): Promise<void>;
  close(code: number, reason: string): void;
  readonly bytesSent: number;
}

/** The link a rank receives on (dialed to its left neighbour). */
export interface ReceivingLink {
  close(code: number, reason: string): void;
}

/** Callbacks of a link. */
export interface LinkEvents {
  onmessage(buffer: ArrayBuffer): void;
  onclose(code: number, reason: string): void;
}

/** A listening data server. */
export interface PeerServer {
  readonly port: number;
  close(): void;
}

/** Options of {@link startPeerServer}. */
export interface PeerServerOptions {
  transport: PeerTransportName;
  hostname: string;
  pool: BufferPool;
  maxPayload: number;
  /** Decides on an upgrade from its target (path + query) and Authorization header. */
  authorize(target: string, authorization: string | null): Promise<UpgradeDecision>;
  /** An accepted, authorized link; `events.onmessage` on it is a protocol error (the dialer sends nothing). */
  onAccepted(link: SendingLink, setEvents: (events: LinkEvents) => void): void;
}

/** Starts the rank's data server on an ephemeral port. */
export function startPeerServer(options: PeerServerOptions): PeerServer {
  if (options.transport === "tcp-websocket") {
    const listener = Deno.listen({ hostname: options.hostname, port: 0 });
    (async () => {
      for await (const conn of listener) {
        acceptRawWebSocket(
          conn,
          (request) => options.authorize(request.target, request.headers.get("authorization") ?? null),
          { pool: options.pool, maxPayload: options.maxPayload },
        ).then((socket) => {
          if (!socket) return;
          options.onAccepted(rawSendingLink(socket), (events) => {
            socket.onmessage = events.onmessage;
            socket.onclose = events.onclose;
            socket.start();
          });
        }).catch(() => {
          try {
            conn.close();
          } catch { /* closed */ }
        });
      }
    })().catch(() => {});
    return {
      port: (listener.addr as Deno.NetAddr).port,
      close: () => {
        try {
          listener.close();
        } catch { /* closed */ }
      },
    };
  }
  const server = Deno.serve({ hostname: options.hostname, port: 0, onListen: () => {} }, async (request) => {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade", { status: 400 });
    }
    const url = new URL(request.url);
    const decision = await options.authorize(url.pathname + url.search, request.headers.get("authorization"));
    if (!decision.ok) return new Response(decision.reason, { status: decision.status });
    const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
    socket.binaryType = "arraybuffer";
    const queue = new SendQueue(socket);
    socket.onopen = () =>
      options.onAccepted({
        send: (buffer) => queue.send(buffer),
        drain: () => queue.drain(),
        close: (code, reason) => {
          queue.close();
          socket.close(code, reason);
        },
        get bytesSent() {
          return queue.bytesSent;
        },
      }, (events) => {
        socket.onmessage = (e) => events.onmessage(e.data);
        socket.onclose = (e) => events.onclose(e.code, e.reason);
      });
    socket.onerror = () => {};
    return response;
  });
  return { port: server.addr.port, close: () => void server.shutdown().catch(() => {}) };
}

function rawSendingLink(socket: RawWebSocket): SendingLink {
  return {
    send: (buffer) => socket.send(buffer, true),
    drain: () => socket.drain(),
    close: (code, reason) => socket.close(code, reason),
    get bytesSent() {
      return socket.bytesSent;
    },
  };
}

/** Dials a neighbour's data server and upgrades; rejects when refused or unreachable. */
export async function dialPeer(
  transport: PeerTransportName,
  target: { host: string; port: number; path: string; authorization: string },
  events: LinkEvents,
  pool: BufferPool,
  maxPayload: number,
): Promise<ReceivingLink> {
  if (transport === "tcp-websocket") {
    const socket = await connectRawWebSocket(target.host, target.port, target.path, {
      Authorization: target.authorization,
    }, { pool, maxPayload });
    socket.onmessage = events.onmessage;
    socket.onclose = events.onclose;
    socket.start();
    return { close: (code, reason) => socket.close(code, reason) };
  }
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  const socket = new WebSocket(`ws://${host}:${target.port}${target.path}`, {
    headers: { authorization: target.authorization },
  });
  socket.binaryType = "arraybuffer";
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () =>
      reject(new Error(`WebSocket to ${host}:${target.port} failed (refused or unreachable)`));
  });
  socket.onerror = () => {};
  socket.onmessage = (e) => events.onmessage(e.data);
  socket.onclose = (e) => events.onclose(e.code, e.reason);
  return {
    close: (code, reason) => {
      if (socket.readyState === WebSocket.OPEN) socket.close(code, reason);
    },
  };
}
