/**
 * Line charts as self-contained SVG text (no script, no external assets): axes with "nice" ticks, grid,
 * one polyline per series (sparse series also get point markers), a legend, and `data-points` on the root
 * element counting the first series' points (what the browser test watches grow). Long series are reduced
 * to at most `maxPoints` per series by keeping each bucket's first, minimum and maximum points, so spikes
 * survive the reduction.
 *
 * @module
 */

/** One line of a chart. */
export interface ChartSeries {
  /** Legend text. */
  name: string;
  /** (x, y) points in x order; non-finite y values are skipped. */
  points: readonly (readonly [number, number])[];
  /** CSS color. */
  color: string;
  /** Dashed line. */
  dashed?: boolean;
  /** Draw a marker at every point (for sparse series such as validation). */
  markers?: boolean;
}

/** What {@link lineChartSvg} draws. */
export interface LineChartOptions {
  /** Chart title (also the SVG's accessible title). */
  title: string;
  /** Identifier written to `data-chart` (e.g. `"loss"`). */
  id: string;
  /** X axis label. */
  xLabel: string;
  /** Series to draw; the first one's point count is written to `data-points`. */
  series: readonly ChartSeries[];
  /** Logarithmic y axis (non-positive values are skipped). */
  logY?: boolean;
  /** Pixel size (default 640 × 260). */
  width?: number;
  height?: number;
  /** Most points drawn per series (default 1200). */
  maxPoints?: number;
}

/** Colors of the standard series. */
export const CHART_COLORS = {
  train: "#2563eb",
  val: "#dc2626",
  lr: "#059669",
  throughput: "#7c3aed",
  gradNorm: "#d97706",
} as const;

/** Escapes text for XML/HTML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

/**
 * About `count` round tick values covering [min, max] (steps of 1, 2 or 5 × 10^k).
 *
 * @example
 * ```ts
 * import { niceTicks } from "./svg_chart.ts";
 * niceTicks(0, 1, 5); // [0, 0.2, 0.4, 0.6, 0.8, 1]
 * ```
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max === min) return [min];
  const raw = (max - min) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  const first = Math.ceil(min / step - 1e-9);
  for (let i = first; i * step <= max + step * 1e-9; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/**
 * Short text for an axis value: up to 3 significant digits, exponent form outside [1e-3, 1e5).
 *
 * @example
 * ```ts
 * import { formatTick } from "./svg_chart.ts";
 * formatTick(0.00025); // "2.5e-4"
 * formatTick(1500);    // "1500"
 * ```
 */
export function formatTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e5) {
    const [m, e] = v.toExponential(2).split("e");
    return `${Number(m)}e${Number(e)}`;
  }
  return String(Number(v.toPrecision(3)));
}

/** Keeps at most about `max` points: per bucket its first, minimum and maximum point, in x order. */
export function reducePoints(
  points: readonly (readonly [number, number])[],
  max: number,
): (readonly [number, number])[] {
  if (points.length <= max) return [...points];
  const buckets = Math.max(1, Math.floor(max / 3));
  const size = points.length / buckets;
  const out: (readonly [number, number])[] = [];
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor(b * size), end = Math.min(points.length, Math.floor((b + 1) * size));
    if (end <= start) continue;
    let lo = start, hi = start;
    for (let i = start; i < end; i++) {
      if (points[i][1] < points[lo][1]) lo = i;
      if (points[i][1] > points[hi][1]) hi = i;
    }
    for (const i of [...new Set([start, lo, hi])].sort((x, y) => x - y)) out.push(points[i]);
  }
  const last = points[points.length - 1];
  if (out[out.length - 1] !== last) out.push(last);
  return out;
}

const fmt = (v: number) => String(Math.round(v * 10) / 10);

/**
 * Renders a line chart as an `<svg>` element.
 *
 * @example
 * ```ts
 * import { lineChartSvg } from "./svg_chart.ts";
 * const svg = lineChartSvg({
 *   title: "loss", id: "loss", xLabel: "step",
 *   series: [{ name: "train", color: "#2563eb", points: [[1, 2.3], [2, 1.9], [3, 1.7]] }],
 * });
 * ```
 */
