/**
 * `orion overlap`: the training ledger of a checkpoint intersected with a benchmark suite's held-out
 * ledger, another checkpoint's, a ledger file or a query's recordings. A checkpoint trained on the
 * default run split has no overlap with cognitive_load_eval@1; one with a planted held-out window has
 * exactly that window's overlap.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { main, recordingIO } from "../../mod.ts";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import { resolveQuery } from "../../src/ursa/resolve_query.ts";
import { openWindowDataset } from "../../src/data/window_dataset.ts";
import { DataLedger } from "../../src/data/ledger.ts";
import { writeCheckpoint } from "../../src/checkpoint/checkpoint_writer.ts";
import type { CheckpointState, JsonObject } from "../../src/checkpoint/checkpoint_state.ts";
import { openBenchData } from "../../src/bench/bench_data.ts";
import { getBenchmark } from "../../src/bench/registry.ts";
import type { OverlapReport } from "../../src/checkpoint/overlap_command.ts";
import "../../src/bench/cognitive_load_eval.ts";

const SUITE = "cognitive_load_eval@1";
const DERIVED = ["standard_v2026q2.eeg_clean", "standard_v2026q2.pupil_dilation"];
const KWARGS = { patch: 16, latentStep: 0.25, numLatents: 4 };

function state(ledger: DataLedger, catalogDir: string): CheckpointState {
  return {
    // As orion train writes it: the serialized-config envelope, and the model kwargs in the weights' metadata.
    config: {
      config: {
        data: {
          catalogDir,
          trainWindow: 1,
          evalWindowStride: null,
          ursaQuery: { modalities: ["eeg", "pupil"], derived: DERIVED },
        },
      },
      config_version: 1,
    },
    model: {
      weights: { w: { dtype: "F32", shape: [1], data: new Float32Array([1]) } },
      metadata: { kwargs: JSON.stringify(KWARGS) },
    },
    optimizer: { tensors: {}, state: {} },
    scheduler: {},
    rng: { cpu: {}, gpu: [] },
    dataloader: {},
    dataHashes: ledger.toJSON() as unknown as JsonObject,
    metrics: {},
    lineage: { parentRun: null, stepsConsumed: 0 },
  };
}

async function orion(
  args: string[],
  cwd: string,
): Promise<{ code: number; report: OverlapReport | null; text: string }> {
  const io = recordingIO();
  const code = await main(args, { cwd, io });
  let report: OverlapReport | null = null;
  try {
    report = JSON.parse(io.stdout.join("\n"));
  } catch { /* text output */ }
  return { code, report, text: io.text() };
}

