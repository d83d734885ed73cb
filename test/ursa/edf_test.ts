import assert from "node:assert/strict";
import { EdfFormatError, parseEdf, parseEdfHeader } from "../../src/ursa/edf_reader.ts";
import { formatEdfNumber, writeEdf } from "../../src/ursa/edf_writer.ts";
import type { EdfFormat } from "../../src/ursa/edf_format.ts";

function sine(n: number, fs: number, hz: number, amplitude: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => amplitude * Math.sin(2 * Math.PI * hz * i / fs));
}

for (const format of ["edf", "edf+", "bdf", "bdf+"] as EdfFormat[]) {
  Deno.test(`${format} round trip: header fields, physical values within half a digital step, annotations`, () => {
    const fs = 256;
    const a = sine(fs * 4, fs, 10, 120);
    const b = sine(fs * 4, fs, 3, 40);
    const slow = sine(64 * 4, 64, 1, 2);
    const plus = format.endsWith("+");
    const bytes = writeEdf({
      format,
      recordDuration: 1,
      signals: [
        {
          label: "Fz",
          samplingRate: fs,
          samples: a,
          physicalMin: -500,
          physicalMax: 500,
          physicalDimension: "uV",
        },
        {
          label: "Pz",
          samplingRate: fs,
          samples: b,
          physicalMin: -200,
          physicalMax: 300,
          digitalMin: -2000,
          digitalMax: 2000,
        },
        {
          label: "Resp",
          samplingRate: 64,
          samples: slow,
          physicalMin: -5,
          physicalMax: 5,
          prefiltering: "HP:0.1Hz",
        },
      ],
      annotations: plus
        ? [{ onset: 0.5, duration: 1.25, text: "cognitive_load=2" }, { onset: 3, text: "blink" }]
        : [],
      patientId: plus ? "P042 M 01-JAN-1990 Demo" : "demo",
    });
    const edf = parseEdf(bytes, `round.${format}`);
    assert.equal(edf.header.format, format);
    assert.equal(edf.header.numRecords, 4);
    assert.equal(edf.header.recordDuration, 1);
    assert.equal(edf.header.startDate, "01.01.26");
    assert.equal(edf.header.signals.length, plus ? 4 : 3);
    assert.deepEqual(edf.signals.map((s) => s.header.label), ["Fz", "Pz", "Resp"]);
    assert.deepEqual(edf.signals.map((s) => s.samplingRate), [256, 256, 64]);
    assert.equal(edf.signals[0].header.physicalDimension, "uV");
    assert.equal(edf.signals[2].header.prefiltering, "HP:0.1Hz");
    assert.equal(edf.signals[1].header.digitalMin, -2000);
    const expect = [a, b, slow];
    edf.signals.forEach((s, k) => {
      const h = s.header;
      const step = (h.physicalMax - h.physicalMin) / (h.digitalMax - h.digitalMin);
      assert.equal(s.physical.length, expect[k].length);
      let worst = 0;
      for (let i = 0; i < s.physical.length; i++) {
        worst = Math.max(worst, Math.abs(s.physical[i] - expect[k][i]));
      }
      assert.ok(
        worst <= step / 2 + 1e-5 * h.physicalMax,
        `${h.label}: error ${worst} > half step ${step / 2}`,
      );
      assert.ok(worst > 0 || step < 1e-4, "values pass through quantization");
    });
    if (plus) {
      assert.deepEqual(edf.annotations, [
        { onset: 0.5, duration: 1.25, text: "cognitive_load=2" },
        { onset: 3, duration: null, text: "blink" },
      ]);
    } else assert.deepEqual(edf.annotations, []);
  });
}

function validFile(): Uint8Array {
  return writeEdf({
    format: "edf+",
    signals: [{
      label: "Cz",
      samplingRate: 8,
      samples: sine(32, 8, 1, 10),
      physicalMin: -100,
      physicalMax: 100,
    }],
    annotations: [{ onset: 1, duration: 1, text: "x" }],
  });
}

function setField(bytes: Uint8Array, offset: number, width: number, text: string): Uint8Array {
  const copy = bytes.slice();
  const padded = text.padEnd(width, " ");
  for (let i = 0; i < width; i++) copy[offset + i] = padded.charCodeAt(i);
  return copy;
}

Deno.test("header edge cases: record count -1, digital→physical with an asymmetric range, header numbers", () => {
  const bytes = setField(validFile(), 236, 8, "-1");
  const edf = parseEdf(bytes, "unknown_count.edf");
  assert.equal(edf.header.numRecords, 4);
  // Digital -32768 maps to physical min and 32767 to physical max, linearly.
  const tiny = writeEdf({
    format: "edf",
    signals: [{
      label: "X",
      samplingRate: 2,
      samples: Float32Array.from([-1, 3, 1, 2.5]),
      physicalMin: -1,
      physicalMax: 3,
      digitalMin: 0,
      digitalMax: 4,
    }],
  });
  assert.deepEqual(Array.from(parseEdf(tiny).signals[0].physical), [-1, 3, 1, 3]); // 2.5 → digital 3.5 rounds to 4
  assert.equal(formatEdfNumber(-3276.8), "-3276.8");
  assert.equal(formatEdfNumber(0.000123456789), "0.000123");
  assert.equal(formatEdfNumber(12345678.9), "12345679");
  assert.throws(() => formatEdfNumber(123456789.5), /8-character EDF header field/);
  const header = parseEdfHeader(validFile());
  assert.equal(header.headerBytes, 256 * 3);
  assert.equal(header.reserved, "EDF+C");
});

