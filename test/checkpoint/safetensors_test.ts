import assert from "node:assert/strict";
import {
  encodeSafetensors,
  parseSafetensors,
  readSafetensorsFile,
  SAFETENSORS_DTYPE_BYTES,
  type SafetensorsDtype,
  SafetensorsError,
  type SafetensorsErrorCode,
  serializeSafetensors,
} from "../../src/checkpoint/safetensors.ts";

/** Builds a file from a raw header object and a data buffer, with no validation. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

function refused(bytes: Uint8Array, code: SafetensorsErrorCode, messagePart?: RegExp): void {
  assert.throws(() => parseSafetensors(bytes, { source: "t.safetensors" }), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, /^Cannot read safetensors t\.safetensors as /);
    if (messagePart) assert.match(e.message, messagePart);
    return true;
  });
}

Deno.test("safetensors: every dtype round-trips with zero-copy aligned views", () => {
  const tensors: Record<string, { dtype: SafetensorsDtype; shape: number[]; data: ArrayBufferView }> = {
    f32: { dtype: "F32", shape: [2, 3], data: Float32Array.of(1, -2, 3.5, Math.PI, -0, 1e-30) },
    f64: { dtype: "F64", shape: [2], data: Float64Array.of(Math.E, -1e300) },
    f16: { dtype: "F16", shape: [3], data: Uint16Array.of(0x3c00, 0xc000, 0x7bff) },
    bf16: { dtype: "BF16", shape: [1, 1, 2], data: Uint16Array.of(0x3f80, 0xbf80) },
    i32: { dtype: "I32", shape: [3], data: Int32Array.of(-1, 0, 2147483647) },
    u32: { dtype: "U32", shape: [1], data: Uint32Array.of(4294967295) },
    i64: { dtype: "I64", shape: [2], data: BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n) },
    u64: { dtype: "U64", shape: [1], data: BigUint64Array.of(2n ** 64n - 1n) },
    u8: { dtype: "U8", shape: [5], data: Uint8Array.of(0, 1, 2, 254, 255) },
    i8: { dtype: "I8", shape: [2], data: Int8Array.of(-128, 127) },
    i16: { dtype: "I16", shape: [1], data: Int16Array.of(-32768) },
    u16: { dtype: "U16", shape: [1], data: Uint16Array.of(65535) },
    bool: { dtype: "BOOL", shape: [3], data: Uint8Array.of(1, 0, 1) },
    f8: { dtype: "F8_E4M3", shape: [1], data: Uint8Array.of(0x38) },
    scalar: { dtype: "F32", shape: [], data: Float32Array.of(42) },
    empty: { dtype: "I64", shape: [0, 4], data: new BigInt64Array(0) },
  };
  const bytes = serializeSafetensors(tensors, { format: "pt", note: "ü ✓" });
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLength % 8, 0, "header padded to 8 bytes");
  const file = parseSafetensors(bytes);
  assert.deepEqual(file.metadata, { format: "pt", note: "ü ✓" });
  assert.deepEqual(Object.keys(file.tensors).sort(), Object.keys(tensors).sort());
  assert.equal(file.views.copied, 0);
  for (const [name, t] of Object.entries(tensors)) {
    const got = file.tensors[name];
    assert.equal(got.dtype, t.dtype);
    assert.deepEqual(got.shape, t.shape);
    assert.deepEqual(
      new Uint8Array(got.data.buffer, got.data.byteOffset, got.data.byteLength),
      new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      name,
    );
    assert.equal(got.data.buffer, bytes.buffer, `${name} is a view, not a copy`);
  }
  assert.ok(file.tensors.i64.data instanceof BigInt64Array);
  assert.ok(file.tensors.bf16.data instanceof Uint16Array);
});

Deno.test("safetensors: data is written in dtype-size order so every offset is aligned", () => {
  const enc = encodeSafetensors({
    a_u8: { dtype: "U8", shape: [3], data: new Uint8Array(3) },
    b_f32: { dtype: "F32", shape: [1], data: new Float32Array(1) },
    c_f64: { dtype: "F64", shape: [1], data: new Float64Array(1) },
  });
  const header = JSON.parse(new TextDecoder().decode(enc.header.subarray(8)));
  assert.deepEqual(header.c_f64.data_offsets, [0, 8]);
  assert.deepEqual(header.b_f32.data_offsets, [8, 12]);
  assert.deepEqual(header.a_u8.data_offsets, [12, 15]);
  assert.equal(enc.byteLength, enc.header.byteLength + 15);
});

Deno.test("safetensors: a misaligned buffer yields aligned copies with the same content", () => {
  const bytes = serializeSafetensors({ w: { dtype: "F32", shape: [4], data: Float32Array.of(1, 2, 3, 4) } });
  const shifted = new Uint8Array(bytes.byteLength + 1);
  shifted.set(bytes, 1);
  const file = parseSafetensors(shifted.subarray(1));
  assert.deepEqual(file.views, { zeroCopy: 0, copied: 1 });
  assert.deepEqual([...file.tensors.w.data as Float32Array], [1, 2, 3, 4]);
});

Deno.test("safetensors: writer refuses invalid input with SafetensorsError", () => {
  const cases: [Parameters<typeof encodeSafetensors>[0], SafetensorsErrorCode][] = [
    [{ w: { dtype: "F32", shape: [3], data: new Float32Array(2) } }, "size_mismatch"],
    [{ w: { dtype: "F32", shape: [2], data: new Int32Array(2) } }, "bad_input"],
    [{ w: { dtype: "F33" as SafetensorsDtype, shape: [1], data: new Float32Array(1) } }, "unknown_dtype"],
    [{ w: { dtype: "F32", shape: [-1], data: new Float32Array(1) } }, "bad_shape"],
    [{ w: { dtype: "F32", shape: [1.5], data: new Float32Array(1) } }, "bad_shape"],
    [{ "": { dtype: "F32", shape: [1], data: new Float32Array(1) } }, "bad_tensor_name"],
    [{ __metadata__: { dtype: "F32", shape: [1], data: new Float32Array(1) } }, "bad_tensor_name"],
    [{ w: { dtype: "F32", shape: [2 ** 30, 2 ** 30], data: new Float32Array(1) } }, "bad_shape"],
  ];
  for (const [tensors, code] of cases) {
    assert.throws(
      () => encodeSafetensors(tensors),
      (e: unknown) => e instanceof SafetensorsError && e.code === code,
    );
  }
  assert.throws(
    () => encodeSafetensors({}, { n: 5 as unknown as string }),
    (e: unknown) => e instanceof SafetensorsError && e.code === "bad_metadata",
  );
});

Deno.test("safetensors: raw Uint8Array bytes are accepted for any dtype", () => {
  const raw = new Uint8Array(new Float32Array([1.5, 2.5]).buffer);
  const file = parseSafetensors(serializeSafetensors({ w: { dtype: "F32", shape: [2], data: raw } }));
  assert.deepEqual([...file.tensors.w.data as Float32Array], [1.5, 2.5]);
});

Deno.test("safetensors: reader refuses each kind of malformed header precisely", () => {
  const data8 = new Uint8Array(8);
  const t = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
  refused(new Uint8Array(5), "file_too_small");
  // Header length beyond the file, and absurdly large.
  const beyond = new Uint8Array(16);
  new DataView(beyond.buffer).setBigUint64(0, 100n, true);
  refused(beyond, "header_beyond_file", /current value is 100/);
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
  refused(huge, "header_beyond_file", /18446744073709551615/);
  assert.throws(
    () => parseSafetensors(rawFile({ w: t("U8", [8], [0, 8]) }, data8), { maxHeaderBytes: 10 }),
    (e: unknown) => e instanceof SafetensorsError && e.code === "header_too_large",
  );
  refused(rawFile(null, undefined, "[1,2]"), "header_not_json", /start with '\{'/);
  refused(rawFile(null, undefined, '{"a": '), "header_not_json", /unexpected end/);
  refused(rawFile(null, undefined, "{}garbage"), "header_not_json");
  const badUtf8 = rawFile(null, undefined, '{"x":"  "}');
  badUtf8[8 + 6] = 0xff;
  refused(badUtf8, "header_not_utf8");
  refused(
    rawFile({ w: t("F32", [2], [0, 8]) }, data8).map((byte, i) => (i === 8 ? 0x20 : byte)),
    "header_not_json",
  );
  refused(rawFile({ __metadata__: { a: 1 } }), "bad_metadata", /current value of "a" is 1/);
  refused(rawFile({ __metadata__: ["x"] }), "bad_metadata");
  refused(rawFile({ w: "nope" }), "bad_tensor_info");
  refused(rawFile({ w: { dtype: "F32", shape: [2] } }, data8), "bad_tensor_info", /must have dtype/);
  refused(rawFile({ w: { ...t("F32", [2], [0, 8]), extra: 1 } }, data8), "bad_tensor_info", /unknown field/);
  refused(rawFile({ w: t("F31", [2], [0, 8]) }, data8), "unknown_dtype", /"F31"/);
  refused(rawFile({ w: t("F32", [-2], [0, 8]) }, data8), "bad_shape");
  refused(rawFile({ w: t("F32", "2", [0, 8]) }, data8), "bad_shape");
  refused(
    rawFile(null, data8, '{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}'),
    "bad_shape",
    /2\.0/,
  );
  refused(rawFile({ w: t("F32", [2], [0]) }, data8), "bad_offsets");
  refused(rawFile({ w: t("F32", [2], [8, 0]) }, data8), "bad_offsets", /begin after they end/);
  refused(rawFile({ w: t("F32", [2], [0, 9007199254740993]) }, data8), "bad_offsets");
  refused(rawFile({ w: t("F32", [4], [0, 16]) }, data8), "offset_out_of_range", /\[0, 16\]/);
  refused(rawFile({ w: t("F32", [3], [0, 8]) }, data8), "size_mismatch", /needs 12 bytes/);
  refused(rawFile({ w: t("F32", [2 ** 26, 2 ** 26, 2 ** 26], [0, 8]) }, data8), "bad_shape", /2\^53/);
  refused(
    rawFile({ a: t("F32", [2], [0, 8]), b: t("F32", [1], [4, 8]) }, data8),
    "overlap",
    /"b" overlaps tensor "a"/,
  );
  refused(rawFile({ a: t("F32", [1], [0, 4]), b: t("U8", [2], [6, 8]) }, data8), "gap", /bytes 4\.\.6/);
  refused(rawFile({ a: t("F32", [1], [0, 4]) }, data8), "trailing_bytes", /bytes 4\.\.8/);
  refused(rawFile({ a: t("F32", [1], [4, 8]) }, data8), "gap", /bytes 0\.\.4/);
  refused(
    rawFile(null, data8, '{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"a":{}}'),
    "bad_tensor_name",
    /duplicate key "a"/,
  );
  refused(rawFile({ "": t("U8", [8], [0, 8]) }, data8), "bad_tensor_name");
  refused(
    rawFile(null, data8, '{"__proto__":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}'),
    "bad_tensor_name",
  );
  refused(rawFile(null, undefined, `{"a":${"[".repeat(50)}${"]".repeat(50)}}`), "header_not_json", /nesting/);
});

Deno.test("safetensors: accepts zero-length tensors and trailing header spaces", () => {
  const t = (dtype: string, shape: number[], offsets: number[]) => ({ dtype, shape, data_offsets: offsets });
  const header = JSON.stringify({
    e: t("F32", [0], [4, 4]),
    a: t("F32", [1], [0, 4]),
    z: t("F32", [0], [0, 0]),
  });
  const file = parseSafetensors(rawFile(null, new Uint8Array(4), header + "   "));
  assert.deepEqual(Object.keys(file.tensors), ["z", "a", "e"]);
  assert.equal(file.tensors.e.data.length, 0);
});

Deno.test("safetensors: readSafetensorsFile checks a forged header length before reading the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/forged.safetensors`;
    const bytes = new Uint8Array(64);
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 62n, true);
    await Deno.writeFile(path, bytes);
    await assert.rejects(
      () => readSafetensorsFile(path),
      (e: unknown) =>
        e instanceof SafetensorsError && e.code === "header_beyond_file" && e.message.includes(path),
    );
    const good = `${dir}/good.safetensors`;
    await Deno.writeFile(
      good,
      serializeSafetensors({ w: { dtype: "I32", shape: [2], data: Int32Array.of(5, 6) } }),
    );
    const file = await readSafetensorsFile(good);
    assert.deepEqual([...file.tensors.w.data as Int32Array], [5, 6]);
    assert.equal(file.views.copied, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors: dtype table matches the typed arrays used for views", () => {
  for (const dtype of Object.keys(SAFETENSORS_DTYPE_BYTES) as SafetensorsDtype[]) {
    const size = SAFETENSORS_DTYPE_BYTES[dtype];
    const file = parseSafetensors(
      serializeSafetensors({ x: { dtype, shape: [3], data: new Uint8Array(3 * size) } }),
    );
    assert.equal(file.tensors.x.data.BYTES_PER_ELEMENT, size, dtype);
    assert.equal(file.tensors.x.data.length, 3, dtype);
  }
});
