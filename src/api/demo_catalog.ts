/**
 * `buildDemoCatalog`: the synthetic demo corpus (EEG + pupil recordings with cognitive-load labels, and
 * their derived signals) written into a catalog directory — what `orion data demo` does, as a function.
 *
 * @module
 */
import { openCatalog } from "../ursa/catalog.ts";
import { generateDemoCorpus } from "../ursa/demo_corpus.ts";

/** Options of {@link buildDemoCatalog}. */
export interface DemoCatalogOptions {
  /** Catalog directory (default `$ORION_HOME/catalog` or `./.orion/catalog`). */
  catalogDir?: string;
  /** Participants p001… (default 60). */
  participants?: number;
  /** Minutes of recording per participant, split over the sessions (default 5). */
  minutes?: number;
  /** Sessions per participant (default 3). */
  sessions?: number;
  /** Seed of the synthetic signals (default 2026). */
  seed?: number;
  /** Where the generated EDF/CSV files go (default `<catalog dir>/../demo_files`). */
  filesDir?: string;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** What {@link buildDemoCatalog} built. */
export interface DemoCatalogSummary {
  /** Participant ids. */
  participants: string[];
  /** Recordings imported. */
  recordings: number;
  /** Derived assets built. */
  derivedAssets: number;
  /** Wall time, seconds. */
  seconds: number;
}

/**
 * Builds the demo corpus into a catalog (the same seed always gives the same recordings).
 *
 * @example
 * ```ts
 * import { buildDemoCatalog } from "../../mod.ts";
 * const demo = await buildDemoCatalog({ catalogDir: "/tmp/orion-demo/catalog", participants: 6, minutes: 1 });
 * console.log(`${demo.recordings} recordings of ${demo.participants.length} participants`);
 * ```
 */
export async function buildDemoCatalog(options: DemoCatalogOptions = {}): Promise<DemoCatalogSummary> {
  const catalog = await openCatalog(options.catalogDir);
  try {
    const summary = await generateDemoCorpus(catalog, {
      participants: options.participants,
      minutes: options.minutes,
      sessions: options.sessions,
      seed: options.seed,
      filesDir: options.filesDir,
      log: options.log,
    });
    return {
      participants: summary.participants,
      recordings: summary.recordingHashes.length,
      derivedAssets: summary.derivedAssets,
      seconds: summary.seconds.total,
    };
  } finally {
    catalog.close();
  }
}
