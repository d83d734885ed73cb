import assert from "node:assert/strict";
import { dataCommand } from "../../src/ursa/data_cli.ts";
import { writeEdf } from "../../src/ursa/edf_writer.ts";

async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const log = console.log, error = console.error;
  const out: string[] = [], err: string[] = [];
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    return { code: await fn(), out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("orion data: help, demo, ls, import-edf of a folder with a corrupt file, derive", async () => {
  const dir = await Deno.makeTempDir({ prefix: "orion_cli_" });
  const catalog = `${dir}/catalog`;
  try {
    const help = await capture(() => dataCommand(["--help"]));
    assert.equal(help.code, 0);
    assert.match(help.out, /import-edf <files or folders…> --participant ID/);
    const demo = await capture(() =>
      dataCommand([
        "demo",
        "--catalog",
        catalog,
        "--participants",
        "1",
        "--minutes",
        "0.5",
        "--sessions",
        "1",
      ])
    );
    assert.equal(demo.code, 0, demo.err);
    assert.match(demo.out, /demo corpus: 1 participants \(p001…p001\), 2 recordings, 2 derived assets/);
    const ls = await capture(() => dataCommand(["ls", "--catalog", catalog]));
    assert.match(ls.out, /participants: 1 \(p001…p001\)/);
    assert.match(ls.out, /eeg: 1 recordings, 0\.5 min/);
    assert.match(ls.out, /derived standard_v2026q2\.eeg_clean: 1/);

    await Deno.mkdir(`${dir}/in`);
    const good = writeEdf({
      format: "edf+",
      signals: [{
        label: "Fz",
        samplingRate: 256,
        samples: new Float32Array(256 * 12).map((_, i) => Math.sin(i)),
        physicalMin: -2,
        physicalMax: 2,
      }],
      annotations: [{ onset: 0, duration: 12, text: "cognitive_load=1" }],
    });
    await Deno.writeFile(`${dir}/in/a.edf`, good);
    await Deno.writeFile(`${dir}/in/b.edf`, good.subarray(0, good.length - 7));
    const imported = await capture(() =>
      dataCommand(["import-edf", `${dir}/in`, "--catalog", catalog, "--participant", "p777"])
    );
    assert.equal(imported.code, 1);
    assert.match(imported.out, /imported .*a\.edf → p777\/a eeg [0-9a-f]{12} \(12\.0 s, 1 labels\)/);
    assert.match(imported.err, /b\.edf as EDF\/BDF: the data is truncated/);
    const derive = await capture(() =>
      dataCommand(["derive", "standard_v2026q2.eeg_clean", "--catalog", catalog, "--participant", "p777"])
    );
    assert.equal(derive.code, 0, derive.err);
    assert.match(derive.out, /standard_v2026q2\.eeg_clean: built 1, already built 0/);
    const missing = await capture(() => dataCommand(["import-edf", `${dir}/in/a.edf`, "--catalog", catalog]));
    assert.equal(missing.code, 1);
    assert.match(missing.err, /without --participant/);
    const unknown = await capture(() => dataCommand(["frobnicate", "--catalog", catalog]));
    assert.equal(unknown.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
