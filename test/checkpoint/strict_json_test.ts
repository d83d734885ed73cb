import assert from "node:assert/strict";
import { JsonNonIntegerNumber, parseStrictJson, StrictJsonError } from "../../src/checkpoint/strict_json.ts";
import { hash32 } from "./synthetic_state.ts";

function plain(value: unknown): unknown {
  if (value instanceof JsonNonIntegerNumber) return value.value;
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

Deno.test("strict JSON: agrees with JSON.parse on random valid documents", () => {
  let i = 0;
  const rand = (n: number) => hash32(77, 0, i++) % n;
  const gen = (depth: number): unknown => {
    switch (rand(depth > 3 ? 5 : 7)) {
      case 0:
        return null;
      case 1:
        return rand(2) === 0;
      case 2:
        return (rand(1000) - 500) * (rand(2) ? 1 : 0.125);
      case 3:
        return String.fromCharCode(...Array.from({ length: rand(6) }, () => rand(0x3000)));
      case 4:
        return rand(1e9) * 1e20;
      case 5:
        return Array.from({ length: rand(4) }, () => gen(depth + 1));
      default:
        return Object.fromEntries(Array.from({ length: rand(4) }, (_, k) => [`k${k}\n"`, gen(depth + 1)]));
    }
  };
  for (let c = 0; c < 2000; c++) {
    const doc = gen(0);
    const text = JSON.stringify(doc, null, rand(2) ? 2 : undefined);
    assert.deepEqual(plain(parseStrictJson(text)), JSON.parse(text), text);
  }
});

Deno.test("strict JSON: refuses duplicates, bad syntax and deep nesting; marks non-integers", () => {
  const bad = [
    '{"a":1,"a":2}',
    '{"x":{"b":1,"b":1}}',
    "{,}",
    "[1,]",
    '{"a":1,}',
    "01",
    "1.",
    ".5",
    "+1",
    "NaN",
    '"\\x"',
    '"a\nb"',
    "[1] 2",
    "",
    "tru",
    '{"a" 1}',
    '"\\u12"',
  ];
  for (const text of bad) assert.throws(() => parseStrictJson(text), StrictJsonError, text);
  assert.throws(() => parseStrictJson("[".repeat(65) + "]".repeat(65)), /nesting deeper than 64/);
  assert.doesNotThrow(() => parseStrictJson("[".repeat(64) + "]".repeat(64)));
  assert.throws(() => parseStrictJson('{"a":1,"a":2}'), /duplicate key "a" at character 7/);
  const v = parseStrictJson('{"i":12,"f":1.5,"e":1e3,"z":-0}') as Record<string, unknown>;
  assert.equal(v.i, 12);
  assert.ok(v.f instanceof JsonNonIntegerNumber && v.f.text === "1.5");
  assert.ok(v.e instanceof JsonNonIntegerNumber && v.e.value === 1000);
  assert.ok(Object.is(v.z, -0));
  const proto = parseStrictJson('{"__proto__":{"x":1}}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(proto), null);
  assert.deepEqual(Object.keys(proto), ["__proto__"]);
});
