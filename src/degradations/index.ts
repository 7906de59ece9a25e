/**
 * Degradation registry: parses names such as 'sr-x4', 'sr-up-x2', 'dn-25', 'dr-heavy', 'blur-defocus-r3', 'jpeg-q10' into
 * seeded, deterministic degradations. Every degradation maps a clean [0,1] image to its degraded input (lq) and,
 * through applyPair, also returns the matching target (gt; the modcropped HR image for 'sr') and what was sampled.
 */
import type { ImageF32 } from '../io/types';
import type { Rng } from '../util/rng';
import { defocusBlur, motionBlur } from './blur';
import { checkImage } from './common';
import { imresize, modcrop } from './imresize';
import { jpegRoundTrip } from './jpeg';
import type { Kernel2D } from './kernel';
import { addGaussianNoise } from './noise';
import { addRain } from './rain';

export type DegradationKind = 'sr' | 'dn' | 'dr' | 'blur' | 'jpeg' | 'none';

export interface DegradedPair {
  /** Degraded input. */
  lq: ImageF32;
  /** Matching clean target: the input itself, or its modcrop for 'sr'. */
  gt: ImageF32;
  /** Blur kernel when one was used. */
  kernel?: Kernel2D;
  /** Sampled / fixed parameters, JSON-serialisable. */
  params: Record<string, unknown>;
}

export interface Degradation {
  name: string;
  kind: DegradationKind;
  /** Spatial scale between gt and lq: the SR factor for 'sr', 1 otherwise. */
  scale: number;
  /** Degrades `img`; async for every kind so callers need one code path (only 'jpeg' really awaits). */
  apply(img: ImageF32, rng: Rng): Promise<ImageF32>;
  /** Like apply, also returning gt, the blur kernel and sampled parameters. */
  applyPair(img: ImageF32, rng: Rng): Promise<DegradedPair>;
  /** Synchronous form, present for every kind except 'jpeg' (sharp's codec is async). */
  applySync?: (img: ImageF32, rng: Rng) => ImageF32;
}

export interface DegradationOptions {
  /** sr: round lq to 8-bit levels, as if saved as PNG (default false). */
  quantize?: boolean;
  /** dn: clip the noisy image to [0,1] (default false). */
  clip?: boolean;
}

/** A family of names: `form` is shown in error messages; `make` gets the regex match. */
export interface DegradationFamily {
  form: string;
  pattern: RegExp;
  make(match: RegExpMatchArray, opts: DegradationOptions): Degradation;
}

/** Builds a Degradation from a synchronous pair function. */
function syncDegradation(name: string, kind: DegradationKind, scale: number, pair: (img: ImageF32, rng: Rng) => DegradedPair): Degradation {
  const applyPairSync = (img: ImageF32, rng: Rng) => {
    checkImage(img, name);
    return pair(img, rng);
  };
  return {
    name,
    kind,
    scale,
    applySync: (img, rng) => applyPairSync(img, rng).lq,
    apply: async (img, rng) => applyPairSync(img, rng).lq,
    applyPair: async (img, rng) => applyPairSync(img, rng),
  };
}

