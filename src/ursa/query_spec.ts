/**
 * `QuerySpec`: how a researcher selects data from the catalog (participants × modalities × derived
 * versions). Resolution against the catalog lives in `resolve_query.ts`.
 *
 * @module
 */
import { z } from "zod";
import type { SameShape } from "../config/config_shape.ts";

/** The zod schema of a query: the single source of truth for its fields and defaults. */
export const QuerySpecSchema = z.strictObject({
  participants: z.union([z.literal("*"), z.array(z.string().min(1)).min(1)]).default("*").describe(
    'participant ids such as "p042", or "*" for every participant in the catalog',
  ),
  excludeParticipants: z.array(z.string().min(1)).default([]).describe(
    "participants removed after `participants` is expanded (e.g. hold out p042 for finetuning)",
  ),
  sessions: z.array(z.string().min(1)).optional().describe("restrict to these session ids (default: all)"),
  modalities: z.array(z.string().min(1)).min(1).default(["eeg", "pupil"]).describe(
    'recording modalities, e.g. "eeg", "pupil"',
  ),
  derived: z.array(z.string().min(1)).default([
    "standard_v2026q2.eeg_clean",
    "standard_v2026q2.pupil_dilation",
  ]).describe("derived-signal versions to read, one per modality (`<set>.<derivation>`)"),
  labels: z.string().min(1).default("cognitive_load").describe("label track whose intervals define windows"),
});

/** A query with every default filled in. */
export interface QuerySpec {
  /** Participant ids such as "p042", or "*" for every participant in the catalog. */
  participants: "*" | string[];
  /** Participants removed after `participants` is expanded (e.g. hold out p042 for finetuning). */
  excludeParticipants: string[];
  /** Restrict to these session ids (default: all). */
  sessions?: string[];
  /** Recording modalities, e.g. "eeg", "pupil". */
  modalities: string[];
  /** Derived-signal versions to read, one per modality (`<set>.<derivation>`). */
  derived: string[];
  /** Label track whose intervals define windows. */
  labels: string;
}

/** A query as written by a user: every field optional (defaults as in {@link QuerySpec}). */
export type QuerySpecInput = Partial<QuerySpec>;

const _querySpecMatchesSchema: [
  SameShape<z.output<typeof QuerySpecSchema>, QuerySpec>,
  SameShape<z.input<typeof QuerySpecSchema>, QuerySpecInput>,
] = [true, true];

/**
 * Builds a validated query.
 *
 * @example
 * ```ts
 * import { QuerySpec } from "./query_spec.ts";
 * const q = QuerySpec({ participants: ["p001", "p002"], modalities: ["eeg"] });
 * console.log(q.derived);
 * ```
 */
export function QuerySpec(spec: QuerySpecInput = {}): QuerySpec {
  return QuerySpecSchema.parse(spec);
}
