/**
 * The pre-training study's report: <base>.json (every number: config, split, runs, per-seed results, curves, CKA,
 * provenance) and <base>.html (self-contained: plotly inlined from node_modules, no network). Both are rendered in
 * memory first and then written as one set (writeStudyReport; the CLI calls it, runStudy only returns the
 * result); the HTML fragments are exported for notebooks (tslab.display.html).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runProvenance, versionLine, type ModelWeights, type RunProvenance } from '../../analysis/provenance';
import { sha256Bytes } from '../../weights/hash';
import { FINAL_MODEL } from '../train-checkpoint';
import { ckaHeatmapHtml } from '../../analysis/report/cka-report';
import { escapeHtml, htmlPage, inlineScript, keyValueTable, plotlyBundle, plotlyOnce, table } from '../../analysis/report/html';
import { plotId, plotlyDiv } from '../../analysis/report/plotly';
import { writeFilesAtomic } from '../../util/fs';
import { mean, std } from '../../util/stats';
import { readJsonFile } from '../train-checkpoint';
import { STUDY_FORMAT, type StudyArm } from './config';
import type { StudyArmSummary, StudyCurve, StudyResult } from './types';

const ARM_COLORS: Record<string, string> = {
  scratch: '#444444',
  single: '#1f77b4',
  related: '#2ca02c',
  unrelated: '#d62728',
  'scratch (other seed)': '#999999',
};

const ARM_TEXT: Record<StudyArm, string> = {
  scratch: 'scratch (target only, pre-train + fine-tune steps)',
  single: 'single-task pre-training',
  related: 'related multi-task pre-training',
  unrelated: 'unrelated multi-task pre-training',
};

const pm = (s: { mean: number; std: number; n: number }, digits: number) => `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)}`;
const signed = (s: { mean: number; std: number }, digits: number) => `${s.mean >= 0 ? '+' : ''}${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)}`;
const secs = (v: number) => (v >= 90 ? `${(v / 60).toFixed(1)} min` : `${v.toFixed(1)} s`);

/** A chart of the report (plotly must be loaded before its script runs). */
function plot(traces: unknown[], layout: Record<string, unknown>, height = 380): string {
  return plotlyDiv(plotId('irlens-study'), traces, { height, margin: { t: 50 }, ...layout });
}

function withPlotly(html: string, include: boolean | undefined): string {
  const plotly = plotlyOnce(include);
  return plotly ? `${plotly}\n${html}` : html;
}

export interface FragmentOptions {
  /** Include plotly.js inline: true always, false never; default once per process (plotlyOnce). */
  plotly?: boolean;
}

// ---------------------------------------------------------------------------------------------- table

function summaryFor(r: StudyResult, target: string, arm: StudyArm): StudyArmSummary | undefined {
  return r.summary.find((s) => s.target === target && s.arm === arm);
}

/** PSNR/SSIM per arm (rows) and target (column groups): mean ± std over seeds, paired difference to scratch. */
export function studyTableHtml(r: StudyResult): string {
  const header = ['arm', ...r.config.targets.flatMap((t) => [`${t} PSNR (dB)`, `${t} Δ vs scratch (dB)`, `${t} SSIM`])];
  const rows = r.config.arms.map((arm) => [
    ARM_TEXT[arm],
    ...r.config.targets.flatMap((t) => {
      const s = summaryFor(r, t, arm);
      if (!s) return ['—', '—', '—'];
      return [pm(s.psnr, 2), s.deltaPsnr ? signed(s.deltaPsnr, 2) : '(reference)', pm(s.ssim, 4)];
    }),
  ]);
  rows.push([
    'no network (bicubic upscaling for SR, the degraded input otherwise)',
    ...r.config.targets.flatMap((t) => {
      const b = r.baselines?.find((x) => x.target === t);
      return b ? [b.psnr.toFixed(2), '', b.ssim.toFixed(4)] : ['—', '', '—'];
    }),
  ]);
  const n = r.config.seeds.length;
  const perSeed = table(
    ['target', 'arm', 'seed', 'PSNR (dB)', 'SSIM', ...r.split.eval.map((e) => `PSNR ${e}`)],
    r.results.map((x) => [x.target, x.arm, String(x.seed), x.psnr.toFixed(3), x.ssim.toFixed(4), ...x.perImage.map((p) => p.psnr.toFixed(2))]),
  );
  return [
    table(header, rows, `Held-out PSNR / SSIM, mean ± std over ${n} seed${n > 1 ? 's' : ''} (Δ: paired difference to scratch of the same seed)`),
    `<details><summary>Per seed and per held-out image</summary>\n${perSeed}\n</details>`,
  ].join('\n');
}

