/**
 * PSNR and SSIM with the conventions of restoration papers (BasicSR's calculate_psnr / calculate_ssim).
 * Hand-written because the npm SSIM/PSNR packages use other conventions (window, constants, colour transform).
 *
 * Conventions: an ImageF32 in [0,1] is treated as values x * 255 in float64; `cropBorder` pixels are removed on
 * every side; with `testYChannel` RGB images are reduced to Y = 16 + 65.481 R + 128.553 G + 24.966 B
 * (R, G, B in [0,1]; BasicSR's rgb2ycbcr y_only, so Y is on the 0..255 scale) — 1-channel images are used as is.
 * PSNR = 10 log10(255^2 / MSE) with the MSE over all remaining values (all channels together).
 * SSIM: 11x11 Gaussian window (sigma 1.5), 'valid' filtering, C1 = (0.01*255)^2, C2 = (0.03*255)^2, population
 * (co)variances; the mean of the SSIM map, averaged over channels.
 * Difference from BasicSR: BasicSR rounds Y to float32; Y is float64 here (differences ~1e-5 dB and below).
 */
import type { ImageF32 } from '../io/types';
import type { TaskSpec } from '../models/model';
import { srFactor } from '../degradations';
import { mean } from '../util/stats';

export interface MetricOptions {
  /** Pixels removed on each side before measuring (the SR scale in SR papers). Default 0. */
  cropBorder?: number;
  /** Measure on the Y channel of YCbCr (RGB input). Default false. */
  testYChannel?: boolean;
  /**
   * Round both images to 8-bit levels first (clip to [0,1], round(x*255) half to even), as BasicSR's tensor2img
   * does with network outputs before measuring. Default false.
   */
  quantize?: boolean;
}

/** Channel planes on the 0..255 scale, cropped, possibly reduced to Y. */
interface Planes {
  planes: Float64Array[];
  height: number;
  width: number;
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function checkPair(a: ImageF32, b: ImageF32, where: string, cropBorder: number, minSize: number): void {
  for (const img of [a, b]) {
    if (!(img.data instanceof Float32Array) || img.data.length !== img.height * img.width * img.channels) {
      throw new Error(`${where}: image data must be a Float32Array of height*width*channels values`);
    }
  }
  if (a.height !== b.height || a.width !== b.width || a.channels !== b.channels) {
    throw new Error(`${where}: images differ in shape, ${a.height}x${a.width}x${a.channels} vs ${b.height}x${b.width}x${b.channels}`);
  }
  if (!Number.isInteger(cropBorder) || cropBorder < 0) throw new Error(`${where}: cropBorder must be an integer >= 0, got ${cropBorder}`);
  const h = a.height - 2 * cropBorder;
  const w = a.width - 2 * cropBorder;
  if (h < minSize || w < minSize) {
    throw new Error(`${where}: ${a.height}x${a.width} image minus cropBorder ${cropBorder} leaves ${h}x${w}, need at least ${minSize}x${minSize}`);
  }
}

function toPlanes(img: ImageF32, opts: MetricOptions): Planes {
  const c0 = opts.cropBorder ?? 0;
  const { channels: C } = img;
  const height = img.height - 2 * c0;
  const width = img.width - 2 * c0;
  let src: ArrayLike<number> = img.data;
  if (opts.quantize) {
    const q = new Float64Array(img.data.length);
    for (let i = 0; i < q.length; i++) {
      const v = img.data[i];
      q[i] = roundHalfEven((v < 0 ? 0 : v > 1 ? 1 : v) * 255) / 255;
    }
    src = q;
  }
  const useY = opts.testYChannel && C === 3;
  const planes = Array.from({ length: useY ? 1 : C }, () => new Float64Array(height * width));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = ((y + c0) * img.width + x + c0) * C;
      const o = y * width + x;
      if (useY) {
        planes[0][o] = 16 + 65.481 * src[s] + 128.553 * src[s + 1] + 24.966 * src[s + 2];
      } else {
        for (let c = 0; c < C; c++) planes[c][o] = 255 * src[s + c];
      }
    }
  }
  return { planes, height, width };
}

/**
 * Peak signal-to-noise ratio in dB (peak 255). Identical images give Infinity (BasicSR returns float('inf') too);
 * averages that include an Infinity are Infinity.
 */
