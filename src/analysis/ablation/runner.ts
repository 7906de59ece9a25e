/**
 * The inference-time ablation engine: for every (hook point x mode [x head]) one forward of the evaluation set with
 * that one intervention, PSNR/SSIM of every output against ground truth, and the drop from the unablated model per
 * image with a bootstrap 95% interval of its mean over images.
 *
 * Passes per batch of images: (1) an unablated forward that records the order in which modules complete and
 * captures the activations of the selected points (per-channel means and stds over the whole set for 'mean' and
 * 'noise'); (2) one forward per entry.
 *
 * Prefix reuse: an ablation at point p cannot change anything that completed before p. So every module that
 * completed before p, fired exactly once and is not inside another such module (hooks.replayablePaths) returns its
 * output captured in the unablated forward of the same batch instead of running (runWithHooks' replay option).
 * The work left is p and what follows it; the values are the same floats as full forwards (a test checks
 * equality). Modules that fire several times (MPRNet's per-patch stage-1 modules, its shared PReLU) always run.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageF32 } from '../../io/types';
import { tensorToImages } from '../../io/image';
import type { RestorationModel } from '../../models/model';
import type { Module } from '../../models/module';
import { disposeCache, hookPoints, replayablePaths, replayFromCache, runWithCache, runWithHooks, type HookFn } from '../../models/hooks';
import { psnr, ssim, type MetricOptions } from '../metrics';
import { knockOut, onHead, PointStatsAccumulator, replace, derangement, type AblationMode, type ModeContext, type PointStats } from './modes';
import { bootstrapMean, type Interval } from './stats';

export interface AblationBatch {
  /** Model inputs, NHWC (the caller owns and disposes them). */
  lq: tf.Tensor4D;
  /** Ground truth per image, matching the model output size. */
  gt: ImageF32[];
  names: string[];
}

export interface AblationEntrySpec {
  /** Hook point (module path, or `path:i` for an element of a list output). */
  point: string;
  mode: AblationMode;
  /** Head index for a per-head point (`<attn>.heads` hook point, head along axis 1). */
  head?: number;
}

