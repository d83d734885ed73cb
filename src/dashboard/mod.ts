/**
 * The run dashboard (`orion dashboard`) and the static run report (`report.html`).
 *
 * @module
 */
export { DASHBOARD_TOKEN_ENV, dashboardCommand } from "./dashboard_command.ts";
export {
  checkDashboardBinding,
  type DashboardOptions,
  type DashboardServer,
  isLoopbackHost,
  serveDashboard,
} from "./dashboard_server.ts";
export {
  MetricsTail,
  readRunMetrics,
  type RunMetrics,
  throughputPoints,
  type TrainPoint,
  type ValPoint,
} from "./metrics_tail.ts";
export { checkTrainTestOverlap, type OverlapReport } from "./overlap_check.ts";
export { RUN_REPORT_FILE, runReportHtml, type RunReportOptions, writeRunReport } from "./run_report.ts";
export { type ChartSeries, type LineChartOptions, lineChartSvg } from "./svg_chart.ts";
