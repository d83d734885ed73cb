/**
 * The standard curves of a run — loss (train and validation), validation accuracy, learning rate and
 * throughput — as SVG, shared by the live dashboard and the static `report.html`.
 *
 * @module
 */
import { type RunMetrics, throughputPoints } from "./metrics_tail.ts";
import { CHART_COLORS, lineChartSvg } from "./svg_chart.ts";

/** The SVG of each standard chart plus the counts the page shows. */
export interface RunCharts {
  loss: string;
  accuracy: string;
  lr: string;
  throughput: string;
  /** Training and validation lines read. */
  trainPoints: number;
  valPoints: number;
  /** The newest step with training metrics, or null. */
  lastStep: number | null;
}

/**
 * Draws a run's standard charts from its metrics; throughput is in samples/s when `samplesPerStep` is known
 * (steps/s otherwise).
 *
 * @example
 * ```ts
 * import { readRunMetrics } from "./metrics_tail.ts";
 * import { runChartsSvg } from "./run_charts.ts";
 * const charts = runChartsSvg(await readRunMetrics("runs/demo"), 16);
 * await Deno.writeTextFile("loss.svg", charts.loss);
 * ```
 */
export function runChartsSvg(metrics: RunMetrics, samplesPerStep: number | null): RunCharts {
  const { train, val } = metrics;
  const rate = throughputPoints(train, samplesPerStep ?? 1);
  return {
    loss: lineChartSvg({
      title: "loss",
      id: "loss",
      xLabel: "step",
      series: [
        { name: "train", color: CHART_COLORS.train, points: train.map((p) => [p.step, p.loss]) },
        { name: "val", color: CHART_COLORS.val, points: val.map((p) => [p.step, p.valLoss]), markers: true },
      ],
    }),
    accuracy: lineChartSvg({
      title: "validation accuracy (%)",
      id: "accuracy",
      xLabel: "step",
      series: [{
        name: "val",
        color: CHART_COLORS.val,
        points: val.map((p) => [p.step, 100 * p.valAccuracy]),
        markers: true,
      }],
    }),
    lr: lineChartSvg({
      title: "learning rate",
      id: "lr",
      xLabel: "step",
      series: [{ name: "lr", color: CHART_COLORS.lr, points: train.map((p) => [p.step, p.lr]) }],
    }),
    throughput: lineChartSvg({
      title: samplesPerStep === null ? "throughput (steps/s)" : "throughput (samples/s)",
      id: "throughput",
      xLabel: "step",
      series: [{
        name: samplesPerStep === null ? "steps/s" : "samples/s",
        color: CHART_COLORS.throughput,
        points: rate,
      }],
    }),
    trainPoints: train.length,
    valPoints: val.length,
    lastStep: train.length ? train[train.length - 1].step : null,
  };
}
