/**
 * `irlens ablate MODEL`: inference-time ablations of every selected hook point with each mode (zero, mean,
 * resample, noise, identity; --heads adds per-head entries), PSNR/SSIM drops against ground truth with bootstrap
 * intervals over images, written as reports/ablate-<model>.{html,json}.
 * `irlens ablate lam A [B ...] --image F --window x,y,w`: LAM maps of several models side by side with their DI.
 *
 * Defaults keep `npm run ablate -- swinir-tiny` short on 2 cores: the ten built-in images, centre crops of the
 * largest square <= 128 the model takes, the model's default layers, all five modes, one batch of ten images.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import '../models';
import { loadModelSpec, type LoadedModel } from '../weights/spec';
import { resolveHookNames } from '../models/hooks';
import { padBottomRight, type RestorationModel } from '../models/model';
import { describeWeights, findShippedWeights } from '../weights';
import { builtinImages, loadBuiltinImages } from '../io/builtin';
import { listImages } from '../io/folder';
import { readImage, tensorToImages, convertChannels } from '../io/image';
import { backendInfo } from '../engine/backend';
import { defaultStudySize, checkStudySize } from '../analysis/similarity';
import { ABLATION_MODES, type AblationMode } from '../analysis/ablation/modes';
import { runAblation, type AblationEntrySpec } from '../analysis/ablation/runner';
import { disposeBatches, matchPairedFolders, pairedFromFolders, syntheticPairs, taskMetric, toBatches, type NamedImage } from '../analysis/ablation/data';
import { checkWindow, lam, LAM_DEFAULTS, type LamResult } from '../analysis/ablation/lam';
import { ablateReportJson, lamHtml, rankedEntries, writeAblateReport, type AblationReport, type WeightsInfo } from '../analysis/report/ablate-report';
import { parseDegradation } from '../degradations';
import { writeFilesAtomic } from '../util/fs';
import { IRLENS_VERSION } from '../version';
import { Rng } from '../util/rng';
import { parseNonNegativeInt, parseNumber, parsePositiveInt, parseSize, startBackend } from './common';
import { variantsCommand } from './ablate-variants';

interface AblateOptions {
  weights?: string;
  task?: string;
  degradation?: string;
  data?: string;
  lq?: string;
  gt?: string;
  layers?: string;
  modes: string;
  heads?: boolean;
  images?: number;
  size?: string;
  batch?: number;
  noiseSigma: number;
  bootstrap: number;
  seed: number;
  reuse: boolean;
  lam: boolean;
  image?: string;
  window?: string;
  fold: number;
  sigma: number;
  json?: boolean;
  out?: string;
}

const safeName = (label: string) => label.replace(/[^A-Za-z0-9._@-]+/g, '_');

function outBase(out: string | undefined, fallback: string): string {
  const base = (out ?? path.join('reports', fallback)).replace(/\.(html|json)$/i, '');
  if (base === '' || /[\\/]$/.test(base)) throw new Error(`--out: expected a base file path such as reports/my-ablation, got '${out}'`);
  if (fs.existsSync(base) && fs.statSync(base).isDirectory()) throw new Error(`--out: '${base}' is a directory; give a base file path such as ${path.join(base, 'ablate')}`);
  return base;
}

export function parseModes(text: string): AblationMode[] {
  const modes = text.split(',').map((m) => m.trim());
  for (const m of modes)
    if (!(ABLATION_MODES as readonly string[]).includes(m)) throw new Error(`--modes: expected a comma-separated list of ${ABLATION_MODES.join(', ')}, got '${m}'`);
  return [...new Set(modes)] as AblationMode[];
}

export function parseWindow(text: string): { x: number; y: number; w: number } {
  const m = /^(\d+),(\d+),(\d+)$/.exec(text.trim());
  if (!m) throw new Error(`--window: expected x,y,w (non-negative integers, output pixels), got '${text}'`);
  return { x: Number(m[1]), y: Number(m[2]), w: Number(m[3]) };
}

async function loadModel(spec: string, weights: string | undefined, json: boolean): Promise<LoadedModel & { info: WeightsInfo }> {
  const loaded = await loadModelSpec(spec, { weights });
  const d = describeWeights(loaded);
  const info: WeightsInfo = { source: d.source, file: d.file, sha256: d.sha256, trainedBy: d.trainedBy, ...(d.warning ? { warning: d.warning } : {}) };
  if (!json) process.stderr.write(d.warning ? `irlens: ${loaded.label}: ${d.warning}\n` : `irlens: ${loaded.label}: weights ${d.source} ${d.file ?? ''}${d.sha256 ? ` (sha256 ${d.sha256.slice(0, 12)})` : ''}\n`);
  return { ...loaded, info };
}

/** The degradation shipped trained weights were trained on, for tasks whose data are real (deblur, derain). */
function trainedDegradation(M: LoadedModel): string | undefined {
  const name = M.provenance.source === 'irlens-trained' ? M.provenance.name : undefined;
  const entry = name ? findShippedWeights(name) : undefined;
  return entry?.tasks.find((t) => {
    try {
      parseDegradation(t);
      return true;
    } catch {
      return false;
    }
  });
}

