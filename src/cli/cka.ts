/**
 * `irlens cka A B`: layer x layer CKA between two models on clean images (each model gets its own task's degraded
 * input), written as <out>.html/.json/.png; or, given two .npy activation matrices (n x p, n x q), their CKA.
 *
 * Two .npz archives (one array per layer) give their layer x layer map on stdout (or --json); --batch on .npy/.npz
 * inputs splits the rows into minibatches for the minibatch estimator. Model studies state the command line, irlens
 * version and commit, compute path and each model's weights in every output; the shuffled-pairing baseline is on
 * unless --no-permutation.
 *
 * Defaults (10 built-in images, 128x128 centre crops, one minibatch of 10) make `npm run cka -- restormer-tiny
 * swinir-tiny` take about 15 s on a 2-core machine with the wasm backend, and keep the estimate as good as ten
 * images allow: with the unbiased estimator one batch of 10 uses all 45 image pairs, two batches of 5 only 20.
 * 128x128 crops cover a quarter of each 256x256 built-in image and give a x2 SR model a 64x64 input (its
 * training patch size); 64x64 crops would see only a sixteenth of each image.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import '../models';
import { loadModelSpec, type LoadedModel } from '../weights/spec';
import { compilePatterns } from '../models/hooks';
import { builtinImages, loadBuiltinImages } from '../io/builtin';
import { listImages, loadImages } from '../io/folder';
import type { Kernel } from '../analysis/gram';
import { activationArchivesCka, activationFilesCka, type ArchiveCkaResult } from '../analysis/activations';
import { commandLine } from '../analysis/provenance';
import { minExamples, type Estimator } from '../analysis/hsic';
import { featureSettings, FEATURE_MODES, type FeatureMode } from '../analysis/features';
import { bestMatches, checkStudySize, defaultStudySize, layerSimilarity, type ImageSource, type NamedImage, type SimilarityResult } from '../analysis/similarity';
import { estimatorName, FIGURE_FORMATS, writeCkaReport, type CkaReportFiles, type FigureFormat } from '../analysis/report/cka-report';
import { naming, namingAsync } from '../util/errors';
import { weightsLine } from '../weights/provenance';
import { choiceOption, flagName, givenOptions, parseList, parseNonNegativeInt, parseNumber, parsePositiveInt, parseSize, startBackend } from './common';

export const CKA_DEFAULTS = { batch: 10, size: 128, kernel: 'linear', estimator: 'unbiased', mode: 'flatten', seed: 0 } as const;

export interface CkaCliOptions {
  data?: string;
  images?: number;
  batch: number;
  size?: string;
  task?: string;
  taskA?: string;
  taskB?: string;
  layersA?: string;
  layersB?: string;
  kernel: Kernel;
  threshold: number;
  estimator: Estimator;
  mode: FeatureMode;
  maxPixels?: number;
  bootstrap: number;
  /** On unless --no-permutation. */
  permutation: boolean;
  format: string[];
  seed: number;
  initSeedA: number;
  initSeedB: number;
  out?: string;
  json?: boolean;
  workers: number;
}

/** Comma-separated hook point globs, kept as the typed text (split where used). */
function globList(option: string) {
  const check = parseList(option, 'comma-separated hook point globs');
  return (text: string): string => {
    check(text);
    return text;
  };
}

/** --format: html and json always, plus the figures asked for. */
function formatList(text: string): string[] {
  const asked = text.split(',').map((f) => f.trim().toLowerCase()).filter((f) => f !== '');
  const bad = asked.find((f) => !(REPORT_FORMATS as readonly string[]).includes(f));
  if (bad !== undefined || asked.length === 0) throw new Error(`--format: expected a comma-separated list of ${REPORT_FORMATS.join(', ')}, got '${text}'`);
  return [...new Set(['html', 'json', ...asked])];
}

