/**
 * Synthetic rain streaks ("DR" degradation), in the spirit of the Rain100L / Rain100H synthesis (sparse drops
 * smeared into slanted streaks and screened onto the image; Rain100H uses several streak directions) but NOT
 * identical to those datasets' generators: models trained here are not comparable with Rain100L/H numbers.
 *
 * Model, per image:
 *   1. A base direction theta0 ~ U(baseAngleRange), in degrees from vertical (positive leans right).
 *   2. For each streak layer:
 *      a. direction theta0 + U(-angleJitter, angleJitter), length L ~ U(lengthRange) pixels;
 *      b. streak kernel K = linear motion kernel of length L at that direction (kernel.ts), optionally
 *         thickened by a Gaussian of sigma `width` (0 = thin, ~1-2 px wide);
 *      c. drop seeds: a Bernoulli(density) process over the image grown by the kernel radius (so streaks may enter
 *         from outside the frame), sampled with geometric gaps; each seed gets a brightness v ~ U(intensityRange);
 *      d. the layer is the sum of v * K / max(K) placed at every seed (= sparse seed map convolved with K, scaled so
 *         a streak's core has brightness v), clipped to [0,1].
 *   3. Layers combine by screen blending, R = 1 - prod(1 - R_l), and R is screened onto every channel:
 *      out = 1 - (1 - img) * (1 - R). Screen blending only brightens and keeps [0,1] inputs in [0,1]; the result is
 *      clipped to [0,1] anyway.
 * light = one sparse layer of short thin streaks; heavy = three denser layers of longer, thicker, brighter streaks
 * with spread-out directions.
 */
import type { ImageF32 } from '../io/types';
import type { Rng } from '../util/rng';
import { checkImage, emptyLike } from './common';
import { type Kernel2D, convolveKernels, gaussianKernel, motionKernel } from './kernel';

export interface RainLayerParams {
  /** Probability that a pixel seeds a drop. */
  density: number;
  /** Streak length range in pixels. */
  lengthRange: [number, number];
  /** Per-layer direction offset range (+-degrees) around the image's base direction. */
  angleJitter: number;
  /** Gaussian sigma (pixels) thickening the streaks; 0 for thin streaks. */
  width: number;
  /** Streak core brightness range, in [0,1]. */
  intensityRange: [number, number];
}

export interface RainParams {
  /** Base direction range, degrees from vertical. */
  baseAngleRange: [number, number];
  layers: RainLayerParams[];
}

export const RAIN_PRESETS: Record<'light' | 'heavy', RainParams> = {
  light: {
    baseAngleRange: [-15, 15],
    layers: [{ density: 0.004, lengthRange: [10, 20], angleJitter: 2, width: 0, intensityRange: [0.5, 0.85] }],
  },
  heavy: {
    baseAngleRange: [-25, 25],
    layers: [0, 1, 2].map(() => ({
      density: 0.0035,
      lengthRange: [15, 35] as [number, number],
      angleJitter: 10,
      width: 0.5,
      intensityRange: [0.4, 0.85] as [number, number],
    })),
  },
};

export interface RainResult {
  image: ImageF32;
  /** The combined streak layer R (H x W, [0,1]) that was screened onto the image. */
  streaks: Float32Array;
  /** What was sampled: base angle and per-layer angle/length/seed count. */
  params: { baseAngle: number; layers: { angle: number; length: number; seeds: number }[] };
}

const uniformIn = (rng: Rng, [lo, hi]: [number, number]) => lo + (hi - lo) * rng.uniform();

function checkParams(p: RainParams): void {
  for (const l of p.layers) {
    if (!(l.density > 0 && l.density < 1)) throw new Error(`addRain: layer density must be in (0,1), got ${l.density}`);
    if (!(l.lengthRange[0] >= 1 && l.lengthRange[1] >= l.lengthRange[0])) {
      throw new Error(`addRain: lengthRange must satisfy 1 <= lo <= hi, got [${l.lengthRange}]`);
    }
    if (!(l.width >= 0)) throw new Error(`addRain: width must be >= 0, got ${l.width}`);
    const [lo, hi] = l.intensityRange;
    if (!(lo >= 0 && hi >= lo && hi <= 1)) throw new Error(`addRain: intensityRange must satisfy 0 <= lo <= hi <= 1, got [${lo}, ${hi}]`);
  }
}

/** Adds the sum of v * K / max(K) at Bernoulli(density) seeds to `layer` (H x W); returns the seed count. */
function splatStreaks(layer: Float64Array, H: number, W: number, K: Kernel2D, l: RainLayerParams, rng: Rng): number {
  let peak = 0;
  for (let i = 0; i < K.data.length; i++) peak = Math.max(peak, K.data[i]);
  const cy = (K.height - 1) / 2;
  const cx = (K.width - 1) / 2;
  const EH = H + 2 * cy;
  const EW = W + 2 * cx;
  const total = EH * EW;
  const logq = Math.log1p(-l.density);
  let seeds = 0;
  // Geometric gaps between successes of a Bernoulli process: one draw per seed instead of one per pixel.
  for (let pos = Math.floor(Math.log(1 - rng.uniform()) / logq); pos < total; pos += 1 + Math.floor(Math.log(1 - rng.uniform()) / logq)) {
    seeds++;
    const scale = uniformIn(rng, l.intensityRange) / peak;
    const y0 = Math.floor(pos / EW) - 2 * cy; // image row of the kernel's top-left
    const x0 = (pos % EW) - 2 * cx;
    for (let i = Math.max(0, -y0); i < K.height && y0 + i < H; i++) {
      const row = (y0 + i) * W;
      for (let j = Math.max(0, -x0); j < K.width && x0 + j < W; j++) {
        const w = K.data[i * K.width + j];
        if (w !== 0) layer[row + x0 + j] += scale * w;
      }
    }
  }
  return seeds;
}

/** Screens synthetic rain streaks onto `img` (see the model at the top of this file). */
export function addRain(img: ImageF32, rng: Rng, params: RainParams | 'light' | 'heavy'): RainResult {
  checkImage(img, 'addRain');
  const p = typeof params === 'string' ? RAIN_PRESETS[params] : params;
  checkParams(p);
  const { height: H, width: W, channels: C } = img;
  const baseAngle = uniformIn(rng, p.baseAngleRange);
  const keep = new Float64Array(H * W).fill(1); // prod(1 - R_l)
  const sampled: RainResult['params']['layers'] = [];
  for (const l of p.layers) {
    const angle = baseAngle + l.angleJitter * (2 * rng.uniform() - 1);
    const length = uniformIn(rng, l.lengthRange);
    let K = motionKernel(length, 90 - angle); // 90 = vertical; positive angle leans the top to the right
    if (l.width > 0) K = convolveKernels(K, gaussianKernel(l.width));
    const layer = new Float64Array(H * W);
    const seeds = splatStreaks(layer, H, W, K, l, rng);
    for (let i = 0; i < H * W; i++) keep[i] *= 1 - Math.min(1, layer[i]);
    sampled.push({ angle, length, seeds });
  }
  const streaks = new Float32Array(H * W);
  const out = emptyLike(img);
  for (let i = 0; i < H * W; i++) {
    const r = 1 - keep[i];
    streaks[i] = r;
    for (let c = 0; c < C; c++) {
      const v = 1 - (1 - img.data[i * C + c]) * keep[i];
      out.data[i * C + c] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return { image: out, streaks, params: { baseAngle, layers: sampled } };
}