// --------------------------------------------------------------------------------------------- curves

/** Mean over seeds of points that share a step. */
function meanByStep(series: [number, number][][]): { x: number[]; y: number[]; sd: number[] } {
  const acc = new Map<number, number[]>();
  for (const s of series) for (const [x, y] of s) acc.set(Math.round(x * 1000) / 1000, [...(acc.get(Math.round(x * 1000) / 1000) ?? []), y]);
  const xs = [...acc.keys()].sort((a, b) => a - b);
  return { x: xs, y: xs.map((x) => mean(acc.get(x)!)), sd: xs.map((x) => std(acc.get(x)!)) };
}

function curvesFor(r: StudyResult, target: string): { arm: StudyArm; curves: StudyCurve[] }[] {
  return r.config.arms.map((arm) => ({ arm, curves: r.curves.filter((c) => c.target === target && c.arm === arm) })).filter((g) => g.curves.length > 0);
}

/** Training loss and held-out PSNR against the step, one line per arm (mean over seeds), per target. */
export function studyCurvesHtml(r: StudyResult, opts: FragmentOptions = {}): string {
  const parts: string[] = [];
  const sw = r.config.stepsPretrain;
  const switchLine = { type: 'line', x0: sw, x1: sw, yref: 'paper', y0: 0, y1: 1, line: { dash: 'dot', color: '#888', width: 1 } };
  const switchNote = { x: sw, yref: 'paper', y: 1.02, text: 'pre-training → fine-tuning', showarrow: false, font: { size: 10, color: '#666' } };
  for (const target of r.config.targets) {
    const groups = curvesFor(r, target);
    const loss = groups.map(({ arm, curves }) => {
      const m = meanByStep(curves.map((c) => c.loss));
      return { type: 'scatter', mode: 'lines', name: arm, x: m.x, y: m.y, line: { color: ARM_COLORS[arm], width: 1.5 } };
    });
    const psnr = groups.map(({ arm, curves }) => {
      const m = meanByStep(curves.map((c) => c.psnr));
      return {
        type: 'scatter',
        mode: 'lines+markers',
        name: arm,
        x: m.x,
        y: m.y,
        error_y: { type: 'data', array: m.sd, visible: r.config.seeds.length > 1, thickness: 1, width: 2 },
        line: { color: ARM_COLORS[arm], width: 1.5 },
        marker: { size: 4 },
      };
    });
    parts.push(
      `<h3>${escapeHtml(target)}</h3>`,
      plot(loss, {
        title: { text: escapeHtml(`${target}: training L1 loss of the target's batches (binned, mean over seeds)`) },
        xaxis: { title: { text: 'step (pre-trained arms: pre-training, then fine-tuning)' } },
        yaxis: { title: { text: 'L1 loss' }, type: 'log' },
        shapes: [switchLine],
        annotations: [switchNote],
      }),
      plot(psnr, {
        title: { text: escapeHtml(`${target}: held-out PSNR during training (mean ± std over seeds)`) },
        xaxis: { title: { text: 'step' } },
        yaxis: { title: { text: 'PSNR (dB)' } },
        shapes: [switchLine],
        annotations: [switchNote],
      }),
    );
  }
  return withPlotly(parts.join('\n'), opts.plotly);
}

// ------------------------------------------------------------------------------------------------ CKA

