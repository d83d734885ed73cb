/**
 * The data side of a run: the catalog (building the demo corpus when it is empty), the resolved query,
 * the windowed dataset and the model's vocabularies — shared by training, resume, evaluation and the
 * pre-flight check.
 *
 * @module
 */
import type { RunConfig } from "../config/run_config.ts";
import type { QueryResolution } from "../config/preflight.ts";
import { problem } from "../config/problem.ts";
import { type Catalog, openCatalog } from "../ursa/catalog.ts";
import { RECORDINGS_TABLE } from "../ursa/catalog_tables.ts";
import { ensureDemoCatalog } from "../ursa/demo_corpus.ts";
import { QueryResolutionError, resolveQuery } from "../ursa/resolve_query.ts";
import { openWindowDataset, type WindowDataset } from "../data/window_dataset.ts";
import type { PoyoVocabulary } from "../models/poyo.ts";
import type { ResolvedPoyoKwargs } from "../models/poyo_kwargs.ts";

/** Everything a run reads data through. */
export interface RunData {
  catalog: Catalog;
  dataset: WindowDataset;
  vocab: PoyoVocabulary;
  kwargs: ResolvedPoyoKwargs;
}

/** The run's POYO kwargs with `numClasses` taken from the data when the config leaves it open. */
export function resolvedKwargs(config: RunConfig, numClasses: number): ResolvedPoyoKwargs {
  const k = config.model.kwargs as Record<string, unknown>;
  return {
    ...(k as unknown as ResolvedPoyoKwargs),
    latentStep: (k.latentStep as number | undefined) ?? config.data.trainWindow / 8,
    numClasses: (k.numClasses as number | undefined) ?? numClasses,
  };
}

/**
 * Opens the run's catalog and dataset. An empty catalog gets the demo corpus first (announced through
 * `print`). `baseVocab` extends an existing vocabulary (finetuning: known words keep their rows).
 */
export async function openRunData(
  config: RunConfig,
  options: { print?: (line: string) => void; baseVocab?: { channels: string[]; sessions: string[] } } = {},
): Promise<RunData> {
  const catalog = await openCatalog(config.data.catalogDir ?? undefined);
  await ensureDemoCatalog(catalog, { print: options.print });
  const resolved = await resolveQuery(catalog, config.data.ursaQuery);
  const k = config.model.kwargs as Record<string, unknown>;
  const latentStep = (k.latentStep as number | undefined) ?? config.data.trainWindow / 8;
  const dataset = await openWindowDataset(catalog, resolved, {
    trainWindow: config.data.trainWindow,
    trainSplit: config.data.trainSplit,
    valSplit: config.data.valSplit ?? undefined,
    splitSalt: String(config.data.splitSeed),
    patch: k.patch as number,
    latentStep,
    numLatents: k.numLatents as number,
    vocab: options.baseVocab,
    loaderWorkers: config.data.loaderWorkers ?? undefined,
  });
  const kwargs = resolvedKwargs(config, dataset.numClasses);
  return {
    catalog,
    dataset,
    vocab: {
      channels: dataset.vocab.channels,
      sessions: dataset.vocab.sessions,
      modalities: dataset.modalities,
    },
    kwargs,
  };
}

/**
 * Pre-flight's view of the data: windows per split and the data layout for the memory estimate, or the
 * query's problems. Never writes: an empty catalog is reported as "the demo corpus will be built" with
 * the demo's layout assumed.
 */
export async function preflightRunData(config: RunConfig): Promise<QueryResolution> {
  const catalog = await openCatalog(config.data.catalogDir ?? undefined);
  if ((await catalog.count(RECORDINGS_TABLE)) === 0) {
    return {
      windowsTrain: Number.POSITIVE_INFINITY,
      windowsVal: Number.POSITIVE_INFINITY,
      problems: [
        problem(
          "data.catalogDir",
          config.data.catalogDir,
          `The catalog at ${catalog.dir} is empty: the synthetic demo corpus will be built before training (about a minute)`,
          "import your own recordings with `orion data import-edf` to train on them",
          "warning",
        ),
      ],
    };
  }
  try {
    const resolved = await resolveQuery(catalog, config.data.ursaQuery);
    const k = config.model.kwargs as Record<string, unknown>;
    const dataset = await openWindowDataset(catalog, resolved, {
      trainWindow: config.data.trainWindow,
      trainSplit: config.data.trainSplit,
      valSplit: config.data.valSplit ?? undefined,
      splitSalt: String(config.data.splitSeed),
      patch: k.patch as number,
      latentStep: (k.latentStep as number | undefined) ?? config.data.trainWindow / 8,
      numLatents: k.numLatents as number,
    });
    return {
      windowsTrain: dataset.split("train").numWindows,
      windowsVal: dataset.split("val").numWindows,
      problems: [],
      layout: {
        tokensPerWindow: dataset.numTokens,
        unitVocabSize: dataset.vocab.channels.length,
        sessionVocabSize: dataset.vocab.sessions.length,
        modalities: dataset.modalities,
        numClasses: dataset.numClasses,
        numQueries: dataset.numQueries,
      },
    };
  } catch (e) {
    if (e instanceof QueryResolutionError) {
      return {
        windowsTrain: 0,
        windowsVal: 0,
        problems: e.problems.map((p) => problem(queryFieldOf(p), config.data.ursaQuery, p, fixOf(p))),
      };
    }
    throw e;
  }
}

/** The QuerySpec field a resolution problem is about (for the field path of the report). */
function queryFieldOf(message: string): string {
  if (/derived|derivation/i.test(message)) return "data.ursaQuery.derived";
  if (/modalit/i.test(message)) return "data.ursaQuery.modalities";
  if (/session/i.test(message)) return "data.ursaQuery.sessions";
  if (/label/i.test(message)) return "data.ursaQuery.labels";
  if (/participant/i.test(message)) return "data.ursaQuery.participants";
  return "data.ursaQuery";
}

function fixOf(message: string): string {
  const command = message.match(/`(orion [^`]+)`/);
  return command
    ? `run \`${command[1]}\``
    : "change the query or import the missing data (`orion data ls` lists the catalog)";
}