const splitGlobs = (text: string | undefined) => (text === undefined ? undefined : text.split(',').map((g) => g.trim()));
const isNpy = (spec: string) => spec.toLowerCase().endsWith('.npy');
const isNpz = (spec: string) => spec.toLowerCase().endsWith('.npz');
const activationKind = (spec: string) => (isNpy(spec) ? '.npy' : isNpz(spec) ? '.npz' : undefined);
const REPORT_FORMATS = ['html', 'json', ...FIGURE_FORMATS] as const;

/** The command line as typed (the root program keeps argv in rawArgs). */
function typedCommand(cmd: Command): string {
  let root = cmd;
  while (root.parent) root = root.parent;
  const raw = (root as unknown as { rawArgs?: string[] }).rawArgs ?? process.argv;
  return commandLine(raw.slice(2));
}
/** Model errors name --task; under --task-a/--task-b that prefix goes. */
const TASK_PREFIX = /^--task: /;



/** File-name-safe form of a model label. */
function safeName(label: string): string {
  return label.replace(/[^A-Za-z0-9._@-]+/g, '_');
}

/** Base path of the reports: --out without a report extension, refused when it names a directory. */
function outBase(out: string | undefined, labelA: string, labelB: string): string {
  const base = (out ?? path.join('reports', `cka-${safeName(labelA)}-vs-${safeName(labelB)}`)).replace(/\.(html|json|png)$/i, '');
  if (base === '' || /[\\/]$/.test(base)) throw new Error(`--out: expected a base file path such as reports/my-study, got '${out}'`);
  if (fs.existsSync(base) && fs.statSync(base).isDirectory())
    throw new Error(`--out: '${base}' is a directory; give a base file path such as ${path.join(base, 'cka')}`);
  return base;
}

// ---------------------------------------------------------------------------------------------------------------
// Two .npy activation matrices

const NPY_ONLY_MODEL_OPTIONS = ['data', 'images', 'size', 'task', 'taskA', 'taskB', 'layersA', 'layersB', 'mode', 'maxPixels', 'initSeedA', 'initSeedB', 'out', 'workers'];

