import assert from "node:assert/strict";
import {
  benchmark,
  benchSuiteExists,
  getBenchmark,
  listBenchmarks,
  parseSuiteKey,
  registerBenchmark,
} from "../../src/bench/registry.ts";
import type { BenchmarkSuite } from "../../src/bench/bench_suite.ts";
import { ACCURACY } from "../../src/bench/metrics.ts";
import { runWindowAveragedClassification } from "../../src/bench/window_averaged_classification.ts";
import "../../src/bench/cognitive_load_eval.ts";

const fixture = new URL("./fixtures/decorated_suite.ts", import.meta.url).href;
const changed = new URL("./fixtures/decorated_suite_changed.ts", import.meta.url).href;

Deno.test("@benchmark registers a class under name@version; loading the module twice is fine", async () => {
  const first = await import(`${fixture}?copy=1`);
  const second = await import(`${fixture}?copy=2`);
  assert.notEqual(first.RegistryFixtureEvalV1, second.RegistryFixtureEvalV1, "two module instances");
  const entry = getBenchmark("registry_fixture_eval@1");
  assert.equal(entry.name, "registry_fixture_eval");
  assert.equal(entry.version, 1);
  assert.equal(entry.origin, "class RegistryFixtureEvalV1");
  assert.match(entry.codeHash, /^[0-9a-f]{64}$/);
  assert.ok(entry.suite() instanceof first.RegistryFixtureEvalV1, "the first registration is kept");
  assert.equal(entry.suite(), entry.suite(), "one instance per registration");
  assert.ok(benchSuiteExists("registry_fixture_eval@1"));
  assert.ok(!benchSuiteExists("registry_fixture_eval@2"));
});

Deno.test("registering the same key with different code is an error naming both registrations", async () => {
  await import(`${fixture}?copy=3`);
  await assert.rejects(
    () => import(`${changed}?copy=1`),
    (e: Error) => {
      assert.match(
        e.message,
        /Cannot register benchmark registry_fixture_eval@1 from class ChangedFixtureEval/,
      );
      assert.match(e.message, /class RegistryFixtureEvalV1 already registered/);
      assert.match(e.message, /different code \(code sha256 [0-9a-f]{12}… vs [0-9a-f]{12}…\)/);
      assert.match(e.message, /registry_fixture_eval@2/);
      return true;
    },
  );
  assert.equal(getBenchmark("registry_fixture_eval@1").origin, "class RegistryFixtureEvalV1", "unchanged");
});

Deno.test("the decorator checks names and versions, and refuses non-class targets", () => {
  assert.throws(
    () => {
      @benchmark({ name: "bad name", version: 1 })
      class _Bad implements BenchmarkSuite {
        heldOutData() {
          return {};
        }
        metrics() {
          return [];
        }
        run(): never {
          throw new Error("unused");
        }
      }
    },
    /Cannot register benchmark class _Bad as its name must use letters/,
  );
  assert.throws(
    () => {
      @benchmark({ name: "ok_name", version: 0 })
      class _Zero implements BenchmarkSuite {
        heldOutData() {
          return {};
        }
        metrics() {
          return [];
        }
        run(): never {
          throw new Error("unused");
        }
      }
    },
    /version must be a positive integer: current value is 0/,
  );
  const decorate = benchmark({ name: "x", version: 1 }) as unknown as (v: unknown, c: unknown) => void;
  assert.throws(() => decorate(() => {}, { kind: "method", name: "m" }), /Cannot use @benchmark on a method/);
});

Deno.test("registerBenchmark is the decorator-free form with the same rules", () => {
  const definition = {
    name: "function_form_eval",
    version: 3,
    description: "function form",
    heldOutData: () => ({ participants: ["p001"] }),
    metrics: () => [ACCURACY],
    run: (
      model: Parameters<BenchmarkSuite["run"]>[0],
      data: Parameters<BenchmarkSuite["run"]>[1],
      o: Parameters<BenchmarkSuite["run"]>[2],
    ) => runWindowAveragedClassification(model, data, { ...o, metrics: [ACCURACY] }),
  };
  const entry = registerBenchmark(definition);
  assert.equal(entry.key, "function_form_eval@3");
  assert.equal(entry.origin, "registerBenchmark(function_form_eval@3)");
  assert.deepEqual(entry.suite().heldOutData(), { participants: ["p001"] });
  assert.equal(registerBenchmark({ ...definition }), entry, "identical re-registration returns the entry");
  assert.throws(
    () => registerBenchmark({ ...definition, heldOutData: () => ({ participants: ["p002"] }) }),
    /Cannot register benchmark function_form_eval@3 from registerBenchmark\(function_form_eval@3\) as registerBenchmark\(function_form_eval@3\) already registered/,
  );
  assert.throws(
    () => registerBenchmark({ ...definition, version: 4, run: undefined as never }),
    /member run must be a function/,
  );
});

Deno.test("getBenchmark, listBenchmarks and parseSuiteKey", () => {
  assert.deepEqual(parseSuiteKey("cognitive_load_eval@1"), { name: "cognitive_load_eval", version: 1 });
  assert.throws(() => parseSuiteKey("cognitive_load_eval"), /must read "<suite>@<version>"/);
  assert.throws(() => getBenchmark("nope@1"), /Cannot find benchmark suite nope@1 .*cognitive_load_eval@1/s);
  const keys = listBenchmarks().map((b) => b.key);
  assert.ok(keys.includes("cognitive_load_eval@1"));
  assert.deepEqual(keys, [...keys].sort());
  const builtin = getBenchmark("cognitive_load_eval@1");
  assert.equal(builtin.origin, "class CognitiveLoadEvalV1");
  assert.deepEqual(builtin.suite().metrics().map((m) => m.name), [
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "per_participant_accuracy",
  ]);
});
