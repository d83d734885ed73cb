import assert from "node:assert/strict";
import {
  applyOverrides,
  ConfigError,
  parseOverrides,
  parseRunConfig,
  POYO,
  RunConfig,
  TrainingConfig,
} from "../../mod.ts";

const base = RunConfig({
  name: "base",
  model: { cls: POYO, kwargs: { dim: 64, depth: 2 } },
  training: TrainingConfig({ lr: 1e-3, benchSuites: ["a@1"] }),
  data: { trainWindow: 4 },
});

function overridden(...sets: string[]) {
  return parseRunConfig(applyOverrides(base, parseOverrides(sets)));
}

Deno.test("values parse as JSON when they can, else as strings", () => {
  assert.deepEqual(
    parseOverrides(["a=1e-4", "b=true", "c=null", "d=[1,2]", 'e="x"', "f=hello", 'g={"k":1}', "h="]).map((
      o,
    ) => o.value),
    [
      1e-4,
      true,
      null,
      [1, 2],
      "x",
      "hello",
      { k: 1 },
      "",
    ],
  );
  assert.deepEqual(parseOverrides(["model.kwargs.depth=4"])[0].path, ["model", "kwargs", "depth"]);
  assert.equal(parseOverrides(["name=a=b"])[0].value, "a=b");
});

Deno.test("overrides apply to the raw config and are validated like the file", () => {
  const run = overridden(
    "training.lr=1e-4",
    "model.kwargs.depth=4",
    "name=renamed",
    "training.emaDecay=0.999",
  );
  assert.equal(run.training.lr, 1e-4);
  assert.equal(run.model.kwargs.depth, 4);
  assert.equal(run.name, "renamed");
  assert.equal(run.training.emaDecay, 0.999);
  // the base config is untouched
  assert.equal(base.training.lr, 1e-3);
  // derived defaults are recomputed from the overridden field
  assert.equal(overridden("data.trainWindow=2").model.kwargs.latentStep, 0.25);
  // list items and missing sections
  assert.deepEqual(overridden("training.benchSuites.1=b@2").training.benchSuites, ["a@1", "b@2"]);
  assert.equal(overridden("initFrom.run=source").initFrom?.run, "source");
});

Deno.test("invalid overridden values are reported at the overridden path", () => {
  assert.throws(
    () => overridden("training.lr=fast", "model.kwargs.depth=-1"),
    (e) =>
      e instanceof ConfigError &&
      e.problems.map((p) => p.path).sort().join() === "model.kwargs.depth,training.lr",
  );
  assert.throws(
    () => overridden("training.learningRate=1"),
    (e) => e instanceof ConfigError && e.problems[0].path === "training.learningRate",
  );
});

Deno.test("malformed overrides fail together, naming each path", () => {
  assert.throws(() => parseOverrides(["training.lr", "=3", "a..b=1", "__proto__.x=1"]), (e) => {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(e.problems.map((p) => p.path), ["--set", "--set", "a..b", "__proto__.x"]);
    return true;
  });
  assert.throws(
    () =>
      applyOverrides(
        base,
        parseOverrides(["training.lr.x=1", "training.benchSuites.9=z", "training.benchSuites.k=z"]),
      ),
    (e) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(e.problems.map((p) => p.path), [
        "training.lr.x",
        "training.benchSuites.9",
        "training.benchSuites.k",
      ]);
      assert.match(e.problems[0].message, /training\.lr is not an object/);
      return true;
    },
  );
});
