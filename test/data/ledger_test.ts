import assert from "node:assert/strict";
import {
  DataLedger,
  insertInterval,
  intersectLedgers,
  type Interval,
  unionLedgers,
} from "../../src/data/ledger.ts";

Deno.test("intervals merge when they overlap or touch, and stay sorted", () => {
  const list: Interval[] = [];
  for (const [s, e] of [[10, 20], [0, 5], [5, 7], [30, 40], [19, 31], [50, 51]] as Interval[]) {
    insertInterval(list, s, e);
  }
  assert.deepEqual(list, [[0, 7], [10, 40], [50, 51]]);
  insertInterval(list, 0.1 * 3, 0.3 + 1); // float noise inside an interval
  assert.deepEqual(list, [[0, 7], [10, 40], [50, 51]]);
  insertInterval(list, 60, 60); // empty
  assert.equal(list.length, 3);
});

Deno.test("ledger union, JSON round trip, and intersection by recording", () => {
  const a = new DataLedger();
  a.add("rec1", ["d_eeg"], 0, 10);
  a.add("rec1", ["d_eeg"], 10, 20);
  a.add("rec2", ["d_pupil"], 5, 6);
  const b = new DataLedger();
  b.add("rec1", ["d_eeg_v2"], 15, 30); // same recording through another derivation
  b.add("rec3", ["d_eeg"], 0, 100);
  assert.deepEqual(a.toJSON(), {
    version: 1,
    entries: [
      { recording_hash: "rec1", derived_asset_ids: ["d_eeg"], intervals: [[0, 20]] },
      { recording_hash: "rec2", derived_asset_ids: ["d_pupil"], intervals: [[5, 6]] },
    ],
  });
  assert.deepEqual(DataLedger.fromJSON(JSON.stringify(a)).toJSON(), a.toJSON());
  assert.deepEqual(intersectLedgers(a, b), [{ recording_hash: "rec1", intervals: [[15, 20]], seconds: 5 }]);
  assert.deepEqual(intersectLedgers(b, a), [{ recording_hash: "rec1", intervals: [[15, 20]], seconds: 5 }]);
  const touching = new DataLedger();
  touching.add("rec1", ["x"], 20, 25);
  assert.deepEqual(intersectLedgers(a, touching), [], "half-open intervals that only touch do not overlap");
  const u = unionLedgers(a, b);
  assert.equal(u.totalSeconds(), 20 + 1 + 15 + 100);
  assert.throws(() => DataLedger.fromJSON({ version: 2, entries: [] }), /expected \{"version": 1/);
  assert.throws(
    () =>
      DataLedger.fromJSON({
        version: 1,
        entries: [{ recording_hash: "r", derived_asset_ids: [], intervals: [[3, 1]] }],
      }),
    /interval \[3,1\] is not \[start, end\]/,
  );
});
