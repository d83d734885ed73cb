/**
 * The browser half of the dashboard browser test, run as its own process (`deno run -A`): playwright-core
 * probes system paths (e.g. /proc/sys/fs/binfmt_misc) that Deno only opens with all permissions, which the
 * test suite does not have. It drives Chromium through the scenario and prints what it observed as one JSON
 * line; the test asserts on it.
 *
 * Usage: deno run -A test/dashboard/browser_scenario.ts <chromium> <dashboard url> <run dir> <out dir> [docs png]
 */
import { join } from "node:path";
import { chromium } from "playwright-core";

/** What the scenario saw. */
export interface BrowserObservations {
  /** Loss-curve points seen while run.json said "running": the first count ≥ 2, then a larger one. */
  firstWhileRunning: number;
  laterWhileRunning: number;
  /** The "live" line under the run title while running. */
  liveText: string;
  /** Points once the run finished, and whether the finished badge showed. */
  finalPoints: number;
  finishedBadge: boolean;
  accuracyPoints: number;
  lineageNodes: number;
  /** Benchmark result rows of the run, and of the newest checkpoint's panel. */
  runBenchmarkRows: number;
  checkpointBenchmarkRows: number;
  /** Text of the checkpoint panel of the newest checkpoint. */
  checkpointName: string;
  checkpointText: string;
  /** `data-overlap` of the overlap check (number of overlapping recordings). */
  overlap: string | null;
  screenshot: string;
  pageErrors: string[];
}

async function status(runDir: string): Promise<string | null> {
  try {
    return JSON.parse(await Deno.readTextFile(join(runDir, "run.json"))).status;
  } catch {
    return null;
  }
}

/** Runs the scenario against a dashboard whose run `<runDir>` is training now. */
export async function runBrowserScenario(
  executablePath: string,
  url: string,
  runDir: string,
  outDir: string,
  docsPng?: string,
): Promise<BrowserObservations> {
  const run = runDir.replace(/\/+$/, "").split("/").pop()!;
  const context = await chromium.launchPersistentContext(join(outDir, "chromium-profile"), {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  try {
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(url);
    await page.click(`tr[data-run="${run}"]`, { timeout: 120_000 });
    const points = async (chart = "loss") =>
      Number(
        await page.getAttribute(`#charts svg[data-chart="${chart}"]`, "data-points", { timeout: 60_000 }),
      );
    const deadline = Date.now() + 180_000;
    let firstWhileRunning = 0, laterWhileRunning = 0, liveText = "";
    while (Date.now() < deadline && firstWhileRunning < 2) {
      await page.waitForTimeout(200);
      const n = await points().catch(() => 0);
      if (n >= 2 && await status(runDir) === "running") firstWhileRunning = n;
      if (await status(runDir) === "finished") break;
    }
    while (Date.now() < deadline && firstWhileRunning >= 2 && laterWhileRunning <= firstWhileRunning) {
      await page.waitForTimeout(200);
      const n = await points();
      if (await status(runDir) !== "running") break;
      laterWhileRunning = n;
      liveText = await page.textContent("#live") ?? "";
    }
    while (Date.now() < deadline && await status(runDir) === "running") await page.waitForTimeout(250);
    const lastCheckpoint = [...Deno.readDirSync(runDir)].map((e) =>
      e.name
    ).filter((n) => n.startsWith("ckpt-step"))
      .sort().pop() ?? "";
    const expected = (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).split("\n")
      .filter((l) => l.includes('"loss"')).length;
    let finalPoints = 0;
    while (Date.now() < deadline && (finalPoints = await points()) !== expected) {
      await page.waitForTimeout(250);
    }
    const finishedBadge = await page.waitForSelector("#run-status .badge.finished", { timeout: 30_000 })
      .then(() => true, () => false);
    const accuracyPoints = await points("accuracy");
    const lineageNodes = await page.locator(`#lineage svg a.node[data-run="${run}"]`).count();
    let runBenchmarkRows = 0;
    while (
      Date.now() < deadline && (runBenchmarkRows = await page.locator("#benchmarks tr.benchmark").count()) < 2
    ) {
      await page.waitForTimeout(250);
    }

    await page.click(`#checkpoints tr[data-checkpoint="${lastCheckpoint}"]`);
    await page.waitForSelector(`.checkpoint-details[data-checkpoint="${lastCheckpoint}"]`, {
      timeout: 30_000,
    });
    const checkpointText = await page.textContent("#checkpoint-body") ?? "";
    const checkpointBenchmarkRows = await page.locator("#checkpoint-body tr.benchmark").count();
    await page.selectOption("#overlap-suite", "cognitive_load_eval@1");
    await page.click("#overlap-button");
    await page.waitForSelector("#overlap-result [data-overlap]", { timeout: 60_000 });
    const overlap = await page.getAttribute("#overlap-result [data-overlap]", "data-overlap");
    const screenshot = join(outDir, "dashboard.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    if (docsPng) await page.screenshot({ path: docsPng, fullPage: true });
    return {
      firstWhileRunning,
      laterWhileRunning,
      liveText,
      finalPoints,
      finishedBadge,
      accuracyPoints,
      lineageNodes,
      runBenchmarkRows,
      checkpointBenchmarkRows,
      checkpointName: lastCheckpoint,
      checkpointText,
      overlap,
      screenshot,
      pageErrors,
    };
  } finally {
    await context.close();
  }
}

if (import.meta.main) {
  const [executablePath, url, runDir, outDir, docsPng] = Deno.args;
  console.log(
    JSON.stringify(await runBrowserScenario(executablePath, url, runDir, outDir, docsPng || undefined)),
  );
}
