/**
 * MATLAB-compatible bicubic `imresize` (the degradation behind every "BI" super-resolution benchmark and
 * BasicSR's `imresize`). Hand-written because no npm image library reproduces MATLAB: sharp/libvips and canvas use
 * other kernels, other pixel-centre conventions and no kernel widening when shrinking.
 *
 * MATLAB's algorithm (imresize.m, method 'bicubic', antialiasing on), per dimension:
 *   - kernel: Keys cubic with a = -0.5, support [-2, 2]; kernel width 4.
 *   - when shrinking (scale < 1) the kernel is stretched by 1/scale: h(x) = scale * cubic(scale * x), width 4/scale.
 *   - output pixel x (1-based) maps to input coordinate u = x/scale + 0.5 * (1 - 1/scale);
 *     taps are left = floor(u - width/2) plus 0..P-1 with P = ceil(width) + 2; weights h(u - index), each row
 *     normalised to sum 1.
 *   - indices outside [1, in] are mirrored symmetrically (1, 2, ... in, in, in-1, ..., 1, 1, 2, ...).
 *   - columns of the weight matrix that are zero for every output pixel are dropped.
 *   - dimensions are processed in order of increasing scale (the most-shrunk first; rows first on ties).
 * Arithmetic is float64 throughout; the output is float32 and NOT rounded unless `quantize` is set
 * (MATLAB rounds only because its inputs are usually uint8).
 */
import type { ImageF32 } from '../io/types';
import { checkImage, checkPositiveInt, emptyLike, quantize8InPlace } from './common';

/** Precomputed 1-D resampling: output i takes sum_t weights[i*taps+t] * in[indices[i*taps+t]] (0-based). */
export interface Contributions {
  inLength: number;
  outLength: number;
  taps: number;
  weights: Float64Array;
  indices: Int32Array;
}

export type ResizeTarget = number | { height: number; width: number };

export interface ImresizeOptions {
  /** Widen the kernel when shrinking (MATLAB default true). */
  antialiasing?: boolean;
  /** Round the result to 8-bit levels (clip, round(x*255)/255) like saving a PNG does. Default false. */
  quantize?: boolean;
}

/** Keys cubic convolution kernel, a = -0.5 (MATLAB's `cubic`). */
function cubic(x: number): number {
  const ax = Math.abs(x);
  const ax2 = ax * ax;
  const ax3 = ax2 * ax;
  if (ax <= 1) return 1.5 * ax3 - 2.5 * ax2 + 1;
  if (ax <= 2) return -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2;
  return 0;
}

/** Maps a 1-based index onto [1, n] by symmetric mirroring (period 2n), returned 0-based. */
function mirrorIndex(index1: number, n: number): number {
  const period = 2 * n;
  const m = (((index1 - 1) % period) + period) % period; // 0..2n-1
  return m < n ? m : period - 1 - m;
}

const contributionsCache = new Map<string, Contributions>();
const CACHE_LIMIT = 64;

/** MATLAB's `contributions` for one dimension (cached: training loops resize the same shapes repeatedly). */
export function resizeContributions(inLength: number, outLength: number, scale: number, antialiasing = true): Contributions {
  const key = `${inLength}|${outLength}|${scale}|${antialiasing}`;
  const cached = contributionsCache.get(key);
  if (cached) return cached;

  const shrinkAA = scale < 1 && antialiasing;
  const kernelWidth = shrinkAA ? 4 / scale : 4;
  const P = Math.ceil(kernelWidth) + 2;
  const w = new Float64Array(outLength * P);
  const idx = new Int32Array(outLength * P);
  for (let i = 0; i < outLength; i++) {
    const u = (i + 1) / scale + 0.5 * (1 - 1 / scale);
    const left = Math.floor(u - kernelWidth / 2);
    let sum = 0;
    for (let t = 0; t < P; t++) {
      const d = u - (left + t);
      const v = shrinkAA ? scale * cubic(scale * d) : cubic(d);
      w[i * P + t] = v;
      idx[i * P + t] = left + t; // 1-based for now
      sum += v;
    }
    for (let t = 0; t < P; t++) w[i * P + t] /= sum;
  }
  // Drop tap columns that are zero for every output pixel.
  const keep: number[] = [];
  for (let t = 0; t < P; t++) {
    let any = false;
    for (let i = 0; i < outLength && !any; i++) any = w[i * P + t] !== 0;
    if (any) keep.push(t);
  }
  const taps = keep.length;
  const weights = new Float64Array(outLength * taps);
  const indices = new Int32Array(outLength * taps);
  for (let i = 0; i < outLength; i++) {
    for (let k = 0; k < taps; k++) {
      weights[i * taps + k] = w[i * P + keep[k]];
      indices[i * taps + k] = mirrorIndex(idx[i * P + keep[k]], inLength);
    }
  }
  const c: Contributions = { inLength, outLength, taps, weights, indices };
  if (contributionsCache.size >= CACHE_LIMIT) contributionsCache.clear();
  contributionsCache.set(key, c);
  return c;
}