/** Per-layer CKA of each fine-tuned arm with the scratch model of the same target (and the seed-to-seed baseline). */
export function studyLayerCkaHtml(r: StudyResult, opts: FragmentOptions = {}): string {
  if (!r.cka) return '<p class="note">CKA was not computed (--no-cka).</p>';
  const parts: string[] = [];
  for (const target of r.config.targets) {
    const curves = r.cka.perLayer.filter((c) => c.target === target);
    if (curves.length === 0) continue;
    const traces = curves.map((c) => ({
      type: 'scatter',
      mode: 'lines+markers',
      name: c.label === 'scratch (other seed)' ? 'scratch, other seed (baseline)' : `${c.label} vs scratch`,
      x: c.layers,
      y: c.mean,
      error_y: { type: 'data', array: c.std.map((v) => v ?? 0), visible: r.config.seeds.length > 1, thickness: 1, width: 2 },
      line: { color: ARM_COLORS[c.label] ?? '#000', dash: c.label === 'scratch (other seed)' ? 'dash' : 'solid', width: 1.5 },
      marker: { size: 5 },
    }));
    parts.push(
      plot(
        traces,
        {
          title: { text: escapeHtml(`${target}: CKA of each layer with the same layer of the scratch model (mean ± std over seeds)`) },
          xaxis: { title: { text: 'layer (execution order: input side → output side)' }, type: 'category', tickangle: -40, automargin: true },
          yaxis: { title: { text: 'CKA' }, range: [Math.min(0, ...curves.flatMap((c) => c.mean.filter((v): v is number => v !== null))) - 0.05, 1.05] },
        },
        420,
      ),
    );
  }
  return withPlotly(parts.join('\n'), opts.plotly);
}

/** Layer x layer CKA maps of the SR model (rows) against the denoising model (columns), one per arm. */
export function studyCkaMapsHtml(r: StudyResult, opts: FragmentOptions = {}): string {
  if (!r.cka) return '<p class="note">CKA was not computed (--no-cka).</p>';
  if (r.cka.maps.length === 0) return `<p class="note">${escapeHtml(r.cka.note ?? 'no maps')}</p>`;
  const parts = r.cka.maps.map(
    (m) => `<h3>${escapeHtml(`${ARM_TEXT[m.arm]}: ${m.srTarget} model (rows) vs ${m.dnTarget} model (columns)`)}</h3>\n${ckaHeatmapHtml(m.mean, { plotly: false })}`,
  );
  return withPlotly(parts.join('\n'), opts.plotly);
}

/** Each scratch model against itself, layer x layer (the representation structure of an SR and a denoising network). */
export function studySelfCkaHtml(r: StudyResult, opts: FragmentOptions = {}): string {
  if (!r.cka) return '<p class="note">CKA was not computed (--no-cka).</p>';
  const parts = (r.cka.selfMaps ?? []).map(
    (m) => `<h3>${escapeHtml(`scratch ${m.target} model against itself`)}</h3>\n${ckaHeatmapHtml(m.mean, { plotly: false })}`,
  );
  return withPlotly(parts.join('\n'), opts.plotly);
}

// --------------------------------------------------------------------------------------------- page

function ckaObservations(r: StudyResult): string[] {
  if (!r.cka) return [];
  const out: string[] = [];
  for (const m of r.cka.selfMaps ?? [])
    if (m.bodyMixing !== null)
      out.push(
        `scratch ${m.target}: CKA between the body's input (${m.mean.layersA[0]}) and its output (${m.mean.layersA[m.mean.layersA.length - 2]}) is ${m.bodyMixing.toFixed(2)}` +
          (m.bodyMixing >= 0.9
            ? ' — the body changes its input little (its residual branches are still small after so few steps), so all body layers carry nearly the same representation and the per-layer curves are flat across the body; the differences are set at the head and the tail.'
            : '.'),
      );
  for (const target of r.config.targets) {
    const curves = r.cka.perLayer.filter((c) => c.target === target);
    for (const c of curves) {
      const vals = c.mean.filter((v): v is number => v !== null);
      if (vals.length < 2) continue;
      const half = Math.floor(vals.length / 2);
      const lo = vals.slice(0, half);
      const hi = vals.slice(half);
      out.push(
        `${target}, ${c.label === 'scratch (other seed)' ? 'scratch of another seed' : c.label} vs scratch: mean CKA ${mean(lo).toFixed(2)} over the first ${lo.length} layers, ` +
          `${mean(hi).toFixed(2)} over the last ${hi.length}; lowest ${Math.min(...vals).toFixed(2)} at ${c.layers[c.mean.indexOf(Math.min(...vals))]}`,
      );
    }
  }
  return out;
}