/** Per-head entries: `<attn>.heads.<k>` typed by the user, or every `**.heads` point under the selection with --heads. */
function planEntries(model: RestorationModel, layers: string[] | undefined, modes: AblationMode[], heads: boolean, task: string | undefined, probe: tf.Tensor4D) {
  const explicitHeads: { point: string; head: number }[] = [];
  const globs: string[] = [];
  for (const g of layers ?? model.defaultLayers(task)) {
    const m = /^(.*\.heads)\.(\d+)$/.exec(g);
    if (m) explicitHeads.push({ point: m[1], head: Number(m[2]) });
    else globs.push(g);
  }
  const points = globs.length ? resolveHookNames(model, globs) : [];
  const entries: AblationEntrySpec[] = points.flatMap((point) => modes.map((mode) => ({ point, mode })));
  const headModes = modes.filter((m) => m !== 'identity');
  for (const h of explicitHeads)
    for (const point of resolveHookNames(model, [h.point])) for (const mode of headModes) entries.push({ point, head: h.head, mode });
  if (heads) {
    const all = resolveHookNames(model, ['**.heads']).filter((h) => points.some((p) => h === p || h.startsWith(`${p}.`)));
    if (all.length === 0) throw new Error('--heads: no per-head hook points (<attn>.heads) under the selected layers');
    // The number of heads of each point, from one forward on one image.
    const one = tf.slice(probe, [0, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
    const { output, cache } = model.runWithCache(one, all, task);
    for (const p of all) {
      const n = cache.get(p)!.shape[1] ?? 0;
      for (let k = 0; k < n; k++) for (const mode of headModes) entries.push({ point: p, head: k, mode });
    }
    tf.dispose([one, output, ...cache.values()]);
  }
  if (entries.length === 0) throw new Error('--layers: selects no hook point');
  return entries;
}

function progress(total: number, enabled: boolean) {
  if (!enabled) return { update: (_: number) => undefined, stop: () => undefined };
  const bar = new SingleBar({ stream: process.stderr, format: 'ablate |{bar}| {value}/{total} forwards | {duration_formatted} elapsed | ETA {eta_formatted}', hideCursor: true, etaBuffer: 8 });
  bar.start(total, 0);
  return { update: (d: number) => bar.update(d), stop: () => bar.stop() };
}

function provenance(): Record<string, string> {
  const b = backendInfo();
  return { irlens: IRLENS_VERSION, backend: b ? `${b.name} (${b.description})` : 'unknown', node: process.version, date: new Date().toISOString() };
}

async function cleanImages(o: AblateOptions): Promise<{ images: NamedImage[]; from: string }> {
  if (o.data !== undefined) {
    const files = listImages(o.data).slice(0, o.images);
    if (files.length === 0) throw new Error(`--data: no images in '${o.data}'`);
    const images: NamedImage[] = [];
    for (const f of files) images.push({ name: path.relative(o.data, f), image: await readImage(f, { channels: 3 }) });
    return { images, from: `folder ${o.data}` };
  }
  const names = builtinImages().map((b) => b.name).slice(0, o.images);
  return { images: await loadBuiltinImages({ channels: 3, names }), from: 'built-in images' };
}

async function runModel(spec: string, o: AblateOptions, backend: string | undefined, modesTyped: boolean): Promise<void> {
  const t0 = performance.now();
  if ((o.lq === undefined) !== (o.gt === undefined)) throw new Error(`${o.lq === undefined ? '--lq' : '--gt'}: give both --lq DIR and --gt DIR for paired data`);
  if (o.lq !== undefined && o.data !== undefined) throw new Error('--data: give either --data or --lq/--gt, not both');
  if (o.lq !== undefined && o.degradation !== undefined) throw new Error('--degradation: paired --lq/--gt data are already degraded');
  const modes = parseModes(o.modes);
  const layers = o.layers?.split(',').map((g) => g.trim());
  if (layers?.some((g) => g === '')) throw new Error(`--layers: expected comma-separated hook point globs, got '${o.layers}'`);
  await startBackend(backend, o.json);
  const M = await loadModel(spec, o.weights, !!o.json);
  const { model } = M;
  try {
    const task = model.task(o.task).name;
    const size = o.size ? parseSize(o.size, '--size') : defaultStudySize([{ model, task }], 128);
    checkStudySize(model, task, size, '--size');
    const base = outBase(o.out, `ablate-${safeName(M.label)}`);
    let pairs: { name: string; lq: import('../io/types').ImageF32; gt: import('../io/types').ImageF32 }[];
    let from: string;
    let degradation: string;
    if (o.lq !== undefined) {
      const files = matchPairedFolders(o.lq, o.gt!).slice(0, o.images);
      pairs = await pairedFromFolders(model, task, files, size);
      from = `paired folders ${o.lq} / ${o.gt}`;
      degradation = 'real (paired)';
    } else {
      const clean = await cleanImages(o);
      const s = await syntheticPairs(model, task, clean.images, size, o.seed, o.degradation ?? trainedDegradation(M));
      pairs = s.pairs;
      from = clean.from;
      degradation = s.degradation;
    }
    if (modes.includes('resample') && pairs.length < 2) throw new Error(`--images: resample needs at least 2 images, got ${pairs.length}`);
    const batch = o.batch ?? Math.min(pairs.length, 10);
    const batches = toBatches(pairs, batch);
    try {
      const entries = planEntries(model, layers, modes, !!o.heads, task, batches[0].lq);
      const showBar = !o.json && process.stderr.isTTY === true;
      const bar = progress(entries.length * batches.length, showBar);
      if (!o.json) process.stderr.write(`irlens: ${entries.length} entries x ${batches.length} batch(es) of <= ${batch} images, ${pairs.length} images from ${from}\n`);
      let result;
      try {
        result = await runAblation({
          model,
          task,
          batches,
          entries,
          metric: taskMetric(model, task),
          seed: o.seed,
          noiseSigma: o.noiseSigma,
          bootstrap: o.bootstrap,
          reuse: o.reuse,
          // With the default mode list, identity is tried everywhere and kept where the block preserves shape.
          skipInapplicable: !modesTyped,
          keepOutputs: () => false,
          onProgress: (d) => bar.update(d),
        });
      } finally {
        bar.stop();
      }
      // Example images: the first image, unablated and under the three largest drops (re-run, one image each).
      const ranked = rankedEntries(result).slice(0, 3);
      const ex = await exampleImages(model, task, batches[0], ranked.map((e) => ({ point: e.point, mode: e.mode, head: e.head })), o);
      let lamEntries: AblationReport['lam'];
      const tl = performance.now();
      if (o.lam) {
        const input = pairs[0].lq;
        const H = input.height * model.task(task).scale;
        const W = input.width * model.task(task).scale;
        const w = Math.min(LAM_DEFAULTS.window, Math.floor(Math.min(H, W) / 4));
        const win = o.window ? parseWindow(o.window) : { x: Math.floor(W / 2 - w / 2), y: Math.floor(H / 2 - w / 2), w };
        checkWindow(win, H, W);
        const r = lam(paddedForward(model, task), input, { window: win, fold: o.fold, sigma: o.sigma });
        lamEntries = [{ label: M.label, image: pairs[0].name, window: win, result: r, input }];
      }
      const lamMs = performance.now() - tl;
      const report: AblationReport = {
        model: { label: M.label, family: model.family, preset: model.preset, task, params: model.numParameters() },
        weights: M.info,
        data: { from, images: pairs.length, size, degradation },
        settings: {
          modes,
          layers: layers ?? model.defaultLayers(task),
          heads: !!o.heads,
          noiseSigma: o.noiseSigma,
          bootstrap: o.bootstrap,
          seed: o.seed,
          batch,
          metric: taskMetric(model, task),
          prefixReuse: o.reuse ? 'modules that complete before the ablated point replay their unablated outputs' : 'off',
          resample: 'a seeded derangement of the images within each batch',
          mean: 'per-channel mean over the evaluation set (channels last; per (head, channel) for .heads points; the last firing of a module that runs per patch)',
          noise: 'output + sigma x std(activation over the evaluation set) x N(0,1), seeded',
          identity: 'the module returns its input (shape-preserving blocks only)',
        },
        result,
        examples: ex,
        lam: lamEntries,
        provenance: provenance(),
        timings: { commandMs: performance.now() - t0, lamMs },
      };
      const files = await writeAblateReport(report, base);
      const wall = performance.now() - t0;
      if (o.json) process.stdout.write(`${JSON.stringify({ ...ablateReportJson(report), files, commandMs: wall }, null, 1)}\n`);
      else process.stdout.write(`${summary(report, files, wall)}\n`);
    } finally {
      disposeBatches(batches);
    }
  } finally {
    model.dispose();
  }
}

async function exampleImages(model: RestorationModel, task: string, b: { lq: tf.Tensor4D; gt: import('../io/types').ImageF32[]; names: string[] }, entries: AblationEntrySpec[], o: AblateOptions) {
  if (entries.length === 0 || b.gt.length < 2) return [];
  // The first two images keep resample's derangement meaningful; the report shows the first.
  const two = { lq: tf.slice(b.lq, [0, 0, 0, 0], [2, -1, -1, -1]) as tf.Tensor4D, gt: b.gt.slice(0, 2), names: b.names.slice(0, 2) };
  try {
    const r = await runAblation({ model, task, batches: [two], entries, metric: taskMetric(model, task), seed: o.seed, noiseSigma: o.noiseSigma, bootstrap: 0, keepOutputs: () => true });
    const first = tf.slice(b.lq, [0, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
    const input = tensorToImages(first)[0];
    first.dispose();
    return [{ name: b.names[0], input, full: r.baselineImages[0], ablated: r.entries.map((e) => ({ key: e.key, image: r.kept.get(e.key)![0] })) }];
  } finally {
    two.lq.dispose();
  }
}

function summary(r: AblationReport, files: { html: string; json: string }, wallMs: number): string {
  const res = r.result;
  const main = res.outputs[0];
  const ranked = rankedEntries(res);
  const w = Math.max(...ranked.map((e) => e.key.length), 5);
  const lines = [
    `ablations of ${r.model.label} [${r.model.task}], ${r.data.images} images from ${r.data.from} (${r.data.size[0]}x${r.data.size[1]}, ${r.data.degradation})`,
    ...(r.weights.warning ? [`  ${r.weights.warning}`] : []),
    `baseline: ${res.outputs.map((o) => `${o} PSNR ${res.baseline.mean[o].psnr.toFixed(2)} dB SSIM ${res.baseline.mean[o].ssim.toFixed(4)}`).join('; ')}`,
    `${'entry'.padEnd(w)}  PSNR drop (dB) [95% CI]        SSIM drop`,
    ...ranked.map((e) => {
      const d = e.drop[main];
      const ci = d.psnrCi ? `[${d.psnrCi.lo.toFixed(3)}, ${d.psnrCi.hi.toFixed(3)}]` : '';
      return `${e.key.padEnd(w)}  ${d.psnr.toFixed(3).padStart(8)} ${ci.padEnd(20)} ${d.ssim.toFixed(4)}`;
    }),
    ...(res.skipped.length ? [`skipped (identity needs a shape-preserving block): ${res.skipped.map((k) => k.key).join(', ')}`] : []),
    ...(r.lam ? r.lam.map((l) => `LAM ${l.label}: DI ${l.result.diffusionIndex.toFixed(2)} (window ${l.window.x},${l.window.y},${l.window.w})`) : []),
    `wrote ${files.html}, ${files.json}`,
    `time: baseline ${(res.timings.baselineMs / 1000).toFixed(1)} s + ${res.timings.forwards} ablated forwards ${(res.timings.ablationsMs / 1000).toFixed(1)} s` +
      ` (${res.timings.replayedModules} module outputs replayed); command ${(wallMs / 1000).toFixed(1)} s incl. loading, examples, LAM and reports`,
  ];
  return lines.join('\n');
}

/** The forward with the official test-time padding and crop but without restore()'s clamp (which kills gradients). */
function paddedForward(model: RestorationModel, task: string): (x: tf.Tensor4D) => tf.Tensor4D {
  const rule = model.paddingRule(task);
  const scale = model.task(task).scale;
  return (x) => {
    const [, h, w] = x.shape;
    const ph = (rule.multiple - (h % rule.multiple)) % rule.multiple;
    const pw = (rule.multiple - (w % rule.multiple)) % rule.multiple;
    if (ph === 0 && pw === 0) return model.forward(x, task);
    const y = model.forward(padBottomRight(x, ph, pw, rule.mode), task);
    return tf.slice(y, [0, 0, 0, 0], [-1, h * scale, w * scale, -1]);
  };
}

async function runLam(specs: string[], o: AblateOptions, backend?: string): Promise<void> {
  const t0 = performance.now();
  if (specs.length === 0) throw new Error('lam: name at least one model (ablate lam A [B ...] --image F --window x,y,w)');
  if (!o.image) throw new Error('--image: lam needs an image file (--image F)');
  if (!o.window) throw new Error('--window: lam needs the output window x,y,w');
  const win = parseWindow(o.window);
  if (!fs.existsSync(o.image)) throw new Error(`--image: '${o.image}' does not exist`);
  await startBackend(backend, o.json);
  const clean = await readImage(o.image, { channels: 3 });
  const lams: NonNullable<AblationReport['lam']> = [];
  const weights: { label: string; weights: WeightsInfo }[] = [];
  for (const spec of specs) {
    const M = await loadModel(spec, undefined, !!o.json);
    try {
      const t = M.model.task(o.task);
      // A task without a synthetic degradation (real data) takes the image as it is, unless one is named.
      const degName = o.degradation ?? t.degradation ?? trainedDegradation(M);
      const deg = degName ? parseDegradation(degName) : undefined;
      const gray = convertChannels(clean, M.model.inChannels === 1 ? 1 : 3);
      const lq = deg ? (await deg.applyPair(gray, new Rng(`${o.seed}:degrade:${deg.name}:0`))).lq : gray;
      const H = lq.height * t.scale;
      const W = lq.width * t.scale;
      checkWindow(win, H, W);
      const r: LamResult = lam(paddedForward(M.model, t.name), lq, { window: win, fold: o.fold, sigma: o.sigma });
      lams.push({ label: `${M.label} [${t.name}]`, image: o.image, window: win, result: r, input: lq });
      weights.push({ label: M.label, weights: M.info });
      if (!o.json) process.stderr.write(`irlens: LAM ${M.label}: DI ${r.diffusionIndex.toFixed(2)}\n`);
    } finally {
      M.model.dispose();
    }
  }
  const base = outBase(o.out, `lam-${specs.map(safeName).join('-vs-')}`);
  const html = await lamHtml(`LAM: ${lams.map((l) => l.label).join(' vs ')}`, lams, weights, provenance());
  const json = {
    format: 'irlens-lam/1',
    image: o.image,
    window: win,
    models: lams.map((l, i) => ({ model: l.label, weights: weights[i].weights, diffusionIndex: l.result.diffusionIndex, height: l.result.height, width: l.result.width, map: Array.from(l.result.map, (v) => Number(v.toPrecision(6))) })),
    settings: lams[0].result.settings,
    provenance: provenance(),
    commandMs: performance.now() - t0,
  };
  writeFilesAtomic([
    [`${base}.json`, `${JSON.stringify(json)}\n`],
    [`${base}.html`, html],
  ]);
  if (o.json) process.stdout.write(`${JSON.stringify({ ...json, models: json.models.map(({ map: _m, ...rest }) => rest), files: { html: `${base}.html`, json: `${base}.json` } }, null, 1)}\n`);
  else process.stdout.write(`${lams.map((l) => `${l.label}: DI ${l.result.diffusionIndex.toFixed(2)}`).join('\n')}\nwrote ${base}.html, ${base}.json\n`);
}

export function ablateCommand(): Command {
  return new Command('ablate')
    .addCommand(variantsCommand())
    .description('inference-time ablations (zero/mean/resample/noise/identity per hook point, --heads per head) with PSNR/SSIM drops and bootstrap intervals -> reports/ablate-<model>.{html,json}; or `ablate lam A [B ...] --image F --window x,y,w`')
    .argument('<models...>', 'a model spec (preset, PRESET@weights.pth, irlens .safetensors), or `lam` followed by model specs')
    .option('--weights <file>', 'weights file for the model (default: the spec\'s own, trained weights where irlens ships them)')
    .option('--task <name>', 'task branch and degradation (default: the model\'s default task)')
    .option('--degradation <name>', 'synthetic degradation of the clean images (default: the task\'s; for deblur/derain tasks the one shipped weights were trained on)')
    .option('--data <dir>', 'clean images, degraded by the task\'s synthetic degradation (default: the built-in images)')
    .option('--lq <dir>', 'real degraded images, matched by file name with --gt')
    .option('--gt <dir>', 'ground truth images for --lq')
    .option('--layers <globs>', 'comma-separated hook point globs (default: the model\'s default layers); `<attn>.heads.<k>` for one head')
    .option('--modes <list>', `comma-separated modes: ${ABLATION_MODES.join(', ')}`, ABLATION_MODES.join(','))
    .option('--heads', 'also ablate every attention head under the selected layers (identity excluded)')
    .option('--images <n>', 'use the first N images', parsePositiveInt('--images'))
    .option('--size <HxW>', 'centre crop of the ground truth (default: the largest square <= 128 the model takes)')
    .option('--batch <n>', 'images per forward (default: all, up to 10)', parsePositiveInt('--batch'))
    .option('--noise-sigma <x>', 'noise mode: sigma relative to the activation\'s std', parseNumber('--noise-sigma', 0, true), 1)
    .option('--bootstrap <n>', 'bootstrap replicates of the 95% intervals', parseNonNegativeInt('--bootstrap'), 2000)
    .option('--seed <n>', 'seed of degradations, derangements, noise and bootstrap', parseNonNegativeInt('--seed'), 0)
    .option('--no-reuse', 'run every ablated forward in full (no prefix reuse)')
    .option('--no-lam', 'skip the LAM map of the report')
    .option('--image <file>', 'lam: the clean image (degraded by each model\'s task)')
    .option('--window <x,y,w>', 'LAM window on the output (left, top, side in output pixels)')
    .option('--fold <n>', 'LAM path steps', parsePositiveInt('--fold'), LAM_DEFAULTS.fold)
    .option('--sigma <x>', 'LAM blur sigma of the baseline', parseNumber('--sigma', 0, true), LAM_DEFAULTS.sigma)
    .option('--json', 'print the result as JSON on stdout')
    .option('--out <path>', 'base path of the reports (default: reports/ablate-<model> or reports/lam-<models>)')
    .action(async (models: string[], o: AblateOptions, cmd: Command) => {
      const backend = cmd.optsWithGlobals().backend as string | undefined;
      if (models[0] === 'lam') return runLam(models.slice(1), o, backend);
      if (models.length !== 1) throw new Error(`MODEL: expected one model spec (or 'lam A [B ...]'), got ${models.length}: ${models.join(' ')}`);
      return runModel(models[0], o, backend, cmd.getOptionValueSource('modes') === 'cli');
    });
}
