import assert from "node:assert/strict";
import { type Catalog, openCatalog } from "../../src/ursa/catalog.ts";
import { writeEdf } from "../../src/ursa/edf_writer.ts";
import { importEdfFile, importPupilCsvFile } from "../../src/ursa/import_recording.ts";
import { parsePupilCsv } from "../../src/ursa/pupil_csv.ts";
import { SignalReader } from "../../src/ursa/signal_store.ts";

async function withCatalog(fn: (catalog: Catalog, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "orion_import_" });
  const catalog = await openCatalog(`${dir}/catalog`);
  try {
    await fn(catalog, dir);
  } finally {
    catalog.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function edfBytes(seed: number): Uint8Array {
  const fs = 128;
  const channel = (k: number) =>
    Float32Array.from({ length: fs * 6 }, (_, i) => 50 * Math.sin(i * 0.05 * (k + 1) + seed));
  return writeEdf({
    format: "edf+",
    signals: ["Fz", "Cz", "Pz"].map((label, k) => ({
      label,
      samplingRate: fs,
      samples: channel(k),
      physicalMin: -100,
      physicalMax: 100,
      physicalDimension: "uV",
    })),
    annotations: [
      { onset: 0, duration: 3, text: "cognitive_load=0" },
      { onset: 3, duration: 3, text: "cognitive_load=2" },
      { onset: 4.5, text: "button press" },
    ],
  });
}

Deno.test("EDF+ import stores samples, labels and the recording row; re-import is a no-op", async () => {
  await withCatalog(async (catalog, dir) => {
    await Deno.writeFile(`${dir}/a.edf`, edfBytes(1));
    const result = await importEdfFile(catalog, `${dir}/a.edf`, { participant: "p001", session: "s1" });
    assert.equal(result.status, "imported");
    assert.equal(result.numLabels, 3);
    assert.equal(result.durationS, 6);
    const rec = await catalog.get("recordings", result.recordingHash);
    assert.deepEqual(rec?.channels, ["Fz", "Cz", "Pz"]);
    assert.equal(rec?.sampling_rate, 128);
    assert.equal(rec?.num_samples, 768);
    const labels = await catalog.query("labels", "track = 'cognitive_load'");
    assert.deepEqual(labels.map((l) => [l.start_s, l.end_s, l.class_index]).sort(), [[0, 3, 0], [3, 6, 2]]);
    const reader = new SignalReader(catalog);
    const layout = {
      assetId: result.recordingHash,
      numChannels: 3,
      numSamples: 768,
      chunkSamples: rec!.chunk_samples as number,
    };
    const got = await reader.read({ layout, start: 100, length: 10 });
    assert.ok(Math.abs(got[2][0] - 50 * Math.sin(100 * 0.15 + 1)) < 0.01);
    const again = await importEdfFile(catalog, `${dir}/a.edf`, { participant: "p001", session: "s1" });
    assert.equal(again.status, "already_imported");
    assert.equal(await catalog.count("recordings"), 1);
    await assert.rejects(
      () => importEdfFile(catalog, `${dir}/a.edf`, { participant: "p002", session: "s1" }),
      /the same signal .* is already imported as p001\/s1 eeg/,
    );
    await Deno.writeFile(`${dir}/b.edf`, edfBytes(2));
    await assert.rejects(
      () => importEdfFile(catalog, `${dir}/b.edf`, { participant: "p001", session: "s1" }),
      /already has a different eeg recording .*import it under another --session/,
    );
  });
});

Deno.test("a truncated EDF is rejected and a failing write leaves nothing half-imported", async () => {
  await withCatalog(async (catalog, dir) => {
    const bytes = edfBytes(3);
    await Deno.writeFile(`${dir}/cut.edf`, bytes.subarray(0, bytes.length - 100));
    await assert.rejects(
      () => importEdfFile(catalog, `${dir}/cut.edf`, { participant: "p001", session: "s1" }),
      /Cannot read .*cut\.edf as EDF\/BDF: the data is truncated/,
    );
    assert.equal(await catalog.count("signals"), 0);
    assert.equal(await catalog.count("recordings"), 0);
    // Make the final (recordings) write fail after signals and labels were written.
    await Deno.writeFile(`${dir}/ok.edf`, bytes);
    const upsert = catalog.upsert.bind(catalog);
    catalog.upsert = (name, rows, key, options) => {
      if (name === "recordings") return Promise.reject(new Error("disk full (simulated)"));
      return upsert(name, rows, key, options);
    };
    await assert.rejects(
      () => importEdfFile(catalog, `${dir}/ok.edf`, { participant: "p001", session: "s1" }),
      /disk full/,
    );
    catalog.upsert = upsert;
    assert.equal(await catalog.count("signals"), 0, "signal chunks were removed");
    assert.equal(await catalog.count("labels"), 0, "labels were removed");
    assert.equal(await catalog.count("recordings"), 0);
  });
});

Deno.test("pupil CSV: validity, blinks as NaN, gap filling, time offset, and named errors", async () => {
  const rows = ["timestamp,left_diameter,right_diameter,validity"];
  for (let i = 0; i < 20; i++) {
    if (i === 7) continue; // a dropped row
    const t = 10 + i / 60;
    rows.push(`${t.toFixed(6)},${i === 3 ? 0 : 3.5},${4.0},${i === 5 ? 0 : 1}`);
  }
  const rec = parsePupilCsv(rows.join("\n"), "p.csv");
  assert.equal(rec.samplingRate, 60);
  assert.ok(Math.abs(rec.timeOffset - 10) < 1e-9);
  assert.deepEqual(rec.channels, ["pupil_left", "pupil_right"]);
  assert.equal(rec.samples[0].length, 20);
  assert.ok(Number.isNaN(rec.samples[0][3]), "zero diameter is a blink");
  assert.ok(
    Number.isNaN(rec.samples[1][5]) && Number.isNaN(rec.samples[0][5]),
    "validity 0 invalidates both eyes",
  );
  assert.ok(Number.isNaN(rec.samples[1][7]), "a dropped row is NaN");
  assert.equal(rec.samples[1][8], 4);
  assert.throws(() => parsePupilCsv("a,b\n1,2\n3,4\n", "x.csv"), /no time column/);
  assert.throws(
    () => parsePupilCsv("t,left\n0,3\n0.1,3\n0.05,3\n", "x.csv"),
    /row 4 has time 0.05 s, not after/,
  );
  assert.throws(
    () => parsePupilCsv("t,left\n0,3\n0.1,3\n0.2\n", "x.csv"),
    /row 4 has 1 cells but the header has 2/,
  );
  assert.throws(
    () => parsePupilCsv("t,left\n0,3\n0.1,3\n0.2,3\n0.33,3\n", "x.csv"),
    /off the 10 Hz sample grid/,
  );
  await withCatalog(async (catalog, dir) => {
    await Deno.writeTextFile(`${dir}/p.csv`, rows.join("\n"));
    const result = await importPupilCsvFile(catalog, `${dir}/p.csv`, { participant: "p001", session: "s1" });
    const rec = await catalog.get("recordings", result.recordingHash);
    assert.equal(rec?.modality, "pupil");
    assert.ok(Math.abs((rec?.time_offset_s as number) - 10) < 1e-9);
  });
});