/** One line per target: scratch against the no-network baseline, and each pre-trained arm against scratch. */
export function studyHeadlines(r: StudyResult): string[] {
  return r.config.targets.map((t) => {
    const scratch = summaryFor(r, t, 'scratch');
    const base = r.baselines?.find((b) => b.target === t);
    const arms = r.config.arms
      .filter((a) => a !== 'scratch')
      .map((a) => summaryFor(r, t, a))
      .filter((s): s is StudyArmSummary => !!s?.deltaPsnr)
      .map((s) => {
        const d = s.deltaPsnr!;
        const clear = r.config.seeds.length > 1 && Math.abs(d.mean) > 2 * d.std;
        return `${s.arm} ${signed(d, 2)} dB${r.config.seeds.length > 1 ? (clear ? '' : ' (within 2 std)') : ''}`;
      });
    return (
      `${t}: scratch ${scratch ? pm(scratch.psnr, 2) : '—'} dB` +
      (base ? ` (no network: ${base.psnr.toFixed(2)} dB)` : '') +
      `; pre-trained vs scratch: ${arms.join(', ')}`
    );
  });
}

export interface StudyModelWeights {
  /** Run id (directory under the study's run directory). */
  run: string;
  tasks: string[];
  weights: ModelWeights;
}

/**
 * The weights of every model the study compares: all trained by this study from a seeded random initialisation
 * (the pre-trained ones, fine-tuned from them), read from the run directory with their sha256 (null when a
 * run's final model is not on disk, e.g. a report of a study whose runs were deleted).
 */
export function studyWeights(r: StudyResult): StudyModelWeights[] {
  return r.runs.map((x) => {
    const file = path.resolve(r.runDir, x.id, FINAL_MODEL);
    const sha256 = fs.existsSync(file) ? sha256Bytes(fs.readFileSync(file)) : null;
    const trainedBy =
      x.kind === 'finetune'
        ? `irlens pretrain study: fine-tuned from run ${x.from} (seed ${x.trainSeed})`
        : `irlens pretrain study: trained from a seeded random init (seed ${x.trainSeed})`;
    const line = `weights: irlens-trained ${x.id}${sha256 ? ` (sha256 ${sha256.slice(0, 12)})` : ''}, trained by ${trainedBy}`;
    return { run: x.id, tasks: x.tasks, weights: { source: 'irlens-trained', file, sha256, trainedBy, line } };
  });
}

/** The study's run provenance (command, irlens version and git commit, compute path) as of rendering. */
function studyRun(r: StudyResult): RunProvenance {
  return runProvenance(r.provenance.command ?? null);
}

