/**
 * Resolving a `QuerySpec` against the catalog: participants × sessions × modalities × derived versions →
 * the exact derived assets to read and the label intervals that define windows, or one error listing every
 * problem, each naming what is missing and the command that fixes it.
 *
 * @module
 */
import type { Catalog } from "./catalog.ts";
import {
  DERIVED_ASSETS_TABLE,
  type DerivedAssetRow,
  type LabelRow,
  LABELS_TABLE,
  type RecordingRow,
  RECORDINGS_TABLE,
} from "./catalog_tables.ts";
import { sqlString } from "./catalog.ts";
import { type Derivation, DERIVATIONS } from "./derivations.ts";
import { derivedAssetIdOf } from "./derive.ts";
import { QuerySpec, type QuerySpecInput } from "./query_spec.ts";

/** One derived asset to read, with what the loader needs to address its samples. */
export interface ResolvedAsset {
  modality: string;
  derivation: string;
  derivedAssetId: string;
  recordingHash: string;
  channels: string[];
  samplingRate: number;
  numSamples: number;
  /** Session-clock time of sample 0, seconds. */
  timeOffset: number;
  chunkSamples: number;
}

/** One labelled interval of a session. */
export interface ResolvedLabel {
  start: number;
  end: number;
  /** Class index, or -1 for value-only labels. */
  classIndex: number;
  value: number | null;
}

/** One session with one asset per modality (sorted by modality) and its label intervals (sorted by start). */
export interface ResolvedSession {
  participant: string;
  session: string;
  /** `participant/session`: the session vocabulary word. */
  key: string;
  assets: ResolvedAsset[];
  labels: ResolvedLabel[];
}

/** The outcome of {@link resolveQuery}. */
export interface ResolvedQuery {
  spec: QuerySpec;
  catalogDir: string;
  /** Sorted modality names (the modality index of a token is its position here). */
  modalities: string[];
  /** modality → derivation name. */
  derivations: Record<string, string>;
  participants: string[];
  /** Sessions sorted by key. */
  sessions: ResolvedSession[];
  /** Sessions left out for having no labels of the track (not an error unless none has any). */
  unlabelledSessions: string[];
}

/** Every problem found while resolving a query. */
export class QueryResolutionError extends Error {
  constructor(readonly problems: string[]) {
    const shown = problems.slice(0, 25);
    super(
      `Cannot resolve the QuerySpec against the catalog (${problems.length} problem${
        problems.length === 1 ? "" : "s"
      }):\n` +
        shown.map((p) => `  - ${p}`).join("\n") +
        (problems.length > shown.length ? `\n  - … and ${problems.length - shown.length} more` : ""),
    );
    this.name = "QueryResolutionError";
  }
}

/**
 * Resolves a query (throws {@link QueryResolutionError} listing all problems).
 *
 * @example
 * ```ts
 * const resolved = await resolveQuery(catalog, QuerySpec({ participants: ["p001", "p002"] }));
 * console.log(resolved.sessions.map((s) => s.key));
 * ```
 */
