/**
 * Fuzzing the safetensors reader with random bytes, mutated valid files and adversarial headers. The
 * reader must either return a consistent file or throw a SafetensorsError — never another error, never
 * hang, never allocate more than its input.
 */
import assert from "node:assert/strict";
import {
  parseSafetensors,
  SAFETENSORS_DTYPE_BYTES,
  type SafetensorsDtype,
  SafetensorsError,
  serializeSafetensors,
} from "../../src/checkpoint/safetensors.ts";
import { hash32 } from "./synthetic_state.ts";

const SEED = 0x5afe;

/** A counter-based stream of random numbers keyed by (seed, case). */
class Stream {
  #i = 0;
  constructor(readonly seed: number, readonly stream: number) {}
  u32(): number {
    return hash32(this.seed, this.stream, this.#i++);
  }
  int(n: number): number {
    return this.u32() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
}

const DTYPES = Object.keys(SAFETENSORS_DTYPE_BYTES) as SafetensorsDtype[];
const NASTY_NUMBERS = [
  "0",
  "1",
  "-1",
  "8",
  "7",
  "4294967296",
  "9007199254740991",
  "9007199254740993",
  "18446744073709551615",
  "1e400",
  "1.5",
  "-0",
  "2.0",
  "1e2",
  "00",
  "+1",
  "0x10",
  "NaN",
  "Infinity",
  "123456789012345678901234567890",
];

function withLength(json: string, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const header = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + header.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(header.byteLength), true);
  out.set(header, 8);
  out.set(data, 8 + header.byteLength);
  return out;
}

function randomValidFile(r: Stream): Uint8Array {
  const tensors: Record<string, { dtype: SafetensorsDtype; shape: number[]; data: Uint8Array }> = {};
  const count = r.int(5);
  for (let i = 0; i < count; i++) {
    const dtype = r.pick(DTYPES);
    const shape = Array.from({ length: r.int(4) }, () => r.int(4));
    const n = shape.reduce((a, b) => a * b, 1);
    tensors[`t${i}.${r.int(100)}`] = {
      dtype,
      shape,
      data: new Uint8Array(n * SAFETENSORS_DTYPE_BYTES[dtype]),
    };
  }
  const metadata: Record<string, string> = r.chance(0.5) ? { k: "v", ["ü" + r.int(9)]: "✓" } : {};
  return serializeSafetensors(tensors, metadata);
}

function mutate(r: Stream, bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  switch (r.int(6)) {
    case 0: { // bit flips
      const flips = 1 + r.int(4);
      for (let i = 0; i < flips && out.length > 0; i++) out[r.int(out.length)] ^= 1 << r.int(8);
      return out;
    }
    case 1: // truncation
      return out.subarray(0, r.int(out.length + 1));
    case 2: { // extension
      const ext = new Uint8Array(out.length + 1 + r.int(16));
      ext.set(out);
      return ext;
    }
    case 3: { // forged length prefix
      const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
      if (out.length >= 8) {
        const forged = r.pick([
          0n,
          1n,
          2n,
          2n ** 32n,
          2n ** 63n,
          2n ** 64n - 1n,
          BigInt(r.u32()),
          BigInt(out.length),
        ]);
        dv.setBigUint64(0, forged, true);
      }
      return out;
    }
    case 4: { // overwrite a header digit with another digit (offset/shape tampering)
      for (let tries = 0; tries < 20; tries++) {
        const i = 8 + r.int(Math.max(1, out.length - 8));
        if (out[i] >= 0x30 && out[i] <= 0x39) {
          out[i] = 0x30 + r.int(10);
          break;
        }
      }
      return out;
    }
    default: { // random byte overwrite in the header region
      const i = r.int(Math.min(out.length, 200) + 1);
      if (i < out.length) out[i] = r.int(256);
      return out;
    }
  }
}

function randomHeaderJson(r: Stream): { json: string; dataLength: number } {
  const dataLength = r.pick([0, 4, 8, 16, 64, r.int(100)]);
  const parts: string[] = [];
  const count = r.int(5);
  for (let i = 0; i < count; i++) {
    const name = r.pick([
      '"a"',
      '"b"',
      '"__metadata__"',
      '"__proto__"',
      '""',
      '"a"',
      '"\\u0000"',
      '"\\ud800"',
    ]);
    if (name === '"__metadata__"' && r.chance(0.5)) {
      parts.push(`${name}:${r.pick(['{"x":"y"}', '{"x":1}', "[]", "null", '{"x":{"y":"z"}}', '"s"'])}`);
      continue;
    }
    const num = () => (r.chance(0.6) ? String(r.int(dataLength + 3)) : r.pick(NASTY_NUMBERS));
    const dtype = r.chance(0.8) ? `"${r.pick(DTYPES)}"` : r.pick(['"F33"', '"f32"', "1", "null", '""']);
    const shape = r.chance(0.9)
      ? `[${Array.from({ length: r.int(4) }, num).join(",")}]`
      : r.pick(['"2"', "{}", "null"]);
    const offsets = r.chance(0.9)
      ? `[${Array.from({ length: r.chance(0.9) ? 2 : r.int(4) }, num).join(",")}]`
      : r.pick(['"0,4"', "{}", "null"]);
    const fields = [`"dtype":${dtype}`, `"shape":${shape}`, `"data_offsets":${offsets}`];
    if (r.chance(0.1)) fields.splice(r.int(3), 1);
    if (r.chance(0.05)) fields.push(`"extra":true`);
    if (r.chance(0.05)) fields.push(fields[0]);
    parts.push(`${name}:{${fields.join(",")}}`);
  }
  let json = `{${parts.join(",")}}`;
  if (r.chance(0.1)) json = json.slice(0, r.int(json.length));
  if (r.chance(0.05)) json = `${"[".repeat(r.int(200))}${json}`;
  if (r.chance(0.2)) json += " ".repeat(r.int(8));
  return { json, dataLength };
}

/** Consistent layouts with one random perturbation: overlaps, gaps, wrong sizes, shifted offsets. */
function nearValidHeader(r: Stream): { json: string; dataLength: number } {
  const entries: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] =
    [];
  let offset = 0;
  const count = 1 + r.int(4);
  for (let i = 0; i < count; i++) {
    const dtype = r.pick(DTYPES);
    const shape = Array.from({ length: r.int(3) }, () => r.int(5));
    const bytes = shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_BYTES[dtype];
    entries.push({ name: `n${i}`, dtype, shape, begin: offset, end: offset + bytes });
    offset += bytes;
  }
  let dataLength = offset;
  const e = r.pick(entries);
  switch (r.int(6)) {
    case 0: // overlap with the previous tensor
      if (e.begin > 0) {
        const back = 1 + r.int(e.begin);
        e.begin -= back;
        e.end -= back;
      }
      break;
    case 1: // gap
      e.begin += 1;
      e.end += 1;
      dataLength += r.int(3);
      break;
    case 2: // end past the buffer
      e.end += 1 + r.int(8);
      break;
    case 3:
      dataLength += r.int(3) - 1;
      break;
    case 4:
      e.shape = [...e.shape, 2];
      break;
    default:
      break; // valid
  }
  const header: Record<string, unknown> = {};
  for (const t of r.chance(0.5) ? entries : [...entries].reverse()) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [t.begin, t.end] };
  }
  return { json: JSON.stringify(header), dataLength: Math.max(0, dataLength) };
}