/** The self-contained HTML report. */
export function studyHtml(r: StudyResult): string {
  const c = r.config;
  const p = r.provenance;
  const title = `Pre-training study: ${c.arch} (${c.model}), preset ${c.preset}`;
  const accounting = table(
    ['target', 'arm', 'pre-training steps', 'fine-tuning steps', 'total steps', 'patches seen (steps x batch)', 'GT patch (px)'],
    r.accounting.map((a) => [a.target, a.arm, String(a.pretrainSteps), String(a.finetuneSteps), String(a.totalSteps), a.patches.toLocaleString('en-US'), a.patchSizes]),
  );
  const mixes = [
    ['single', c.targets.map((t) => `${t}: ${t}`).join('; ')],
    ['related', c.targets.map((t) => `${t}: ${(c.mixes.related[t] ?? []).join(' + ')}`).join('; ')],
    ['unrelated', c.mixes.unrelated.join(' + ')],
  ].filter(([arm]) => c.arms.includes(arm as StudyArm)) as [string, string][];
  const runs = table(
    ['run', 'tasks', 'steps', 'patch', 'status', 'training time', 'steps/s', 'trainer eval (last)'],
    r.runs.map((x) => [
      x.id,
      x.tasks.join('+'),
      String(x.steps),
      String(x.patch),
      x.status,
      secs(x.trainSeconds),
      x.trainSeconds > 0 ? (x.steps / x.trainSeconds).toFixed(2) : '—',
      x.trainerEval ? Object.entries(x.trainerEval).map(([t, m]) => `${t} ${m.psnr.toFixed(2)}`).join(', ') : '—',
    ]),
  );
  const obs = ckaObservations(r);
  const run = studyRun(r);
  const weights = studyWeights(r);
  const body = [
    `<h1>${escapeHtml(title)}</h1>`,
    keyValueTable([
      ['command', run.command ?? '(library call)'],
      ['irlens', versionLine(run)],
      ['compute', `${p.backend.name}: ${run.compute.description}`],
      ['weights', `${weights.length} models, all trained by this study from seeded random inits (table at the end)`],
    ]),
    `<p>The EDT paper's pre-training study (Li et al., arXiv 2112.10175) at equal compute: ${escapeHtml(c.arms.map((a) => ARM_TEXT[a]).join(', '))}; ` +
      `targets ${escapeHtml(c.targets.join(', '))}; ${c.seeds.length} seed(s) (${c.seeds.join(', ')}).</p>`,
    `<div class="note" style="border-left:4px solid #d62728;padding:4px 12px;background:#fff6f6">${r.notes.map((n) => `<p>${escapeHtml(n)}</p>`).join('')}</div>`,
    '<h2>Results</h2>',
    `<ul>${studyHeadlines(r).map((h) => `<li>${escapeHtml(h)}</li>`).join('')}</ul>`,
    studyTableHtml(r),
    `<p class="note">${escapeHtml(r.evaluation)}</p>`,
    '<h2>Training curves</h2>',
    studyCurvesHtml(r, { plotly: false }),
    '<h2>CKA: fine-tuned vs scratch, layer by layer</h2>',
    `<p class="note">${escapeHtml(r.cka?.settings ?? '')}. Each point is the CKA between a layer of the fine-tuned model and the same layer of the scratch model of the same target and seed (the diagonal of the layer x layer matrix); low values mean pre-training changed that layer's representation. The dashed line compares two scratch models of different seeds: differences below it are not attributable to pre-training.</p>`,
    studyLayerCkaHtml(r, { plotly: false }),
    obs.length ? `<ul class="note">${obs.map((o) => `<li>${escapeHtml(o)}</li>`).join('')}</ul>` : '',
    '<h2>CKA: SR model vs denoising model, layer x layer</h2>',
    '<p class="note">Rows: layers of the SR model, columns: layers of the denoising model, both in execution order; the EDT paper finds denoising models similar to the lower layers of SR models.</p>',
    studyCkaMapsHtml(r, { plotly: false }),
    '<h2>CKA: each scratch model against itself</h2>',
    '<p class="note">The representation structure of the networks (EDT Fig. 3: SR models show distinct stages, denoising models a more uniform structure). Rows and columns: layers of the same scratch model.</p>',
    studySelfCkaHtml(r, { plotly: false }),
    '<h2>Equal compute</h2>',
    `<p>${escapeHtml(r.accountingRule)}</p>`,
    accounting,
    '<h2>Settings</h2>',
    keyValueTable([
      ['architecture', `${c.arch}: ${c.model}${Object.keys(c.modelConfig).length ? ` with ${JSON.stringify(c.modelConfig)}` : ''}`],
      ['targets', c.targets.join(', ')],
      ['arms', c.arms.join(', ')],
      ...mixes.map(([arm, text]) => [`${arm} pre-training tasks`, text] as [string, string]),
      ['seeds', `${c.seeds.join(', ')} (run seed = 1000 x seed + arm index: every arm has its own initialisation and data order)`],
      ['steps', `pre-training ${c.stepsPretrain}, fine-tuning ${c.stepsFinetune}, scratch ${c.stepsPretrain + c.stepsFinetune}`],
      ['batch / patches', `batch ${c.batch}; SR input patch ${c.patch.lq} px (GT ${c.patch.lq} x scale), same-size tasks ${c.patch.same} px; a multi-task run uses the smallest size valid for all its tasks`],
      [
        'optimisation',
        `${c.optimizer.kind} (${c.optimizer.beta1}, ${c.optimizer.beta2}), weight decay ${c.optimizer.weightDecay}, L1 loss; lr pre-training ${c.lr.pretrain}, scratch ${c.lr.scratch} (${c.lr.schedule}), fine-tuning ${c.lr.finetune} (${c.lr.finetuneSchedule})${c.lr.schedule === 'cosine' || c.lr.finetuneSchedule === 'cosine' ? `, cosine down to ${c.lr.minFactor} x peak` : ''}`,
      ],
      ['evaluation during training', `every ${c.evalEvery} steps${c.evalSize > 0 ? `, centre crops of ${c.evalSize} px` : ''}`],
      ['data', `${r.split.source}; ${r.split.rule}`],
      ['pre-training pool', r.split.pretrain.join(', ')],
      ['fine-tuning pool', r.split.finetune.join(', ')],
      ['held-out (never trained on)', r.split.eval.join(', ')],
      ['run directory', r.runDir],
    ]),
    '<h2>Runs</h2>',
    runs,
    '<h2>Provenance</h2>',
    keyValueTable([
      ['created', p.createdAt],
      ...(p.command ? [['command', p.command] as [string, string]] : []),
      ['backend', `${p.backend.name}${p.backend.description ? ` — ${p.backend.description}` : ''}`],
      ['compute', run.compute.description],
      ['irlens', versionLine(run)],
      ['versions', Object.entries({ ...p.versions, 'plotly.js': plotlyBundle().version }).map(([k, v]) => `${k} ${v}`).join(', ')],
      ['host', `${p.host.platform}, ${p.host.cpus} CPU(s), ${p.host.totalMemGiB} GiB`],
      [
        'time',
        `this invocation ${secs(p.wallSeconds)}; training ${secs(p.trainSeconds)} (sum over runs, all invocations); final evaluation ${secs(p.evalSeconds)}; CKA ${secs(p.ckaSeconds)}`,
      ],
      [
        'invocations',
        (p.invocations ?? [])
          .map((i) => `${i.startedAt}: ${secs(i.wallSeconds)} wall, ${i.trained} run(s) trained, ${i.resumed} resumed, ${i.skipped} skipped${i.command ? ` (${i.command})` : ''}`)
          .join('; '),
      ],
    ]),
    '<h2>Weights</h2>',
    '<p class="note">Every model in this report was trained by this study (no external or shipped weights).</p>',
    table(
      ['run', 'tasks', 'source', 'file', 'sha256', 'trained by'],
      weights.map((w) => [w.run, w.tasks.join('+'), w.weights.source, w.weights.file ?? '—', w.weights.sha256 ?? '— (file not on disk)', w.weights.trainedBy ?? '—']),
    ),
  ].join('\n');
  return htmlPage({ title, body: `${inlineScript(plotlyBundle().source)}\n${body}`, plotly: false });
}

