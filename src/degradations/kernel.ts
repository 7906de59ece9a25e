/**
 * Blur kernels and 2-D convolution with mirrored boundaries. Hand-written (a few loops) because the degradations
 * must run on plain Float32Array images without a TF.js backend, and visiting only the non-zero taps makes thin
 * motion kernels cheap.
 */
import type { ImageF32 } from '../io/types';
import { checkImage, emptyLike } from './common';

/** A 2-D kernel, row-major, odd height and width, centred at ((height-1)/2, (width-1)/2). */
export interface Kernel2D {
  data: Float64Array;
  height: number;
  width: number;
}

/**
 * 'symmetric': the edge pixel is repeated (d c b a | a b c d), MATLAB imfilter 'symmetric', numpy 'symmetric'.
 * 'reflect': mirrored about the edge pixel (d c b | a b c d), OpenCV's default BORDER_REFLECT_101.
 */
export type Boundary = 'symmetric' | 'reflect';

export function kernelSum(k: Kernel2D): number {
  let s = 0;
  for (let i = 0; i < k.data.length; i++) s += k.data[i];
  return s;
}

export function normalizeKernel(k: Kernel2D): Kernel2D {
  const s = kernelSum(k);
  if (!(s > 0)) throw new Error('normalizeKernel: kernel sum must be positive');
  for (let i = 0; i < k.data.length; i++) k.data[i] /= s;
  return k;
}

function mirror(i: number, n: number, boundary: Boundary): number {
  if (n === 1) return 0;
  if (boundary === 'symmetric') {
    const period = 2 * n;
    const m = ((i % period) + period) % period;
    return m < n ? m : period - 1 - m;
  }
  const period = 2 * n - 2;
  const m = ((i % period) + period) % period;
  return m < n ? m : period - m;
}

/**
 * True convolution (kernel flipped): out(y,x) = sum_{i,j} k(i,j) * img(y - (i - cy), x - (j - cx)), with the
 * image extended by `boundary`, same output size. The image is padded once, so every non-zero tap is a
 * contiguous multiply-add over whole rows (zero taps are skipped: thin motion kernels are cheap).
 */
export function convolve2d(img: ImageF32, kernel: Kernel2D, boundary: Boundary = 'symmetric'): ImageF32 {
  checkImage(img, 'convolve2d');
  const { height: kh, width: kw } = kernel;
  if (kh % 2 !== 1 || kw % 2 !== 1 || kernel.data.length !== kh * kw) {
    throw new Error(`convolve2d: kernel must have odd height/width and matching data, got ${kh}x${kw}`);
  }
  const { height: H, width: W, channels: C } = img;
  const cy = (kh - 1) / 2;
  const cx = (kw - 1) / 2;
  // pad[py][px] = img(py - cy, px - cx), mirrored outside the image.
  const PW = W + 2 * cx;
  const pad = new Float32Array((H + 2 * cy) * PW * C);
  for (let py = 0; py < H + 2 * cy; py++) {
    const sy = mirror(py - cy, H, boundary);
    for (let px = 0; px < PW; px++) {
      const s = (sy * W + mirror(px - cx, W, boundary)) * C;
      const o = (py * PW + px) * C;
      for (let c = 0; c < C; c++) pad[o + c] = img.data[s + c];
    }
  }
  const rowLen = W * C;
  const acc = new Float64Array(H * rowLen);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      // Flipped tap (i, j) reads pad[y + (kh-1-i)][x + (kw-1-j)].
      const w = kernel.data[i * kw + j];
      if (w === 0) continue;
      const oy = kh - 1 - i;
      const ox = (kw - 1 - j) * C;
      for (let y = 0; y < H; y++) {
        const s = (y + oy) * PW * C + ox;
        const o = y * rowLen;
        for (let k = 0; k < rowLen; k++) acc[o + k] += w * pad[s + k];
      }
    }
  }
  const out = emptyLike(img);
  out.data.set(acc);
  return out;
}

