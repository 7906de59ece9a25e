/** Additive white Gaussian noise (the "DN" degradation of denoising benchmarks). */
import type { ImageF32 } from '../io/types';
import type { Rng } from '../util/rng';
import { checkImage, clip01InPlace, emptyLike } from './common';

export interface GaussianNoiseOptions {
  /** Clip the result to [0,1] (default false: benchmarks add unclipped noise to float images). */
  clip?: boolean;
}

/**
 * Adds N(0, (sigma/255)^2) independently to every pixel and channel, i.e. sigma is on the [0,255] scale
 * (dn-25 = sigma 25). Draws one rng.normal() per value, in HWC order.
 */
export function addGaussianNoise(img: ImageF32, rng: Rng, sigma: number, opts: GaussianNoiseOptions = {}): ImageF32 {
  checkImage(img, 'addGaussianNoise');
  if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new Error(`addGaussianNoise: sigma must be >= 0, got ${sigma}`);
  const s = sigma / 255;
  const out = emptyLike(img);
  const src = img.data;
  const dst = out.data;
  for (let i = 0; i < src.length; i++) dst[i] = src[i] + s * rng.normal();
  return opts.clip ? clip01InPlace(out) : out;
}
