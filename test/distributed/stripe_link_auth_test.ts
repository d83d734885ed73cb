import assert from "node:assert/strict";
import { decideStripeLink, type StripeLinkState } from "../../src/distributed/stripe_link_auth.ts";

const state = (over: Partial<StripeLinkState> = {}): StripeLinkState => ({
  stripe: 1,
  generation: 4,
  self: 2,
  right: 3,
  worldSize: 4,
  mesh: true,
  rightClaimed: false,
  meshClaimed: new Set<number>(),
  ...over,
});

Deno.test("stripe links: the right neighbour's ring link and every other rank's mesh link, each once", () => {
  assert.deepEqual(decideStripeLink("/stripe?gen=4&stripe=1", 3, state()), {
    ok: true,
    link: "ring",
    rank: 3,
  });
  for (const rank of [0, 1, 3]) {
    assert.deepEqual(decideStripeLink("/stripe-mesh?gen=4&stripe=1", rank, state()), {
      ok: true,
      link: "mesh",
      rank,
    });
  }
});

Deno.test("stripe links: refused with the reason when they do not fit", () => {
  const cases: Array<[string, number | null, Partial<StripeLinkState>, number, RegExp]> = [
    ["/stripe?gen=4&stripe=1", 1, {}, 403, /from rank 1 refused: expected rank 3 of generation 4, stripe 1/],
    ["/stripe?gen=4&stripe=1", 3, { rightClaimed: true }, 403, /once/],
    ["/stripe-mesh?gen=4&stripe=1", 2, {}, 403, /from rank 2 refused: expected another rank than 2/],
    ["/stripe-mesh?gen=4&stripe=1", 4, {}, 403, /from rank 4 refused/], // no such rank
    ["/stripe-mesh?gen=4&stripe=1", 0, { meshClaimed: new Set([0]) }, 403, /once/],
    ["/stripe-mesh?gen=3&stripe=1", 0, {}, 403, /generation 4/], // a stale generation
    ["/stripe-mesh?gen=4&stripe=0", 0, {}, 403, /stripe 1/], // another stripe's link
    ["/stripe-mesh?gen=4&stripe=1", null, {}, 403, /from rank null/], // a token naming no rank
    ["/stripe-mesh?gen=4&stripe=1", 0, { mesh: false }, 404, /not found/], // an event-loop stripe: no mesh
    ["/peer?gen=4", 3, {}, 404, /not found/],
  ];
  for (const [target, rank, over, status, reason] of cases) {
    const decision = decideStripeLink(target, rank, state(over));
    assert.equal(decision.ok, false, `${target} from ${rank}`);
    if (decision.ok) continue;
    assert.equal(decision.status, status, `${target} from ${rank}`);
    assert.match(decision.reason, reason);
  }
});
