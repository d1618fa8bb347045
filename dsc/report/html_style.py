"""The stylesheet of the HTML report: system fonts, light and dark colours (prefers-color-scheme; good and bad
are blue and vermillion, which colour-blind readers tell apart), tables that scroll inside their own box on
a narrow screen, headers that wrap only between words, and a print stylesheet."""

CSS = """\
:root { color-scheme: light dark; --fg: #1f2328; --bg: #ffffff; --muted: #59636e; --line: #d1d9e0;
  --head: #f6f8fa; --stripe: #fafbfc; --good: #0550ae; --bad: #b3400a; --warn: #7d4e00; --warn-bg: #fff8c5;
  --warn-line: #d4a72c; --link: #0969da; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1; --line: #3d444d; --head: #161b22;
    --stripe: #12171e; --good: #79c0ff; --bad: #ffa657; --warn: #e3b341; --warn-bg: #2b2111;
    --warn-line: #9e6a03; --link: #58a6ff; }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0 auto; max-width: 82rem; padding: 1.25rem clamp(0.75rem, 3vw, 2rem) 3rem;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif;
  color: var(--fg); background: var(--bg); }
h1 { font-size: 1.6rem; margin: 0 0 0.25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 0.5rem; padding-bottom: 0.2rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1.25rem 0 0.4rem; }
h1, h2, h3, p, li, dt, dd, figcaption, summary { overflow-wrap: anywhere; }
a { color: var(--link); }
code { font: 0.9em ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
.meta { margin: 0.1rem 0; color: var(--muted); }
header h2 { font-size: 1rem; margin-top: 1rem; }
details { margin: 0.5rem 0; }
summary { cursor: pointer; color: var(--muted); }
nav ul { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; list-style: none; margin: 1rem 0 0; padding: 0.5rem 0;
  border-top: 1px solid var(--line); border-bottom: 1px solid var(--line); }
.warnings { margin-top: 1.5rem; padding: 0.25rem 1rem; border-left: 4px solid var(--warn-line);
  background: var(--warn-bg); }
.warnings h2 { border: 0; margin-top: 0.5rem; }
.warnings ul { padding-left: 1.2rem; }
.findings dl { margin: 0; }
.findings dt { font-weight: 600; margin-top: 0.75rem; }
.findings dd { margin: 0.15rem 0 0 1.25rem; }
.note { color: var(--muted); font-size: 0.875rem; margin: 0.4rem 0; max-width: 60rem; }
.table-box { overflow-x: auto; width: fit-content; max-width: 100%; border: 1px solid var(--line);
  border-radius: 4px; background: var(--bg); }
.table-box + .table-box { margin-top: 0.75rem; }
.table-box:focus { outline: 2px solid var(--link); }
table { border-collapse: separate; border-spacing: 0; font-size: 0.875rem; font-variant-numeric: tabular-nums; }
caption { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
th, td { padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); }
thead th { background: var(--head); font-weight: 600; vertical-align: bottom;
  overflow-wrap: normal; word-break: normal; hyphens: manual; }
tbody th { font-weight: 500; position: sticky; left: 0; background: var(--bg); }
tbody tr:nth-child(even), tbody tr:nth-child(even) th { background: var(--stripe); }
tbody tr:last-child > * { border-bottom: 0; }
.num { text-align: right; white-space: nowrap; }
.nw { white-space: nowrap; }
td.long { min-width: 11em; }   /* a long text cell wraps into lines, not a word per line */
td.mid { min-width: 6em; }
.best strong, strong { font-weight: 700; }
.good { color: var(--good); }
.bad { color: var(--bad); }
.dim { color: var(--muted); }
.warn { color: var(--warn); }
figure { margin: 1rem 0 2rem; }
figure img { display: block; max-width: 100%; height: auto; background: #fff; padding: 0.5rem;
  border: 1px solid var(--line); border-radius: 4px; }
figcaption { margin-top: 0.4rem; font-size: 0.875rem; }
@media print {
  :root { --fg: #000; --bg: #fff; --muted: #444; --line: #999; --head: #eee; --stripe: #fff; --good: #003f8a;
    --bad: #8a2e00; --warn: #000; --warn-bg: #fff; --warn-line: #000; --link: #000; }
  @page { margin: 14mm 12mm; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav, summary { display: none; }
  a { text-decoration: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  .table-box { overflow: visible; width: auto; border: 0; }
  tbody th { position: static; }
  table { font-size: 8pt; width: 100%; }
  th, td { padding: 0.15rem 0.3rem; }
  .num { white-space: normal; }   /* a narrow page puts ± std under its mean */
  td.long { min-width: 7em; }
  thead { display: table-header-group; }
  tr, dt, dd, figure, .warnings li { break-inside: avoid; page-break-inside: avoid; }
  figure img { max-height: 24cm; border: 0; padding: 0; }
}
"""
