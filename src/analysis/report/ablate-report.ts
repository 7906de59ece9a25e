/**
 * Ablation reports: `<base>.json` (baseline metrics, every entry with hook point, mode, head, mean PSNR/SSIM, drop
 * and interval, per-image values) and `<base>.html` (offline, self-contained: ranked drops with intervals, the
 * block x mode knock-out map, the per-head grid, stages, example images, LAM maps, settings and weights provenance).
 * Both files are written all-or-none (writeFilesAtomic): a failure leaves the previous set as it was.
 */
import type { ImageF32 } from '../../io/types';
import { encodePng } from '../../io/image';
import type { AblationResult } from '../ablation/runner';
import type { LamResult } from '../ablation/lam';
import { escapeHtml, htmlPage, inlineScript, keyValueTable, plotlyOnce, table } from './html';
import { plotId, plotlyScript } from './plotly';
import { writeFilesAtomic } from '../../util/fs';

export const ABLATE_REPORT_FORMAT = 'irlens-ablate/1';

export interface WeightsInfo {
  source: string;
  file: string | null;
  sha256: string | null;
  trainedBy?: string | null;
  warning?: string;
}

export interface AblationReport {
  model: { label: string; family: string; preset?: string; task: string; params: number };
  weights: WeightsInfo;
  data: { from: string; images: number; size: [number, number]; degradation: string };
  settings: Record<string, unknown>;
  result: AblationResult;
  examples?: { name: string; input: ImageF32; full: ImageF32; ablated: { key: string; image: ImageF32 }[] }[];
  lam?: { label: string; image: string; window: { x: number; y: number; w: number }; result: LamResult; input: ImageF32 }[];
  provenance: Record<string, string>;
  timings: Record<string, number>;
}

const fmt = (v: number | null | undefined, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d));

/** The JSON report (no image pixels). */
export function ablateReportJson(r: AblationReport): Record<string, unknown> {
  const res = r.result;
  return {
    format: ABLATE_REPORT_FORMAT,
    model: r.model,
    weights: r.weights,
    data: { ...r.data, names: res.images },
    settings: r.settings,
    outputs: res.outputs,
    baseline: res.baseline,
    entries: res.entries.map((e) => ({
      key: e.key,
      hookPoint: e.point,
      mode: e.mode,
      head: e.head ?? null,
      mean: e.mean,
      drop: e.drop,
      perImage: e.perImage,
      replayedModules: e.replayed,
    })),
    skipped: res.skipped,
    activationStats: res.stats,
    lam: r.lam?.map((l) => ({ model: l.label, image: l.image, window: l.window, diffusionIndex: l.result.diffusionIndex, settings: l.result.settings, height: l.result.height, width: l.result.width })),
    provenance: r.provenance,
    timings: { ...r.timings, baselineMs: res.timings.baselineMs, ablationsMs: res.timings.ablationsMs, forwards: res.timings.forwards, replayedModules: res.timings.replayedModules },
  };
}

/** Entries sorted by mean PSNR drop of the main output, largest first. */
export function rankedEntries(res: AblationResult) {
  const main = res.outputs[0];
  return [...res.entries].sort((a, b) => (b.drop[main].psnr ?? 0) - (a.drop[main].psnr ?? 0));
}

async function pngDataUri(img: ImageF32): Promise<string> {
  return `data:image/png;base64,${(await encodePng(img)).toString('base64')}`;
}

/** A LAM map as a gray image (sqrt for visibility, like LAM_Demo's display) with the window outlined on the output grid. */
export function lamHeatImage(l: LamResult): ImageF32 {
  const data = new Float32Array(l.height * l.width * 3);
  for (let p = 0; p < l.height * l.width; p++) {
    const v = Math.sqrt(l.map[p]);
    data[p * 3] = v;
    data[p * 3 + 1] = v * 0.35;
    data[p * 3 + 2] = 0.1 * (1 - v);
  }
  return { data, height: l.height, width: l.width, channels: 3 };
}

