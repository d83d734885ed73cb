import assert from "node:assert/strict";
import { JoinTokenVerifier, mintJoinToken } from "../../src/distributed/join_token.ts";

const secret = "0123456789abcdef0123456789abcdef";

Deno.test("join tokens: valid once, then replay; expiry and clock honoured", async () => {
  let now = 1_000_000;
  const verifier = new JoinTokenVerifier({ secret, jobId: "j", now: () => now });
  const token = await mintJoinToken(secret, { job: "j", role: "rank", rank: 2, now, ttlMs: 1000 });
  const first = await verifier.verify(token, "rank");
  assert.ok(first.ok);
  if (first.ok) assert.equal(first.claims.rank, 2);
  assert.deepEqual(await verifier.verify(token, "rank"), {
    ok: false,
    status: 403,
    reason: "join token replayed (nonce seen)",
  });
  const later = await mintJoinToken(secret, { job: "j", role: "rank", now, ttlMs: 1000 });
  now += 1001;
  const expired = await verifier.verify(later, "rank");
  assert.ok(!expired.ok && expired.status === 403 && /expired/.test(expired.reason));
  const far = await mintJoinToken(secret, { job: "j", role: "rank", now, ttlMs: 3_600_000 });
  const tooFar = await verifier.verify(far, "rank");
  assert.ok(!tooFar.ok && /too far/.test(tooFar.reason));
});

Deno.test("join tokens: wrong secret, job, role and garbage are refused with 401/403", async () => {
  const verifier = new JoinTokenVerifier({ secret, jobId: "j" });
  const check = async (token: string | null, role: "rank" | "peer" = "rank") =>
    await verifier.verify(token, role);
  assert.equal((await check(null)).ok, false);
  assert.deepEqual(await check(await mintJoinToken("another-secret-value!", { job: "j", role: "rank" })), {
    ok: false,
    status: 401,
    reason: "bad join token signature (wrong secret?)",
  });
  const foreign = await check(await mintJoinToken(secret, { job: "k", role: "rank" }));
  assert.ok(!foreign.ok && foreign.status === 403);
  const role = await check(await mintJoinToken(secret, { job: "j", role: "agent" }), "peer");
  assert.ok(!role.ok && role.status === 403);
  for (const garbage of ["", "v1", "v1.a.b.c", "v2.abc.def", "v1.ab+c.def", "v1..x"]) {
    const r = await check(garbage);
    assert.ok(!r.ok && r.status === 401, garbage);
  }
  assert.throws(() => new JoinTokenVerifier({ secret: "short", jobId: "j" }), /too short/);
});