function checkInvariants(input: Uint8Array, file: ReturnType<typeof parseSafetensors>): void {
  const headerLength = Number(new DataView(input.buffer, input.byteOffset, 8).getBigUint64(0, true));
  const dataLength = input.byteLength - 8 - headerLength;
  let total = 0;
  for (const [name, t] of Object.entries(file.tensors)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    assert.equal(t.data.length, count, name);
    assert.equal(t.data.byteLength, count * SAFETENSORS_DTYPE_BYTES[t.dtype], name);
    if (t.data.buffer === input.buffer) {
      assert.ok(t.data.byteOffset >= input.byteOffset + 8 + headerLength, name);
      assert.ok(t.data.byteOffset + t.data.byteLength <= input.byteOffset + input.byteLength, name);
    }
    total += t.data.byteLength;
  }
  assert.equal(total, dataLength, "tensors tile the data buffer exactly");
  for (const v of Object.values(file.metadata)) assert.equal(typeof v, "string");
}

Deno.test("safetensors fuzz: random, mutated and adversarial inputs only ever raise SafetensorsError", () => {
  const cases = 24_000;
  const stats = { accepted: 0, refused: 0 };
  const codes = new Map<string, number>();
  let slowest = 0;
  const heapAtStart = Deno.memoryUsage().heapUsed;
  let maxHeapGrowth = 0;
  const started = performance.now();
  for (let c = 0; c < cases; c++) {
    const r = new Stream(SEED, c);
    let input: Uint8Array;
    switch (c % 4) {
      case 0: {
        input = new Uint8Array(r.int(256));
        for (let i = 0; i < input.length; i++) input[i] = r.int(256);
        if (input.length >= 8 && r.chance(0.5)) {
          new DataView(input.buffer).setBigUint64(0, BigInt(r.int(input.length)), true);
        }
        break;
      }
      case 1:
        input = mutate(r, randomValidFile(r));
        break;
      case 2: {
        const { json, dataLength } = r.chance(0.5) ? nearValidHeader(r) : randomHeaderJson(r);
        input = withLength(json, new Uint8Array(dataLength));
        break;
      }
      default: {
        const { json, dataLength } = randomHeaderJson(r);
        input = mutate(r, withLength(json, new Uint8Array(dataLength)));
      }
    }
    const t0 = performance.now();
    try {
      const file = parseSafetensors(input);
      checkInvariants(input, file);
      stats.accepted++;
    } catch (e) {
      if (!(e instanceof SafetensorsError)) {
        throw new Error(`case ${c}: non-SafetensorsError ${e} for input ${Array.from(input.slice(0, 96))}`);
      }
      assert.match(e.message, /^Cannot read safetensors <bytes> as /);
      codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      stats.refused++;
    }
    slowest = Math.max(slowest, performance.now() - t0);
    if (c % 2000 === 0) maxHeapGrowth = Math.max(maxHeapGrowth, Deno.memoryUsage().heapUsed - heapAtStart);
  }
  const elapsed = performance.now() - started;
  // Both outcomes must be exercised, and refusals must cover the interesting checks.
  assert.ok(stats.accepted > 500, `accepted ${stats.accepted}`);
  assert.ok(stats.refused > 5000, `refused ${stats.refused}`);
  for (
    const code of [
      "header_beyond_file",
      "header_not_json",
      "size_mismatch",
      "offset_out_of_range",
      "overlap",
      "gap",
      "unknown_dtype",
      "bad_offsets",
      "bad_shape",
      "bad_tensor_name",
      "bad_metadata",
    ]
  ) {
    assert.ok((codes.get(code) ?? 0) > 0, `fuzzing never produced ${code}: ${JSON.stringify([...codes])}`);
  }
  assert.ok(slowest < 250, `slowest case took ${slowest.toFixed(1)} ms`);
  // Per-isolate heap (the process RSS is shared with parallel test files).
  assert.ok(maxHeapGrowth < 256 * 2 ** 20, `heap grew by ${(maxHeapGrowth / 2 ** 20).toFixed(0)} MiB`);
  console.log(
    `fuzz: ${cases} cases in ${
      elapsed.toFixed(0)
    } ms, accepted ${stats.accepted}, refused ${stats.refused}, slowest ${slowest.toFixed(2)} ms, codes ${
      JSON.stringify(Object.fromEntries(codes))
    }`,
  );
});

Deno.test("safetensors fuzz: a huge header is refused in bounded time", () => {
  // 2 MB of nested-looking but flat junk inside a well-formed length: must not hang or recurse.
  const json = `{"a":${'"x",'.repeat(1)}${"1,".repeat(500_000)}`;
  const t0 = performance.now();
  assert.throws(() => parseSafetensors(withLength(json, new Uint8Array(0))), SafetensorsError);
  const deep = `{"a":${"[".repeat(1_000_000)}`;
  assert.throws(() => parseSafetensors(withLength(deep, new Uint8Array(0))), SafetensorsError);
  assert.ok(performance.now() - t0 < 2000);
});