export async function resolveQuery(
  catalog: Catalog,
  input: QuerySpec | QuerySpecInput,
): Promise<ResolvedQuery> {
  const spec = QuerySpec(input as QuerySpecInput);
  const problems: string[] = [];
  const recordings = (await catalog.query(RECORDINGS_TABLE)) as unknown as RecordingRow[];
  if (recordings.length === 0) {
    throw new QueryResolutionError([
      `the catalog at ${catalog.dir} has no recordings; run \`orion data demo\` for the synthetic corpus or ` +
      `\`orion data import-edf <files> --participant <id>\` for your own data`,
    ]);
  }
  const allParticipants = [...new Set(recordings.map((r) => r.participant))].sort();
  let participants: string[];
  if (spec.participants === "*") participants = allParticipants;
  else {
    participants = [...new Set(spec.participants)];
    for (const p of participants) {
      if (!allParticipants.includes(p)) {
        problems.push(
          `participant ${p} is not in the catalog (it has ${
            describeList(allParticipants)
          }); import it with ` +
            `\`orion data import-edf <files> --participant ${p} --session <session>\``,
        );
      }
    }
    participants = participants.filter((p) => allParticipants.includes(p)).sort();
  }
  const excluded = new Set(spec.excludeParticipants);
  participants = participants.filter((p) => !excluded.has(p));
  if (participants.length === 0 && problems.length === 0) {
    problems.push(
      `no participant is left after excludeParticipants (${spec.excludeParticipants.join(", ")})`,
    );
  }

  // One derivation per requested modality.
  const modalities = [...new Set(spec.modalities)].sort();
  const derivations: Record<string, Derivation> = {};
  for (const name of spec.derived) {
    const d = DERIVATIONS.get(name);
    if (!d) {
      problems.push(
        `derived version '${name}' is unknown; known versions are ${[...DERIVATIONS.keys()].join(", ")}`,
      );
      continue;
    }
    if (!modalities.includes(d.modality)) continue;
    if (derivations[d.modality]) {
      problems.push(
        `modality '${d.modality}' has two derived versions (${
          derivations[d.modality].name
        }, ${name}) in QuerySpec.derived; keep one`,
      );
    }
    derivations[d.modality] = d;
  }
  for (const m of modalities) {
    if (!derivations[m]) {
      const known = [...DERIVATIONS.values()].filter((d) => d.modality === m).map((d) => d.name);
      problems.push(
        `modality '${m}' has no derived version in QuerySpec.derived; ` +
          (known.length > 0
            ? `add ${known.map((k) => `'${k}'`).join(" or ")}`
            : `no derivation exists for '${m}' yet`),
      );
    }
  }

  const derivedRows = (await catalog.query(DERIVED_ASSETS_TABLE)) as unknown as DerivedAssetRow[];
  const derivedById = new Map(derivedRows.map((r) => [r.derived_asset_id, r]));
  const labelRows =
    (await catalog.query(LABELS_TABLE, `track = ${sqlString(spec.labels)}`)) as unknown as LabelRow[];
  const missingDerived = new Map<string, Set<string>>();
  const sessions: ResolvedSession[] = [];
  const unlabelledSessions: string[] = [];
  for (const participant of participants) {
    const own = recordings.filter((r) => r.participant === participant);
    let sessionIds = [...new Set(own.map((r) => r.session))].sort();
    if (spec.sessions) {
      for (const s of spec.sessions) {
        if (!sessionIds.includes(s) && spec.participants !== "*") {
          problems.push(
            `participant ${participant} has no session '${s}' (it has ${describeList(sessionIds)})`,
          );
        }
      }
      sessionIds = sessionIds.filter((s) => spec.sessions!.includes(s));
    }
    for (const m of modalities) {
      if (!own.some((r) => r.modality === m)) {
        const command = m === "pupil" ? "import-pupil-csv <file>" : `import-edf <files> --modality ${m}`;
        problems.push(
          `participant ${participant} has no modality '${m}'; import it with \`orion data ${command} --participant ${participant} --session <session>\``,
        );
      }
    }
    for (const session of sessionIds) {
      const key = `${participant}/${session}`;
      const assets: ResolvedAsset[] = [];
      for (const m of modalities) {
        const recording = own.find((r) => r.session === session && r.modality === m);
        if (!recording) {
          if (own.some((r) => r.modality === m)) {
            const command = m === "pupil" ? "import-pupil-csv <file>" : `import-edf <files> --modality ${m}`;
            problems.push(
              `session ${key} has no modality '${m}'; import it with \`orion data ${command} --participant ${participant} --session ${session}\``,
            );
          }
          continue;
        }
        const derivation = derivations[m];
        if (!derivation) continue;
        const id = derivedAssetIdOf(derivation, recording.recording_hash);
        const row = derivedById.get(id);
        if (!row) {
          problems.push(
            `derived asset ${derivation.name} is not built for recording ${
              recording.recording_hash.slice(0, 12)
            } ` +
              `(${key} ${m}); run \`orion data derive ${derivation.name} --participant ${participant}\``,
          );
          let set = missingDerived.get(derivation.name);
          if (!set) missingDerived.set(derivation.name, set = new Set());
          set.add(participant);
          continue;
        }
        assets.push({
          modality: m,
          derivation: derivation.name,
          derivedAssetId: id,
          recordingHash: recording.recording_hash,
          channels: row.channels,
          samplingRate: row.sampling_rate,
          numSamples: row.num_samples,
          timeOffset: row.time_offset_s,
          chunkSamples: row.chunk_samples,
        });
      }
      const labels = labelRows.filter((l) =>
        l.participant === participant && l.session === session && l.end_s > l.start_s
      )
        .map((l) => ({ start: l.start_s, end: l.end_s, classIndex: l.class_index, value: l.value }))
        .sort((a, b) => a.start - b.start || a.end - b.end);
      if (labels.length === 0) unlabelledSessions.push(key);
      else sessions.push({ participant, session, key, assets, labels });
    }
  }
  if (problems.length === 0 && sessions.length === 0) {
    problems.push(
      `no selected session has '${spec.labels}' label intervals (QuerySpec.labels); EDF+ annotations ` +
        `'${spec.labels}=<class>' with a duration define them`,
    );
  }
  for (const [name, set] of missingDerived) {
    if (set.size > 1) {
      problems.push(
        `to build every missing ${name} asset at once: \`orion data derive ${name} --participant ${
          [...set].join(",")
        }\``,
      );
    }
  }
  if (problems.length > 0) throw new QueryResolutionError(problems);
  sessions.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return {
    spec,
    catalogDir: catalog.dir,
    modalities,
    derivations: Object.fromEntries(Object.entries(derivations).map(([m, d]) => [m, d.name])),
    participants,
    sessions,
    unlabelledSessions,
  };
}

function describeList(items: string[]): string {
  if (items.length === 0) return "none";
  if (items.length <= 6) return items.join(", ");
  return `${items.slice(0, 3).join(", ")}, …, ${items.slice(-2).join(", ")} (${items.length} in all)`;
}
