/**
 * Reports of a layer-similarity study (similarity.ts): <base>.html (interactive heatmap, plotly inlined, a "how to
 * read this", all settings and provenance), <base>.json (the full result) and figures of the same heatmap made
 * without a browser: <base>.png (default), .svg and .pdf (publication). Every output states the command line,
 * irlens version and commit, compute path and both models' weights; random-init weights get a red warning. All
 * files are rendered in memory first and only then written, as one set (writeFilesAtomic), so a failure leaves
 * no partial report behind.
 */
import sharp from 'sharp';
import { writeFilesAtomic } from '../../util/fs';
import { bestMatches, type ModelSide, type SimilarityResult } from '../similarity';
import { VIRIDIS } from './colormap';
import { heatmapSvg, valueRange, type HeatmapSpec } from './heatmap-svg';
import { escapeHtml, htmlPage, inlineScript, keyValueTable, plotlyBundle, plotlyOnce, table } from './html';
import { plotId, plotlyScript } from './plotly';
import { svgToPng } from './png';
import { svgToPdf } from './pdf';
import { versionLine } from '../provenance';

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

/** "0.85\n[0.80, 0.90]" per cell when bootstrap intervals exist (else undefined: the value alone). */
function cellLabels(r: SimilarityResult): (string | null)[][] | undefined {
  if (!r.ci) return undefined;
  // Compact bounds ("[.85,.94]") so that the interval fits under the value in a heatmap cell.
  const short = (v: number | null) => fmt(v, 2).replace(/^(-?)0\./, '$1.');
  return r.matrix.map((row, i) => row.map((v, j) => (v === null ? null : `${v.toFixed(2)}\n[${short(r.ci![i][j].lo)},${short(r.ci![i][j].hi)}]`)));
}

/** Weights of one side for footers: "A restormer-tiny: weights: irlens-trained ..." (or 'not stated'). */
function weightsNote(which: 'A' | 'B', s: ModelSide): string {
  return `${which} ${s.label}: ${s.weights?.line ?? 'weights not stated'}`;
}

/** The footer lines every figure carries: weights of both models, command, version and commit, compute path. */
function provenanceNotes(r: SimilarityResult): string[] {
  const run = r.provenance.run;
  return [
    weightsNote('A', r.models.a),
    weightsNote('B', r.models.b),
    ...(run?.command ? [`command: ${run.command}`] : []),
    `${run ? versionLine(run) : `irlens ${r.provenance.versions.irlens}`}, backend ${r.provenance.backend.name}${run ? ` (${run.compute.kind})` : ''}, ${r.provenance.createdAt}`,
  ];
}

export function ckaHeatmapSpec(r: SimilarityResult): HeatmapSpec {
  const flagged = r.flags.flat().filter((f) => f !== null).length;
  return {
    ...(r.warnings?.length ? { warnings: r.warnings } : {}),
    ...(r.ci ? { cellLabels: cellLabels(r) } : {}),
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
      ...(r.ci ? [`cells: CKA and its 95% bootstrap interval (${r.settings.bootstrap} replicates)`] : []),
      ...(r.permutation ? [`shuffled-pairing baseline (chance level): mean ${fmt(meanOf(r.permutation), 3)} over cells`] : []),
      ...provenanceNotes(r),
    ],
  };
}

function meanOf(m: (number | null)[][]): number | null {
  const v = m.flat().filter((x): x is number => x !== null);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

/** The heatmap as SVG (publication figure; the PNG and PDF are made from it). */
export function ckaSvg(r: SimilarityResult): string {
  return heatmapSvg(ckaHeatmapSpec(r));
}

/** The heatmap as a vector PDF (the SVG drawn by pdfkit). */
export async function ckaPdf(r: SimilarityResult): Promise<Buffer> {
  return svgToPdf(ckaSvg(r), { title: `${estimatorName(r)}: ${r.models.a.label} vs ${r.models.b.label}`, subject: r.provenance.run?.command ?? undefined });
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
  const labels = cellLabels(r);
  const cellText = r.matrix.map((row, i) => row.map((v, j) => (v === null ? '' : labels ? labels[i][j]!.replace('\n', '<br>') : v.toFixed(2))));
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
    ...weightsRows(s),
  ];
}