export interface AblationOptions {
  model: RestorationModel;
  task?: string;
  batches: AblationBatch[];
  entries: AblationEntrySpec[];
  metric: MetricOptions;
  /** Seeds the derangements, default noise and bootstrap (default 0). */
  seed?: number;
  /** noise: sigma relative to the activation's std (default 1). */
  noiseSigma?: number;
  bootstrap?: number;
  /** Drop identity entries of modules that change shape (instead of failing), listing them in `skipped`. */
  skipInapplicable?: boolean;
  /** Reuse the unablated forward up to the ablated point (default true). */
  reuse?: boolean;
  /** Standard normal noise for entry `point` on batch `batch` (default: seeded tf.randomNormal). */
  noise?: (point: string, batch: number, shape: number[]) => tf.Tensor;
  /** Keep the ablated outputs of these entry keys (e.g. for example images in a report). */
  keepOutputs?: (key: string) => boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface MetricSeries {
  psnr: number[];
  ssim: number[];
}

export interface MetricSummary {
  psnr: number;
  ssim: number;
}

export interface AblationEntryResult extends AblationEntrySpec {
  key: string;
  /** Per output name (['output'] or MPRNet's ['stage3', 'stage2', 'stage1']): per-image metrics. */
  perImage: Record<string, MetricSeries>;
  mean: Record<string, MetricSummary>;
  /** Baseline minus ablated (positive = the ablation hurts), mean over images with 95% bootstrap intervals. */
  drop: Record<string, { psnr: number; psnrCi: Interval | null; ssim: number; ssimCi: Interval | null }>;
  /** Modules replayed from the unablated forward (prefix reuse). */
  replayed: number;
}

export interface AblationResult {
  outputs: string[];
  images: string[];
  baseline: { perImage: Record<string, MetricSeries>; mean: Record<string, MetricSummary> };
  entries: AblationEntryResult[];
  /** Activation statistics of every ablated point over the evaluation set. */
  stats: Record<string, { std: number; channels: number; shape: number[] }>;
  timings: { baselineMs: number; ablationsMs: number; forwards: number; replayedModules: number };
  /** Entries left out (skipInapplicable), with why. */
  skipped: { key: string; reason: string }[];
  /** Ablated output images kept on request (keepOutputs), per entry key, batch order. */
  kept: Map<string, ImageF32[]>;
  baselineImages: ImageF32[];
}

export function entryKey(e: AblationEntrySpec): string {
  return `${e.point}${e.head === undefined ? '' : `#${e.head}`}/${e.mode}`;
}

/** Module path of a hook point name (drops a `:i` list-element suffix). */
const modulePath = (point: string) => point.replace(/:\d+$/, '');

/** The forward producing every output the report scores: MPRNet's three stage images, else the one output. */
function outputsOf(model: RestorationModel): { names: string[]; run: (x: tf.Tensor4D, task?: string) => tf.Tensor4D[] } {
  const staged = model as unknown as { forwardStages?: (x: tf.Tensor4D, task?: string) => tf.Tensor4D[] };
  if (typeof staged.forwardStages === 'function')
    return { names: ['stage3', 'stage2', 'stage1'], run: (x, task) => staged.forwardStages!.call(model, x, task) };
  return { names: ['output'], run: (x, task) => [model.forward(x, task)] };
}

function measure(outs: ImageF32[][], gt: ImageF32[], names: string[], metric: MetricOptions, into: Record<string, MetricSeries>) {
  outs.forEach((imgs, o) => {
    const s = (into[names[o]] ??= { psnr: [], ssim: [] });
    imgs.forEach((img, i) => {
      s.psnr.push(psnr(img, gt[i], metric));
      s.ssim.push(ssim(img, gt[i], metric));
    });
  });
}

const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export async function runAblation(o: AblationOptions): Promise<AblationResult> {
  const { model, task } = o;
  const seed = o.seed ?? 0;
  const reuse = o.reuse ?? true;
  const { names: outputs, run } = outputsOf(model);
  const byPath = new Map<string, Module>(model.namedModules());
  const points = [...new Set(o.entries.map((e) => e.point))];
  const known = new Set(hookPoints(model));
  for (const p of points) if (!known.has(modulePath(p))) throw new Error(`ablation: unknown hook point '${p}'`);
  for (const e of o.entries)
    if (e.mode === 'identity' && e.head !== undefined) throw new Error(`ablation: identity applies to blocks, not heads (${entryKey(e)})`);
  if (o.batches.length === 0) throw new Error('ablation: no images');

  // Pass 1: order, statistics, baseline metrics.
  const t0 = performance.now();
  const acc = new Map(points.map((p) => [p, new PointStatsAccumulator()]));
  const baseline: Record<string, MetricSeries> = {};
  const baselineImages: ImageF32[] = [];
  // The completion order of one forward (the same for every batch) decides what each point may replay.
  const probe = runWithCache(model, [], () => run(o.batches[0].lq, task));
  tf.dispose(probe.output);
  const replay = new Map(points.map((p) => [p, reuse ? replayablePaths(probe.order, probe.calls, p) : []]));
  const capture = [...new Set([...replay.values()].flat())];
  const caches: Map<string, tf.Tensor>[] = [];
  try {
    for (const b of o.batches) {
      const { output, cache } = runWithCache(model, [...points, ...capture], () => run(b.lq, task).map((y) => tf.clipByValue(y, 0, 1)));
      for (const p of points) {
        const t = cache.get(p);
        if (!t) throw new Error(`ablation: hook point '${p}' did not fire in the forward of task ${task ?? 'default'}`);
        addPointActivation(acc.get(p)!, p, t, byPath);
      }
      for (const p of points) if (!capture.includes(p)) cache.get(p)?.dispose(), cache.delete(p);
      caches.push(cache);
      const imgs = output.map((y) => tensorToImages(y as tf.Tensor4D));
      tf.dispose(output);
      baselineImages.push(...imgs[0]);
      measure(imgs, b.gt, outputs, o.metric, baseline);
    }
    const stats = new Map<string, PointStats>(points.map((p) => [p, acc.get(p)!.result()]));
    const t1 = performance.now();

    // Pass 2: one forward per entry and batch.
    const entries: AblationEntryResult[] = [];
    const kept = new Map<string, ImageF32[]>();
    let forwards = 0;
    let replayedModules = 0;
    const total = o.entries.length * o.batches.length;
    const skipped: { key: string; reason: string }[] = [];
    entryLoop: for (const e of o.entries) {
      const key = entryKey(e);
      const perImage: Record<string, MetricSeries> = {};
      const rs = replay.get(e.point)!;
      for (let bi = 0; bi < o.batches.length; bi++) {
        const b = o.batches[bi];
        const images = b.gt.length;
        const undo: (() => void)[] = [];
        const hooks: Record<string, HookFn> = {};
        try {
          const iv = interventionHooks(model, e, {
            stats: stats.get(e.point)!,
            perm: e.mode === 'resample' ? derangement(images, `${seed}:${bi}`) : undefined,
            noiseSigma: o.noiseSigma,
            noise: o.noise ? (shape: number[]) => o.noise!(e.point, bi, shape) : seededNoise(`${seed}:${key}:${bi}`),
            images,
          }, byPath);
          undo.push(iv.undo);
          Object.assign(hooks, iv.hooks);
          let outs: tf.Tensor[];
          try {
            outs = runWithHooks(model, hooks, () => run(b.lq, task).map((y) => tf.clipByValue(y, 0, 1)), {
              replay: replayFromCache(caches[bi], rs),
            });
          } catch (err) {
            const msg = (err as Error).message;
            if (o.skipInapplicable && e.mode === 'identity' && msg.startsWith('identity:')) {
              skipped.push({ key, reason: msg });
              forwards += o.batches.length - bi;
              o.onProgress?.(forwards, total);
              continue entryLoop;
            }
            throw err;
          }
          const imgs = outs.map((y) => tensorToImages(y as tf.Tensor4D));
          tf.dispose(outs);
          measure(imgs, b.gt, outputs, o.metric, perImage);
          if (o.keepOutputs?.(key)) kept.set(key, [...(kept.get(key) ?? []), ...imgs[0]]);
        } finally {
          for (const u of undo.reverse()) u();
        }
        forwards++;
        replayedModules += rs.length;
        o.onProgress?.(forwards, total);
        await new Promise((r) => setImmediate(r)); // let a progress bar draw
      }
      const mean: AblationEntryResult['mean'] = {};
      const drop: AblationEntryResult['drop'] = {};
      for (const name of outputs) {
        const a = perImage[name];
        const base = baseline[name];
        mean[name] = { psnr: meanOf(a.psnr), ssim: meanOf(a.ssim) };
        const dp = a.psnr.map((v, i) => base.psnr[i] - v);
        const ds = a.ssim.map((v, i) => base.ssim[i] - v);
        const bp = bootstrapMean(dp, { replicates: o.bootstrap, seed: `${seed}:${key}:${name}:psnr` });
        const bs = bootstrapMean(ds, { replicates: o.bootstrap, seed: `${seed}:${key}:${name}:ssim` });
        drop[name] = { psnr: bp.mean, psnrCi: bp.ci, ssim: bs.mean, ssimCi: bs.ci };
      }
      entries.push({ ...e, key, perImage, mean, drop, replayed: rs.length });
    }
    const t2 = performance.now();
    return {
      outputs,
      images: o.batches.flatMap((b) => b.names),
      baseline: { perImage: baseline, mean: Object.fromEntries(outputs.map((n) => [n, { psnr: meanOf(baseline[n].psnr), ssim: meanOf(baseline[n].ssim) }])) },
      entries,
      stats: Object.fromEntries([...stats].map(([p, s]) => [p, { std: s.std, channels: s.mean.length, shape: s.shape }])),
      timings: { baselineMs: t1 - t0, ablationsMs: t2 - t1, forwards, replayedModules },
      skipped,
      kept,
      baselineImages,
    };
  } finally {
    for (const c of caches) disposeCache(c);
  }
}

/**
 * The hooks (and, for identity, the module knock-out) that apply one entry; call undo() after the forward.
 * Exposed so that tests can compare one intervention's raw output with an independent PyTorch computation.
 */
export function interventionHooks(
  model: Module,
  e: AblationEntrySpec,
  ctx: ModeContext,
  byPath: Map<string, Module> = new Map(model.namedModules()),
): { hooks: Record<string, HookFn>; undo: () => void } {
  if (e.mode === 'identity') {
    const m = byPath.get(modulePath(e.point));
    if (!m) throw new Error(`identity: no module '${e.point}'`);
    return { hooks: {}, undo: knockOut(m, e.point, ctx.stats?.shape) };
  }
  const mode = e.mode;
  const axis = e.head === undefined ? -1 : headChannelAxis(byPath.get(modulePath(e.point)));
  // A head slice with its channels on axis 2 is moved to channels-last for the mode and back.
  const swap = (h: tf.Tensor) => (axis === 2 ? tf.transpose(h, [0, 1, 3, 2]) : h);
  const hook: HookFn =
    e.head === undefined
      ? (t) => replace(mode, t, ctx)
      : (t) =>
          onHead(t, e.head!, (h) => {
            const d = t.shape[axis === 2 ? 2 : t.rank - 1]!;
            return swap(replace(mode, swap(h), { ...ctx, stats: ctx.stats && headStats(ctx.stats, d, e.head!) }));
          });
  return { hooks: { [e.point]: hook }, undo: () => undefined };
}

/** Head k's slice of per-channel statistics: a per-head activation [B', heads, ..., d] keeps its last axis per head. */
function headStats(st: PointStats, d: number, head: number): PointStats {
  return { ...st, mean: st.mean.slice(head * d, (head + 1) * d) };
}

/**
 * The channel axis of a per-head point: the last one for window attention ([B*nW, heads, N, head_dim]), axis 2 for
 * channel attention (Restormer's MDTA, [B, heads, C/heads, H*W]), read from the layout the HookPoint declares.
 */
export function headChannelAxis(m: Module | undefined): number {
  const desc = (m as { description?: string } | undefined)?.description ?? '';
  return /\[B, heads, C\/heads, H\*W\]/.test(desc) ? 2 : -1;
}

/** Adds one unablated activation of `point` to its statistics (per-head points: per (head, channel)). */
export function addPointActivation(acc: PointStatsAccumulator, point: string, t: tf.Tensor, byPath: Map<string, Module>): void {
  if (isHeadsPoint(point)) tf.tidy(() => acc.add(headsAsChannels(t, headChannelAxis(byPath.get(point)))));
  else acc.add(t);
}

const isHeadsPoint = (p: string) => /(^|\.)heads$/.test(p);

/** [B', heads, ..., d] -> [B', ..., heads * d]: statistics per (head, channel); channels on axis 2 move last first. */
function headsAsChannels(t0: tf.Tensor, axis: number): tf.Tensor {
  const t = axis === 2 ? tf.transpose(t0, [0, 1, 3, 2]) : t0;
  const r = t.rank;
  const perm = [0, ...Array.from({ length: r - 3 }, (_, i) => i + 2), 1, r - 1];
  const moved = tf.transpose(t, perm);
  return tf.reshape(moved, [...moved.shape.slice(0, r - 2), t.shape[1]! * t.shape[r - 1]!]);
}

function seededNoise(seed: string): (shape: number[]) => tf.Tensor {
  let n = 0;
  return (shape) => tf.randomNormal(shape, 0, 1, 'float32', hashSeed(`${seed}:${n++}`));
}

/** A 31-bit integer seed from a string (tf.randomNormal takes a number). */
function hashSeed(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 1) % 2147483647;
}