/** Charts draw after plotly.js, which htmlPage inlines at the end of the body: divs now, scripts collected. */
function chartCollector() {
  const scripts: string[] = [];
  return {
    scripts,
    div(prefix: string, traces: unknown[], layout: Record<string, unknown>): string {
      const id = plotId(prefix);
      scripts.push(plotlyScript(id, traces, layout));
      return `<div id="${escapeHtml(id)}" style="width:100%"></div>`;
    },
  };
}

function imgTag(src: string, caption: string, px = 192): string {
  return `<figure style="display:inline-block;margin:4px"><img src="${src}" style="width:${px}px;image-rendering:pixelated" alt="${escapeHtml(caption)}"><figcaption class="note">${escapeHtml(caption)}</figcaption></figure>`;
}

/** A Plotly chart as data: the page collects its scripts, notebooks take ablateChartHtml's fragment. */
export interface ChartSpec {
  traces: unknown[];
  layout: Record<string, unknown>;
}

/**
 * Drop colours: diverging around 0 (blue = the ablation helps, white = no change, dark red = the largest drop),
 * symmetric range so the sign reads at a glance. Plotly's built-in 'Reds' ends in light grey at its top, which made
 * the most harmful cell look like a missing one; a cell without an entry is drawn mid grey (off this scale) and
 * labelled 'n/a'.
 */
const DROP_SCALE: [number, string][] = [
  [0, '#2166ac'],
  [0.25, '#92c5de'],
  [0.5, '#f7f7f7'],
  [0.62, '#fddbc7'],
  [0.75, '#ef8a62'],
  [0.88, '#b2182b'],
  [1, '#67001f'],
];
const MISSING_COLOR = '#9e9e9e';
const DROP_SCALE_NOTE = 'Colours: dark red = largest PSNR drop, white = no change, blue = the ablation improves PSNR; grey cells marked n/a have no entry (identity skipped for blocks that change shape, or the mode was not run there).';

/** A drop heatmap (rows y, columns x, null = no entry) on DROP_SCALE, every cell labelled with its value or n/a. */
function dropHeatmap(z: (number | null)[][], x: string[], y: string[], height: number): ChartSpec {
  const finite = z.flat().filter((v): v is number => v !== null && Number.isFinite(v));
  const zmax = Math.max(1e-6, ...finite.map(Math.abs));
  const annotations = z.flatMap((row, i) =>
    row.flatMap((v, j) => (v === null ? [{ x: x[j], y: y[i], text: 'n/a', showarrow: false, font: { color: '#ffffff', size: 11 } }] : [])),
  );
  return {
    traces: [
      {
        type: 'heatmap',
        z,
        x,
        y,
        zmin: -zmax,
        zmax,
        zmid: 0,
        colorscale: DROP_SCALE,
        texttemplate: '%{z:.2f}',
        hovertemplate: '%{y} / %{x}: %{z:.3f} dB<extra></extra>',
        hoverongaps: false,
        colorbar: { title: { text: 'PSNR drop (dB)' } },
      },
    ],
    layout: {
      height,
      margin: { l: 320, r: 20, t: 10, b: 60 },
      yaxis: { autorange: 'reversed', type: 'category' },
      xaxis: { type: 'category' },
      plot_bgcolor: MISSING_COLOR,
      annotations,
    },
  };
}

