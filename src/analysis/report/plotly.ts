/**
 * One Plotly chart as HTML: a <div> and the inline script that draws into it. The script is an IIFE declaring
 * nothing at the top level, so any number of charts can share a page (top-level `const`s of classic scripts
 * share one scope per page, and a second `const D` would throw "Identifier 'D' has already been declared").
 * plotly.js itself must be on the page before the script runs (plotlyBundle(), inlined, never a CDN).
 */
import { escapeHtml, inlineScript, jsonForScript } from './html';

const CONFIG = { responsive: true, displaylogo: false };

let count = 0;

/** A page-unique element id (prefix, time and a per-process counter). */
export function plotId(prefix = 'irlens-plot'): string {
  return `${prefix}-${Date.now().toString(36)}-${count++}`;
}

/** The drawing code of a chart (no <script> element), for pages that collect their scripts at the end. */
export function plotlyScript(divId: string, traces: unknown[], layout: Record<string, unknown>): string {
  return `(function () {\nPlotly.newPlot(${jsonForScript(divId)}, ${jsonForScript(traces)}, ${jsonForScript(layout)}, ${jsonForScript(CONFIG)});\n})();`;
}

/** The chart's <div> followed by its inline script. */
export function plotlyDiv(divId: string, traces: unknown[], layout: Record<string, unknown>): string {
  return `<div id="${escapeHtml(divId)}" style="width:100%"></div>\n${inlineScript(plotlyScript(divId, traces, layout))}`;
}