export function psnr(a: ImageF32, b: ImageF32, opts: MetricOptions = {}): number {
  checkPair(a, b, 'psnr', opts.cropBorder ?? 0, 1);
  const pa = toPlanes(a, opts);
  const pb = toPlanes(b, opts);
  let sse = 0;
  let n = 0;
  for (let c = 0; c < pa.planes.length; c++) {
    const x = pa.planes[c];
    const y = pb.planes[c];
    for (let i = 0; i < x.length; i++) sse += (x[i] - y[i]) ** 2;
    n += x.length;
  }
  const mse = sse / n;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

const SSIM_RADIUS = 5;
const SSIM_WINDOW = (() => {
  const g = new Float64Array(2 * SSIM_RADIUS + 1);
  let s = 0;
  for (let i = 0; i < g.length; i++) s += g[i] = Math.exp(-((i - SSIM_RADIUS) ** 2) / (2 * 1.5 * 1.5));
  for (let i = 0; i < g.length; i++) g[i] /= s;
  return g;
})();

/** Mean SSIM of one plane pair (0..255 scale), separable Gaussian window, 'valid' region only. */
function ssimPlane(x: Float64Array, y: Float64Array, H: number, W: number): number {
  const K = SSIM_WINDOW.length;
  const w = SSIM_WINDOW;
  const vw = W - K + 1;
  const vh = H - K + 1;
  // Horizontal pass for the five moments: x, y, x^2, y^2, xy.
  const hx = new Float64Array(H * vw);
  const hy = new Float64Array(H * vw);
  const hxx = new Float64Array(H * vw);
  const hyy = new Float64Array(H * vw);
  const hxy = new Float64Array(H * vw);
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < vw; c++) {
      let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
      const base = r * W + c;
      for (let t = 0; t < K; t++) {
        const a = x[base + t];
        const b = y[base + t];
        const g = w[t];
        sx += g * a;
        sy += g * b;
        sxx += g * a * a;
        syy += g * b * b;
        sxy += g * a * b;
      }
      const o = r * vw + c;
      hx[o] = sx;
      hy[o] = sy;
      hxx[o] = sxx;
      hyy[o] = syy;
      hxy[o] = sxy;
    }
  }
  const C1 = (0.01 * 255) ** 2;
  const C2 = (0.03 * 255) ** 2;
  let total = 0;
  for (let r = 0; r < vh; r++) {
    for (let c = 0; c < vw; c++) {
      let mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
      for (let t = 0; t < K; t++) {
        const o = (r + t) * vw + c;
        const g = w[t];
        mx += g * hx[o];
        my += g * hy[o];
        mxx += g * hxx[o];
        myy += g * hyy[o];
        mxy += g * hxy[o];
      }
      const vx = mxx - mx * mx;
      const vy = myy - my * my;
      const cxy = mxy - mx * my;
      total += ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
    }
  }
  return total / (vh * vw);
}

/** Structural similarity (BasicSR conventions, see the top of this file); identical images give 1. */
export function ssim(a: ImageF32, b: ImageF32, opts: MetricOptions = {}): number {
  checkPair(a, b, 'ssim', opts.cropBorder ?? 0, SSIM_WINDOW.length);
  const pa = toPlanes(a, opts);
  const pb = toPlanes(b, opts);
  let sum = 0;
  for (let c = 0; c < pa.planes.length; c++) sum += ssimPlane(pa.planes[c], pb.planes[c], pa.height, pa.width);
  return sum / pa.planes.length;
}

export interface BatchMetrics {
  psnr: number[];
  ssim: number[];
  /** Mean over images of the per-image values (the paper convention); Infinity if any pair is identical. */
  meanPsnr: number;
  meanSsim: number;
}

/** PSNR and SSIM of restored[i] against targets[i] for every i, and their means over images. */
export function evaluateBatch(restored: ImageF32[], targets: ImageF32[], opts: MetricOptions = {}): BatchMetrics {
  if (restored.length !== targets.length || restored.length === 0) {
    throw new Error(`evaluateBatch: need equally many restored and target images (>0), got ${restored.length} and ${targets.length}`);
  }
  const p = restored.map((r, i) => psnr(r, targets[i], opts));
  const s = restored.map((r, i) => ssim(r, targets[i], opts));
  return { psnr: p, ssim: s, meanPsnr: mean(p), meanSsim: mean(s) };
}

/**
 * The metric conventions of a task, the one rule every trainer, study and report uses (BasicSR): super-resolution
 * (true SR 'sr-x<s>', pre-upsampled 'sr-up-x<s>', real-world 'real-sr-x<s>') is measured on the Y channel with a
 * border of the SR factor cropped; every other task on all channels, uncropped; outputs quantised to 8 bits.
 */
export function metricOptionsFor(task: TaskSpec): MetricOptions {
  if (task.kind !== 'sr' && task.kind !== 'real-sr') return { cropBorder: 0, testYChannel: false, quantize: true };
  // Pre-upsampled SR keeps the size (scale 1); its factor is in the degradation name.
  const factor = task.scale > 1 ? task.scale : srFactor(task.degradation ?? task.name);
  return { cropBorder: factor, testYChannel: true, quantize: true };
}
