/**
 * The lineage graph of a runs directory as SVG: one box per run (colored by status), an arrow from each
 * run to every run fine-tuned from it (labelled with the parent checkpoint's step when known), laid out in
 * columns by depth (roots on the left). Runs named as parents but absent from the directory are drawn
 * dashed. Boxes link to the run's page (`#/run/<name>`).
 *
 * @module
 */
import type { LineageEdge, RunSummary } from "./run_directory.ts";
import { escapeXml } from "./svg_chart.ts";

/** Box fill per run status. */
export const STATUS_COLORS: Record<string, string> = {
  running: "#dbeafe",
  finished: "#dcfce7",
  interrupted: "#fef3c7",
  failed: "#fee2e2",
  unknown: "#f3f4f6",
};

/** Depth of each node: 0 for roots, else one more than its deepest parent (cycles are cut). */
export function lineageDepths(names: readonly string[], edges: readonly LineageEdge[]): Map<string, number> {
  const parents = new Map<string, string[]>();
  for (const e of edges) parents.set(e.child, [...(parents.get(e.child) ?? []), e.parent]);
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (n: string): number => {
    const known = depth.get(n);
    if (known !== undefined) return known;
    if (visiting.has(n)) return 0;
    visiting.add(n);
    const d = Math.max(-1, ...(parents.get(n) ?? []).map(visit)) + 1;
    visiting.delete(n);
    depth.set(n, d);
    return d;
  };
  for (const n of names) visit(n);
  return depth;
}

/**
 * Renders the lineage graph of `runs` with `edges` (child started from parent).
 *
 * @example
 * ```ts
 * import { lineageGraphSvg } from "./lineage_graph.ts";
 * import { listRuns } from "./run_directory.ts";
 * const runs = await listRuns("runs");
 * const svg = lineageGraphSvg(runs, [{ parent: "pretrain", child: "finetune", checkpointHash: null, checkpointStep: 300 }]);
 * ```
 */
export function lineageGraphSvg(runs: readonly RunSummary[], edges: readonly LineageEdge[]): string {
  const byName = new Map(runs.map((r) => [r.name, r]));
  const names = [...new Set([...runs.map((r) => r.name), ...edges.flatMap((e) => [e.parent, e.child])])]
    .sort();
  if (names.length === 0) {
    return '<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="320" height="40" data-nodes="0" data-edges="0">' +
      '<text x="8" y="24" font-size="12" fill="#6b7280">no runs yet</text></svg>';
  }
  const depth = lineageDepths(names, edges);
  const columns: string[][] = [];
  for (const n of names) (columns[depth.get(n) ?? 0] ??= []).push(n);
  const boxW = 170, boxH = 44, gapX = 70, gapY = 18, pad = 12;
  const at = new Map<string, { x: number; y: number }>();
  columns.forEach((col, c) =>
    (col ?? []).forEach((n, r) => at.set(n, { x: pad + c * (boxW + gapX), y: pad + r * (boxH + gapY) }))
  );
  const width = pad * 2 + columns.length * boxW + (columns.length - 1) * gapX;
  const height = pad * 2 + Math.max(...columns.map((c) => c?.length ?? 0)) * (boxH + gapY) - gapY;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="lineage" viewBox="0 0 ${width} ${height}" width="${width}" ` +
    `height="${height}" data-nodes="${names.length}" data-edges="${edges.length}">`,
    "<title>lineage: runs and the runs fine-tuned from them</title>",
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" ' +
    'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>',
  ];
  for (const e of edges) {
    const a = at.get(e.parent), b = at.get(e.child);
    if (!a || !b) continue;
    const x1 = a.x + boxW, y1 = a.y + boxH / 2, x2 = b.x, y2 = b.y + boxH / 2;
    const mx = (x1 + x2) / 2;
    parts.push(
      `<path class="edge" data-parent="${escapeXml(e.parent)}" data-child="${escapeXml(e.child)}" ` +
        `d="M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}" fill="none" stroke="#6b7280" ` +
        `stroke-width="1.4" marker-end="url(#arrow)"/>`,
    );
    if (e.checkpointStep !== null) {
      parts.push(
        `<text x="${mx}" y="${
          (y1 + y2) / 2 - 4
        }" text-anchor="middle" font-size="10" fill="#4b5563">step ${e.checkpointStep}</text>`,
      );
    }
  }
  for (const n of names) {
    const { x, y } = at.get(n)!;
    const run = byName.get(n);
    const status = run ? (run.stale ? "running?" : run.status) : "not in this runs dir";
    const fill = run ? STATUS_COLORS[run.status] ?? STATUS_COLORS.unknown : "#ffffff";
    const steps = run?.step !== null && run?.step !== undefined
      ? ` · ${run.step}${run.maxSteps ? `/${run.maxSteps}` : ""}`
      : "";
    const label = n.length > 24 ? `${n.slice(0, 23)}…` : n;
    const box =
      `<rect x="${x}" y="${y}" width="${boxW}" height="${boxH}" rx="6" fill="${fill}" stroke="#6b7280"` +
      `${run ? "" : ' stroke-dasharray="4 3"'}/>` +
      `<text x="${x + 8}" y="${y + 18}" font-size="12" font-weight="600" fill="#111827">${
        escapeXml(label)
      }</text>` +
      `<text x="${x + 8}" y="${y + 34}" font-size="10.5" fill="#374151">${escapeXml(status + steps)}</text>`;
    parts.push(
      run
        ? `<a class="node" data-run="${escapeXml(n)}" href="#/run/${encodeURIComponent(n)}">${box}</a>`
        : `<g class="node" data-run="${escapeXml(n)}">${box}</g>`,
    );
  }
  parts.push("</svg>");
  return parts.join("");
}