Deno.test("corrupt and truncated files are rejected with the reason", () => {
  const good = validFile();
  const cases: [string, Uint8Array, RegExp][] = [
    ["tiny", good.subarray(0, 100), /fewer than the 256-byte fixed header/],
    ["truncated data", good.subarray(0, good.length - 5), /data is truncated: the header declares 4 records/],
    ["truncated header", good.subarray(0, 300), /header is truncated/],
    ["trailing bytes", new Uint8Array([...good, 1, 2, 3]), /3 bytes after its 4 declared data records/],
    ["bad version", setField(good, 0, 8, "1"), /version field must be "0"/],
    ["bad header size", setField(good, 184, 8, "512"), /256 × \(signals \+ 1\) = 768/],
    [
      "bad record count",
      setField(good, 236, 8, "abc"),
      /number of data records' must be an integer: current value is 'abc'/,
    ],
    ["bad date", setField(good, 168, 8, "1.1.2026"), /start date must be dd\.mm\.yy/],
    [
      "unknown count misaligned",
      setField(good.subarray(0, good.length - 2), 236, 8, "-1"),
      /not a whole number/,
    ],
    [
      "digital range",
      setField(good, 256 + 2 * (16 + 80 + 8 + 8 + 8), 8, "40000"),
      /digital range of signal 1 \(Cz\)/,
    ],
    [
      "non-ascii",
      (() => {
        const c = good.slice();
        c[20] = 200;
        return c;
      })(),
      /non-printable byte 0xc8/,
    ],
  ];
  for (const [name, bytes, pattern] of cases) {
    assert.throws(() => parseEdf(bytes, `${name}.edf`), (e: unknown) => {
      assert.ok(e instanceof EdfFormatError, `${name}: ${e}`);
      assert.match(e.message, pattern, name);
      assert.match(e.message, new RegExp(`^Cannot read ${name}\\.edf as EDF/BDF: `));
      return true;
    });
  }
  // A broken TAL: replace the terminating 0 of the first record's time-keeping TAL.
  const broken = good.slice();
  const recordStart = 256 * 3;
  const talStart = recordStart + 8 * 2; // after Cz's 8 samples
  assert.equal(broken[talStart], "+".charCodeAt(0));
  broken[talStart] = "x".charCodeAt(0);
  assert.throws(() => parseEdf(broken, "tal.edf"), /malformed onset/);
});

Deno.test("reader against a file assembled by hand from the specification (not through the writer)", () => {
  const f = (text: string, width: number) => text.padEnd(width, " ");
  // 2 signals: "EEG Cz" (4 samples/record, digital -100..100 ↔ physical -50..50 uV) and "EDF Annotations".
  let header = f("0", 8) + f("X M 02-AUG-1951 Jan_Smith", 80) +
    f("Startdate 16-SEP-1987 PSG-1234/1987 NN Telemetry03", 80);
  header += "16.09.87" + "20.35.00" + f(String(256 * 3), 8) + f("EDF+C", 44) + f("2", 8) + f("0.5", 8) +
    f("2", 4);
  header += f("EEG Cz", 16) + f("EDF Annotations", 16);
  header += f("AgAgCl electrode", 80) + f("", 80);
  header += f("uV", 8) + f("", 8);
  header += f("-50", 8) + f("-1", 8);
  header += f("50", 8) + f("1", 8);
  header += f("-100", 8) + f("-32768", 8);
  header += f("100", 8) + f("32767", 8);
  header += f("HP:0.1Hz", 80) + f("", 80);
  header += f("4", 8) + f("17", 8);
  header += f("", 32) + f("", 32);
  assert.equal(header.length, 768);
  const tal = (text: string, bytes: number) => {
    const out = new Uint8Array(bytes);
    out.set(new TextEncoder().encode(text));
    return out;
  };
  const samples = (values: number[]) => {
    const out = new Uint8Array(values.length * 2);
    const view = new DataView(out.buffer);
    values.forEach((v, i) => view.setInt16(2 * i, v, true));
    return out;
  };
  const records = [
    [samples([-100, 0, 100, 50]), tal("+0\x14\x14\x00+0.25\x150.5\x14cognitive_load=1\x14\x00", 34)],
    [samples([10, -10, 20, -20]), tal("+0.5\x14\x14\x00", 34)],
  ];
  const bytes = new Uint8Array(768 + 2 * (8 + 34));
  for (let i = 0; i < 768; i++) bytes[i] = header.charCodeAt(i);
  records.forEach(([s, a], r) => {
    bytes.set(s, 768 + r * 42);
    bytes.set(a, 768 + r * 42 + 8);
  });
  const edf = parseEdf(bytes, "hand.edf");
  assert.equal(edf.header.format, "edf+");
  assert.equal(edf.header.patientId, "X M 02-AUG-1951 Jan_Smith");
  assert.equal(edf.header.startTime, "20.35.00");
  assert.equal(edf.header.recordDuration, 0.5);
  assert.equal(edf.signals.length, 1);
  assert.equal(edf.signals[0].samplingRate, 8);
  assert.equal(edf.signals[0].header.transducer, "AgAgCl electrode");
  assert.deepEqual(Array.from(edf.signals[0].physical), [-50, 0, 50, 25, 5, -5, 10, -10]);
  assert.deepEqual(edf.annotations, [{ onset: 0.25, duration: 0.5, text: "cognitive_load=1" }]);
  // The second record's time-keeping TAL must say +0.5.
  const wrongTime = bytes.slice();
  wrongTime.set(tal("+0.7\x14\x14\x00", 34), 768 + 42 + 8);
  assert.throws(
    () => parseEdf(wrongTime, "hand.edf"),
    /data record 1 of this EDF\+C file starts at 0\.7 s instead of 0\.5 s/,
  );
});