export function lineChartSvg(options: LineChartOptions): string {
  const width = options.width ?? 640, height = options.height ?? 260;
  const left = 64, right = 16, top = 30, bottom = 40;
  const plotW = width - left - right, plotH = height - top - bottom;
  const maxPoints = options.maxPoints ?? 1200;
  const usable = (p: readonly [number, number]) =>
    Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!options.logY || p[1] > 0);
  const series = options.series.map((s) => ({ ...s, points: s.points.filter(usable) }));
  const all = series.flatMap((s) => s.points);
  const firstCount = series[0]?.points.length ?? 0;
  const head = `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${width} ${height}" ` +
    `width="${width}" height="${height}" role="img" data-chart="${
      escapeXml(options.id)
    }" data-points="${firstCount}">` +
    `<title>${escapeXml(options.title)}</title>` +
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>` +
    `<text x="${left}" y="18" font-size="13" font-weight="600" fill="#111827">${
      escapeXml(options.title)
    }</text>`;
  if (all.length === 0) {
    return head +
      `<text x="${left + plotW / 2}" y="${
        top + plotH / 2
      }" text-anchor="middle" font-size="12" fill="#6b7280">no data yet</text></svg>`;
  }
  let xMin = Math.min(...all.map((p) => p[0])), xMax = Math.max(...all.map((p) => p[0]));
  if (xMin === xMax) [xMin, xMax] = [xMin - 1, xMax + 1];
  const ty = (v: number) => (options.logY ? Math.log10(v) : v);
  let yMin = Math.min(...all.map((p) => ty(p[1]))), yMax = Math.max(...all.map((p) => ty(p[1])));
  if (yMin === yMax) [yMin, yMax] = [yMin - (Math.abs(yMin) || 1) * 0.1, yMax + (Math.abs(yMax) || 1) * 0.1];
  const pad = (yMax - yMin) * 0.06;
  yMin -= pad;
  yMax += pad;
  const sx = (x: number) => left + ((x - xMin) / (xMax - xMin)) * plotW;
  const sy = (y: number) => top + plotH - ((ty(y) - yMin) / (yMax - yMin)) * plotH;
  const parts: string[] = [head];
  // Grid and ticks.
  const yTicks = options.logY
    ? niceTicks(Math.floor(yMin), Math.ceil(yMax), 5).filter((t) => Number.isInteger(t)).map((t) => 10 ** t)
    : niceTicks(yMin, yMax, 5);
  for (const t of yTicks) {
    const y = sy(t);
    if (y < top - 0.5 || y > top + plotH + 0.5) continue;
    parts.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${fmt(y)}" y2="${
        fmt(y)
      }" stroke="#e5e7eb" stroke-width="1"/>` +
        `<text x="${left - 6}" y="${fmt(y + 4)}" text-anchor="end" font-size="11" fill="#4b5563">${
          formatTick(t)
        }</text>`,
    );
  }
  for (const t of niceTicks(xMin, xMax, 6)) {
    const x = sx(t);
    if (x < left - 0.5 || x > left + plotW + 0.5) continue;
    parts.push(
      `<line x1="${fmt(x)}" x2="${fmt(x)}" y1="${top}" y2="${
        top + plotH
      }" stroke="#f3f4f6" stroke-width="1"/>` +
        `<text x="${fmt(x)}" y="${top + plotH + 16}" text-anchor="middle" font-size="11" fill="#4b5563">${
          formatTick(t)
        }</text>`,
    );
  }
  parts.push(
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#9ca3af" stroke-width="1"/>`,
    `<text x="${left + plotW / 2}" y="${height - 6}" text-anchor="middle" font-size="11" fill="#374151">${
      escapeXml(options.xLabel)
    }</text>`,
  );
  // Series.
  for (const s of series) {
    if (s.points.length === 0) continue;
    const drawn = reducePoints(s.points, maxPoints);
    const coords = drawn.map(([x, y]) => `${fmt(sx(x))},${fmt(sy(y))}`).join(" ");
    parts.push(
      `<polyline class="series" data-series="${
        escapeXml(s.name)
      }" data-count="${s.points.length}" fill="none" ` +
        `stroke="${escapeXml(s.color)}" stroke-width="1.6" stroke-linejoin="round"${
          s.dashed ? ' stroke-dasharray="5 3"' : ""
        } points="${coords}"/>`,
    );
    if (s.markers || drawn.length === 1) {
      for (const [x, y] of drawn) {
        parts.push(`<circle cx="${fmt(sx(x))}" cy="${fmt(sy(y))}" r="2.6" fill="${escapeXml(s.color)}"/>`);
      }
    }
  }
  // Legend (top right) with each series' latest value.
  let lx = left + plotW;
  for (const s of [...series].reverse()) {
    const last = s.points[s.points.length - 1];
    const label = `${s.name}${last ? ` ${formatTick(last[1])}` : ""}`;
    const w = 14 + label.length * 6.2;
    lx -= w + 10;
    parts.push(
      `<rect x="${fmt(lx)}" y="10" width="10" height="3" fill="${escapeXml(s.color)}"/>` +
        `<text x="${fmt(lx + 14)}" y="15" font-size="11" fill="#374151">${escapeXml(label)}</text>`,
    );
  }
  parts.push("</svg>");
  return parts.join("");
}
