/**
 * Which stripe links a stripe worker accepts (after the join token checked out): the right neighbour's ring
 * link (`/stripe`, either kind of socket) and, on a polled stripe, every other rank's mesh link
 * (`/stripe-mesh`); each of this generation and stripe, each once.
 *
 * @module
 */
import type { UpgradeDecision } from "./raw_websocket.ts";

/** What a stripe worker expects, and which links it already took. */
export interface StripeLinkState {
  stripe: number;
  generation: number;
  /** This rank, the right neighbour (the ring link's dialer), and the world size. */
  self: number;
  right: number;
  worldSize: number;
  /** Whether this listener takes mesh links (a polled stripe). */
  mesh: boolean;
  rightClaimed: boolean;
  meshClaimed: ReadonlySet<number>;
}

/**
 * Decides on a stripe link request for `target` (path and query) from the rank the token names (`rank`; null:
 * a token without one). On success says which link it is; the caller records the claim.
 *
 * @example
 * ```ts
 * import { decideStripeLink } from "./stripe_link_auth.ts";
 * const state = { stripe: 0, generation: 1, self: 0, right: 1, worldSize: 3, mesh: true, rightClaimed: false,
 *   meshClaimed: new Set<number>() };
 * console.log(decideStripeLink("/stripe-mesh?gen=1&stripe=0", 2, state)); // { ok: true, link: "mesh", rank: 2 }
 * console.log(decideStripeLink("/stripe-mesh?gen=1&stripe=0", 0, state).ok); // false: this rank itself
 * ```
 */
export function decideStripeLink(
  target: string,
  rank: number | null,
  state: StripeLinkState,
): UpgradeDecision & ({ ok: false } | { ok: true; link: "ring" | "mesh"; rank: number }) {
  const url = new URL(target, "http://peer");
  const mesh = state.mesh && url.pathname === "/stripe-mesh";
  if (url.pathname !== "/stripe" && !mesh) return { ok: false, status: 404, reason: "not found" };
  const fits = rank !== null &&
    (mesh
      ? rank !== state.self && rank >= 0 && rank < state.worldSize && !state.meshClaimed.has(rank)
      : rank === state.right && !state.rightClaimed);
  if (
    rank === null || !fits || url.searchParams.get("gen") !== String(state.generation) ||
    url.searchParams.get("stripe") !== String(state.stripe)
  ) {
    const from = mesh ? `another rank than ${state.self}` : `rank ${state.right}`;
    return {
      ok: false,
      status: 403,
      reason: `stripe ${state.stripe} connection from rank ${rank} refused: expected ${from} of generation ` +
        `${state.generation}, stripe ${state.stripe}, once`,
    };
  }
  return { ok: true, link: mesh ? "mesh" : "ring", rank };
}
