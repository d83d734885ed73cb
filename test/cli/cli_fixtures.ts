/**
 * Shared fixtures of the CLI tests: temp working directories, config modules written into them, a fake
 * catalog and adapter, and an in-process `orion` run that records its output.
 *
 * @module
 */
import { join } from "node:path";
import {
  type AdapterDescription,
  type DataConfig,
  main,
  type PreflightContext,
  type Problem,
  problem,
  type QueryResolution,
  recordingIO,
} from "../../mod.ts";

/** `file://` URL of the repository's mod.ts, for config modules written outside the repository. */
export const MOD_URL = new URL("../../mod.ts", import.meta.url).href;

/** An H200-like adapter (limits from shared/notes/webgpu.md). */
export const FAKE_H200: AdapterDescription = {
  maxBufferSize: 4_292_870_144,
  maxStorageBufferBindingSize: 2_147_483_644,
  features: ["shader-f16", "timestamp-query"],
  description: "fake H200",
  deviceMemoryBytes: 141e9,
};

/** A tiny fake catalog: three participants, the standard derived assets, 40 windows per participant. */
export const FAKE_CATALOG = {
  participants: ["p001", "p002", "p003"],
  derived: ["standard_v2026q2.eeg_clean", "standard_v2026q2.pupil_dilation"],
  modalities: ["eeg", "pupil"],
  windowsPerParticipant: 40,
};

/** Resolves a query against {@link FAKE_CATALOG} the way the data layer reports problems (by field path). */
export function fakeResolveQuery(data: DataConfig): Promise<QueryResolution> {
  const q = data.ursaQuery;
  const problems: Problem[] = [];
  const asked = q.participants === "*" ? FAKE_CATALOG.participants : q.participants;
  asked.forEach((p, i) => {
    if (!FAKE_CATALOG.participants.includes(p)) {
      problems.push(problem(
        `data.ursaQuery.participants.${i}`,
        p,
        `Cannot find participant ${p} in the catalog: it holds ${FAKE_CATALOG.participants.join(", ")}`,
        "import the participant's recordings or remove it from the query",
      ));
    }
  });
  q.derived.forEach((d, i) => {
    if (!FAKE_CATALOG.derived.includes(d)) {
      problems.push(problem(
        `data.ursaQuery.derived.${i}`,
        d,
        `Cannot read derived asset ${d} as the catalog has no such derivation`,
        `derive it first (orion data derive ${d}) or use one of ${FAKE_CATALOG.derived.join(", ")}`,
      ));
    }
  });
  const present = asked.filter((p) =>
    FAKE_CATALOG.participants.includes(p) && !q.excludeParticipants.includes(p)
  );
  const windows = present.length * FAKE_CATALOG.windowsPerParticipant;
  return Promise.resolve({
    windowsTrain: Math.floor(windows * data.trainSplit),
    windowsVal: Math.floor(windows * data.valSplit),
    problems,
    layout: {
      tokensPerWindow: 2078,
      unitVocabSize: 1 + 34 * present.length,
      sessionVocabSize: 1 + 3 * present.length,
    },
  });
}

/** Pre-flight capabilities for tests: fake adapter and catalog; probing the real adapter is an error. */
export function fakePreflight(overrides: Partial<PreflightContext> = {}): Partial<PreflightContext> {
  return {
    adapter: FAKE_H200,
    resolveQuery: fakeResolveQuery,
    benchSuiteExists: (key) => ["cognitive_load_eval@1", "cognitive_load_eval@2"].includes(key),
    knownBenchSuites: () => ["cognitive_load_eval@1", "cognitive_load_eval@2"],
    freeDiskBytes: () => Promise.resolve(1e12),
    probeAdapter: () => Promise.reject(new Error("tests never probe the real adapter")),
    ...overrides,
  };
}

/** A valid base config module (imports the repository by absolute URL). */
export const BASE_CONFIG = `
import { BenchCompute, DataConfig, InfraConfig, ModelConfig, POYO, QuerySpec, RunConfig, TrainingConfig } from "${MOD_URL}";
export default RunConfig({
  name: "base_run",
  data: DataConfig({ ursaQuery: QuerySpec({ participants: ["p001", "p002"] }), trainWindow: 4, trainSplit: 0.8 }),
  model: ModelConfig({ cls: POYO, kwargs: { dim: 64, depth: 2, dimHead: 16, selfHeads: 2, numLatents: 16 } }),
  training: TrainingConfig({
    batchSize: 8,
    maxSteps: 200,
    ckptEveryNSteps: 50,
    valEveryNSteps: 50,
    benchSuites: ["cognitive_load_eval@1"],
    benchEveryNSteps: 100,
    benchCompute: BenchCompute({ mode: "inline" }),
  }),
  infra: InfraConfig({ accelerator: "cpu-software" }),
});
`;

let counter = 0;

/** Writes a config module with a unique file name (module URLs are cached per process). */
export async function writeConfig(dir: string, source: string, stem = "config"): Promise<string> {
  const file = join(dir, `${stem}_${counter++}.ts`);
  await Deno.writeTextFile(file, source);
  return file;
}

/** Every path under `dir` (relative), sorted: to prove a command created nothing. */
export async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    out.push(rel);
    if (entry.isDirectory) out.push(...await listTree(dir, rel));
  }
  return out.sort();
}

/** Runs `orion` in-process with recorded output. */
export async function runOrion(
  args: string[],
  cwd: string,
  preflight: Partial<PreflightContext> = fakePreflight(),
): Promise<{ code: number; stdout: string; stderr: string; text: string }> {
  const io = recordingIO();
  const code = await main(args, { cwd, io, preflight, debug: false });
  return { code, stdout: io.stdout.join("\n"), stderr: io.stderr.join("\n"), text: io.text() };
}
