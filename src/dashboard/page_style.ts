/**
 * The stylesheet shared by the dashboard page and the static run reports (system fonts, no external assets).
 *
 * @module
 */

/** CSS of the dashboard and `report.html`. */
export const PAGE_CSS = `
:root { color-scheme: light; --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #f9fafb; }
header { display: flex; align-items: baseline; gap: 16px; padding: 12px 20px; background: #111827; color: #f9fafb; }
header h1 { margin: 0; font-size: 18px; }
header .sub { color: #9ca3af; font-size: 12px; }
main { padding: 16px 20px; max-width: 1400px; }
h2 { font-size: 16px; margin: 22px 0 8px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin-bottom: 14px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
tr.clickable { cursor: pointer; }
tr.clickable:hover { background: #eff6ff; }
tr.selected { background: #dbeafe; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
pre { background: #f3f4f6; padding: 8px; border-radius: 6px; overflow: auto; max-height: 420px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
.charts svg { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.badge.running { background: #dbeafe; color: #1d4ed8; }
.badge.finished { background: #dcfce7; color: #15803d; }
.badge.interrupted { background: #fef3c7; color: #b45309; }
.badge.failed { background: #fee2e2; color: #b91c1c; }
.badge.unknown, .badge.stale { background: #f3f4f6; color: #4b5563; }
.muted { color: var(--muted); }
.ok { color: #15803d; font-weight: 600; }
.bad { color: #b91c1c; font-weight: 600; }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; font-size: 13px; }
.kv div:nth-child(odd) { color: var(--muted); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
button, select { font: inherit; padding: 3px 10px; }
.lineage { max-width: 100%; height: auto; }
`;
