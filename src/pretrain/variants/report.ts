/**
 * The architectural-ablation report: a self-contained HTML page (plotly inlined, one IIFE per chart) and the
 * JSON of the result, written together or not at all (writeFilesAtomic).
 */
import { escapeHtml, htmlPage, keyValueTable, table } from '../../analysis/report/html';
import { plotId, plotlyScript } from '../../analysis/report/plotly';
import { writeFilesAtomic } from '../../util/fs';
import type { PairedComparison, VariantsResult } from './run';

const f = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const signed = (x: number, d: number) => `${x >= 0 ? '+' : ''}${f(x, d)}`;
const pv = (p: number | undefined) => (p === undefined ? 'n/a' : p < 1e-4 ? p.toExponential(1) : p.toPrecision(3));

function diffCell(d: PairedComparison | undefined, digits: number): string {
  if (!d) return 'baseline';
  const ci = d.ci ? ` [${f(d.ci.lo, digits)}, ${f(d.ci.hi, digits)}]` : '';
  return `${signed(d.meanDiff, digits)} ± ${f(d.stdDiff, digits)}${ci}`;
}

export function variantsReportHtml(r: VariantsResult): string {
  const c = r.config;
  // Charts: a <div> in the body, its drawing script after plotly.js (htmlPage puts plotly first, then `scripts`).
  const scripts: string[] = [];
  const chart = (prefix: string, traces: unknown[], layout: Record<string, unknown>) => {
    const id = plotId(prefix);
    scripts.push(plotlyScript(id, traces, layout));
    return `<div id="${escapeHtml(id)}" style="width:100%"></div>`;
  };
  const rows = r.summary.map((s) => {
    const d = s.vsBaseline?.psnr;
    return [
      s.variant,
      s.description,
      s.params.toLocaleString('en-US'),
      `${f(s.psnr.mean, 2)} ± ${f(s.psnr.std, 2)}`,
      `${f(s.ssim.mean, 4)} ± ${f(s.ssim.std, 4)}`,
      diffCell(d, 3),
      d ? pv(d.tTest?.pValue) : '',
      d ? (d.wilcoxon ? pv(d.wilcoxon.pValue) : `n/a (n=${d.n})`) : '',
      diffCell(s.vsBaseline?.ssim, 4),
      d ? (d.notSignificant ? 'n.s.' : 'significant') : '',
    ];
  });
  const summaryTable = table(
    ['variant', 'change', 'parameters', 'PSNR (dB) mean ± std', 'SSIM mean ± std', `ΔPSNR vs ${c.baseline} ± std [95% CI]`, 't-test p', 'Wilcoxon p', 'ΔSSIM [95% CI]', `at α=${c.alpha}`],
    rows,
    `${c.arch} variants on ${c.model}, task ${c.task}, ${c.seeds.length} seeds`,
  );
  const bar = chart(
    'variants-psnr',
    [
      {
        // Markers, not bars: PSNR differences of tenths of a dB vanish on bars drawn from 0.
        type: 'scatter',
        mode: 'markers',
        name: 'mean ± std over seeds',
        x: r.summary.map((s) => s.variant),
        y: r.summary.map((s) => s.psnr.mean),
        error_y: { type: 'data', array: r.summary.map((s) => s.psnr.std), visible: true },
        marker: { size: 14, symbol: 'diamond', color: r.summary.map((s) => (s.variant === c.baseline ? '#555' : '#4a7ebb')) },
      },
      {
        type: 'scatter',
        mode: 'markers',
        name: 'per seed',
        x: r.results.map((x) => x.variant),
        y: r.results.map((x) => x.psnr),
        text: r.results.map((x) => `seed ${x.seed}`),
        marker: { color: '#d62728', size: 7 },
      },
    ],
    { title: { text: 'Held-out PSNR per variant' }, yaxis: { title: { text: 'PSNR (dB)' }, zeroline: false }, height: 420 },
  );
  const compared = r.summary.filter((s) => s.vsBaseline);
  const diffs = chart(
    'variants-diff',
    [
      {
        type: 'scatter',
        mode: 'markers',
        name: `ΔPSNR vs ${c.baseline} (95% bootstrap CI over seeds)`,
        x: compared.map((s) => s.vsBaseline!.psnr.meanDiff),
        y: compared.map((s) => s.variant),
        error_x: {
          type: 'data',
          symmetric: false,
          array: compared.map((s) => (s.vsBaseline!.psnr.ci ? s.vsBaseline!.psnr.ci.hi - s.vsBaseline!.psnr.meanDiff : 0)),
          arrayminus: compared.map((s) => (s.vsBaseline!.psnr.ci ? s.vsBaseline!.psnr.meanDiff - s.vsBaseline!.psnr.ci.lo : 0)),
        },
        marker: { size: 10, color: compared.map((s) => (s.vsBaseline!.psnr.notSignificant ? '#999' : '#2ca02c')) },
      },
    ],
    { title: { text: `Paired PSNR difference to ${c.baseline} (grey: not significant)` }, xaxis: { title: { text: 'ΔPSNR (dB)' }, zeroline: true, zerolinecolor: '#444' }, yaxis: { automargin: true }, height: Math.max(280, 160 + 50 * compared.length) },
  );
  const perSeed = table(
    ['variant', 'seed', 'PSNR (dB)', 'SSIM', ...r.split.eval.map((n) => `${n} PSNR`)],
    r.results.map((x) => [x.variant, String(x.seed), f(x.psnr, 3), f(x.ssim, 4), ...x.perImage.map((p) => f(p.psnr, 2))]),
    'Per seed (mean over held-out images) and per image',
  );
  const accounting = table(
    ['variant', 'steps', 'patches (steps x batch)', 'GT pixels', 'batches x patch'],
    r.accounting.map((a) => [a.variant, String(a.steps), a.patches.toLocaleString('en-US'), a.pixels.toLocaleString('en-US'), a.patchSizes]),
    'Compute per variant and seed (equal steps x batch x patch unless a training variant says otherwise)',
  );
  const deltas = table(
    ['variant', 'config delta on the preset', 'training delta'],
    r.variants.map((v) => [v.name, JSON.stringify(v.delta), Object.keys(v.training).length ? JSON.stringify(v.training) : '—']),
    'Variants (deltas of the family descriptor, src/models/<family>.ts)',
  );
  const runs = table(
    ['run', 'status', 'train s', 'wall s (this invocation)'],
    r.runs.map((x) => [x.id, x.status, f(x.trainSeconds, 1), f(x.wallSeconds, 1)]),
    'Training runs',
  );
  const settings = keyValueTable([
    ['family / model', `${c.arch} / ${c.model} ${JSON.stringify(c.modelConfig)}`],
    ['task', c.task],
    ['preset', c.preset],
    ['seeds', c.seeds.join(', ')],
    ['steps x batch', `${c.steps} x ${c.batch}`],
    ['loss / optimizer', `${c.loss} / ${c.optimizer.kind} (β ${c.optimizer.beta1}, ${c.optimizer.beta2}; wd ${c.optimizer.weightDecay})`],
    ['learning rate', `${c.lr.peak} ${c.lr.schedule} (floor ${c.lr.minFactor} x peak)`],
    ['data', `${r.split.source}; ${r.split.rule}`],
    ['evaluation', r.evaluation],
    ['input baseline', `${r.inputBaseline.method}: PSNR ${f(r.inputBaseline.psnr, 2)} dB, SSIM ${f(r.inputBaseline.ssim, 4)}`],
    ['statistics', r.statistics],
    ['weights', `trained here, one irlens checkpoint per run: ${r.runDir}/seed-<s>/<variant>/model.safetensors (random init from the seed; no pre-trained weights)`],
    ['run directory', r.runDir],
  ]);
  const p = r.provenance;
  const provenance = keyValueTable([
    ['created', p.createdAt],
    ['command', p.command ?? '(library call: no command line)'],
    ['backend', `${p.backend.name}${p.backend.description ? ` (${p.backend.description})` : ''}`],
    ['versions', Object.entries(p.versions).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['host', `${p.host.platform}, ${p.host.cpus} CPUs, ${p.host.totalMemGiB} GiB`],
    ['time', `wall ${f(p.wallSeconds, 1)} s this invocation; training ${f(p.trainSeconds, 1)} s over all runs; evaluation ${f(p.evalSeconds, 1)} s`],
    ['invocations', p.invocations.map((i) => `${i.startedAt}: ${i.trained} trained, ${i.resumed} resumed, ${i.skipped} skipped (${f(i.wallSeconds, 1)} s)`).join('; ')],
  ]);
  const body = [
    `<h1>Architectural ablation: ${escapeHtml(c.arch)} (${escapeHtml(c.model)}, ${escapeHtml(c.task)})</h1>`,
    `<p class="note">Baseline <b>${escapeHtml(c.baseline)}</b>. Every variant trains with the same steps, batch, patch and data order per seed; differences are paired by seed.</p>`,
    summaryTable,
    bar,
    diffs,
    '<h2>What this scale can and cannot show</h2>',
    `<ul>${r.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>`,
    '<h2>Variants and compute</h2>',
    deltas,
    accounting,
    '<h2>Per seed and image</h2>',
    perSeed,
    runs,
    '<h2>Settings</h2>',
    settings,
    '<h2>Provenance</h2>',
    provenance,
  ].join('\n');
  return htmlPage({ title: `irlens variants ${c.arch} ${c.task}`, body, scripts });
}

/** The JSON of a result (everything the HTML shows, and the per-image values). */
export function variantsReportJson(r: VariantsResult): string {
  return `${JSON.stringify(r, null, 1)}\n`;
}

/** Writes BASE.html and BASE.json together (all or none); returns the paths. */
export function writeVariantsReport(r: VariantsResult, base: string): { html: string; json: string } {
  const files = { html: `${base}.html`, json: `${base}.json` };
  writeFilesAtomic([
    [files.html, variantsReportHtml(r)],
    [files.json, variantsReportJson(r)],
  ]);
  return files;
}