function weightsRows(s: ModelSide): [string, string][] {
  const w = s.weights;
  if (!w) return [['weights', 'not stated (library call without weightsA/weightsB)']];
  return [
    ['weights', `${w.source}${w.warning ? ' — UNTRAINED' : ''}`],
    ['weights file', w.file ?? '—'],
    ['weights sha256', w.sha256 ?? '—'],
    ['trained by', w.trainedBy ?? '—'],
  ];
}

/** Red banner for each warning (random-init weights): the first thing on the page. */
function warningBanner(r: SimilarityResult): string {
  if (!r.warnings?.length) return '';
  return `<div class="warning" style="border:2px solid #c00000;background:#fff0f0;color:#c00000;font-weight:bold;padding:8px 12px;margin:8px 0">${r.warnings.map((w) => `<p style="margin:4px 0">${escapeHtml(w)}</p>`).join('')}</div>`;
}

/** Command, version, commit, compute path and both models' weights: the header of the page. */
function headerProvenance(r: SimilarityResult): string {
  const run = r.provenance.run;
  const rows: [string, string][] = [
    ...(run ? [['command', run.command ?? '(library call)'] as [string, string]] : []),
    ['irlens', run ? versionLine(run) : `irlens ${r.provenance.versions.irlens}`],
    [
      'compute',
      (run ? `${r.provenance.backend.name}: ${run.compute.description}` : r.provenance.backend.name) +
        ((r.provenance.timings.workers ?? 1) > 1 ? `; the forwards ran on ${r.provenance.timings.workers} worker threads with one kernel thread each` : ''),
    ],
    ['weights A', `${r.models.a.label}: ${r.models.a.weights?.line ?? 'not stated'}`],
    ['weights B', `${r.models.b.label}: ${r.models.b.weights?.line ?? 'not stated'}`],
  ];
  return keyValueTable(rows);
}

