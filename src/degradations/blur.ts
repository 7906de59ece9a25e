/** Blur degradations: linear motion blur and defocus (disk) blur; the kernel is returned so it can be stored. */
import type { ImageF32 } from '../io/types';
import type { Rng } from '../util/rng';
import { type Boundary, type Kernel2D, convolve2d, diskKernel, motionKernel } from './kernel';

export interface BlurResult {
  image: ImageF32;
  kernel: Kernel2D;
  params: Record<string, number>;
}

export interface MotionBlurOptions {
  /** Use this kernel as is (no sampling). */
  kernel?: Kernel2D;
  /** Fixed odd kernel size; the trajectory then spans the whole kernel (length = size). */
  size?: number;
  /** Trajectory length range in pixels when `size` is not given (uniform). Default [5, 21]. */
  lengthRange?: [number, number];
  boundary?: Boundary;
}

export const DEFAULT_MOTION_LENGTH: [number, number] = [5, 21];

/**
 * Motion blur by a random linear trajectory: angle uniform in [0, 180) degrees, length uniform in `lengthRange`
 * (or equal to `size`). Draws exactly two uniforms from `rng` (none when a kernel is given).
 */
export function motionBlur(img: ImageF32, rng: Rng, opts: MotionBlurOptions = {}): BlurResult {
  const boundary = opts.boundary ?? 'symmetric';
  if (opts.kernel) return { image: convolve2d(img, opts.kernel, boundary), kernel: opts.kernel, params: {} };
  const angle = 180 * rng.uniform();
  const u = rng.uniform();
  let length: number;
  if (opts.size !== undefined) {
    if (!Number.isInteger(opts.size) || opts.size < 3 || opts.size % 2 !== 1) {
      throw new Error(`motionBlur: size must be an odd integer >= 3, got ${opts.size}`);
    }
    length = opts.size;
  } else {
    const [lo, hi] = opts.lengthRange ?? DEFAULT_MOTION_LENGTH;
    if (!(lo >= 1 && hi >= lo)) throw new Error(`motionBlur: lengthRange must satisfy 1 <= lo <= hi, got [${lo}, ${hi}]`);
    length = lo + (hi - lo) * u;
  }
  const kernel = motionKernel(length, angle, opts.size);
  return { image: convolve2d(img, kernel, boundary), kernel, params: { angle, length } };
}

/** Defocus blur with a disk kernel of `radius` pixels (deterministic). */
export function defocusBlur(img: ImageF32, radius: number, boundary: Boundary = 'symmetric'): BlurResult {
  const kernel = diskKernel(radius);
  return { image: convolve2d(img, kernel, boundary), kernel, params: { radius } };
}
