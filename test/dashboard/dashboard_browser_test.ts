/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core. A short training run starts
 * in a subprocess; the browser (browser_scenario.ts, its own process) opens the dashboard, watches the loss
 * curve gain points while the run trains, opens a checkpoint (details, data summary, overlap check) and saves
 * a screenshot. Skips, saying why, only when Chromium is missing and cannot be installed
 * (`apt-get install -y chromium`; `.ci/run` installs it).
 *
 * Set ORION_UPDATE_DOCS_SCREENSHOT=1 to also write the screenshot to docs/dashboard.png.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serveDashboard } from "../../src/dashboard/dashboard_server.ts";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import type { BrowserObservations } from "./browser_scenario.ts";

const CHROMIUM = "/usr/bin/chromium";
const repo = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Chromium's path, installing Debian's package when it is missing and this process may (root + apt-get). */
async function ensureChromium(): Promise<string | null> {
  if (await exists(CHROMIUM)) return CHROMIUM;
  if (Deno.uid() !== 0 || !(await exists("/usr/bin/apt-get"))) return null;
  const aptGet = (args: string[]) =>
    new Deno.Command("apt-get", {
      args,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "null",
      stderr: "null",
    })
      .output();
  if (!(await aptGet(["install", "-y", "-q", "chromium"])).success) {
    await aptGet(["update", "-q"]);
    await aptGet(["install", "-y", "-q", "chromium"]);
  }
  return (await exists(CHROMIUM)) ? CHROMIUM : null;
}

const browserPath = await ensureChromium();
if (!browserPath) {
  console.warn(
    `dashboard browser test skipped: ${CHROMIUM} is missing and could not be installed (run: apt-get install -y chromium)`,
  );
}

Deno.test({
  name:
    "dashboard in Chromium: live loss curve grows during a run, checkpoint details, overlap check, screenshot",
  ignore: browserPath === null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "orion_dashboard_browser_" });
    const catalogDir = join(dir, "catalog");
    const catalog = await openCatalog(catalogDir);
    try {
      await generateDemoCorpus(catalog, { participants: 6, minutes: 1, filesDir: join(dir, "files") });
    } finally {
      catalog.close();
    }
    await Deno.writeTextFile(
      join(dir, "live.ts"),
      `import { BenchCompute, DataConfig, InfraConfig, ModelConfig, POYO, QuerySpec, RunConfig, TrainingConfig } from "${repo}mod.ts";
export default RunConfig({
  name: "live_run",
  data: DataConfig({ ursaQuery: QuerySpec({ participants: "*" }), trainWindow: 2, catalogDir: "${catalogDir}" }),
  model: ModelConfig({ cls: POYO, kwargs: { dim: 32, depth: 1, dimHead: 8, crossHeads: 1, selfHeads: 2, numLatents: 4 } }),
  training: TrainingConfig({
    batchSize: 4, maxSteps: 60, ckptEveryNSteps: 15, valEveryNSteps: 15, logEveryNSteps: 1, lr: 1e-3,
    benchSuites: ["cognitive_load_eval@1"], benchEveryNSteps: 30, benchCompute: BenchCompute({ mode: "inline" }),
  }),
  infra: InfraConfig({ accelerator: "cpu-software" }),
});
`,
    );
    const runDir = join(dir, "runs", "live_run");
    const server = await serveDashboard({ runsDir: join(dir, "runs"), port: 0 });
    const env = { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" };
    const training = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--config",
        join(repo, "deno.json"),
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-ffi",
        "--allow-sys",
        "--allow-run",
        join(repo, "mod.ts"),
        "train",
        "live.ts",
      ],
      cwd: dir,
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const trainingOutput = training.output();
    try {
      const docsPng = Deno.env.get("ORION_UPDATE_DOCS_SCREENSHOT") === "1"
        ? join(repo, "docs", "dashboard.png")
        : "";
      const browser = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--config",
          join(repo, "deno.json"),
          "-A",
          join(repo, "test", "dashboard", "browser_scenario.ts"),
          browserPath!,
          server.url,
          runDir,
          dir,
          docsPng,
        ],
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const finished = await trainingOutput;
      assert.equal(finished.code, 0, `training failed:\n${decoder.decode(finished.stderr)}`);
      assert.equal(browser.code, 0, `browser scenario failed:\n${decoder.decode(browser.stderr)}`);
      const seen: BrowserObservations = JSON.parse(decoder.decode(browser.stdout).trim().split("\n").pop()!);

      assert.ok(
        seen.firstWhileRunning >= 2,
        `the loss curve shows points while training: ${seen.firstWhileRunning}`,
      );
      assert.ok(
        seen.laterWhileRunning > seen.firstWhileRunning,
        `the loss curve gains points while the run trains: ${seen.firstWhileRunning} → ${seen.laterWhileRunning}`,
      );
      assert.match(seen.liveText, /training and \d+ validation points.*live/);
      assert.equal(seen.finalPoints, 60, "every step is on the curve once the run finished");
      assert.ok(seen.finishedBadge, "the run shows as finished");
      assert.equal(seen.accuracyPoints, 4, "one validation point per 15 steps");
      assert.equal(seen.lineageNodes, 1, "the run is a node of the lineage graph");
      assert.ok(
        seen.runBenchmarkRows >= 2,
        `benchmark results of the run's checkpoints: ${seen.runBenchmarkRows}`,
      );
      assert.ok(seen.checkpointBenchmarkRows >= 1, "the final checkpoint's benchmark result is in its panel");

      assert.equal(seen.checkpointName, "ckpt-step000000060");
      const manifest = JSON.parse(
        await Deno.readTextFile(join(runDir, seen.checkpointName, "manifest.json")),
      );
      assert.ok(seen.checkpointText.includes(manifest.checkpointHash), "the checkpoint's hash is shown");
      assert.match(seen.checkpointText, /\d+ recordings, [\d.]+ min of signal read/, "data summary");
      assert.match(seen.checkpointText, /@orion\/orion 0\.1\.0, git [0-9a-f]{12}/, "code version");
      assert.equal(seen.overlap, "0", "the demo split keeps the suite's held-out sessions out of training");

      const png = await Deno.readFile(seen.screenshot);
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      assert.ok(
        png.byteLength > 20_000,
        `a real screenshot is more than a blank page (${png.byteLength} bytes)`,
      );
      assert.deepEqual(seen.pageErrors, [], "no script errors on the page");

      const report = await Deno.readTextFile(join(runDir, "report.html"));
      assert.match(report, /data-chart="loss" data-points="60"/, "report.html has the same curve");
    } finally {
      await server.shutdown();
      try {
        training.kill("SIGKILL");
      } catch { /* already exited */ }
      await trainingOutput.catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
