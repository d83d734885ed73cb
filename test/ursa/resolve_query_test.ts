import assert from "node:assert/strict";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import { writeEdf } from "../../src/ursa/edf_writer.ts";
import { importEdfFile } from "../../src/ursa/import_recording.ts";
import { QueryResolutionError, resolveQuery } from "../../src/ursa/resolve_query.ts";
import { QuerySpec } from "../../src/ursa/query_spec.ts";

Deno.test("resolveQuery: exact assets, and one error naming every problem with its fix", async () => {
  const dir = await Deno.makeTempDir({ prefix: "orion_resolve_" });
  const catalog = await openCatalog(`${dir}/catalog`);
  try {
    await assert.rejects(
      () => resolveQuery(catalog, QuerySpec()),
      /has no recordings; run `orion data demo`/,
    );
    await generateDemoCorpus(catalog, { participants: 2, minutes: 0.5, sessions: 1 });
    const resolved = await resolveQuery(catalog, QuerySpec());
    assert.deepEqual(resolved.participants, ["p001", "p002"]);
    assert.deepEqual(resolved.modalities, ["eeg", "pupil"]);
    assert.deepEqual(resolved.sessions.map((s) => s.key), ["p001/s1", "p002/s1"]);
    const [eeg, pupil] = resolved.sessions[0].assets;
    assert.equal(eeg.modality, "eeg");
    assert.equal(eeg.samplingRate, 128);
    assert.equal(eeg.channels.length, 32);
    assert.equal(pupil.samplingRate, 32);
    assert.deepEqual(pupil.channels, ["pupil_left", "pupil_right"]);
    assert.equal(resolved.sessions[0].labels.length, 6);
    assert.deepEqual(resolved.sessions[0].labels.map((l) => l.classIndex).sort(), [0, 0, 1, 1, 2, 2]);

    const excluded = await resolveQuery(catalog, { excludeParticipants: ["p002"], modalities: ["eeg"] });
    assert.deepEqual(excluded.sessions.map((s) => s.key), ["p001/s1"]);
    assert.deepEqual(excluded.sessions[0].assets.map((a) => a.modality), ["eeg"]);

    // p003: EEG only and not derived; p099: absent.
    const fs = 256;
    await Deno.writeFile(
      `${dir}/p003.edf`,
      writeEdf({
        format: "edf+",
        signals: [{
          label: "Fz",
          samplingRate: fs,
          samples: new Float32Array(fs * 20),
          physicalMin: -100,
          physicalMax: 100,
        }],
        annotations: [{ onset: 0, duration: 10, text: "cognitive_load=1" }],
      }),
    );
    const p003 = await importEdfFile(catalog, `${dir}/p003.edf`, { participant: "p003", session: "s1" });
    const error = await resolveQuery(catalog, { participants: ["p001", "p003", "p099"] }).catch((e) => e);
    assert.ok(error instanceof QueryResolutionError);
    const text = error.problems.join("\n");
    assert.match(
      text,
      /participant p099 is not in the catalog \(it has p001, p002, p003\); import it with `orion data import-edf <files> --participant p099/,
    );
    assert.match(
      text,
      /participant p003 has no modality 'pupil'; import it with `orion data import-pupil-csv <file> --participant p003/,
    );
    assert.match(
      text,
      new RegExp(
        `derived asset standard_v2026q2\\.eeg_clean is not built for recording ${
          p003.recordingHash.slice(0, 12)
        } \\(p003/s1 eeg\\); ` +
          "run `orion data derive standard_v2026q2\\.eeg_clean --participant p003`",
      ),
    );
    assert.equal(error.problems.length, 3);
    assert.match(error.message, /^Cannot resolve the QuerySpec against the catalog \(3 problems\)/);

    await assert.rejects(
      () =>
        resolveQuery(catalog, {
          participants: ["p001"],
          modalities: ["eeg"],
          derived: ["standard_v2026q2.nope"],
        }),
      /derived version 'standard_v2026q2\.nope' is unknown[\s\S]*modality 'eeg' has no derived version in QuerySpec\.derived; add 'standard_v2026q2\.eeg_clean'/,
    );
    await assert.rejects(
      () => resolveQuery(catalog, { participants: ["p001"], labels: "arousal" }),
      /no selected session has 'arousal' label intervals/,
    );
  } finally {
    catalog.close();
    await Deno.remove(dir, { recursive: true });
  }
});
