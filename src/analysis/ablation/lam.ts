/**
 * Local attribution maps (Gu & Dong, CVPR 2021, "Interpreting Super-Resolution Networks with Local Attribution
 * Maps") and the effective receptive field.
 *
 * LAM, with the facts of the authors' LAM_Demo: path-integrated gradients along a Gaussian-blur path. With
 * kernels k_i = isotropic Gaussian (size l, sigma_i = linspace(sigma, 0, fold + 1)[i], normalised, sigma + 1e-5 in
 * the exponent), the i-th of `fold` path images is the input filtered with k_{i+1} and its path derivative the input
 * filtered with (k_{i+1} - k_i) * fold (cv2.filter2D: correlation with BORDER_REFLECT_101). The objective is the
 * sum over channels of the output's gradient magnitude sqrt((y[r,c] - y[r+1,c])^2 + (y[r,c] - y[r,c+1])^2) over the
 * window rows y..y+w-1, columns x..x+w-1 of the output. The attribution is the mean over steps of grad * derivative
 * (NaN gradients, from sqrt at 0, set to 0); the map is |sum over channels| / its max; DI = (1 - Gini(map)) * 100.
 * Defaults of the demo: sigma 1.2, fold 50, l 9, window 16.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageF32 } from '../../io/types';
import { diffusionIndex } from './stats';

export interface LamOptions {
  sigma?: number;
  fold?: number;
  kernelSize?: number;
  /** Output window: left column x, top row y, side w (output pixels). */
  window: { x: number; y: number; w: number };
  /** Path steps per forward/backward batch (memory vs speed; default: 4 at 64x64, fewer for larger inputs). */
  batch?: number;
}

export interface LamResult {
  /** Attribution per input pixel, |sum over channels| / max, row-major height x width. */
  map: Float64Array;
  /** Signed attribution, NHWC-ordered height x width x channels (mean over steps of grad * path derivative). */
  attribution: Float64Array;
  height: number;
  width: number;
  diffusionIndex: number;
  settings: { sigma: number; fold: number; kernelSize: number; window: { x: number; y: number; w: number }; path: string; objective: string };
}

export const LAM_DEFAULTS = { sigma: 1.2, fold: 50, kernelSize: 9, window: 16 } as const;

/** LAM_Demo's isotropic_gaussian_kernel: l x l, sigma + 1e-5 in the exponent, normalised to sum 1 (float64). */
export function lamKernel(l: number, sigma: number): Float64Array {
  const k = new Float64Array(l * l);
  const start = Math.floor(-l / 2) + 1;
  let sum = 0;
  for (let i = 0; i < l; i++)
    for (let j = 0; j < l; j++) {
      const yy = start + i;
      const xx = start + j;
      const v = Math.exp(-(xx * xx + yy * yy) / (2 * (sigma + 1e-5) ** 2));
      k[i * l + j] = v;
      sum += v;
    }
  return k.map((v) => v / sum);
}

/** Correlation of an HWC image with an l x l kernel, BORDER_REFLECT_101 (cv2.filter2D's default), in float64. */
export function filterReflect101(img: ImageF32, kernel: Float64Array, l: number): Float64Array {
  const { height: H, width: W, channels: C, data } = img;
  const r = Math.floor(l / 2);
  if (H <= r || W <= r) throw new Error(`LAM: the image (${H}x${W}) must be larger than the blur radius ${r}`);
  const reflect = (i: number, n: number) => (i < 0 ? -i : i >= n ? 2 * n - 2 - i : i);
  const out = new Float64Array(H * W * C);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      for (let i = 0; i < l; i++) {
        const sy = reflect(y + i - r, H);
        for (let j = 0; j < l; j++) {
          const w = kernel[i * l + j];
          if (w === 0) continue;
          const sx = reflect(x + j - r, W);
          const s = (sy * W + sx) * C;
          const o = (y * W + x) * C;
          for (let c = 0; c < C; c++) out[o + c] += w * data[s + c];
        }
      }
  return out;
}

/** The LAM objective on an NHWC output batch: per image, summed gradient magnitude inside the window. */
export function windowObjective(y: tf.Tensor4D, win: { x: number; y: number; w: number }): tf.Tensor {
  return tf.tidy(() => {
    const [, H, W] = y.shape;
    const hg = tf.square(tf.sub(tf.slice(y, [0, 0, 0, 0], [-1, H - 1, W, -1]), tf.slice(y, [0, 1, 0, 0], [-1, H - 1, W, -1])));
    const wg = tf.square(tf.sub(tf.slice(y, [0, 0, 0, 0], [-1, H, W - 1, -1]), tf.slice(y, [0, 0, 1, 0], [-1, H, W - 1, -1])));
    const g = tf.sqrt(tf.add(tf.slice(hg, [0, 0, 0, 0], [-1, H - 1, W - 1, -1]), tf.slice(wg, [0, 0, 0, 0], [-1, H - 1, W - 1, -1])));
    // Python slicing clips at the end; so does this.
    const h = Math.max(0, Math.min(win.w, H - 1 - win.y));
    const w = Math.max(0, Math.min(win.w, W - 1 - win.x));
    return tf.sum(tf.slice(g, [0, win.y, win.x, 0], [-1, h, w, -1]));
  });
}