export function studyJson(r: StudyResult): string {
  const provenance = { ...r.provenance, versions: { ...r.provenance.versions, 'plotly.js': plotlyBundle().version }, run: studyRun(r), weights: studyWeights(r) };
  return `${JSON.stringify({ ...r, provenance }, null, 2)}\n`;
}

/** Default report base of an architecture's study: reports/pretrain-study-<arch> (.html, .json). */
export function defaultStudyOut(arch: string): string {
  return path.join('reports', `pretrain-study-${arch}`);
}

/** Renders both files, then writes them as one set (both or neither; a previous report stays on failure). */
export async function writeStudyReport(r: StudyResult, base: string): Promise<{ html: string; json: string }> {
  const files = { json: `${base}.json`, html: `${base}.html` };
  const contents: [string, string][] = [
    [files.json, studyJson(r)],
    [files.html, studyHtml(r)],
  ];
  try {
    writeFilesAtomic(contents);
  } catch (e) {
    throw new Error(`--out '${base}': cannot write the study report (${(e as Error).message.split('\n')[0]})`);
  }
  return files;
}

/** The study JSON without the bulky parts, for quick looks (notebooks). */
export function readStudyResult(file: string): StudyResult {
  const r = readJsonFile<StudyResult>(file, 'study report');
  if (r.format !== STUDY_FORMAT) throw new Error(`study report: '${file}' is not an irlens study report (${STUDY_FORMAT})`);
  return r;
}
