/**
 * Importing many files: parsing and hashing run on a worker pool, writes go to the catalog in batches
 * (`importRecordings`, all-or-nothing per batch). A file that fails to parse is reported with its reason
 * and nothing of it is written; the other files still import. The next batch is parsed while the current
 * one is written.
 *
 * @module
 */
import type { Catalog } from "./catalog.ts";
import {
  type ImportEdfOptions,
  type ImportPupilOptions,
  importRecordings,
  type ImportResult,
  type PreparedRecording,
} from "./import_recording.ts";
import { runUrsaTask } from "./ursa_tasks.ts";
import type { WorkerPool } from "./worker_pool.ts";

/** One file to import. */
export type ImportJob =
  | { kind: "edf"; path: string; options: ImportEdfOptions }
  | { kind: "pupil_csv"; path: string; options: ImportPupilOptions };

/** A file that was not imported, and why. */
export interface ImportFailure {
  path: string;
  reason: string;
}

/** Outcome of {@link importFiles}. */
export interface ImportFilesReport {
  results: ImportResult[];
  failures: ImportFailure[];
}

/**
 * Imports files in batches.
 *
 * @example
 * ```ts
 * const report = await importFiles(catalog, [{ kind: "edf", path: "a.edf", options: { participant: "p001" } }]);
 * for (const f of report.failures) console.error(f.reason);
 * ```
 */
export async function importFiles(
  catalog: Catalog,
  jobs: ImportJob[],
  options: { pool?: WorkerPool; batchSize?: number; onResult?: (r: ImportResult) => void } = {},
): Promise<ImportFilesReport> {
  const batchSize = options.batchSize ?? 24;
  const report: ImportFilesReport = { results: [], failures: [] };
  const prepare = (batch: ImportJob[]) =>
    Promise.allSettled(batch.map((job) => {
      const task = job.kind === "edf"
        ? { kind: "prepare_edf" as const, path: job.path, options: job.options }
        : { kind: "prepare_pupil" as const, path: job.path, options: job.options };
      return options.pool ? options.pool.run(task) : runUrsaTask(task);
    }));
  let next = jobs.length > 0 ? prepare(jobs.slice(0, batchSize)) : undefined;
  for (let start = 0; start < jobs.length; start += batchSize) {
    const batch = jobs.slice(start, start + batchSize);
    const settled = await next!;
    next = start + batchSize < jobs.length
      ? prepare(jobs.slice(start + batchSize, start + 2 * batchSize))
      : undefined;
    const ready: PreparedRecording[] = [];
    settled.forEach((s, i) => {
      if (s.status === "fulfilled") ready.push(s.value as PreparedRecording);
      else {report.failures.push({
          path: batch[i].path,
          reason: (s.reason as Error).message ?? String(s.reason),
        });}
    });
    try {
      const results = await importRecordings(catalog, ready);
      for (const r of results) options.onResult?.(r);
      report.results.push(...results);
    } catch (error) {
      // A conflict in the batch: retry file by file so only the conflicting files fail.
      for (const one of ready) {
        try {
          const [r] = await importRecordings(catalog, [one]);
          options.onResult?.(r);
          report.results.push(r);
        } catch (e) {
          report.failures.push({ path: one.sourcePath, reason: (e as Error).message });
        }
      }
      void error;
    }
  }
  return report;
}
