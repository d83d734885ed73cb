import assert from "node:assert/strict";
import { Coordinator } from "../../src/distributed/coordinator.ts";
import { generateJoinSecret, mintJoinToken } from "../../src/distributed/join_token.ts";
import { joinJob } from "../../src/distributed/rank_client.ts";
import { rawUpgrade } from "./fixtures/raw_http.ts";

Deno.test("coordinator refuses missing, malformed, forged, foreign, expired, replayed and wrong-role tokens before any state", async () => {
  const secret = generateJoinSecret();
  const lines: string[] = [];
  const coordinator = await Coordinator.start({
    jobId: "auth-job",
    secret,
    worldSize: 2,
    hostname: "127.0.0.1",
    log: (line) => lines.push(line),
  });
  try {
    const port = coordinator.port;
    const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
    const cases: Array<[string, Record<string, string>, number, RegExp]> = [
      ["missing", {}, 401, /missing join token/],
      ["malformed", bearer("not-a-token"), 401, /malformed/],
      [
        "forged",
        bearer(await mintJoinToken("x".repeat(32), { job: "auth-job", role: "rank" })),
        401,
        /signature/,
      ],
      [
        "foreign job",
        bearer(await mintJoinToken(secret, { job: "other-job", role: "rank" })),
        403,
        /for job "other-job"/,
      ],
      [
        "expired",
        bearer(await mintJoinToken(secret, { job: "auth-job", role: "rank", now: Date.now() - 120_000 })),
        403,
        /expired/,
      ],
      [
        "peer token",
        bearer(await mintJoinToken(secret, { job: "auth-job", role: "peer", rank: 1 })),
        403,
        /role "peer"/,
      ],
      [
        "tampered claims",
        bearer(
          (await mintJoinToken(secret, { job: "auth-job", role: "rank" })).replace(
            /^v1\.([^.]+)\./,
            (_, c) => `v1.${c.slice(0, -2)}AA.`,
          ),
        ),
        401,
        /signature|malformed/,
      ],
    ];
    for (const [name, headers, status, reason] of cases) {
      const response = await rawUpgrade(port, "/join", headers);
      assert.equal(response.status, status, `${name}: ${response.text}`);
      assert.match(response.text, reason, name);
    }
    // A valid token upgrades once; the same token again is a replay.
    const token = await mintJoinToken(secret, { job: "auth-job", role: "rank" });
    assert.equal((await rawUpgrade(port, "/join", bearer(token))).status, 101);
    const replay = await rawUpgrade(port, "/join", bearer(token));
    assert.equal(replay.status, 403);
    assert.match(replay.text, /replayed/);

    assert.equal(coordinator.stats.refusedJoins, cases.length + 1);
    assert.equal(coordinator.stats.acceptedConnections, 1);
    const refusals = lines.filter((l) => l.startsWith("refused join from 127.0.0.1"));
    assert.equal(refusals.length, cases.length + 1, lines.join("\n"));
    // A rank process with the wrong secret gets the coordinator's reason, not a generic failure.
    await assert.rejects(
      joinJob({
        coordinatorUrl: coordinator.url(),
        jobId: "auth-job",
        secret: "w".repeat(32),
        log: () => {},
      }),
      /Cannot join job "auth-job" at ws:.*refused with HTTP 401: bad join token signature/,
    );
    const health = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
    assert.equal(health.waiting, 0);
    assert.equal(health.stats.refusedJoins, cases.length + 2);
    assert.equal(health.phase, "rendezvous");
  } finally {
    await coordinator.close();
  }
});

Deno.test("a rank's data server refuses peers without a valid token for the right neighbour", async () => {
  const secret = generateJoinSecret();
  const coordinator = await Coordinator.start({
    jobId: "peer-auth",
    secret,
    worldSize: 2,
    hostname: "127.0.0.1",
    log: () => {},
  });
  const log: string[] = [];
  const options = (i: number) => ({
    coordinatorUrl: coordinator.url(),
    jobId: "peer-auth",
    secret,
    localRank: i,
    dataHostname: "127.0.0.1",
    advertiseHost: "127.0.0.1",
    log: (l: string) => log.push(l),
  });
  const sessions = await Promise.all([joinJob(options(0)), joinJob(options(1))]);
  try {
    const rank0 = sessions.find((s) => s.rank === 0)!;
    const path = `/peer?gen=${rank0.generation}`;
    const peerToken = (rank: number, secretUsed = secret) =>
      mintJoinToken(secretUsed, { job: "peer-auth", role: "peer", rank });
    assert.equal((await rawUpgrade(rank0.dataPort, path, {})).status, 401);
    assert.equal(
      (await rawUpgrade(rank0.dataPort, path, {
        Authorization: `Bearer ${await peerToken(1, "y".repeat(40))}`,
      })).status,
      401,
    );
    const rankRole = await mintJoinToken(secret, { job: "peer-auth", role: "rank", rank: 1 });
    assert.equal(
      (await rawUpgrade(rank0.dataPort, path, { Authorization: `Bearer ${rankRole}` })).status,
      403,
    );
    // Valid token for the right neighbour, but the link already exists: refused.
    assert.equal(
      (await rawUpgrade(rank0.dataPort, path, { Authorization: `Bearer ${await peerToken(1)}` })).status,
      403,
    );
    assert.ok(log.some((l) => l.startsWith("refused peer connection: 401")), log.join("\n"));
    // The job still works.
    const data = sessions.map((s) => new Float32Array([s.rank + 1, 2 * (s.rank + 1)]));
    await Promise.all(sessions.map((s, i) => s.allReduceMean([data[i]])));
    for (const d of data) assert.deepEqual([...d], [1.5, 3]);
    await Promise.all(sessions.map((s) => s.close()));
    assert.equal((await coordinator.finished).status, "completed");
  } finally {
    await coordinator.close();
  }
});