/** Ranked bar chart of the main output's mean PSNR drops with 95% bootstrap intervals (largest at the top). */
export function ablateRankChart(res: AblationResult, limit = 60): ChartSpec {
  const main = res.outputs[0];
  const top = rankedEntries(res).slice(0, limit).reverse();
  return {
    traces: [
      {
        type: 'bar',
        orientation: 'h',
        y: top.map((e) => e.key),
        x: top.map((e) => e.drop[main].psnr),
        error_x: {
          type: 'data',
          symmetric: false,
          array: top.map((e) => (e.drop[main].psnrCi ? e.drop[main].psnrCi!.hi - e.drop[main].psnr : 0)),
          arrayminus: top.map((e) => (e.drop[main].psnrCi ? e.drop[main].psnr - e.drop[main].psnrCi!.lo : 0)),
        },
        marker: { color: top.map((e) => (e.drop[main].psnr >= 0 ? '#b2182b' : '#2166ac')) },
      },
    ],
    layout: { height: Math.max(300, 18 * top.length + 80), margin: { l: 320, r: 20, t: 10, b: 40 }, xaxis: { title: { text: 'PSNR drop (dB)' } } },
  };
}

/** The block x mode knock-out map of the whole-point entries (null when there are none). */
export function ablateKnockoutChart(res: AblationResult): ChartSpec | null {
  const main = res.outputs[0];
  const blockEntries = res.entries.filter((e) => e.head === undefined);
  const points = [...new Set(blockEntries.map((e) => e.point))];
  const modes = [...new Set([...blockEntries.map((e) => e.mode), ...res.skipped.map((k) => k.key.split('/').pop()!)])];
  if (points.length === 0 || modes.length === 0) return null;
  const z = points.map((p) => modes.map((m) => blockEntries.find((e) => e.point === p && e.mode === m)?.drop[main].psnr ?? null));
  return dropHeatmap(z, modes, points, Math.max(300, 22 * points.length + 100));
}

/** One attention-point x head grid per mode of the per-head entries. */
export function ablateHeadCharts(res: AblationResult): { mode: string; chart: ChartSpec }[] {
  const main = res.outputs[0];
  const headEntries = res.entries.filter((e) => e.head !== undefined);
  if (headEntries.length === 0) return [];
  const nh = Math.max(...headEntries.map((e) => e.head!)) + 1;
  const heads = Array.from({ length: nh }, (_, h) => `head ${h}`);
  return [...new Set(headEntries.map((e) => e.mode))].map((mode) => {
    const hp = [...new Set(headEntries.filter((e) => e.mode === mode).map((e) => e.point))];
    const z = hp.map((p) => Array.from({ length: nh }, (_, h) => headEntries.find((e) => e.point === p && e.head === h && e.mode === mode)?.drop[main].psnr ?? null));
    return { mode, chart: dropHeatmap(z, heads, hp, Math.max(260, 22 * hp.length + 100)) };
  });
}

/**
 * A chart as an HTML fragment (div + inline script) for notebooks (tslab.display.html) and pages of one's own;
 * plotly.js comes inline from node_modules, by default once per process (plotlyOnce).
 */
export function ablateChartHtml(chart: ChartSpec, opts: { plotly?: boolean; divId?: string } = {}): string {
  const id = opts.divId ?? plotId('irlens-ablate');
  return [plotlyOnce(opts.plotly), `<div id="${escapeHtml(id)}" style="width:100%"></div>`, inlineScript(plotlyScript(id, chart.traces, chart.layout))].filter((x) => x !== '').join('\n');
}

/** The sorted table of every entry (main output): PSNR, drop and interval, SSIM, SSIM drop and interval. */
export function ablateTableHtml(res: AblationResult, caption?: string): string {
  const main = res.outputs[0];
  return table(
    ['hook point', 'mode', 'head', 'PSNR', 'drop (dB)', '95% CI', 'SSIM', 'SSIM drop', '95% CI', 'replayed'],
    rankedEntries(res).map((e) => {
      const d = e.drop[main];
      return [
        e.point,
        e.mode,
        e.head === undefined ? '' : String(e.head),
        fmt(e.mean[main].psnr, 2),
        fmt(d.psnr),
        d.psnrCi ? `[${fmt(d.psnrCi.lo)}, ${fmt(d.psnrCi.hi)}]` : '—',
        fmt(e.mean[main].ssim, 4),
        fmt(d.ssim, 4),
        d.ssimCi ? `[${fmt(d.ssimCi.lo, 4)}, ${fmt(d.ssimCi.hi, 4)}]` : '—',
        String(e.replayed),
      ];
    }),
    caption,
  );
}

