/**
 * One minibatch of a layer-similarity study: the clean crops become each model's input (its task degradation,
 * seeded per image), one forward per model turns every selected activation into an n x n Gram, and nothing
 * else outlives the batch. `layerSimilarity` runs it in a loop; a data-parallel worker (parallel/) runs the
 * very same function on its own copy of the models, so both paths give the same bits per batch.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageF32 } from '../io/types';
import { centerCrop, convertChannels, imageToTensor } from '../io/image';
import type { RestorationModel, TaskSpec } from '../models/model';
import type { HookFn } from '../models/hooks';
import type { Degradation } from '../degradations';
import { Rng } from '../util/rng';
import { toFeatures, type FeatureOptions } from './features';
import { gramFromTensor, type Kernel } from './gram';

const WHERE = 'layerSimilarity';

export interface NamedImage {
  name: string;
  image: ImageF32;
}

/** One model of a study: what runs, on which task branch, with which interventions. */
export interface StudySide {
  model: RestorationModel;
  label: string;
  task: TaskSpec;
  degradation: Degradation | undefined;
  globs: string[];
  hooks: Record<string, HookFn | HookFn[]>;
}

export interface ForwardGrams {
  grams: Map<string, Float64Array>;
  /** Layer names in the order they first fired. */
  order: string[];
  forwardMs: number;
  gramMs: number;
}

/** How activations become Grams (the same for every batch and both models). */
export interface GramSettings {
  kernel: Kernel;
  threshold: number;
  /** Feature mode, 'pixels' positions per image and their seed (see features.ts). */
  features: Omit<FeatureOptions, 'batchIndex'>;
  /** Seeds each image's degradation noise. */
  seed: number;
}

export interface BatchGrams {
  a: ForwardGrams;
  /** The same object as `a` when both axes share one forward. */
  b: ForwardGrams;
  /** Spatial sizes of the observed activations ('pixels' mode refuses several). */
  spatial: string[];
  inputA: [number, number];
  inputB: [number, number];
  /** Degrading and stacking the inputs, ms. */
  imagesMs: number;
}

/**
 * One forward of `side.model` on `x` whose observer hooks turn each activation selected by `globs` into its Gram
 * right away. The user's intervention hooks run first, so the observers see their result.
 */
function forwardGrams(side: StudySide, x: tf.Tensor4D, globs: string[], gramOf: (t: tf.Tensor) => Float64Array, n: number): ForwardGrams {
  const grams = new Map<string, Float64Array>();
  const order: string[] = [];
  const last = new Map<string, tf.Tensor>();
  let gramMs = 0;
  const observe: HookFn = (t, { name }) => {
    // Overlapping globs pass the same tensor twice: compute its Gram once. A module that fires again with a new
    // tensor runs more than once per forward (MPRNet's per-patch stage-1/2 modules, a shared activation): its
    // Gram would describe one patch or call, not the image, so refuse it rather than silently keep the last.
    if (last.get(name) === t) return;
    if (last.has(name))
      throw new Error(
        `${WHERE}: layer '${name}' of ${side.label} runs more than once per forward (per patch or shared), so it has no single activation per image; choose other layers`,
      );
    last.set(name, t);
    if (t.shape[0] !== n)
      throw new Error(`${WHERE}: layer '${name}' of ${side.label} has shape [${t.shape.join(', ')}], not batch-first with ${n} images`);
    const t0 = performance.now();
    grams.set(name, gramOf(t));
    if (!order.includes(name)) order.push(name);
    gramMs += performance.now() - t0;
  };
  const hooks: Record<string, HookFn | HookFn[]> = {};
  for (const [k, f] of Object.entries(side.hooks)) hooks[k] = Array.isArray(f) ? [...f] : [f];
  for (const g of globs) hooks[g] = [...((hooks[g] as HookFn[] | undefined) ?? []), observe];
  const t0 = performance.now();
  const y = side.model.runWithHooks(x, hooks, side.task.name);
  y.dispose();
  const totalMs = performance.now() - t0;
  return { grams, order, forwardMs: totalMs - gramMs, gramMs };
}

