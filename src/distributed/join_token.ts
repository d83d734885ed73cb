/**
 * HMAC-SHA256 join tokens: every process that joins the coordinator (or dials a peer's data server) presents
 * one in the HTTP upgrade request (`Authorization: Bearer <token>`); it is checked before any rank state is
 * touched.
 *
 * Token text: `v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "v1." + claims))>`.
 * Every process of a job holds the same secret (env `ORION_JOIN_SECRET`, set by the launcher) and mints a
 * fresh token per connection; the secret itself never crosses the wire. A verifier refuses a nonce it has
 * already seen, so a captured token cannot be replayed.
 *
 * @module
 */
import { Buffer } from "node:buffer";

/** Environment variable holding the job's shared secret. */
export const JOIN_SECRET_ENV = "ORION_JOIN_SECRET";
const TOKEN_VERSION = "v1";
/** Shortest accepted secret, in characters. */
export const MIN_SECRET_LENGTH = 16;
/** Default token lifetime. */
export const DEFAULT_TOKEN_TTL_MS = 60_000;

/** Who is joining. */
export type JoinRole = "rank" | "agent" | "peer";

/** What a token asserts. */
export interface JoinClaims {
  /** Job the token is valid for. */
  job: string;
  /** Role of the connecting process. */
  role: JoinRole;
  /** Rank hint (the dialing rank for "peer" tokens; node-local rank or null otherwise). */
  rank: number | null;
  /** Random, single use. */
  nonce: string;
  /** Expiry, ms since the Unix epoch. */
  exp: number;
}

/** Outcome of checking a token; `status` is the HTTP status to refuse with. */
export type JoinCheck =
  | { ok: true; claims: JoinClaims }
  | { ok: false; status: 401 | 403; reason: string };

/** Returns the job secret from `ORION_JOIN_SECRET`, or throws an actionable error. */
export function joinSecretFromEnv(): string {
  const secret = Deno.env.get(JOIN_SECRET_ENV);
  if (secret === undefined || secret === "") {
    throw new Error(
      `Cannot authenticate to the coordinator as ${JOIN_SECRET_ENV} is unset: current value is empty; ` +
        `the launcher sets it for every process (export the same value on every node)`,
    );
  }
  return checkSecret(secret);
}

function checkSecret(secret: string): string {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new Error(
      `Cannot use the join secret as it is too short: current value has ${secret.length} characters; ` +
        `use at least ${MIN_SECRET_LENGTH} (e.g. the output of \`openssl rand -hex 32\`)`,
    );
  }
  return secret;
}

/** A fresh random secret (64 hex characters). */
export function generateJoinSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const keyCache = new Map<string, Promise<CryptoKey>>();
function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(checkSecret(secret)),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    keyCache.set(secret, key);
  }
  return key;
}

/**
 * Mints a single-use token.
 *
 * @example
 * ```ts
 * const token = await mintJoinToken(secret, { job: "run-1", role: "rank", rank: 0 });
 * new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
 * ```
 */
export async function mintJoinToken(
  secret: string,
  claims: { job: string; role: JoinRole; rank?: number | null; ttlMs?: number; now?: number },
): Promise<string> {
  const body: JoinClaims = {
    job: claims.job,
    role: claims.role,
    rank: claims.rank ?? null,
    nonce: Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url"),
    exp: (claims.now ?? Date.now()) + (claims.ttlMs ?? DEFAULT_TOKEN_TTL_MS),
  };
  const signed = `${TOKEN_VERSION}.${Buffer.from(JSON.stringify(body)).toString("base64url")}`;
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), new TextEncoder().encode(signed));
  return `${signed}.${Buffer.from(mac).toString("base64url")}`;
}

/** Reads the bearer token of an upgrade request (null when absent). */
export function bearerToken(request: Request): string | null {
  const header = request.headers.get("authorization");
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
  return match ? match[1] : "";
}

/** Options of {@link JoinTokenVerifier}. */
export interface JoinTokenVerifierOptions {
  secret: string;
  jobId: string;
  /** Clock for tests. */
  now?: () => number;
  /** Refuse tokens whose expiry lies further ahead than this (default 10 min). */
  maxTtlMs?: number;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Checks tokens for one job and remembers every nonce until it expires (replay protection).
 *
 * @example
 * ```ts
 * const verifier = new JoinTokenVerifier({ secret, jobId: "run-1" });
 * const check = await verifier.verify(bearerToken(request), "rank");
 * if (!check.ok) return new Response(check.reason, { status: check.status });
 * ```
 */
export class JoinTokenVerifier {
  readonly #secret: string;
  readonly #jobId: string;
  readonly #now: () => number;
  readonly #maxTtlMs: number;
  readonly #seen = new Map<string, number>();

  constructor(options: JoinTokenVerifierOptions) {
    this.#secret = checkSecret(options.secret);
    this.#jobId = options.jobId;
    this.#now = options.now ?? Date.now;
    this.#maxTtlMs = options.maxTtlMs ?? 600_000;
  }

  /** Verifies `token` for `role`; a token passes at most once. */
  async verify(token: string | null, role: JoinRole | readonly JoinRole[]): Promise<JoinCheck> {
    if (token === null) {
      return { ok: false, status: 401, reason: "missing join token (Authorization: Bearer)" };
    }
    const parts = token.split(".");
    if (
      parts.length !== 3 || parts[0] !== TOKEN_VERSION || !BASE64URL.test(parts[1]) ||
      !BASE64URL.test(parts[2])
    ) {
      return { ok: false, status: 401, reason: "malformed join token" };
    }
    const mac = Buffer.from(parts[2], "base64url");
    const valid = await crypto.subtle.verify(
      "HMAC",
      await hmacKey(this.#secret),
      mac,
      new TextEncoder().encode(`${parts[0]}.${parts[1]}`),
    );
    if (!valid) return { ok: false, status: 401, reason: "bad join token signature (wrong secret?)" };
    let claims: JoinClaims;
    try {
      claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    } catch {
      return { ok: false, status: 401, reason: "join token claims are not JSON" };
    }
    if (
      typeof claims !== "object" || claims === null || typeof claims.job !== "string" ||
      typeof claims.nonce !== "string" || typeof claims.exp !== "number" || typeof claims.role !== "string" ||
      !(claims.rank === null || Number.isInteger(claims.rank))
    ) {
      return { ok: false, status: 401, reason: "join token claims have the wrong shape" };
    }
    const now = this.#now();
    this.#prune(now);
    if (claims.job !== this.#jobId) {
      return { ok: false, status: 403, reason: `join token is for job "${claims.job}"` };
    }
    const roles: readonly JoinRole[] = typeof role === "string" ? [role] : role;
    if (!roles.includes(claims.role)) {
      return { ok: false, status: 403, reason: `join token role "${claims.role}" not accepted here` };
    }
    if (claims.exp <= now) {
      return { ok: false, status: 403, reason: `join token expired ${now - claims.exp} ms ago` };
    }
    if (claims.exp - now > this.#maxTtlMs) {
      return { ok: false, status: 403, reason: "join token expiry too far ahead" };
    }
    if (this.#seen.has(claims.nonce)) {
      return { ok: false, status: 403, reason: "join token replayed (nonce seen)" };
    }
    this.#seen.set(claims.nonce, claims.exp);
    return { ok: true, claims };
  }

  #prune(now: number): void {
    for (const [nonce, exp] of this.#seen) if (exp <= now) this.#seen.delete(nonce);
  }
}