export async function ablateHtml(r: AblationReport): Promise<string> {
  const res = r.result;
  const main = res.outputs[0];
  const ranked = rankedEntries(res);
  const parts: string[] = [];
  const charts = chartCollector();
  parts.push(`<h1>Ablations of ${escapeHtml(r.model.label)} [${escapeHtml(r.model.task)}]</h1>`);
  if (r.weights.warning) parts.push(`<p style="background:#fdd;border:2px solid #c00;padding:8px;font-weight:700">${escapeHtml(r.weights.warning)}</p>`);
  parts.push(
    keyValueTable(
      [
        ['model', `${r.model.label} (${r.model.family}, ${r.model.params.toLocaleString('en-US')} parameters)`],
        ['weights', `${r.weights.source}${r.weights.file ? ` ${r.weights.file}` : ''}`],
        ['weights sha256', r.weights.sha256 ?? '—'],
        ['trained by', r.weights.trainedBy ?? '—'],
        ['data', `${r.data.images} images from ${r.data.from}, ${r.data.size[0]}x${r.data.size[1]} crops, degradation ${r.data.degradation}`],
        ['unablated', res.outputs.map((o) => `${o}: PSNR ${fmt(res.baseline.mean[o].psnr, 2)} dB, SSIM ${fmt(res.baseline.mean[o].ssim, 4)}`).join('; ')],
      ],
      'Model, weights and data',
    ),
  );
  parts.push(`<h2>Ranked PSNR drops (${escapeHtml(main)})</h2><p class="note">Drop = unablated minus ablated PSNR per image; bars are means over images with 95% bootstrap intervals. Positive: the ablation hurts.</p>`);
  const rank = ablateRankChart(res);
  parts.push(charts.div('ablate-rank', rank.traces, rank.layout));
  const knockout = ablateKnockoutChart(res);
  if (knockout) {
    parts.push('<h2>Knock-out map (hook point x mode, PSNR drop in dB)</h2>');
    parts.push(charts.div('ablate-knockout', knockout.traces, knockout.layout));
    parts.push(`<p class="note">${escapeHtml(DROP_SCALE_NOTE)}</p>`);
  }
  for (const { mode, chart } of ablateHeadCharts(res)) {
    parts.push(`<h2>Per-head ablation: ${escapeHtml(mode)} (PSNR drop in dB)</h2>`);
    parts.push(charts.div('ablate-heads', chart.traces, chart.layout));
  }
  if (res.outputs.length > 1) {
    parts.push('<h2>Stages</h2><p class="note">PSNR drop of every stage output (MPRNet): an ablation can only change the stages after it.</p>');
    parts.push(
      table(
        ['entry', ...res.outputs.map((o) => `${o} drop (dB)`)],
        ranked.map((e) => [e.key, ...res.outputs.map((o) => fmt(e.drop[o].psnr))]),
        `baseline: ${res.outputs.map((o) => `${o} ${fmt(res.baseline.mean[o].psnr, 2)} dB`).join(', ')}`,
      ),
    );
  }
  parts.push('<h2>All entries</h2>');
  parts.push(ablateTableHtml(res));
  if (res.skipped.length) parts.push(`<p class="note">Skipped: ${escapeHtml(res.skipped.map((k) => `${k.key} (${k.reason})`).join('; '))}</p>`);
  if (r.examples?.length) {
    parts.push('<h2>Examples</h2>');
    for (const ex of r.examples) {
      const figs = [imgTag(await pngDataUri(ex.input), `${ex.name}: input`), imgTag(await pngDataUri(ex.full), 'full model')];
      for (const a of ex.ablated) figs.push(imgTag(await pngDataUri(a.image), `ablated ${a.key}`));
      parts.push(`<div>${figs.join('')}</div>`);
    }
  }
  if (r.lam?.length) {
    parts.push('<h2>Local attribution maps (LAM)</h2><p class="note">Gaussian-blur path integrated gradients of the gradient magnitude in the output window (Gu &amp; Dong 2021); DI = (1 - Gini) x 100, comparable across models on the same image and window.</p>');
    const figs: string[] = [];
    for (const l of r.lam) {
      figs.push(imgTag(await pngDataUri(l.input), `${l.label}: input (window ${l.window.x},${l.window.y},${l.window.w} on the output)`));
      figs.push(imgTag(await pngDataUri(lamHeatImage(l.result)), `${l.label}: LAM, DI ${l.result.diffusionIndex.toFixed(2)}`));
    }
    parts.push(`<div>${figs.join('')}</div>`);
  }
  parts.push(
    keyValueTable(
      [...Object.entries(r.settings).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)] as [string, string]), ...Object.entries(r.provenance)],
      'Settings and provenance',
    ),
  );
  parts.push(`<p class="note">time: baseline pass ${(res.timings.baselineMs / 1000).toFixed(1)} s, ${res.timings.forwards} ablated forwards ${(res.timings.ablationsMs / 1000).toFixed(1)} s (${res.timings.replayedModules} module outputs replayed from the unablated forward)</p>`);
  return htmlPage({ title: `irlens ablations: ${r.model.label}`, body: parts.join('\n'), scripts: charts.scripts });
}