/** What the numbers mean, for readers new to CKA. */
function howToRead(r: SimilarityResult): string {
  const s = r.settings;
  const perm = r.permutation ? meanOf(r.permutation) : null;
  const items = [
    'CKA (centered kernel alignment) compares the <em>representational geometry</em> of two layers: how similar the example-by-example similarity structure (the Gram matrix over the same images) is. ' +
      '1 means the same geometry, 0 none shared. It is invariant to rotations (orthogonal transforms) and isotropic scaling of the features, and to how many features a layer has, but <em>not</em> to arbitrary invertible linear maps: two layers that differ by a non-orthogonal linear transform can score well below 1.',
    `Estimator: ${escapeHtml(estimatorName(r))}${s.estimator === 'unbiased' ? ' (Song et al. 2012; the minibatch CKA of Nguyen et al. 2021): nearly unbiased, can be slightly negative for unrelated layers' : ' (biased HSIC0: inflated towards 1 for few examples and many features)'}; ${escapeHtml(s.kernel)} kernel.`,
    `Minibatch size changes the estimate: HSIC is estimated per minibatch of ${s.batch} images and summed, so the value depends on the batch size (the debiased estimator depends on it much less than the biased one); compare maps computed with the same --batch.`,
    r.permutation
      ? `Shuffled-pairing baseline: the same computation with model B's images shuffled within each batch, so the pairs no longer match; it gives the chance level (here ${fmt(perm, 3)} on average over cells, per cell in the hover and the JSON). A value near the baseline means no shared structure.`
      : 'Shuffled-pairing baseline: off for this report (--no-permutation); it gives the chance level a value must clear to mean shared structure.',
    ...(r.ci ? [`Cells show the CKA and its 95% bootstrap interval over images (${s.bootstrap} replicates); overlapping intervals are not distinguishable with these images.`] : []),
  ];
  return `<h2>How to read this</h2>\n<ul class="note">${items.map((i) => `<li>${i}</li>`).join('\n')}</ul>`;
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
    warningBanner(r),
    headerProvenance(r),
    `<p>${escapeHtml(oneLineSettings(r))}.</p>`,
    `<p class="note">Rows: layers of model A (${escapeHtml(sideName(r.models.a))}); columns: layers of model B (${escapeHtml(sideName(r.models.b))}); both in execution order. ` +
      `Hover a cell for its value${r.ci ? ' and 95% bootstrap interval' : ''}${r.permutation ? ' and the shuffled-pairing baseline' : ''}.` +
      (flagged ? ` ${flagged} grey crossed cell(s) are undefined (flags in the JSON report).` : '') +
      '</p>',
    '<div id="heatmap" style="width:100%"></div>',
    howToRead(r),
    '<h2>Best match in B for each layer of A</h2>',
    table(
      ['layer of A', 'best layer of B', 'CKA', ...(r.permutation ? ['shuffled-pairing baseline'] : []), ...(sameArch ? ['CKA with same-name layer'] : [])],
      best.map((b) => [
        b.layerA,
        b.layerB ?? '—',
        fmt(b.value),
        ...(r.permutation ? [b.layerB === null ? '—' : fmt(r.permutation[r.layersA.indexOf(b.layerA)][r.layersB.indexOf(b.layerB)])] : []),
        ...(sameArch ? [fmt(b.sameName)] : []),
      ]),
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
        `total ${ms(t.total)}${(t.workers ?? 1) > 1 ? ` on ${t.workers} worker threads (forwards, Grams and images summed over them)` : ''}: forward A ${ms(t.forwardA)}, forward B ${ms(t.forwardB)}, Grams ${ms(t.gram)}, other ${ms(t.other)} ` +
          `(images ${ms(t.detail.images)}, HSIC accumulation ${ms(t.detail.accumulate)})`,
      ],
    ]),
    `<h2>Images (${p.images.length})</h2>`,
    `<p class="mono">${p.images.map(escapeHtml).join(', ')}</p>`,
  ].join('\n');
  return htmlPage({ title: `CKA ${r.models.a.label} vs ${r.models.b.label}`, body, scripts: [plotScript(r)] });
}

export const FIGURE_FORMATS = ['png', 'svg', 'pdf'] as const;
export type FigureFormat = (typeof FIGURE_FORMATS)[number];

export interface CkaReportFiles {
  html: string;
  json: string;
  png?: string;
  svg?: string;
  pdf?: string;
}

/**
 * Renders and writes <base>.html, <base>.json and the figures (default png; svg and pdf for publication), all
 * or none (writeFilesAtomic): a failure leaves a previous report of the same base untouched.
 */
export async function writeCkaReport<F extends FigureFormat = 'png'>(
  r: SimilarityResult,
  base: string,
  opts: { figures?: readonly F[] } = {},
): Promise<CkaReportFiles & Record<F, string>> {
  const figures: FigureFormat[] = [...new Set<FigureFormat>(opts.figures ?? ['png'])];
  const files: CkaReportFiles = { html: `${base}.html`, json: `${base}.json` };
  const contents: [string, string | Buffer][] = [
    [files.json, ckaReportJson(r)],
    [files.html, ckaHtml(r)],
  ];
  const svg = ckaSvg(r);
  for (const f of figures) {
    const file = `${base}.${f}`;
    files[f] = file;
    contents.push([file, f === 'svg' ? svg : f === 'png' ? await svgToPng(svg) : await ckaPdf(r)]);
  }
  try {
    writeFilesAtomic(contents);
  } catch (e) {
    throw new Error(`--out '${base}': cannot write the report (${(e as Error).message.split('\n')[0]})`);
  }
  return files as CkaReportFiles & Record<F, string>;
}
