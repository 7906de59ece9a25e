/**
 * Self-contained HTML pages: inline CSS, plotly.js inlined from the installed plotly.js-dist-min (no CDN, so a
 * report opens offline and keeps working when a CDN moves), data embedded as JSON, provenance tables.
 */
import * as fs from 'node:fs';

let plotly: { source: string; version: string } | undefined;

/** plotly.min.js from node_modules and its version, read once per process. */
export function plotlyBundle(): { source: string; version: string } {
  if (!plotly) {
    const file = require.resolve('plotly.js-dist-min');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const version = (require('plotly.js-dist-min/package.json') as { version: string }).version;
    plotly = { source: fs.readFileSync(file, 'utf8'), version };
  }
  return plotly;
}

let plotlyEmitted = false;

/**
 * plotly.js as an inline <script> element for an HTML fragment (notebook outputs, pages of one's own). `true`:
 * always; `false`: never (the page has it already); unset: the first time in this process only. A notebook's
 * kernel is one process and its outputs share one page, so charts after the first need no copy of their own:
 * a notebook carries plotly (~4.6 MB) once, not once per output.
 */
export function plotlyOnce(include?: boolean): string {
  if (include === false || (include === undefined && plotlyEmitted)) return '';
  plotlyEmitted = true;
  return inlineScript(plotlyBundle().source);
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** JSON that is safe inside a <script> element: no '</script', '<!--' or line separators can end it early. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** A <script> element with `code` inline; a literal '</script' inside the code would close it early. */
export function inlineScript(code: string): string {
  return `<script>${code.replace(/<\/script/gi, '<\\/script')}</script>`;
}

/** A two-column table of (key, value) rows; values are plain text unless given as { html }. */
export function keyValueTable(rows: [string, string | { html: string }][], caption?: string): string {
  const body = rows
    .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${typeof v === 'string' ? escapeHtml(v) : v.html}</td></tr>`)
    .join('\n');
  return `<table class="kv">${caption ? `<caption>${escapeHtml(caption)}</caption>` : ''}\n${body}\n</table>`;
}

/** A table with a header row; cells are plain text. */
export function table(header: string[], rows: string[][], caption?: string): string {
  const th = header.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const trs = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table class="grid">${caption ? `<caption>${escapeHtml(caption)}</caption>` : ''}<thead><tr>${th}</tr></thead>\n<tbody>${trs}</tbody></table>`;
}

export interface HtmlPageOptions {
  title: string;
  /** Inner HTML of <body> (already escaped where needed). */
  body: string;
  /** Inline plotly.js before `scripts` (default true). */
  plotly?: boolean;
  /** Inline scripts run after the body (plain JS source). */
  scripts?: string[];
}

const STYLE = `
body { font-family: system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; margin: 24px auto; max-width: 1200px; color: #222; padding: 0 16px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.9em; }
table.kv th { text-align: left; padding: 3px 12px 3px 0; vertical-align: top; white-space: nowrap; color: #555; font-weight: 600; }
table.kv td { padding: 3px 0; }
table.grid th, table.grid td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
table.grid th { background: #f5f5f5; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
code, .mono { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 0.9em; }
.note { color: #666; font-size: 0.9em; }
`;

/** A complete HTML document with everything inline. */
export function htmlPage(o: HtmlPageOptions): string {
  const scripts = [...(o.plotly === false ? [] : [plotlyBundle().source]), ...(o.scripts ?? [])];
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(o.title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    o.body,
    ...scripts.map(inlineScript),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