/** Checks a window against an output size; one-line error naming --window. */
export function checkWindow(win: { x: number; y: number; w: number }, outH: number, outW: number): void {
  if (![win.x, win.y, win.w].every((v) => Number.isInteger(v) && v >= 0) || win.w < 1)
    throw new Error(`--window: expected integers x,y >= 0 and w >= 1, got ${win.x},${win.y},${win.w}`);
  if (win.x + win.w > outW - 1 || win.y + win.w > outH - 1)
    throw new Error(`--window: ${win.x},${win.y},${win.w} does not fit the ${outH}x${outW} output (x + w and y + w must be < ${outW} and ${outH})`);
}

/** LAM of `forward` (NHWC [0,1] in, NHWC out) at `image`. */
export function lam(forward: (x: tf.Tensor4D) => tf.Tensor4D, image: ImageF32, o: LamOptions): LamResult {
  const sigma = o.sigma ?? LAM_DEFAULTS.sigma;
  const fold = o.fold ?? LAM_DEFAULTS.fold;
  const l = o.kernelSize ?? LAM_DEFAULTS.kernelSize;
  if (!Number.isInteger(fold) || fold < 1) throw new Error(`LAM: fold must be a positive integer, got ${fold}`);
  const { height: H, width: W, channels: C } = image;
  // The backward keeps every activation of the batch: bound the pixels per batch (wasm memory is 4 GiB at most).
  const batch = Math.max(1, o.batch ?? Math.floor((4 * 64 * 64) / (H * W)));
  const sigmas = Array.from({ length: fold + 1 }, (_, i) => sigma - (sigma * i) / fold);
  const kernels = sigmas.map((s) => lamKernel(l, s));
  const n = H * W * C;
  const attribution = new Float64Array(n);
  const grad = tf.grad((x: tf.Tensor) => windowObjective(forward(x as tf.Tensor4D), o.window));
  for (let start = 0; start < fold; start += batch) {
    const steps = Array.from({ length: Math.min(batch, fold - start) }, (_, j) => start + j);
    const xs = new Float32Array(steps.length * n);
    const ds: Float64Array[] = [];
    steps.forEach((i, j) => {
      xs.set(Float32Array.from(filterReflect101(image, kernels[i + 1], l)), j * n);
      const dk = kernels[i + 1].map((v, q) => (v - kernels[i][q]) * fold);
      ds.push(filterReflect101(image, dk, l));
    });
    // The objective sums over the batch; images do not interact in these networks, so each gets its own gradient.
    let g: Float32Array | Int32Array | Uint8Array;
    try {
      g = tf.tidy(() => grad(tf.tensor4d(xs, [steps.length, H, W, C])).dataSync());
    } catch (e) {
      const msg = (e as Error).message;
      if (/memory access out of bounds|out of memory/i.test(msg))
        throw new Error(`LAM: the backward of a ${H}x${W} input does not fit the backend's memory; use a smaller (cropped) image`);
      throw e;
    }
    steps.forEach((_, j) => {
      const d = ds[j];
      for (let q = 0; q < n; q++) {
        const v = g[j * n + q];
        if (!Number.isNaN(v)) attribution[q] += v * d[q];
      }
    });
  }
  for (let q = 0; q < n; q++) attribution[q] /= fold;
  const map = new Float64Array(H * W);
  for (let p = 0; p < H * W; p++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += attribution[p * C + c];
    map[p] = Math.abs(s);
  }
  const max = map.reduce((a, b) => Math.max(a, b), 0);
  if (max > 0) for (let p = 0; p < map.length; p++) map[p] /= max;
  return {
    map,
    attribution,
    height: H,
    width: W,
    diffusionIndex: diffusionIndex(map),
    settings: {
      sigma,
      fold,
      kernelSize: l,
      window: o.window,
      path: `Gaussian blur path from sigma ${sigma} to 0 in ${fold} steps (${l}x${l} kernels, reflect-101 borders)`,
      objective: 'sum of output gradient magnitudes in the window',
    },
  };
}

/**
 * Effective receptive field: |d (sum over channels of output pixel (row, col)) / d input|, summed over input
 * channels, row-major height x width (not normalised).
 */
export function effectiveReceptiveField(forward: (x: tf.Tensor4D) => tf.Tensor4D, image: ImageF32, row: number, col: number): Float64Array {
  const { height: H, width: W, channels: C } = image;
  const g = tf.tidy(() => {
    const f = (x: tf.Tensor) => {
      const y = forward(x as tf.Tensor4D);
      if (row < 0 || col < 0 || row >= y.shape[1] || col >= y.shape[2])
        throw new Error(`ERF: pixel (${row}, ${col}) is outside the ${y.shape[1]}x${y.shape[2]} output`);
      return tf.sum(tf.slice(y, [0, row, col, 0], [1, 1, 1, -1]));
    };
    return tf.grad(f)(tf.tensor4d(image.data, [1, H, W, C])).dataSync();
  });
  const out = new Float64Array(H * W);
  for (let p = 0; p < H * W; p++) for (let c = 0; c < C; c++) out[p] += Math.abs(g[p * C + c]);
  return out;
}