function runNpy(fileA: string, fileB: string, o: CkaCliOptions, typed: Set<string>): void {
  const bad = NPY_ONLY_MODEL_OPTIONS.find((k) => typed.has(k));
  if (bad) throw new Error(`${flagName(bad)}: does not apply to two .npy activation matrices (it is a model-study option)`);
  if (typed.has('format')) throw new Error(`--format: does not apply to .npy/.npz activations (they print the result; use --json)`);
  const opts = { ...o, batch: typed.has('batch') ? o.batch : undefined };
  if (isNpz(fileA)) return printArchives(activationArchivesCka(fileA, fileB, opts), o);
  const out = activationFilesCka(fileA, fileB, opts);
  if (o.json) {
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  const lines = [out.value === null ? `null (${out.flag})` : String(out.value)];
  if (out.ci) lines.push(`ci95 ${out.ci.lo} ${out.ci.hi}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  // stdout stays the value (scripts read it); the chance level goes with the description.
  process.stderr.write(
    `irlens: ${o.estimator === 'unbiased' ? 'debiased CKA (unbiased HSIC1)' : 'CKA (biased HSIC0)'}, ${o.kernel} kernel, ` +
      `n=${out.n}, p=${out.p}, q=${out.q}, minibatches ${out.settings.batchSizes.join('+')}` +
      `${out.permutation !== undefined ? `; shuffled-pairing baseline ${out.permutation}` : ''}\n`,
  );
}

/** The layer x layer map of two archives: a table on stdout (rows = arrays of A), or the result as JSON. */
function printArchives(out: ArchiveCkaResult, o: CkaCliOptions): void {
  if (o.json) {
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  const cell = (v: number | null) => (v === null ? 'null' : v.toFixed(6));
  const w = Math.max(1, ...out.layersA.map((l) => l.length));
  const cw = Math.max(9, ...out.layersB.map((l) => l.length));
  const rows = [
    `${''.padEnd(w)}  ${out.layersB.map((l) => l.padStart(cw)).join('  ')}`,
    ...out.layersA.map((l, i) => `${l.padEnd(w)}  ${out.matrix[i].map((v) => cell(v).padStart(cw)).join('  ')}`),
  ];
  process.stdout.write(`${rows.join('\n')}\n`);
  const s = out.settings;
  process.stderr.write(
    `irlens: ${o.estimator === 'unbiased' ? 'debiased CKA (unbiased HSIC1)' : 'CKA (biased HSIC0)'}, ${o.kernel} kernel, n=${out.n}, ` +
      `${out.layersA.length} arrays of A x ${out.layersB.length} of B (rows x columns), minibatches ${s.batchSizes.join('+')}` +
      `${out.permutation ? '; shuffled-pairing baseline in --json' : ''}${out.ci ? '; 95% intervals in --json' : ''}\n`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Two models

interface ImagePlan {
  source: ImageSource;
  count: number;
  from: string;
}

function planImages(o: CkaCliOptions): ImagePlan {
  if (o.data !== undefined) {
    const files = naming('--data', () => listImages(o.data!));
    const chosen = files.slice(0, o.images ?? files.length);
    const base = o.data;
    async function* stream(): AsyncGenerator<NamedImage> {
      for await (const b of loadImages(chosen, { batchSize: o.batch, channels: 3 }))
        for (let i = 0; i < b.images.length; i++) yield { name: path.relative(base, b.files[i]), image: b.images[i] };
    }
    return { source: stream(), count: chosen.length, from: `folder ${o.data}` };
  }
  const names = builtinImages().map((b) => b.name).slice(0, o.images);
  async function* builtin(): AsyncGenerator<NamedImage> {
    // Ten small PNGs: decoding them together is fine; a folder streams instead.
    for (const item of await loadBuiltinImages({ channels: 3, names })) yield item;
  }
  return { source: builtin(), count: names.length, from: 'built-in images' };
}

async function loadSide(spec: string, which: 'A' | 'B', seed: number, json: boolean): Promise<LoadedModel> {
  const loaded = await namingAsync(which, () => loadModelSpec(spec, { seed }));
  const random = loaded.provenance.source === 'random-init';
  // Two random initialisations of one preset must not share a label (axis titles, default file name).
  if (random && seed !== 0) loaded.label = `${loaded.label}-seed${seed}`;
  if (!json) {
    process.stderr.write(
      loaded.weights
        ? `irlens: ${which} = ${loaded.label}: loaded ${loaded.weights.report.loaded} tensors from ${loaded.weights.file} (${weightsLine(loaded)})\n`
        : `irlens: ${which} = ${loaded.label}: ${random ? `no weights, seeded random init (seed ${seed}); the report will say so` : weightsLine(loaded)}\n`,
    );
  }
  return loaded;
}

function pct(part: number, total: number): string {
  return `${((100 * part) / total).toFixed(0)}%`;
}

function summary(r: SimilarityResult, files: CkaReportFiles, wallMs: number, from: string): string {
  const t = r.provenance.timings;
  const sec = (v: number) => `${(v / 1000).toFixed(1)} s`;
  const best = bestMatches(r);
  const sameArch = r.layersA.every((l) => r.layersB.includes(l));
  const w = Math.max(...r.layersA.map((l) => l.length));
  const wb = Math.max(...best.map((b) => (b.layerB ?? '—').length));
  const s = r.settings;
  const lines = [
    `${estimatorName(r)}: A = ${r.models.a.label} [${r.models.a.task}] (rows, ${r.layersA.length} layers) vs ` +
      `B = ${r.models.b.label} [${r.models.b.task}] (columns, ${r.layersB.length} layers)`,
    `  ${r.examples} images from ${from}, minibatches ${s.batchSizes.join('+')}` +
      `${s.size ? `, ${s.size[0]}x${s.size[1]} crops` : ''}, ${s.kernel} kernel, features '${s.features.mode}', seed ${s.seed}`,
    `best match in B for each layer of A${sameArch ? ' (and the same-name layer: the diagonal)' : ''}:`,
    ...best.map((b) => {
      const ci = r.ci && b.layerB !== null ? r.ci[r.layersA.indexOf(b.layerA)][r.layersB.indexOf(b.layerB)] : undefined;
      const v = b.value === null ? 'undefined' : b.value.toFixed(4);
      return (
        `  ${b.layerA.padEnd(w)}  ->  ${(b.layerB ?? '—').padEnd(wb)}  ${v}` +
        (ci ? ` [${ci.lo?.toFixed(3) ?? '?'}, ${ci.hi?.toFixed(3) ?? '?'}]` : '') +
        (sameArch && b.sameName !== undefined ? `   diagonal ${b.sameName === null ? 'undefined' : b.sameName.toFixed(4)}` : '')
      );
    }),
  ];
  const flagged = r.flags.flat().filter((f) => f !== null).length;
  if (flagged) lines.push(`  ${flagged} cell(s) undefined (flags: ${[...new Set(r.flags.flat().filter((f) => f !== null))].join(', ')})`);
  lines.push(
    `wrote ${[files.html, files.json, files.png, files.svg, files.pdf].filter((f) => f !== undefined).join(', ')}`,
    `time: study ${sec(t.total)}${(t.workers ?? 1) > 1 ? ` on ${t.workers} workers (forwards and Grams summed over them)` : ''} = forward A ${sec(t.forwardA)} (${pct(t.forwardA, t.total)}) + forward B ${sec(t.forwardB)} (${pct(t.forwardB, t.total)})` +
      ` + Grams ${sec(t.gram)} (${pct(t.gram, t.total)}) + other ${sec(t.other)} (${pct(t.other, t.total)}); ` +
      `outside the forwards ${pct(t.gram + t.other, t.total)}; command ${sec(wallMs)} incl. model loading and reports`,
  );
  return lines.join('\n');
}

/** A bar over model forwards (images x models): it moves after each model's forward, not once per batch of both. */
function progressBar(total: number, enabled: boolean): { update(done: number, side: string): void; stop(): void } {
  if (!enabled) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar({
    stream: process.stderr,
    format: 'cka |{bar}| {value}/{total} image forwards (last: model {side}) | {duration_formatted} elapsed | ETA {eta_formatted}',
    hideCursor: true,
    etaBuffer: 4,
  });
  bar.start(total, 0, { side: '-' });
  return { update: (done, side) => bar.update(done, { side }), stop: () => bar.stop() };
}

/** The figure formats of --format (html and json are always written). */
function figureFormats(formats: string[]): FigureFormat[] {
  return formats.filter((f): f is FigureFormat => (FIGURE_FORMATS as readonly string[]).includes(f));
}

async function runModels(specA: string, specB: string, o: CkaCliOptions, backendName: string | undefined, command: string): Promise<void> {
  const t0 = performance.now();
  const sizeGiven = o.size === undefined ? undefined : parseSize(o.size, '--size');
  const min = minExamples(o.estimator);
  if (o.batch < min) throw new Error(`--batch: the ${o.estimator} estimator needs at least ${min} images per batch, got ${o.batch}`);
  if (o.images !== undefined && o.images < min) throw new Error(`--images: the ${o.estimator} estimator needs at least ${min} images, got ${o.images}`);
  const layersA = splitGlobs(o.layersA);
  const layersB = splitGlobs(o.layersB);
  const taskA = o.taskA ?? o.task;
  const taskB = o.taskB ?? o.task;
  if (o.mode !== 'pixels' && o.maxPixels !== undefined) throw new Error(`--max-pixels: only applies to --mode pixels`);
  featureSettings({ mode: o.mode, maxPixels: o.maxPixels, seed: o.seed });

  await startBackend(backendName, o.json);
  const same = specA === specB && o.initSeedA === o.initSeedB;
  const A = await loadSide(specA, 'A', o.initSeedA, !!o.json);
  let B: LoadedModel | undefined;
  try {
    B = same ? undefined : await loadSide(specB, 'B', o.initSeedB, !!o.json);
    const modelB = B?.model ?? A.model;
    const labelB = B?.label ?? A.label;
    // Everything the user typed is checked before any image is read or any file written.
    const taskOpt = (ab: 'a' | 'b') => (ab === 'a' ? (o.taskA !== undefined ? '--task-a' : '--task') : o.taskB !== undefined ? '--task-b' : '--task');
    naming(taskOpt('a'), () => A.model.task(taskA), TASK_PREFIX);
    naming(taskOpt('b'), () => modelB.task(taskB), TASK_PREFIX);
    if (layersA) naming('--layers-a', () => compilePatterns(A.model, layersA));
    if (layersB) naming('--layers-b', () => compilePatterns(modelB, layersB));
    const size = sizeGiven ?? defaultStudySize([{ model: A.model, task: taskA }, { model: modelB, task: taskB }], CKA_DEFAULTS.size);
    checkStudySize(A.model, taskA, size, '--size');
    checkStudySize(modelB, taskB, size, '--size');
    if (!sizeGiven && size[0] !== CKA_DEFAULTS.size && !o.json)
      process.stderr.write(`irlens: crop size ${size[0]}x${size[1]}: the largest square <= ${CKA_DEFAULTS.size}x${CKA_DEFAULTS.size} both models take without padding\n`);
    const base = outBase(o.out, A.label, labelB);
    const images = planImages(o);
    if (images.count < min) throw new Error(`--images: ${images.from} gives ${images.count} image(s); the ${o.estimator} estimator needs at least ${min}`);

    const showBar = !o.json && process.stderr.isTTY === true;
    const bar = progressBar(images.count * (same || B === undefined ? 1 : 2), showBar);
    let result: SimilarityResult;
    try {
      result = await layerSimilarity({
        modelA: A.model,
        modelB: B?.model,
        labelA: A.label,
        labelB,
        images: images.source,
        layersA,
        layersB,
        taskA,
        taskB,
        kernel: o.kernel,
        threshold: o.threshold,
        estimator: o.estimator,
        mode: o.mode,
        maxPixels: o.maxPixels,
        batch: o.batch,
        size,
        bootstrap: o.bootstrap,
        permutation: o.permutation,
        seed: o.seed,
        weightsA: A.provenance,
        weightsB: B?.provenance,
        command,
        workers: o.workers,
        onProgress: (p) => bar.update(p.forwardImages, p.side),
      });
    } finally {
      bar.stop();
    }
    const files = await writeCkaReport(result, base, { figures: figureFormats(o.format) });
    for (const w of result.warnings ?? []) process.stderr.write(`irlens: ${w}\n`);
    const wallMs = performance.now() - t0;
    if (o.json) process.stdout.write(`${JSON.stringify({ ...result, files, commandMs: wallMs }, null, 2)}\n`);
    else process.stdout.write(`${summary(result, files, wallMs, images.from)}\n`);
    process.stderr.write(`irlens: cka done: ${result.examples} images from ${images.from} in ${(wallMs / 1000).toFixed(1)} s; report ${files.html}\n`);
  } finally {
    A.model.dispose();
    B?.model.dispose();
  }
}

export function ckaCommand(): Command {
  return new Command('cka')
    .description(
      'layer x layer CKA between two models on clean images (each gets its own task\'s degraded input), written as ' +
        '<out>.html/.json (+ --format png,svg,pdf); or the CKA of two .npy activation matrices (n x p, n x q); or the layer x layer ' +
        'map of two .npz archives of activations (one array per layer, rows = the same examples, e.g. numpy.savez)',
    )
    .argument('<A>', 'model spec (preset, PRESET@weights.pth, irlens .safetensors), an n x p .npy matrix or an .npz archive')
    .argument('[B]', 'model spec, an n x q .npy matrix or an .npz archive (default: A itself)')
    .option('--data <dir>', 'image folder (default: the built-in images)')
    .option('--images <n>', 'use the first N images (default: all)', parsePositiveInt('--images'))
    .option('--batch <n>', 'images per minibatch (memory grows with it, not with --images); for .npy/.npz: rows per minibatch (default all)', parsePositiveInt('--batch'), CKA_DEFAULTS.batch)
    .option('--size <HxW>', `centre-crop every clean image to HxW before degrading it (default: the largest square <= ${CKA_DEFAULTS.size}x${CKA_DEFAULTS.size} both models take without padding)`)
    .option('--task <name>', 'task branch of both models (default: each model\'s default task)')
    .option('--task-a <name>', 'task branch of A (overrides --task)')
    .option('--task-b <name>', 'task branch of B (overrides --task)')
    .option('--layers-a <globs>', 'comma-separated hook point globs of A (default: the model\'s default layers)', globList('--layers-a'))
    .option('--layers-b <globs>', 'comma-separated hook point globs of B (default: the model\'s default layers; --layers-a when B is A)', globList('--layers-b'))
    .addOption(choiceOption('--kernel <k>', 'linear or rbf', ['linear', 'rbf'] as const, CKA_DEFAULTS.kernel))
    .option('--threshold <x>', 'rbf bandwidth: sigma^2 = x^2 * median squared distance', parseNumber('--threshold', 0, true), 1)
    .addOption(choiceOption('--estimator <e>', 'unbiased (HSIC1, debiased CKA; >= 4 images per batch) or biased (HSIC0)', ['unbiased', 'biased'] as const, CKA_DEFAULTS.estimator))
    .addOption(choiceOption('--mode <m>', 'features per image: flatten (H*W*C), pool (C), pixels (positions as examples)', FEATURE_MODES, CKA_DEFAULTS.mode))
    .option('--max-pixels <n>', 'pixels mode: positions per image (default 64)', parsePositiveInt('--max-pixels'))
    .option('--bootstrap <n>', 'bootstrap replicates for 95% intervals (0 = off)', parseNonNegativeInt('--bootstrap'), 0)
    .option('--no-permutation', 'skip the shuffled-pairing (permutation) baseline, on by default: B\'s examples shuffled within each batch give the chance level')
    .option('--format <list>', `report files besides html and json: any of png, svg, pdf (comma-separated; default png)`, formatList, ['html', 'json', 'png'])
    .option('--seed <n>', 'seed of degradation noise, bootstrap, permutation and pixel positions', parseNonNegativeInt('--seed'), CKA_DEFAULTS.seed)
    .option('--init-seed-a <n>', 'seed of A\'s random initialisation when it has no weights', parseNonNegativeInt('--init-seed-a'), 0)
    .option('--init-seed-b <n>', 'seed of B\'s random initialisation when it has no weights', parseNonNegativeInt('--init-seed-b'), 0)
    .option('--out <path>', 'base path of the reports (default: reports/cka-<A>-vs-<B>)')
    .option('--json', 'print the result as JSON on stdout')
    .option(
      '--workers <n>',
      'worker threads that each take whole minibatches with their own copy of the models and one kernel thread (data-parallel; results equal --threads 1 bit for bit; default 1)',
      parsePositiveInt('--workers'),
      1,
    )
    .action(async (a: string, b: string | undefined, o: CkaCliOptions, cmd: Command) => {
      const specB = b ?? a;
      const kind = activationKind(a);
      if (kind !== activationKind(specB)) {
        const which = kind ? 'B' : 'A';
        throw new Error(kind || activationKind(specB)
          ? `${which}: give two .npy activation matrices, two .npz archives or two model specs, not one of each`
          : `${which}: give two .npy activation matrices or two model specs`);
      }
      if (kind) return runNpy(a, specB, o, new Set(givenOptions(cmd)));
      return runModels(a, specB, o, cmd.optsWithGlobals().backend as string | undefined, typedCommand(cmd));
    });
}