export interface AblateReportFiles {
  html: string;
  json: string;
}

/** Writes `<base>.json` and `<base>.html`; on failure neither is left (all-or-none). */
export async function writeAblateReport(r: AblationReport, base: string): Promise<AblateReportFiles> {
  const files = { html: `${base}.html`, json: `${base}.json` };
  const json = `${JSON.stringify(ablateReportJson(r), null, 1)}\n`;
  const html = await ablateHtml(r);
  writeFilesAtomic([
    [files.json, json],
    [files.html, html],
  ]);
  return files;
}

/** The `ablate lam` page: maps of several models side by side with their DI. */
export async function lamHtml(title: string, lams: NonNullable<AblationReport['lam']>, weights: { label: string; weights: WeightsInfo }[], provenance: Record<string, string>): Promise<string> {
  const parts = [`<h1>${escapeHtml(title)}</h1>`];
  const charts = chartCollector();
  for (const w of weights) if (w.weights.warning) parts.push(`<p style="background:#fdd;border:2px solid #c00;padding:8px;font-weight:700">${escapeHtml(w.label)}: ${escapeHtml(w.weights.warning)}</p>`);
  parts.push(
    table(
      ['model', 'DI', 'weights', 'sha256'],
      lams.map((l, i) => [l.label, l.result.diffusionIndex.toFixed(2), `${weights[i].weights.source} ${weights[i].weights.file ?? ''}`, weights[i].weights.sha256 ?? '—']),
      'Diffusion index per model (same image and window)',
    ),
  );
  const figs: string[] = [];
  for (const l of lams) {
    figs.push(imgTag(await pngDataUri(l.input), `${l.label}: input`));
    figs.push(imgTag(await pngDataUri(lamHeatImage(l.result)), `${l.label}: LAM, DI ${l.result.diffusionIndex.toFixed(2)}`));
  }
  parts.push(`<div>${figs.join('')}</div>`);
  parts.push(
    charts.div('lam-di', [{ type: 'bar', x: lams.map((l) => l.label), y: lams.map((l) => l.result.diffusionIndex), marker: { color: '#2c7fb8' } }], {
      height: 320,
      yaxis: { title: { text: 'DI' } },
      margin: { t: 10 },
    }),
  );
  parts.push(keyValueTable([...Object.entries(lams[0].result.settings).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)] as [string, string]), ...Object.entries(provenance)], 'Settings and provenance'));
  return htmlPage({ title, body: parts.join('\n'), scripts: charts.scripts });
}