Deno.test("orion overlap: clean split → none; planted held-out window → found; checkpoints, ledgers, queries", async () => {
  const root = await Deno.makeTempDir({ prefix: "orion_overlap_" });
  const catalogDir = join(root, "catalog");
  const catalog = await openCatalog(catalogDir);
  let open = true;
  try {
    await generateDemoCorpus(catalog, { participants: 6, minutes: 1, filesDir: join(root, "files") });
    // The training ledger of a run on the default split (salt "0"): every training window.
    const resolved = await resolveQuery(catalog, {});
    const ds = await openWindowDataset(catalog, resolved, {
      trainWindow: 1,
      ...KWARGS,
      trainSplit: 0.8,
      valSplit: 0.2,
      splitSalt: "0",
    });
    const clean = new DataLedger();
    for (const w of ds.split("train").windows) clean.addWindow(ds.windowRef(w));
    // One evaluation window of the suite's held-out data, planted into a copy.
    const suite = getBenchmark(SUITE).suite();
    const bench = await openBenchData(catalog, {
      query: suite.heldOutData(),
      isHeldOut: suite.isHeldOut?.bind(suite),
    }, {
      modalities: ["eeg", "pupil"],
      derived: DERIVED,
      trainWindow: 1,
      ...KWARGS,
    });
    const group = bench.groups[0];
    const window = group.windows[0];
    const planted = DataLedger.fromJSON(clean.toJSON());
    planted.add(window.recordingHash, ["planted"], window.start, window.end);
    const runDir = join(root, "runs", "demo");
    const cleanCkpt = await writeCheckpoint(runDir, 100, state(clean, catalogDir));
    const plantedCkpt = await writeCheckpoint(runDir, 200, state(planted, catalogDir));
    catalog.close();
    open = false;

    const none = await orion(["overlap", cleanCkpt.dir, SUITE, "--json"], root);
    assert.equal(none.code, 0, none.text);
    assert.equal(none.report!.overlaps.length, 0);
    assert.equal(none.report!.right.kind, "suite");
    assert.ok(none.report!.left.seconds > 0 && none.report!.right.seconds > 0, "both ledgers are non-empty");
    const text = await orion(["overlap", cleanCkpt.dir, SUITE], root);
    assert.match(text.text, /overlap\s+none: the two sets of samples are disjoint/);

    const found = await orion(["overlap", plantedCkpt.dir, SUITE, "--json"], root);
    assert.equal(found.code, 1, found.text);
    assert.equal(found.report!.overlaps.length, 1);
    const o = found.report!.overlaps[0];
    assert.equal(o.recording_hash, window.recordingHash);
    assert.equal(o.session, group.session);
    assert.ok(Math.abs(o.seconds - (window.end - window.start)) < 1e-6, `overlap ${o.seconds} s`);
    const foundText = await orion(["overlap", plantedCkpt.dir, SUITE], root);
    assert.match(
      foundText.text,
      new RegExp(
        `1 recording\\(s\\), 1\\.000 s in total:\\n\\s+${
          o.recording_hash.slice(0, 16)
        } \\(${group.session}\\)`,
      ),
    );

    // Checkpoint against checkpoint: the clean ledger is inside the planted one.
    const both = await orion(["overlap", cleanCkpt.dir, plantedCkpt.dir, "--json"], root);
    assert.equal(both.code, 1);
    assert.ok(Math.abs(both.report!.seconds - clean.totalSeconds()) < 1e-6);
    // A ledger file.
    const file = join(root, "held_out.json");
    await Deno.writeTextFile(file, JSON.stringify(bench.heldOutLedger.toJSON()));
    const fromFile = await orion(["overlap", plantedCkpt.dir, file, "--json"], root);
    assert.equal(fromFile.code, 1);
    assert.equal(fromFile.report!.right.kind, "ledger");
    assert.equal(fromFile.report!.overlaps.length, 1);
    // Queries: the held-out sessions are disjoint from training; a training participant is not.
    const heldOutSessions = await orion(
      [
        "overlap",
        cleanCkpt.dir,
        JSON.stringify({ participants: ["p006"], sessions: ["s2", "s3"] }),
        "--json",
      ],
      root,
    );
    assert.equal(heldOutSessions.code, 0, heldOutSessions.text);
    assert.equal(heldOutSessions.report!.right.kind, "query");
    assert.ok(heldOutSessions.report!.right.recordings > 0);
    const trainParticipant = await orion(
      ["overlap", cleanCkpt.dir, '{"participants": ["p001"]}', "--json"],
      root,
    );
    assert.equal(trainParticipant.code, 1);
    assert.ok(trainParticipant.report!.overlaps.every((x) => x.session?.startsWith("p001/")));

    const unknownSuite = await orion(["overlap", cleanCkpt.dir, "no_such_eval@3"], root);
    assert.equal(unknownSuite.code, 2);
    assert.match(
      unknownSuite.text,
      /no such suite is registered: current suites are .*cognitive_load_eval@1/,
    );
    const notACheckpoint = await orion(["overlap", join(root, "nope"), SUITE], root);
    assert.equal(notACheckpoint.code, 2);
    assert.match(notACheckpoint.text, /is not a directory and it is not a checkpoint hash/);
  } finally {
    if (open) catalog.close();
    await Deno.remove(root, { recursive: true });
  }
});
