/**
 * Turn an activation tensor into an n x p feature matrix (rows = examples) for Gram/CKA computation.
 *
 * Input: batch first, channels last — NHWC conv maps [N, H, W, C], transformer tokens [N, L, C], or any
 * [N, ...spatial, C]; rank 2 [N, p] is already a feature matrix.
 *
 * Modes give different answers (cka.md), so the choice is explicit and `featureSettings` records it:
 * - 'flatten' (default): each image is one example, p = H*W*C. The NHWC element order differs from PyTorch's
 *   CHW flatten only by a fixed permutation of features, which linear and RBF CKA are invariant to.
 * - 'pool': each image is one example, p = C, the global average over all spatial positions.
 * - 'pixels': each spatial position of each image is an example, p = C. Per image at most `maxPixels` positions
 *   are kept (all of them when there are not more). The positions are a deterministic function of
 *   (seed, batchIndex, spatial shape) only: for every image i of batch `batchIndex`, positions are drawn without
 *   replacement from an Rng seeded with `${seed}:pixels:${batchIndex}:${H}x${W}`, image by image, and sorted.
 *   So every layer of the same spatial size — in either model, in any process — sees the same positions of the
 *   same images, and the rows of two such layers are the same examples. Layers of different spatial sizes get
 *   different examples and must not be compared with each other in this mode (their n usually differs too).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng';

export type FeatureMode = 'flatten' | 'pool' | 'pixels';
export const FEATURE_MODES: readonly FeatureMode[] = ['flatten', 'pool', 'pixels'];

export const DEFAULT_MAX_PIXELS = 64;

export interface FeatureOptions {
  /** Default 'flatten'. */
  mode?: FeatureMode;
  /** 'pixels': at most this many spatial positions per image (default 64). */
  maxPixels?: number;
  /** 'pixels': seed of the position draw (default 0). */
  seed?: number;
  /** 'pixels': index of the minibatch in the stream, so each batch draws its own positions (default 0). */
  batchIndex?: number;
}

/** The settings to record next to any CKA result computed from these features. */
export interface FeatureSettings {
  mode: FeatureMode;
  maxPixels?: number;
  seed?: number;
  rule: string;
}

const WHERE = 'features.ts';

function checkOptions(opts: FeatureOptions): Required<FeatureOptions> {
  const mode = opts.mode ?? 'flatten';
  if (!(FEATURE_MODES as readonly string[]).includes(mode)) {
    throw new Error(`${WHERE}: unknown feature mode '${mode as string}', expected one of ${FEATURE_MODES.join(', ')}`);
  }
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Number.isInteger(maxPixels) || maxPixels < 1) throw new Error(`${WHERE}: maxPixels must be an integer >= 1, got ${opts.maxPixels}`);
  const batchIndex = opts.batchIndex ?? 0;
  if (!Number.isInteger(batchIndex) || batchIndex < 0) throw new Error(`${WHERE}: batchIndex must be an integer >= 0, got ${opts.batchIndex}`);
  const seed = opts.seed ?? 0;
  if (!Number.isFinite(seed)) throw new Error(`${WHERE}: seed must be a finite number, got ${opts.seed}`);
  return { mode, maxPixels, seed, batchIndex };
}

export function featureSettings(opts: FeatureOptions = {}): FeatureSettings {
  const o = checkOptions(opts);
  switch (o.mode) {
    case 'flatten':
      return { mode: 'flatten', rule: 'one example per image, p = H*W*C (all activations of the image)' };
    case 'pool':
      return { mode: 'pool', rule: 'one example per image, p = C (global average over spatial positions)' };
    case 'pixels':
      return {
        mode: 'pixels',
        maxPixels: o.maxPixels,
        seed: o.seed,
        rule:
          'one example per spatial position, p = C; at most maxPixels positions per image, drawn per ' +
          '(seed, batch, spatial size) so layers of equal spatial size share positions',
      };
  }
}

/**
 * Flat spatial positions kept for each of `nImages` images in 'pixels' mode (sorted, at most maxPixels each).
 * A pure function of its arguments: that is what makes two models' layers line up.
 */
export function pixelPositions(
  spatialShape: readonly number[],
  nImages: number,
  opts: Pick<FeatureOptions, 'maxPixels' | 'seed' | 'batchIndex'> = {},
): Int32Array[] {
  const { maxPixels, seed, batchIndex } = checkOptions({ ...opts, mode: 'pixels' });
  const size = spatialShape.reduce((a, b) => a * b, 1);
  if (size <= maxPixels) return Array.from({ length: nImages }, () => Int32Array.from({ length: size }, (_, i) => i));
  const rng = new Rng(`${seed}:pixels:${batchIndex}:${spatialShape.join('x')}`);
  const pool = new Int32Array(size);
  return Array.from({ length: nImages }, () => {
    // Partial Fisher-Yates: the first maxPixels slots become a uniform sample without replacement.
    // (Hand-written because Rng.permutation shuffles all `size` entries.)
    for (let i = 0; i < size; i++) pool[i] = i;
    for (let i = 0; i < maxPixels; i++) {
      const j = rng.int(i, size);
      const t = pool[i];
      pool[i] = pool[j];
      pool[j] = t;
    }
    return pool.slice(0, maxPixels).sort();
  });
}

/**
 * [N, ...spatial, C] activations -> [n, p] float32 features for the given mode. Returns a new tensor (the
 * caller disposes it); `x` is not disposed; intermediates are freed by tf.tidy.
 */
export function toFeatures(x: tf.Tensor, opts: FeatureOptions = {}): tf.Tensor2D {
  const o = checkOptions(opts);
  if (x.rank < 2) throw new Error(`${WHERE}: expected a batch-first tensor of rank >= 2, got shape [${x.shape.join(', ')}]`);
  const [n, ...rest] = x.shape;
  const channels = rest[rest.length - 1];
  const spatial = rest.slice(0, -1);
  return tf.tidy(() => {
    const xf = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    switch (o.mode) {
      case 'flatten':
        return tf.reshape(xf, [n, -1]) as tf.Tensor2D;
      case 'pool':
        return (spatial.length === 0 ? tf.clone(xf) : tf.mean(xf, spatial.map((_, i) => i + 1))) as tf.Tensor2D;
      case 'pixels': {
        if (spatial.length === 0) {
          throw new Error(`${WHERE}: 'pixels' mode needs spatial dimensions ([N, H, W, C] or [N, L, C]), got shape [${x.shape.join(', ')}]`);
        }
        const size = spatial.reduce((a, b) => a * b, 1);
        const positions = pixelPositions(spatial, n, o);
        const rows = new Int32Array(positions.reduce((a, p) => a + p.length, 0));
        let r = 0;
        positions.forEach((pos, img) => pos.forEach((q) => (rows[r++] = img * size + q)));
        return tf.gather(tf.reshape(xf, [n * size, channels]), tf.tensor1d(rows, 'int32')) as tf.Tensor2D;
      }
    }
  });
}
