/**
 * Reports of a layer-similarity study (similarity.ts): <base>.html (interactive heatmap, plotly inlined, all
 * settings and provenance), <base>.json (the full result) and <base>.png (the same heatmap rendered without a
 * browser). All three are rendered in memory first and only then written, as one set (writeFilesAtomic), so a
 * failure leaves no partial report behind.
 */
import sharp from 'sharp';
import { writeFilesAtomic } from '../../util/fs';
import { bestMatches, type ModelSide, type SimilarityResult } from '../similarity';
import { VIRIDIS } from './colormap';
import { heatmapSvg, valueRange, type HeatmapSpec } from './heatmap-svg';
import { escapeHtml, htmlPage, inlineScript, keyValueTable, plotlyBundle, plotlyOnce, table } from './html';
import { plotId, plotlyScript } from './plotly';
import { svgToPng } from './png';

export const CKA_REPORT_FORMAT = 'irlens-cka/1';

const fmt = (v: number | null | undefined, digits = 4) => (v === null || v === undefined ? '—' : v.toFixed(digits));
const ms = (v: number) => `${(v / 1000).toFixed(2)} s`;

function sideName(s: ModelSide): string {
  return `${s.label} [${s.task}]`;
}

export function estimatorName(r: SimilarityResult): string {
  return r.settings.estimator === 'unbiased' ? 'debiased CKA (unbiased HSIC1)' : 'CKA (biased HSIC0)';
}

function oneLineSettings(r: SimilarityResult, withEstimator = true): string {
  const s = r.settings;
  return (
    `${withEstimator ? `${estimatorName(r)}, ` : ''}${s.kernel} kernel${s.kernel === 'rbf' ? ` (threshold ${s.threshold})` : ''}, ` +
    `features '${s.features.mode}', ${r.examples} images in ${s.batchSizes.length} minibatch(es) of ${s.batchSizes.join('+')}` +
    `${s.size ? `, ${s.size[0]}x${s.size[1]} crops` : ''}, seed ${s.seed}`
  );
}

/** Extra versions the report itself depends on (plotly in the HTML, sharp for the PNG). */
function reportVersions(): Record<string, string> {
  return { 'plotly.js': plotlyBundle().version, sharp: sharp.versions.sharp ?? 'unknown', libvips: sharp.versions.vips };
}

/** The study result as the JSON report: format tag, everything in the result, the report's own versions. */
export function ckaReportJson(r: SimilarityResult): string {
  const out = { format: CKA_REPORT_FORMAT, ...r, provenance: { ...r.provenance, versions: { ...r.provenance.versions, ...reportVersions() } } };
  return `${JSON.stringify(out, null, 2)}\n`;
}

export function ckaHeatmapSpec(r: SimilarityResult): HeatmapSpec {
  const flagged = r.flags.flat().filter((f) => f !== null).length;
  return {
    rows: r.layersA,
    cols: r.layersB,
    values: r.matrix,
    title: `${estimatorName(r)}: ${r.models.a.label} vs ${r.models.b.label}`,
    subtitle: oneLineSettings(r, false),
    rowTitle: `model A: ${sideName(r.models.a)}`,
    colTitle: `model B: ${sideName(r.models.b)}`,
    colorbarTitle: 'CKA',
    notes: [
      `rows: layers of A (${r.models.a.label}), columns: layers of B (${r.models.b.label}), both in execution order`,
      ...(flagged ? [`grey crossed cells: CKA undefined (${[...new Set(r.flags.flat().filter((f) => f !== null))].join(', ')})`] : []),
      `irlens ${r.provenance.versions.irlens}, backend ${r.provenance.backend.name}, ${r.provenance.createdAt}`,
    ],
  };
}

/** The heatmap as PNG (SVG rasterised by sharp). */
export async function ckaPng(r: SimilarityResult): Promise<Buffer> {
  return svgToPng(heatmapSvg(ckaHeatmapSpec(r)));
}

function hoverText(r: SimilarityResult, i: number, j: number): string {
  const lines = [`A: ${r.layersA[i]}`, `B: ${r.layersB[j]}`];
  const v = r.matrix[i][j];
  lines.push(v === null ? `CKA undefined (${r.flags[i][j]})` : `CKA ${v.toFixed(4)}`);
  const ci = r.ci?.[i][j];
  if (ci) lines.push(`95% CI [${fmt(ci.lo)}, ${fmt(ci.hi)}]`);
  const p = r.permutation?.[i][j];
  if (r.permutation) lines.push(`shuffled-pairing baseline ${fmt(p)}`);
  return lines.map(escapeHtml).join('<br>');
}

