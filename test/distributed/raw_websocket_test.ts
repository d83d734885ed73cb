import assert from "node:assert/strict";
import {
  acceptRawWebSocket,
  BufferPool,
  connectRawWebSocket,
  type RawWebSocket,
  type UpgradeDecision,
} from "../../src/distributed/raw_websocket.ts";
import { rawUpgrade } from "./fixtures/raw_http.ts";

const opts = () => ({ pool: new BufferPool(), maxPayload: 1 << 20 });
const sizes = [0, 10, 125, 126, 1000, 65_535, 65_536, 100_000];
const payload = (n: number, salt: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + salt) & 0xff);

/** Listens once; resolves with the accepted RawWebSocket (or null when refused). */
function serveOnce(authorize: () => Promise<UpgradeDecision> = () => Promise.resolve({ ok: true })) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = (async () => {
    const conn = await listener.accept();
    listener.close();
    return await acceptRawWebSocket(conn, authorize, opts());
  })();
  return { port: (listener.addr as Deno.NetAddr).port, accepted };
}

Deno.test("raw WebSocket server interoperates with Deno's standard WebSocket client (all length encodings, masking, close)", async () => {
  const { port, accepted } = serveOnce();
  const client = new WebSocket(`ws://127.0.0.1:${port}/x`);
  client.binaryType = "arraybuffer";
  const received: Uint8Array[] = [];
  const allReceived = Promise.withResolvers<void>();
  client.onmessage = (e) => {
    received.push(new Uint8Array(e.data));
    if (received.length === sizes.length) allReceived.resolve();
  };
  await new Promise((r) => client.onopen = r);
  const server = (await accepted)!;
  const fromClient: Uint8Array[] = [];
  const serverClosed = Promise.withResolvers<[number, string]>();
  const gotFromClient = Promise.withResolvers<void>();
  server.onmessage = (b) => {
    fromClient.push(new Uint8Array(b));
    if (fromClient.length === 2) gotFromClient.resolve();
  };
  server.onclose = (code, reason) => serverClosed.resolve([code, reason]);
  server.start();
  for (const [i, n] of sizes.entries()) server.send(payload(n, i).buffer);
  await allReceived.promise;
  for (const [i, n] of sizes.entries()) assert.deepEqual(received[i], payload(n, i));
  client.send(payload(70_000, 9));
  client.send(payload(5, 3));
  await gotFromClient.promise;
  assert.deepEqual(fromClient[0], payload(70_000, 9));
  assert.deepEqual(fromClient[1], payload(5, 3));
  client.close(1000, "bye");
  assert.deepEqual(await serverClosed.promise, [1000, "bye"]);
});

Deno.test("raw WebSocket client interoperates with Deno.upgradeWebSocket and reports refusals", async () => {
  const closed = Promise.withResolvers<number>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    if (request.headers.get("authorization") !== "Bearer ok") return new Response("nope", { status: 401 });
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      for (const [i, n] of sizes.entries()) socket.send(payload(n, i));
    };
    socket.onmessage = (e) => socket.send(e.data); // echo
    socket.onclose = (e) => closed.resolve(e.code);
    return response;
  });
  try {
    const port = server.addr.port;
    await assert.rejects(
      connectRawWebSocket("127.0.0.1", port, "/", { Authorization: "Bearer bad" }, opts()),
      /refused with HTTP 401: nope/,
    );
    const ws = await connectRawWebSocket("127.0.0.1", port, "/", { Authorization: "Bearer ok" }, opts());
    const got: Uint8Array[] = [];
    const done = Promise.withResolvers<void>();
    ws.onmessage = (b) => {
      got.push(new Uint8Array(b));
      if (got.length === sizes.length + 1) done.resolve();
    };
    ws.start();
    ws.send(payload(300, 7).buffer);
    await done.promise;
    const echo = got.find((g) => g.length === 300)!;
    assert.deepEqual(echo, payload(300, 7));
    for (const [i, n] of sizes.entries()) {
      assert.ok(got.some((g) => g.length === n && g[0] === payload(n, i)[0]));
    }
    ws.close(4001, "done");
    assert.equal(await closed.promise, 4001);
  } finally {
    await server.shutdown();
  }
});

async function frameAfterHandshake(frame: Uint8Array): Promise<[number, string]> {
  const { port, accepted } = serveOnce();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  const server = (await accepted) as RawWebSocket;
  const closed = Promise.withResolvers<[number, string]>();
  server.onclose = (code, reason) => closed.resolve([code, reason]);
  server.start();
  await conn.write(frame);
  const result = await closed.promise;
  conn.close();
  return result;
}

Deno.test("raw WebSocket: unmasked client frames, text, fragments and oversized frames close with 4400", async () => {
  const masked = (b0: number, len: number) =>
    new Uint8Array([b0, 0x80 | len, 1, 2, 3, 4, ...new Uint8Array(len)]);
  const cases: Array<[Uint8Array, RegExp]> = [
    [new Uint8Array([0x82, 3, 1, 2, 3]), /not masked/],
    [masked(0x81, 2), /text frame/],
    [masked(0x02, 2), /fragmented/],
    [masked(0xc2, 2), /reserved bits/],
    [new Uint8Array([0x82, 0x80 | 127, 0, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 4]), /exceeds/],
    [masked(0x83, 1), /unknown opcode 3/],
  ];
  for (const [frame, reason] of cases) {
    const [code, text] = await frameAfterHandshake(frame);
    assert.equal(code, 4400);
    assert.match(text, reason);
  }
  const { port, accepted } = serveOnce(() => Promise.resolve({ ok: false, status: 403, reason: "go away" }));
  const refused = await rawUpgrade(port, "/peer", {});
  assert.equal(refused.status, 403);
  assert.equal(refused.text, "go away");
  assert.equal(await accepted, null);
});
