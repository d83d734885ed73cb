/**
 * The dashboard's server side on hand-made run directories (no training): incremental metrics reading across
 * appends, torn lines and a resume's rewind; charts; the lineage graph from lineage.json; the API's guards
 * (token, loopback Host, read-only, path names); the static report; chart rendering.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkDashboardBinding,
  isLoopbackHost,
  serveDashboard,
} from "../../src/dashboard/dashboard_server.ts";
import { MetricsTail, throughputPoints } from "../../src/dashboard/metrics_tail.ts";
import { lineChartSvg, niceTicks, reducePoints } from "../../src/dashboard/svg_chart.ts";
import { runReportHtml } from "../../src/dashboard/run_report.ts";

const line = (o: Record<string, unknown>) => JSON.stringify(o) + "\n";

async function makeRun(
  runsDir: string,
  name: string,
  opts: { parent?: string; status?: string; steps?: number } = {},
) {
  const dir = join(runsDir, name);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify({
      config: {
        name,
        training: { maxSteps: 10, batchSize: 8, accumulateGradBatches: 2 },
        initFrom: opts.parent ? { run: opts.parent } : null,
        data: { catalogDir: join(runsDir, "..", "no_catalog") },
      },
    }),
  );
  await Deno.writeTextFile(
    join(dir, "run.json"),
    JSON.stringify({ name, status: opts.status ?? "running", step: opts.steps ?? 0, configHash: "sha256:x" }),
  );
  let text = "";
  for (let s = 1; s <= (opts.steps ?? 0); s++) {
    text += line({ step: s, loss: 2 / s, grad_norm: 1, lr: 1e-3, time: 100 + s });
  }
  await Deno.writeTextFile(join(dir, "metrics.jsonl"), text);
  return dir;
}

Deno.test("MetricsTail reads appends incrementally, waits for torn lines, restarts after a rewind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "orion_metrics_tail_" });
  try {
    const path = join(dir, "metrics.jsonl");
    const tail = new MetricsTail(dir);
    assert.equal(await tail.refresh(), false, "no file yet");
    await Deno.writeTextFile(path, line({ step: 1, loss: 3, grad_norm: 1, lr: 0.1, time: 1 }));
    assert.equal(await tail.refresh(), true);
    assert.deepEqual(tail.metrics.train.map((p) => p.step), [1]);
    await Deno.writeTextFile(
      path,
      line({ step: 2, loss: 2, grad_norm: 1, lr: 0.1, time: 2 }) + '{"step": 3, "lo',
      {
        append: true,
      },
    );
    await tail.refresh();
    assert.deepEqual(tail.metrics.train.map((p) => p.step), [1, 2], "the torn line waits");
    await Deno.writeTextFile(path, 'ss": 1.5, "grad_norm": 1, "lr": 0.1, "time": 3}\n', { append: true });
    await Deno.writeTextFile(
      path,
      line({ step: 3, val_loss: 1.7, val_accuracy: 0.5, time: 3 }) + "not json\n",
      {
        append: true,
      },
    );
    await tail.refresh();
    assert.deepEqual(tail.metrics.train.map((p) => [p.step, p.loss]), [[1, 3], [2, 2], [3, 1.5]]);
    assert.deepEqual(tail.metrics.val.map((p) => [p.step, p.valAccuracy]), [[3, 0.5]]);
    assert.equal(tail.metrics.skippedLines, 1);
    // A resume rewinds the log through a rename: the tail starts over.
    const tmp = join(dir, ".rewind");
    await Deno.writeTextFile(tmp, line({ step: 1, loss: 3, grad_norm: 1, lr: 0.1, time: 1 }));
    await Deno.rename(tmp, path);
    assert.equal(await tail.refresh(), true);
    assert.deepEqual(tail.metrics.train.map((p) => p.step), [1]);
    assert.equal(tail.restarts, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("throughput: samples per second over a window, restarting at a resume", () => {
  const train = [1, 2, 3, 4, 5].map((s) => ({ step: s, loss: 1, gradNorm: 1, lr: 1, time: s * 0.5 }));
  // 2 steps per second × 8 samples per step.
  assert.deepEqual(throughputPoints(train, 8, 1).map(([s, r]) => [s, Math.round(r)]), [[2, 16], [3, 16], [
    4,
    16,
  ], [
    5,
    16,
  ]]);
  const resumed = [...train, { step: 3, loss: 1, gradNorm: 1, lr: 1, time: 500 }, {
    step: 4,
    loss: 1,
    gradNorm: 1,
    lr: 1,
    time: 501,
  }];
  assert.deepEqual(throughputPoints(resumed, 8, 1).slice(-1).map(([s, r]) => [s, Math.round(r)]), [[4, 8]]);
});

Deno.test("charts: ticks, reduction keeps extremes, data-points counts the first series, text is escaped", () => {
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  const spiky = Array.from({ length: 5000 }, (_, i) => [i, i === 2500 ? 100 : 1] as const);
  const reduced = reducePoints(spiky, 300);
  assert.ok(reduced.length <= 310 && reduced.some(([, y]) => y === 100), "a spike survives reduction");
  const svg = lineChartSvg({
    title: "a<b",
    id: "loss",
    xLabel: "step",
    series: [{ name: "train", color: "#000", points: [[1, 2], [2, NaN], [3, 1]] }],
  });
  assert.match(svg, /data-points="2"/);
  assert.match(svg, /<title>a&lt;b<\/title>/);
  assert.match(lineChartSvg({ title: "t", id: "x", xLabel: "s", series: [] }), /no data yet/);
});

Deno.test("binding: loopback by default; other addresses need a token of 8+ characters", () => {
  for (const h of ["127.0.0.1", "localhost", "::1", "[::1]", "127.1.2.3"]) assert.ok(isLoopbackHost(h), h);
  for (const h of ["0.0.0.0", "10.0.0.5", "example.org"]) assert.ok(!isLoopbackHost(h), h);
  assert.throws(() => checkDashboardBinding("0.0.0.0", undefined), /without a token/);
  assert.throws(() => checkDashboardBinding("0.0.0.0", "short"), /too easy to guess/);
  checkDashboardBinding("0.0.0.0", "0123456789abcdef");
  checkDashboardBinding("127.0.0.1", undefined);
});

Deno.test({
  name: "dashboard API: runs, charts, lineage from config/lineage.json, guards, report",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "orion_dashboard_api_" });
    const runsDir = join(root, "runs");
    try {
      const pre = await makeRun(runsDir, "pretrain", { status: "finished", steps: 10 });
      const ft = await makeRun(runsDir, "finetune", { parent: "pretrain", steps: 3 });
      await Deno.mkdir(join(ft, "ckpt-step000000003"));
      await Deno.writeTextFile(
        join(ft, "ckpt-step000000003", "lineage.json"),
        JSON.stringify({
          parentRun: "pretrain",
          initCheckpoint: { run: "pretrain", checkpointHash: "ab".repeat(32), step: 10, stepsConsumed: 10 },
        }),
      );
      await Deno.mkdir(join(runsDir, "not_a_run")); // no run.json/config.json: not listed
      const server = await serveDashboard({ runsDir, port: 0 });
      const base = server.url.replace(/\/$/, "");
      try {
        const get = async (path: string, init?: RequestInit) => {
          const r = await fetch(base + path, init);
          return {
            status: r.status,
            body: r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text(),
          };
        };
        const runs = await get("/api/runs");
        assert.deepEqual(runs.body.runs.map((r: { name: string; status: string }) => [r.name, r.status]), [
          ["finetune", "running"],
          ["pretrain", "finished"],
        ]);
        const charts = await get("/api/runs/pretrain/charts");
        assert.equal(charts.body.trainPoints, 10);
        assert.match(charts.body.loss, /data-chart="loss" data-points="10"/);
        assert.match(
          charts.body.throughput,
          /throughput \(samples\/s\)/,
          "batchSize × accumulation is known",
        );
        await Deno.writeTextFile(
          join(pre, "metrics.jsonl"),
          line({ step: 11, loss: 0.1, grad_norm: 1, lr: 1e-3, time: 111 }),
          {
            append: true,
          },
        );
        assert.equal((await get("/api/runs/pretrain/charts")).body.trainPoints, 11, "appended lines show up");
        const lineage = await get("/api/lineage");
        assert.deepEqual(
          lineage.body.edges.map((e: { parent: string; child: string; checkpointStep: number }) => [
            e.parent,
            e.child,
            e.checkpointStep,
          ]),
          [["pretrain", "finetune", 10]],
        );
        assert.match(lineage.body.svg, /data-nodes="2" data-edges="1"/);
        const detail = await get("/api/runs/finetune");
        assert.match(detail.body.factsHtml, /href="#\/run\/pretrain">pretrain<\/a> at step 10/);
        assert.equal((await get("/api/runs/..%2F..%2Fetc")).status, 404);
        assert.equal((await get("/api/runs/pretrain/checkpoints/..%2Fx")).status, 404);
        assert.equal((await get("/api/runs/nope")).status, 404);
        assert.equal((await get("/api/runs", { method: "POST" })).status, 405);
        // A page on another name resolving to 127.0.0.1 (DNS rebinding) sends its own Host header: refused.
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        await conn.write(
          new TextEncoder().encode(
            "GET /api/runs HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
          ),
        );
        const raw = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
        assert.match(raw, /^HTTP\/1\.1 403/);
        const page = await get("/");
        assert.match(page.body, /<title>Orion dashboard<\/title>/);
        const report = await get("/report/pretrain");
        assert.match(report.body, /data-chart="loss" data-points="11"/);
        const strip = (h: string) => h.replace(/static report written [^<]+</, "");
        assert.equal(strip(report.body), strip(await runReportHtml(pre)), "the same page as report.html");
      } finally {
        await server.shutdown();
      }
      const guarded = await serveDashboard({ runsDir, port: 0, host: "127.0.0.1", token: "s3cret-token" });
      try {
        const origin = new URL(guarded.url).origin;
        assert.match(guarded.url, /\?token=s3cret-token$/);
        const denied = await fetch(`${origin}/api/runs`);
        assert.equal(denied.status, 401);
        await denied.body?.cancel();
        const wrong = await fetch(`${origin}/api/runs?token=wrong-token`);
        assert.equal(wrong.status, 401);
        await wrong.body?.cancel();
        const ok = await fetch(`${origin}/api/runs?token=s3cret-token`);
        assert.equal(ok.status, 200);
        await ok.body?.cancel();
        const bearer = await fetch(`${origin}/api/runs`, {
          headers: { authorization: "Bearer s3cret-token" },
        });
        assert.equal(bearer.status, 200);
        await bearer.body?.cancel();
      } finally {
        await guarded.shutdown();
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