/** Degrades each clean crop for one side (seeded per image) and stacks the model inputs. */
async function modelInputs(side: StudySide, crops: NamedImage[], firstIndex: number, seed: number): Promise<tf.Tensor4D> {
  const channels = side.model.inChannels as 1 | 3;
  const lqs: ImageF32[] = [];
  for (let i = 0; i < crops.length; i++) {
    const clean = convertChannels(crops[i].image, channels);
    const deg = side.degradation;
    lqs.push(deg ? (await deg.applyPair(clean, new Rng(`${seed}:degrade:${deg.name}:${firstIndex + i}`))).lq : clean);
  }
  const [h, w] = [lqs[0].height, lqs[0].width];
  const odd = lqs.findIndex((l) => l.height !== h || l.width !== w);
  if (odd >= 0)
    throw new Error(`${WHERE}: image '${crops[odd].name}' is ${crops[odd].image.height}x${crops[odd].image.width} but others are not; give a crop size (--size) so every image has one size`);
  return imageToTensor(lqs);
}

/** Centre-crops one clean image to `size` (as given when undefined). */
export function cropImage(item: NamedImage, size: [number, number] | undefined): NamedImage {
  if (!size) return item;
  const { height, width } = item.image;
  if (height < size[0] || width < size[1])
    throw new Error(`${WHERE}: image '${item.name}' is ${height}x${width}, smaller than the crop size ${size[0]}x${size[1]}`);
  return { name: item.name, image: centerCrop(item.image, size[0], size[1]) };
}

/**
 * The Grams of one minibatch of clean crops (images first..first+n-1 of the study, batch `batchIndex`) for both
 * sides; with `shared`, one forward of A serves both axes. `onForwardA` runs between the two forwards, when only
 * the models' own tensors are alive.
 */
export async function batchGrams(
  A: StudySide,
  B: StudySide,
  shared: boolean,
  crops: NamedImage[],
  first: number,
  batchIndex: number,
  s: GramSettings,
  onForwardA?: () => void,
): Promise<BatchGrams> {
  const n = crops.length;
  const fo: FeatureOptions = { ...s.features, batchIndex };
  // 'pixels' rows are positions of a given spatial size: collect the sizes to refuse mixed ones.
  const spatial = new Set<string>();
  const gramOf = (x: tf.Tensor): Float64Array => {
    if (fo.mode === 'pixels') spatial.add(x.shape.slice(1, -1).join('x'));
    const f = toFeatures(x, fo);
    try {
      return gramFromTensor(f, s.kernel, s.threshold);
    } finally {
      f.dispose();
    }
  };
  let tImages = performance.now();
  const xA = await modelInputs(A, crops, first, s.seed);
  let imagesMs = performance.now() - tImages;
  const inputA: [number, number] = [xA.shape[1], xA.shape[2]];
  // One model input alive at a time: B's is made after A's forward (and A's input freed).
  let a: ForwardGrams;
  try {
    a = forwardGrams(A, xA, shared ? [...new Set([...A.globs, ...B.globs])] : A.globs, gramOf, n);
  } finally {
    xA.dispose();
  }
  if (shared) return { a, b: a, spatial: [...spatial], inputA, inputB: inputA, imagesMs };
  onForwardA?.();
  tImages = performance.now();
  const xB = await modelInputs(B, crops, first, s.seed);
  imagesMs += performance.now() - tImages;
  const inputB: [number, number] = [xB.shape[1], xB.shape[2]];
  let b: ForwardGrams;
  try {
    b = forwardGrams(B, xB, B.globs, gramOf, n);
  } finally {
    xB.dispose();
  }
  return { a, b, spatial: [...spatial], inputA, inputB, imagesMs };
}