function plotScript(r: SimilarityResult, divId = 'heatmap'): string {
  const [zmin, zmax] = valueRange(r.matrix);
  const small = r.layersA.length * r.layersB.length <= 600;
  const hover = r.matrix.map((row, i) => row.map((_, j) => hoverText(r, i, j)));
  const cellText = r.matrix.map((row) => row.map((v) => (v === null ? '' : v.toFixed(2))));
  const flagged: { x: string; y: string; text: string }[] = [];
  r.flags.forEach((row, i) => row.forEach((f, j) => f && flagged.push({ x: r.layersB[j], y: r.layersA[i], text: hover[i][j] })));
  const heatmap = {
    type: 'heatmap',
    z: r.matrix,
    x: r.layersB,
    y: r.layersA,
    zmin,
    zmax,
    colorscale: VIRIDIS,
    colorbar: { title: { text: 'CKA' } },
    customdata: hover,
    hovertemplate: '%{customdata}<extra></extra>',
    hoverongaps: false,
    xgap: 1,
    ygap: 1,
    ...(small ? { text: cellText, texttemplate: '%{text}', textfont: { size: 10 } } : {}),
  };
  const flaggedTrace = {
    type: 'scatter',
    mode: 'markers',
    x: flagged.map((f) => f.x),
    y: flagged.map((f) => f.y),
    customdata: flagged.map((f) => f.text),
    hovertemplate: '%{customdata}<extra></extra>',
    marker: { symbol: 'x-thin', size: 10, line: { width: 1.5, color: '#808080' } },
    showlegend: false,
  };
  const layout = {
    title: { text: escapeHtml(`${r.models.a.label} vs ${r.models.b.label}`) },
    xaxis: { title: { text: escapeHtml(`model B: ${sideName(r.models.b)}`) }, type: 'category', tickangle: -45, automargin: true },
    yaxis: { title: { text: escapeHtml(`model A: ${sideName(r.models.a)}`) }, type: 'category', autorange: 'reversed', automargin: true },
    plot_bgcolor: '#d0d0d0',
    height: Math.max(450, 28 * r.layersA.length + 300),
    margin: { t: 50 },
  };
  return plotlyScript(divId, flagged.length ? [heatmap, flaggedTrace] : [heatmap], layout);
}

export interface HeatmapSnippetOptions {
  /** id of the chart's <div> (default a fresh one); must be unique in the page. */
  divId?: string;
  /** Include plotly.js itself: true always, false never; default once per process (plotlyOnce). */
  plotly?: boolean;
}

/**
 * The interactive heatmap as an HTML fragment (div + inline scripts), for notebooks (tslab.display.html) and
 * pages of one's own; plotly.js comes inline from node_modules, never from a CDN.
 */
export function ckaHeatmapHtml(r: SimilarityResult, opts: HeatmapSnippetOptions = {}): string {
  const id = opts.divId ?? plotId('irlens-cka');
  return [plotlyOnce(opts.plotly), `<div id="${escapeHtml(id)}" style="width:100%"></div>`, inlineScript(plotScript(r, id))].filter((x) => x !== '').join('\n');
}

function modelRows(s: ModelSide): [string, string][] {
  return [
    ['model', s.label],
    ['family / preset', `${s.family}${s.preset ? ` / ${s.preset}` : ''}`],
    ['task', s.task],
    ['input', `${s.degradation === 'none' ? 'clean crop (task has no synthetic degradation)' : `degradation ${s.degradation}`}, ${s.inputSize[0]}x${s.inputSize[1]}x${s.channels}`],
    ['parameters', s.params.toLocaleString('en-US')],
    ['layer globs', s.layerGlobs.join(', ')],
  ];
}