const families: DegradationFamily[] = [
  {
    form: 'none',
    pattern: /^none$/,
    make: () => syncDegradation('none', 'none', 1, (img) => ({ lq: { ...img, data: img.data.slice() }, gt: img, params: {} })),
  },
  {
    form: 'sr-x<2..8>',
    pattern: /^sr-x([2-8])$/,
    make: (m, opts) => {
      const factor = Number(m[1]);
      return syncDegradation(m[0], 'sr', factor, (img) => {
        const gt = modcrop(img, factor);
        return { lq: imresize(gt, 1 / factor, { quantize: opts.quantize }), gt, params: { factor } };
      });
    },
  },
  {
    // VDSR-style pre-upsampled SR: bicubic x1/s then xs back to the (modcropped) size, so networks that restore
    // same-size images (Restormer, MPRNet, refnet) can take part in SR experiments such as the pre-training study.
    form: 'sr-up-x<2..8>',
    pattern: /^sr-up-x([2-8])$/,
    make: (m) => {
      const factor = Number(m[1]);
      return syncDegradation(m[0], 'sr', 1, (img) => {
        const gt = modcrop(img, factor);
        return { lq: imresize(imresize(gt, 1 / factor), factor), gt, params: { factor, preUpsampled: true } };
      });
    },
  },
  {
    form: 'dn-<sigma on 0..255, e.g. 15, 25, 50>',
    pattern: /^dn-(\d+(?:\.\d+)?)$/,
    make: (m, opts) => {
      const sigma = Number(m[1]);
      if (!(sigma > 0)) throw new Error(`parseDegradation: '${m[0]}' needs sigma > 0`);
      return syncDegradation(m[0], 'dn', 1, (img, rng) => ({
        lq: addGaussianNoise(img, rng, sigma, { clip: opts.clip }),
        gt: img,
        params: { sigma },
      }));
    },
  },
  {
    form: 'dr-light | dr-heavy',
    pattern: /^dr-(light|heavy)$/,
    make: (m) =>
      syncDegradation(m[0], 'dr', 1, (img, rng) => {
        const r = addRain(img, rng, m[1] as 'light' | 'heavy');
        return { lq: r.image, gt: img, params: { preset: m[1], ...r.params } };
      }),
  },
  {
    form: 'blur-motion | blur-motion-k<odd size>',
    pattern: /^blur-motion(?:-k(\d+))?$/,
    make: (m) => {
      const size = m[1] === undefined ? undefined : Number(m[1]);
      if (size !== undefined && (size < 3 || size % 2 !== 1)) {
        throw new Error(`parseDegradation: '${m[0]}' needs an odd kernel size >= 3`);
      }
      return syncDegradation(m[0], 'blur', 1, (img, rng) => {
        const r = motionBlur(img, rng, { size });
        return { lq: r.image, gt: img, kernel: r.kernel, params: r.params };
      });
    },
  },
  {
    form: 'blur-defocus-r<radius>',
    pattern: /^blur-defocus-r(\d+(?:\.\d+)?)$/,
    make: (m) => {
      const radius = Number(m[1]);
      if (!(radius > 0)) throw new Error(`parseDegradation: '${m[0]}' needs radius > 0`);
      return syncDegradation(m[0], 'blur', 1, (img) => {
        const r = defocusBlur(img, radius);
        return { lq: r.image, gt: img, kernel: r.kernel, params: r.params };
      });
    },
  },
  {
    form: 'jpeg-q<1..100>',
    pattern: /^jpeg-q(\d+)$/,
    make: (m) => {
      const quality = Number(m[1]);
      if (quality < 1 || quality > 100) throw new Error(`parseDegradation: '${m[0]}' needs quality in 1..100`);
      const applyPair = async (img: ImageF32): Promise<DegradedPair> => ({
        lq: await jpegRoundTrip(img, quality),
        gt: img,
        params: { quality, chromaSubsampling: '4:2:0' },
      });
      return { name: m[0], kind: 'jpeg', scale: 1, applyPair, apply: async (img) => (await applyPair(img)).lq };
    },
  },
];

/** Adds a family of degradation names (checked before the built-in ones); a form that is taken is an error. */
export function registerDegradation(family: DegradationFamily): void {
  if (families.some((f) => f.form === family.form)) throw new Error(`registerDegradation: degradation form '${family.form}' is already registered`);
  families.unshift(family);
}

/** The SR factor a degradation name carries: 's' of 'sr-x<s>' and of pre-upsampled 'sr-up-x<s>', else 1. */
export function srFactor(name: string): number {
  const m = /^sr-(?:up-)?x(\d+)$/.exec(name);
  return m ? Number(m[1]) : 1;
}

/** The accepted name forms, for help texts. */
export function degradationForms(): string[] {
  return families.map((f) => f.form);
}

/** Parses a degradation name; throws a one-line error listing the valid forms on a bad name. */
export function parseDegradation(name: string, opts: DegradationOptions = {}): Degradation {
  for (const f of families) {
    const m = name.match(f.pattern);
    if (m) return f.make(m, opts);
  }
  throw new Error(`parseDegradation: unknown degradation '${name}'; valid forms: ${degradationForms().join(', ')}`);
}

export { addGaussianNoise } from './noise';
export { addRain, RAIN_PRESETS } from './rain';
export type { RainParams, RainLayerParams, RainResult } from './rain';
export { motionBlur, defocusBlur } from './blur';
export type { BlurResult, MotionBlurOptions } from './blur';
export { jpegRoundTrip } from './jpeg';
export { imresize, modcrop, bicubicDownsample, resizeContributions } from './imresize';
export type { Contributions, ImresizeOptions, ResizeTarget } from './imresize';
export { convolve2d, motionKernel, diskKernel, gaussianKernel, convolveKernels, kernelSum } from './kernel';
export type { Kernel2D, Boundary } from './kernel';
export { quantize8InPlace } from './common';