/** Resamples rows (axis 0) of an H x W x C float64 array. */
function resizeRows(src: Float64Array, W: number, C: number, c: Contributions): Float64Array {
  const rowLen = W * C;
  const out = new Float64Array(c.outLength * rowLen);
  for (let i = 0; i < c.outLength; i++) {
    const o = i * rowLen;
    for (let t = 0; t < c.taps; t++) {
      const wt = c.weights[i * c.taps + t];
      const s = c.indices[i * c.taps + t] * rowLen;
      for (let k = 0; k < rowLen; k++) out[o + k] += wt * src[s + k];
    }
  }
  return out;
}

/** Resamples columns (axis 1) of an H x W x C float64 array. */
function resizeCols(src: Float64Array, H: number, W: number, C: number, c: Contributions): Float64Array {
  const outW = c.outLength;
  const out = new Float64Array(H * outW * C);
  for (let y = 0; y < H; y++) {
    const srow = y * W * C;
    const orow = y * outW * C;
    for (let j = 0; j < outW; j++) {
      const o = orow + j * C;
      for (let t = 0; t < c.taps; t++) {
        const wt = c.weights[j * c.taps + t];
        const s = srow + c.indices[j * c.taps + t] * C;
        for (let ch = 0; ch < C; ch++) out[o + ch] += wt * src[s + ch];
      }
    }
  }
  return out;
}

/**
 * Resizes like MATLAB `imresize(img, target, 'bicubic')`. `target` is a scale factor (output size
 * ceil(scale * size), e.g. 0.25 for x4 downsampling, 2 for x2 upsampling) or an explicit {height, width}
 * (per-dimension scale = out/in, as MATLAB does).
 */
export function imresize(img: ImageF32, target: ResizeTarget, opts: ImresizeOptions = {}): ImageF32 {
  checkImage(img, 'imresize');
  const antialiasing = opts.antialiasing ?? true;
  const { height: H, width: W, channels: C } = img;
  let outH: number, outW: number, scaleH: number, scaleW: number;
  if (typeof target === 'number') {
    if (!Number.isFinite(target) || target <= 0) throw new Error(`imresize: scale must be a positive number, got ${target}`);
    // The 1e-9 guard keeps e.g. 255 * (1/3) from rounding up to 86 through floating-point noise.
    outH = Math.max(1, Math.ceil(H * target - 1e-9));
    outW = Math.max(1, Math.ceil(W * target - 1e-9));
    scaleH = scaleW = target;
  } else {
    checkPositiveInt(target.height, 'target height', 'imresize');
    checkPositiveInt(target.width, 'target width', 'imresize');
    outH = target.height;
    outW = target.width;
    scaleH = outH / H;
    scaleW = outW / W;
  }
  let cur = Float64Array.from(img.data);
  let curH = H;
  let curW = W;
  const rowsFirst = scaleH <= scaleW; // MATLAB: smaller scale first, rows on ties
  for (const axis of rowsFirst ? [0, 1] : [1, 0]) {
    if (axis === 0) {
      cur = resizeRows(cur, curW, C, resizeContributions(H, outH, scaleH, antialiasing));
      curH = outH;
    } else {
      cur = resizeCols(cur, curH, curW, C, resizeContributions(W, outW, scaleW, antialiasing));
      curW = outW;
    }
  }
  const out = emptyLike(img, outH, outW);
  out.data.set(cur);
  return opts.quantize ? quantize8InPlace(out) : out;
}

/** Crops the bottom/right so height and width are multiples of `scale` (BasicSR/SR datasets' modcrop). */
export function modcrop(img: ImageF32, scale: number): ImageF32 {
  checkImage(img, 'modcrop');
  checkPositiveInt(scale, 'scale', 'modcrop');
  const H = img.height - (img.height % scale);
  const W = img.width - (img.width % scale);
  if (H === 0 || W === 0) throw new Error(`modcrop: image ${img.height}x${img.width} is smaller than scale ${scale}`);
  if (H === img.height && W === img.width) return { ...img, data: img.data.slice() };
  const out = emptyLike(img, H, W);
  const srcRow = img.width * img.channels;
  const dstRow = W * img.channels;
  for (let y = 0; y < H; y++) out.data.set(img.data.subarray(y * srcRow, y * srcRow + dstRow), y * dstRow);
  return out;
}

/** The SR "BI" degradation: modcrop the HR image to a multiple of `factor`, then bicubic-downsample by it. */
export function bicubicDownsample(hr: ImageF32, factor: number, opts: ImresizeOptions = {}): { lq: ImageF32; gt: ImageF32 } {
  checkPositiveInt(factor, 'factor', 'bicubicDownsample');
  const gt = modcrop(hr, factor);
  return { lq: imresize(gt, 1 / factor, opts), gt };
}
