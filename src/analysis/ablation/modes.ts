/**
 * Inference-time ablation modes: what replaces a hook point's output.
 *
 *   zero      all zeros
 *   mean      the activation's per-channel mean over the evaluation set (computed in a first pass)
 *   resample  the same hook point's activation from another image of the batch, by a fixed seeded derangement
 *   noise     output + sigma * std * N(0,1), std = the activation's std over the evaluation set
 *   identity  the module passes its input through (the block is knocked out; an enclosing skip is kept)
 *
 * Channels are the last axis of irlens activations (NHWC maps and [B, L, C] tokens). A per-head point
 * `<attn>.heads.<k>` applies the mode to head k only (axis 1 of the `<attn>.heads` output) and keeps the others.
 */
import * as tf from '@tensorflow/tfjs';
import type { Module } from '../../models/module';
import { Rng } from '../../util/rng';

export const ABLATION_MODES = ['zero', 'mean', 'resample', 'noise', 'identity'] as const;
export type AblationMode = (typeof ABLATION_MODES)[number];

/** Per-point statistics of the unablated activations over the evaluation set (float64 sums). */
export interface PointStats {
  /** Per-channel mean (last axis). */
  mean: Float64Array;
  /** Standard deviation over every element (population). */
  std: number;
  shape: number[];
}

/** Accumulates PointStats over batches. */
export class PointStatsAccumulator {
  private sum: Float64Array | undefined;
  private count = 0;
  private total = 0;
  private totalSq = 0;
  private elements = 0;
  private shape: number[] = [];

  add(t: tf.Tensor): void {
    const c = t.shape[t.shape.length - 1];
    if (!this.sum) {
      this.sum = new Float64Array(c);
      this.shape = t.shape.slice(1);
    }
    const d = t.dataSync();
    const s = this.sum;
    for (let i = 0; i < d.length; i++) {
      const v = d[i];
      s[i % c] += v;
      this.total += v;
      this.totalSq += v * v;
    }
    this.count += d.length / c;
    this.elements += d.length;
  }

  result(): PointStats {
    if (!this.sum) throw new Error('PointStatsAccumulator: no activations were added');
    const m = this.total / this.elements;
    return {
      mean: this.sum.map((v) => v / this.count),
      std: Math.sqrt(Math.max(0, this.totalSq / this.elements - m * m)),
      shape: this.shape,
    };
  }
}

/** A fixed seeded derangement of 0..n-1 (no index maps to itself); n >= 2. */
export function derangement(n: number, seed: number | string): Int32Array {
  if (n < 2) throw new Error(`resample: needs at least 2 images per batch, got ${n}`);
  const rng = new Rng(`${seed}:derangement`);
  for (;;) {
    const p = rng.permutation(n);
    if (p.every((v, i) => v !== i)) return p;
  }
}

export interface ModeContext {
  stats?: PointStats;
  /** Image derangement for `resample` (length = images in the batch). */
  perm?: Int32Array;
  /** sigma of `noise`, relative to the activation's std (default 1). */
  noiseSigma?: number;
  /** Standard normal noise of the hooked tensor's shape (the caller disposes nothing: it is made in the hook). */
  noise?: (shape: number[]) => tf.Tensor;
  /** Images in the batch (a window-attention output has B' = images x windows rows). */
  images: number;
}

/** Gather indices along axis 0 for a tensor of `rows` rows made of `images` equal blocks, permuted by `perm`. */
function blockPermutation(perm: Int32Array, rows: number, images: number): Int32Array {
  if (rows % images !== 0) throw new Error(`resample: a ${rows}-row activation is not a multiple of the ${images} images`);
  const k = rows / images;
  return Int32Array.from({ length: rows }, (_, j) => perm[Math.floor(j / k)] * k + (j % k));
}

/** The replacement of `t` under `mode` (zero, mean, resample, noise); identity is handled by the runner. */
export function replace(mode: Exclude<AblationMode, 'identity'>, t: tf.Tensor, ctx: ModeContext): tf.Tensor {
  switch (mode) {
    case 'zero':
      return tf.zerosLike(t);
    case 'mean': {
      if (!ctx.stats) throw new Error('mean: no statistics for this hook point');
      const c = t.shape[t.shape.length - 1];
      if (ctx.stats.mean.length !== c) throw new Error(`mean: statistics have ${ctx.stats.mean.length} channels, activation ${c}`);
      return tf.broadcastTo(tf.tensor1d(Float32Array.from(ctx.stats.mean)), t.shape);
    }
    case 'resample': {
      if (!ctx.perm) throw new Error('resample: no derangement');
      return tf.gather(t, tf.tensor1d(blockPermutation(ctx.perm, t.shape[0], ctx.images), 'int32'), 0);
    }
    case 'noise': {
      if (!ctx.stats) throw new Error('noise: no statistics for this hook point');
      const eps = ctx.noise ? ctx.noise(t.shape) : tf.randomNormal(t.shape);
      return tf.add(t, tf.mul(eps, (ctx.noiseSigma ?? 1) * ctx.stats.std));
    }
  }
}

/** Applies `fn` to head `k` (axis 1) of a per-head activation and keeps the other heads. */
export function onHead(t: tf.Tensor, k: number, fn: (h: tf.Tensor) => tf.Tensor): tf.Tensor {
  const heads = t.rank >= 3 ? t.shape[1]! : 0;
  if (k < 0 || k >= heads) throw new Error(`head ${k}: the activation has ${heads} heads (shape [${t.shape}])`);
  const parts = tf.split(t, heads, 1);
  parts[k] = fn(parts[k]);
  return tf.concat(parts, 1);
}

/**
 * Makes `module` return its first argument instead of running (identity knock-out), until the returned undo is
 * called. The instance's own `forward` shadows the class method, so hooks still see the module's (new) output.
 */
export function knockOut(module: Module, path: string, outShape?: number[]): () => void {
  const own = Object.prototype.hasOwnProperty.call(module, 'forward');
  if (own) throw new Error(`identity: ${path} is already overridden`);
  (module as unknown as { forward: (...a: unknown[]) => unknown }).forward = (...args: unknown[]) => {
    const x = args[0];
    if (!(x instanceof tf.Tensor)) throw new Error(`identity: ${path} takes no tensor input to pass through`);
    if (outShape && !tf.util.arraysEqual(x.shape.slice(1), outShape))
      throw new Error(`identity: ${path} maps [${x.shape.slice(1)}] to [${outShape}]; only shape-preserving (residual) blocks pass their input through`);
    return x;
  };
  return () => {
    delete (module as unknown as { forward?: unknown }).forward;
  };
}