/** Full 2-D convolution of two kernels (used to thicken rain streaks); result size ha+hb-1 x wa+wb-1. */
export function convolveKernels(a: Kernel2D, b: Kernel2D): Kernel2D {
  const height = a.height + b.height - 1;
  const width = a.width + b.width - 1;
  const data = new Float64Array(height * width);
  for (let i = 0; i < a.height; i++)
    for (let j = 0; j < a.width; j++) {
      const wa = a.data[i * a.width + j];
      if (wa === 0) continue;
      for (let p = 0; p < b.height; p++)
        for (let q = 0; q < b.width; q++) data[(i + p) * width + j + q] += wa * b.data[p * b.width + q];
    }
  return { data, height, width };
}

/**
 * Linear motion kernel: a segment of `length` pixels (end to end, through the centre) at `angleDeg`
 * (0 = horizontal, 90 = vertical, counter-clockwise with image rows pointing down), rasterised by splatting
 * 8 samples per pixel bilinearly, normalised to sum 1. `size` (odd) defaults to the smallest odd size holding it.
 */
export function motionKernel(length: number, angleDeg: number, size?: number): Kernel2D {
  if (!(length >= 1)) throw new Error(`motionKernel: length must be >= 1, got ${length}`);
  const half = (length - 1) / 2;
  const k = size ?? 2 * Math.ceil(half) + 1;
  if (k % 2 !== 1 || k < 1) throw new Error(`motionKernel: size must be odd, got ${k}`);
  const c = (k - 1) / 2;
  const data = new Float64Array(k * k);
  const th = (angleDeg * Math.PI) / 180;
  const snap = (v: number) => (Math.abs(v) < 1e-12 ? 0 : v); // cos(90 deg) = 6e-17 would leak into a neighbour
  const dx = snap(Math.cos(th));
  const dy = snap(-Math.sin(th));
  const n = Math.max(1, Math.ceil(length * 8));
  for (let s = 0; s < n; s++) {
    const t = n === 1 ? 0 : -half + (2 * half * s) / (n - 1);
    const x = c + t * dx;
    const y = c + t * dy;
    const x0 = Math.floor(x);
    const y0 = Math.floor(y);
    const fx = x - x0;
    const fy = y - y0;
    const put = (yy: number, xx: number, w: number) => {
      if (w > 0 && yy >= 0 && yy < k && xx >= 0 && xx < k) data[yy * k + xx] += w;
    };
    put(y0, x0, (1 - fy) * (1 - fx));
    put(y0, x0 + 1, (1 - fy) * fx);
    put(y0 + 1, x0, fy * (1 - fx));
    put(y0 + 1, x0 + 1, fy * fx);
  }
  return normalizeKernel({ data, height: k, width: k });
}

/**
 * Defocus (pillbox) kernel of radius r: each cell's weight is the fraction of its area inside the disk
 * (16x16 supersampling, like MATLAB fspecial('disk') which integrates the coverage), normalised to sum 1.
 */
export function diskKernel(radius: number): Kernel2D {
  if (!(radius > 0)) throw new Error(`diskKernel: radius must be > 0, got ${radius}`);
  const c = Math.ceil(radius - 0.5);
  const k = 2 * c + 1;
  const data = new Float64Array(k * k);
  const ss = 16;
  const r2 = radius * radius;
  for (let i = 0; i < k; i++)
    for (let j = 0; j < k; j++) {
      let inside = 0;
      for (let a = 0; a < ss; a++)
        for (let b = 0; b < ss; b++) {
          const y = i - c - 0.5 + (a + 0.5) / ss;
          const x = j - c - 0.5 + (b + 0.5) / ss;
          if (x * x + y * y <= r2) inside++;
        }
      data[i * k + j] = inside / (ss * ss);
    }
  return normalizeKernel({ data, height: k, width: k });
}

/** Normalised 2-D Gaussian, radius ceil(3 sigma). */
export function gaussianKernel(sigma: number): Kernel2D {
  if (!(sigma > 0)) throw new Error(`gaussianKernel: sigma must be > 0, got ${sigma}`);
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = 2 * r + 1;
  const data = new Float64Array(k * k);
  for (let i = 0; i < k; i++)
    for (let j = 0; j < k; j++) data[i * k + j] = Math.exp(-((i - r) ** 2 + (j - r) ** 2) / (2 * sigma * sigma));
  return normalizeKernel({ data, height: k, width: k });
}