/** The self-contained HTML report. */
export function ckaHtml(r: SimilarityResult): string {
  const s = r.settings;
  const p = r.provenance;
  const t = p.timings;
  const versions = { ...p.versions, ...reportVersions() };
  const best = bestMatches(r);
  const sameArch = r.layersA.every((l) => r.layersB.includes(l));
  const flagged = r.flags.flat().filter((f) => f !== null).length;
  const body = [
    `<h1>${escapeHtml(`${estimatorName(r)}: ${r.models.a.label} vs ${r.models.b.label}`)}</h1>`,
    `<p>${escapeHtml(oneLineSettings(r))}.</p>`,
    `<p class="note">Rows: layers of model A (${escapeHtml(sideName(r.models.a))}); columns: layers of model B (${escapeHtml(sideName(r.models.b))}); both in execution order. ` +
      `Hover a cell for its value${r.ci ? ' and 95% bootstrap interval' : ''}${r.permutation ? ' and the shuffled-pairing baseline' : ''}.` +
      (flagged ? ` ${flagged} grey crossed cell(s) are undefined (flags in the JSON report).` : '') +
      '</p>',
    '<div id="heatmap" style="width:100%"></div>',
    '<h2>Best match in B for each layer of A</h2>',
    table(
      ['layer of A', 'best layer of B', 'CKA', ...(sameArch ? ['CKA with same-name layer'] : [])],
      best.map((b) => [b.layerA, b.layerB ?? '—', fmt(b.value), ...(sameArch ? [fmt(b.sameName)] : [])]),
    ),
    '<h2>Models</h2>',
    keyValueTable(modelRows(r.models.a), 'A (rows)'),
    keyValueTable(modelRows(r.models.b), 'B (columns)'),
    '<h2>Settings</h2>',
    keyValueTable([
      ['estimator', `${s.estimator} (${estimatorName(r)}); minibatch CKA = ratio of sums of per-batch HSIC (Nguyen et al. 2021)`],
      ['kernel', s.kernel === 'rbf' ? `rbf, sigma^2 = threshold^2 x median squared distance, threshold ${s.threshold}` : 'linear'],
      ['features', `${s.features.mode}: ${s.features.rule}`],
      ['images', `${r.examples} (see below)`],
      ['batches', `batch ${s.batch}; used ${s.batchSizes.join(', ')}; ${s.lastBatch}`],
      ['crop', s.cropRule],
      ['model inputs', s.degradationRule],
      ['layer order', s.layerOrder],
      ['same model', s.sameModel ? 'yes: one forward per batch, identical Grams on both axes (diagonal exactly 1)' : 'no'],
      ['bootstrap', s.bootstrap > 0 ? `${s.bootstrap} replicates; ${r.bootstrapMethod ?? ''}` : 'off'],
      ['permutation baseline', s.permutation ? 'on (B examples shuffled within each batch)' : 'off'],
      ['seed', String(s.seed)],
    ]),
    '<h2>Provenance</h2>',
    keyValueTable([
      ['created', p.createdAt],
      ['backend', `${p.backend.name}${p.backend.description ? ` — ${p.backend.description}` : ''}`],
      ['versions', Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')],
      ['seed', String(p.seed)],
      [
        'time',
        `total ${ms(t.total)}: forward A ${ms(t.forwardA)}, forward B ${ms(t.forwardB)}, Grams ${ms(t.gram)}, other ${ms(t.other)} ` +
          `(images ${ms(t.detail.images)}, HSIC accumulation ${ms(t.detail.accumulate)})`,
      ],
    ]),
    `<h2>Images (${p.images.length})</h2>`,
    `<p class="mono">${p.images.map(escapeHtml).join(', ')}</p>`,
  ].join('\n');
  return htmlPage({ title: `CKA ${r.models.a.label} vs ${r.models.b.label}`, body, scripts: [plotScript(r)] });
}

export interface CkaReportFiles {
  html: string;
  json: string;
  png: string;
}

/**
 * Renders and writes <base>.html, <base>.json and <base>.png, all three or none (writeFilesAtomic): a failure
 * leaves a previous report of the same base untouched.
 */
export async function writeCkaReport(r: SimilarityResult, base: string): Promise<CkaReportFiles> {
  const files: CkaReportFiles = { html: `${base}.html`, json: `${base}.json`, png: `${base}.png` };
  const contents: [string, string | Buffer][] = [
    [files.json, ckaReportJson(r)],
    [files.html, ckaHtml(r)],
    [files.png, await ckaPng(r)],
  ];
  try {
    writeFilesAtomic(contents);
  } catch (e) {
    throw new Error(`--out '${base}': cannot write the report (${(e as Error).message.split('\n')[0]})`);
  }
  return files;
}
