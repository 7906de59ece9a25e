/**
 * Layer x layer similarity study between two restoration models (or one model and itself): minibatch CKA
 * (Nguyen et al. 2021) over every selected hook point of model A against every selected hook point of model B.
 *
 * Per minibatch of clean images:
 *   1. each image is centre-cropped to `size` (when given); the SAME clean crops go to both models;
 *   2. each model's task degradation (TaskSpec.degradation, e.g. 'sr-x2', 'dn-25'; clean input when the task has
 *      no synthetic one) makes that model's input, seeded per (seed, degradation, image index) so the noise does
 *      not depend on the batch size and two models with the same task see the same noisy images;
 *   3. one forward per model runs with observer hooks that turn each selected activation into an n x n Gram at
 *      once (toFeatures + gramFromTensor); the activation itself is freed by the forward's tf.tidy, so nothing
 *      but n x n float64 Grams outlives a layer;
 *   4. the Grams go into a MinibatchCKA accumulator (float64 sums, size layersA x layersB).
 * Memory therefore depends on the layers and the batch size, never on the number of images.
 *
 * With `workers` > 1 whole batches go to worker threads (parallel/similarity-pool.ts), each with a copy of the
 * models and one kernel thread, running the same per-batch code (similarity-batch.ts); their Grams enter the
 * accumulator in batch order, so the result equals an in-process one-thread run bit for bit.
 *
 * Same model against itself (modelB omitted or the same object, same task): one forward per batch, and a layer
 * selected on both axes uses the very same Gram object, so the diagonal is exactly 1 and the matrix symmetric.
 *
 * Layers are ordered by when they first fire in the forward (execution order), which is the order a network
 * diagram reads in (a SwinIR RSTB's output comes after its blocks even though it is registered before them).
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageF32 } from '../io/types';
import type { RestorationModel } from '../models/model';
import { compilePatterns, type HookFn } from '../models/hooks';
import { parseDegradation } from '../degradations';
import { lcm } from '../util/stats';
import { backendInfo } from '../engine/backend';
import { IRLENS_VERSION } from '../version';
import type { CkaFlag } from './cka';
import { featureSettings, FEATURE_MODES, type FeatureMode, type FeatureSettings } from './features';
import type { Kernel } from './gram';
import { batchGrams, cropImage, type BatchGrams, type GramSettings, type NamedImage, type StudySide } from './similarity-batch';
import { SimilarityPool } from './parallel/similarity-pool';
import { assertEstimator, minExamples, type Estimator } from './hsic';
import { MinibatchCKA, type CkaInterval } from './minibatch-cka';
import { modelWeights, runProvenance, type ModelWeights, type RunProvenance } from './provenance';
import type { WeightsProvenance } from '../weights/provenance';

export type { NamedImage } from './similarity-batch';

/** Clean images, in memory or streamed (e.g. from loadImages); bare images are named image-<index>. */
export type ImageSource = Iterable<ImageF32 | NamedImage> | AsyncIterable<ImageF32 | NamedImage>;

export interface SimilarityProgress {
  /** Batches done. */
  batches: number;
  /** Images done. */
  images: number;
  /** Total images when the source is an array, else undefined. */
  totalImages?: number;
  /** Model forwards done, counted in images (A and B separately; one per image when B shares A's forward). */
  forwardImages: number;
  /** Forwards per image: 1 when B shares A's forward, else 2. */
  forwardsPerImage: 1 | 2;
  /** The forward that just finished ('A' or 'B'). */
  side: 'A' | 'B';
  elapsedMs: number;
}

export interface LayerSimilarityOptions {
  modelA: RestorationModel;
  /** Omitted (or the same object with the same task): A against itself, one forward per batch. */
  modelB?: RestorationModel;
  /** Names for reports (default: preset or family). */
  labelA?: string;
  labelB?: string;
  images: ImageSource;
  /** Hook point globs (default model.defaultLayers(task)). */
  layersA?: string[];
  layersB?: string[];
  /** Task branch (default: the model's default task). */
  taskA?: string;
  taskB?: string;
  /** Default 'linear'. */
  kernel?: Kernel;
  /** RBF bandwidth factor (default 1). */
  threshold?: number;
  /** Default 'unbiased' (HSIC1). */
  estimator?: Estimator;
  /** Feature mode (default 'flatten'); see features.ts. */
  mode?: FeatureMode;
  /** 'pixels' mode: positions per image (default 64). */
  maxPixels?: number;
  /** Images per minibatch (default 10). */
  batch?: number;
  /** Centre-crop every clean image to [height, width]; default: use the images as given (all one size). */
  size?: [number, number];
  /** Bootstrap replicates for 95% CIs (default 0). */
  bootstrap?: number;
  permutation?: boolean;
  /** Seeds degradation noise, bootstrap, permutation and 'pixels' positions (default 0). */
  seed?: number;
  /** Interventions applied during each model's forward before the activations are observed (ablations, tests). */
  hooksA?: Record<string, HookFn | HookFn[]>;
  hooksB?: Record<string, HookFn | HookFn[]>;
  /** Which weights each model runs with (LoadedModel.provenance); stated in every report, random-init loudly. */
  weightsA?: WeightsProvenance;
  weightsB?: WeightsProvenance;
  /** The command line that ran the study (provenance.run.command). */
  command?: string;
  /** Called after every model forward (per batch: after A, then after B). */
  onProgress?: (p: SimilarityProgress) => void;
  /**
   * Data-parallel extraction: worker threads, each with a copy of the models and one native kernel thread,
   * computing whole batches (default 1: in-process, on the process's kernel threads). The Grams are merged in
   * batch order, so the result equals a one-thread in-process run bit for bit. Needs the wasm or cpu backend
   * and no intervention hooks (see parallel/similarity-pool.ts).
   */
  workers?: number;
}

export interface ModelSide {
  label: string;
  family: string;
  preset?: string;
  task: string;
  /** Degradation that made the model's input from the clean crops ('none' = clean input). */
  degradation: string;
  /** Input size seen by the model, [height, width] (after degradation). */
  inputSize: [number, number];
  channels: number;
  params: number;
  /** The hook point globs that selected the layers. */
  layerGlobs: string[];
  /** Which weights the model ran with (absent when the caller did not say: weightsA/weightsB). */
  weights?: ModelWeights;
}

export interface SimilaritySettings {
  kernel: Kernel;
  threshold: number;
  estimator: Estimator;
  features: FeatureSettings;
  batch: number;
  /** Size of every minibatch actually used. */
  batchSizes: number[];
  /** What happened to a last batch too small for the estimator. */
  lastBatch: string;
  size: [number, number] | null;
  cropRule: string;
  degradationRule: string;
  layerOrder: string;
  bootstrap: number;
  permutation: boolean;
  seed: number;
  /** True when B is A itself and shared A's forward. */
  sameModel: boolean;
}

export interface SimilarityTimings {
  /** Wall time of the whole study, ms. */
  total: number;
  /** Model forwards without the time spent turning activations into Grams. */
  forwardA: number;
  forwardB: number;
  /** toFeatures + gramFromTensor inside the hooks. */
  gram: number;
  /** Everything else: reading/cropping/degrading images, HSIC accumulation, bookkeeping. */
  other: number;
  /** Parts of `other`. */
  detail: { images: number; accumulate: number };
  /**
   * Worker threads that ran the forwards (absent in results of older versions: 1). With more than one, forwardA,
   * forwardB, gram and detail.images are summed over the workers, and other = total - (their sum) / workers.
   */
  workers?: number;
}

export interface SimilarityProvenance {
  backend: { name: string; description?: string };
  versions: Record<string, string>;
  seed: number;
  images: string[];
  timings: SimilarityTimings;
  createdAt: string;
  /** Command line, irlens version and git commit, compute path (absent in results of older versions). */
  run?: RunProvenance;
}

export interface SimilarityResult {
  /** Rows of `matrix` (model A). */
  layersA: string[];
  /** Columns of `matrix` (model B). */
  layersB: string[];
  /** matrix[i][j] = CKA(A.layersA[i], B.layersB[j]); null where flags says why (never NaN). */
  matrix: (number | null)[][];
  flags: (CkaFlag | null)[][];
  ci?: CkaInterval[][];
  ciRaw?: CkaInterval[][];
  permutation?: (number | null)[][];
  bootstrapMethod?: string;
  models: { a: ModelSide; b: ModelSide };
  examples: number;
  settings: SimilaritySettings;
  provenance: SimilarityProvenance;
  /** Things a reader must not miss (a random-init model); shown loudly in every report. */
  warnings?: string[];
}

const WHERE = 'layerSimilarity';
export const DEFAULT_BATCH = 10;

interface Side extends StudySide {
  weights?: WeightsProvenance;
}

function describeSide(s: Side, inputSize: [number, number]): ModelSide {
  return {
    label: s.label,
    family: s.model.family,
    preset: s.model.preset,
    task: s.task.name,
    degradation: s.degradation?.name ?? 'none',
    inputSize,
    channels: s.model.inChannels,
    params: s.model.numParameters(),
    layerGlobs: [...s.globs],
    ...(s.weights ? { weights: modelWeights(s.weights) } : {}),
  };
}

function makeSide(
  model: RestorationModel,
  label: string | undefined,
  taskName: string | undefined,
  globs: string[] | undefined,
  hooks: Record<string, HookFn | HookFn[]> | undefined,
): Side {
  const task = model.task(taskName);
  const layerGlobs = globs && globs.length > 0 ? globs : model.defaultLayers(task.name);
  compilePatterns(model, layerGlobs); // one-line error listing the closest names for a typo
  if (model.inChannels !== 1 && model.inChannels !== 3)
    throw new Error(`${WHERE}: model ${label ?? model.family} takes ${model.inChannels} input channels; only 1- or 3-channel image models can be studied on images`);
  return {
    model,
    label: label ?? model.preset ?? model.family,
    task,
    degradation: task.degradation ? parseDegradation(task.degradation) : undefined,
    globs: layerGlobs,
    hooks: hooks ?? {},
  };
}

/** The model input size for a clean crop of `size`: an SR degradation modcrops and divides by its scale. */
export function modelInputSize(size: [number, number], scale: number): [number, number] {
  return [Math.floor(size[0] / scale), Math.floor(size[1] / scale)];
}

/**
 * Throws (message starting with `where`) unless a clean crop of `size` gives `model` an input its forward accepts
 * without padding: a multiple of the padding rule of the task, and not empty.
 */
export function checkStudySize(model: RestorationModel, taskName: string | undefined, size: [number, number], where = 'size'): void {
  const task = model.task(taskName);
  const scale = task.degradation ? parseDegradation(task.degradation).scale : 1;
  const [h, w] = modelInputSize(size, scale);
  // (studySizeUnit(model, task) = multiple * scale is the side unit this check amounts to for square crops.)
  const { multiple } = model.paddingRule(task.name);
  const name = model.preset ?? model.family;
  if (h < 1 || w < 1 || h % multiple !== 0 || w % multiple !== 0) {
    const via = scale > 1 ? ` (${size[0]}x${size[1]} / scale ${scale})` : '';
    throw new Error(
      `${where}: ${size[0]}x${size[1]} gives ${name} [${task.name}] a ${h}x${w} input${via}; it needs multiples of ${multiple * scale} ` +
        `so that the input is a multiple of ${multiple} (its test-time padding unit)`,
    );
  }
}

/** Side length unit a square crop must be a multiple of for `model` [task] to take its input without padding. */
export function studySizeUnit(model: RestorationModel, taskName?: string): number {
  const task = model.task(taskName);
  const scale = task.degradation ? parseDegradation(task.degradation).scale : 1;
  return model.paddingRule(task.name).multiple * scale;
}

/**
 * The largest square crop <= target x target that every (model, task) takes without padding (the least common
 * multiple of their units, at least one unit). 128 for restormer-tiny vs swinir-tiny; 96 with edt-tiny (unit 48).
 */
export function defaultStudySize(sides: { model: RestorationModel; task?: string }[], target = 128): [number, number] {
  const unit = lcm(...sides.map((s) => studySizeUnit(s.model, s.task)));
  const side = Math.max(unit, Math.floor(target / unit) * unit);
  return [side, side];
}

function isNamed(x: ImageF32 | NamedImage): x is NamedImage {
  return (x as NamedImage).image !== undefined;
}

/**
 * Groups the stream into batches of `size`, holding one batch back so that a last batch smaller than `min` can
 * be merged into the one before it (no image is dropped). Keeps at most two batches of clean images.
 */
async function* planBatches(source: ImageSource, size: number, min: number): AsyncGenerator<{ items: NamedImage[]; merged: number }> {
  let held: NamedImage[] | undefined;
  let current: NamedImage[] = [];
  let index = 0;
  for await (const x of source as AsyncIterable<ImageF32 | NamedImage>) {
    current.push(isNamed(x) ? x : { name: `image-${index}`, image: x });
    index++;
    if (current.length === size) {
      if (held) yield { items: held, merged: 0 };
      held = current;
      current = [];
    }
  }
  if (current.length === 0 || current.length >= min) {
    if (held) yield { items: held, merged: 0 };
    if (current.length > 0) yield { items: current, merged: 0 };
  } else if (held) {
    yield { items: [...held, ...current], merged: current.length };
  } else {
    throw new Error(`${WHERE}: got ${current.length} image(s); the estimator needs at least ${min} images`);
  }
}

function validateOptions(o: LayerSimilarityOptions) {
  const kernel = o.kernel ?? 'linear';
  if (kernel !== 'linear' && kernel !== 'rbf') throw new Error(`${WHERE}: kernel must be 'linear' or 'rbf', got '${kernel as string}'`);
  const threshold = o.threshold ?? 1;
  if (!Number.isFinite(threshold) || threshold <= 0) throw new Error(`${WHERE}: threshold must be a finite number > 0, got ${o.threshold}`);
  const estimator = assertEstimator(o.estimator ?? 'unbiased', WHERE);
  const mode = o.mode ?? 'flatten';
  if (!(FEATURE_MODES as readonly string[]).includes(mode)) throw new Error(`${WHERE}: mode must be one of ${FEATURE_MODES.join(', ')}, got '${mode}'`);
  const batch = o.batch ?? DEFAULT_BATCH;
  const min = minExamples(estimator);
  if (!Number.isInteger(batch) || batch < min)
    throw new Error(`${WHERE}: batch must be an integer >= ${min} for the ${estimator} estimator, got ${o.batch}`);
  if (o.size && !(o.size.length === 2 && o.size.every((v) => Number.isInteger(v) && v >= 1)))
    throw new Error(`${WHERE}: size must be [height, width] of positive integers, got ${JSON.stringify(o.size)}`);
  const seed = o.seed ?? 0;
  if (!Number.isFinite(seed)) throw new Error(`${WHERE}: seed must be a finite number, got ${o.seed}`);
  const bootstrap = o.bootstrap ?? 0;
  if (!Number.isInteger(bootstrap) || bootstrap < 0) throw new Error(`${WHERE}: bootstrap must be a non-negative integer, got ${o.bootstrap}`);
  const workers = o.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`${WHERE}: workers must be a positive integer, got ${o.workers}`);
  return { kernel, threshold, estimator, mode, batch, min, seed, bootstrap, permutation: o.permutation ?? false, workers };
}

/** Runs the study; see the module comment. */
export async function layerSimilarity(opts: LayerSimilarityOptions): Promise<SimilarityResult> {
  const tStart = performance.now();
  const v = validateOptions(opts);
  const A = makeSide(opts.modelA, opts.labelA, opts.taskA, opts.layersA, opts.hooksA);
  const sameObject = opts.modelB === undefined || opts.modelB === opts.modelA;
  const B = sameObject
    ? makeSide(opts.modelA, opts.labelB ?? A.label, opts.taskB ?? opts.taskA, opts.layersB ?? opts.layersA, opts.hooksB ?? opts.hooksA)
    : makeSide(opts.modelB!, opts.labelB, opts.taskB, opts.layersB, opts.hooksB);
  // One forward serves both axes only when it is literally the same computation.
  const shared = sameObject && A.task.name === B.task.name && (opts.hooksB === undefined || opts.hooksB === opts.hooksA);
  A.weights = opts.weightsA;
  B.weights = sameObject ? opts.weightsB ?? opts.weightsA : opts.weightsB;
  if (opts.size) {
    checkStudySize(A.model, A.task.name, opts.size);
    checkStudySize(B.model, B.task.name, opts.size);
  }
  const matchA = compilePatterns(A.model, A.globs);
  const matchB = compilePatterns(B.model, B.globs);
  const featureOpts = { mode: v.mode, maxPixels: opts.maxPixels, seed: v.seed };
  const features = featureSettings(featureOpts);

  let acc: MinibatchCKA | undefined;
  let layersA: string[] = [];
  let layersB: string[] = [];
  const names: string[] = [];
  const batchSizes: number[] = [];
  let merged = 0;
  let inputA: [number, number] = [0, 0];
  let inputB: [number, number] = [0, 0];
  const t = { forwardA: 0, forwardB: 0, gram: 0, images: 0, accumulate: 0 };
  const totalImages = Array.isArray(opts.images) ? opts.images.length : undefined;
  const forwardsPerImage = shared ? 1 : 2;
  const progress = (side: 'A' | 'B', batches: number, images: number, forwardImages: number) =>
    opts.onProgress?.({ batches, images, totalImages, forwardImages, forwardsPerImage, side, elapsedMs: performance.now() - tStart });
  const gramSettings: GramSettings = { kernel: v.kernel, threshold: v.threshold, features: featureOpts, seed: v.seed };

  /** Adds one batch's Grams to the accumulator (in batch order), choosing the layers on the first batch. */
  const consume = (batchIndex: number, n: number, r: BatchGrams) => {
    const { a: fa, b: fb } = r;
    inputA = r.inputA;
    inputB = r.inputB;
    t.images += r.imagesMs;
    t.forwardA += fa.forwardMs;
    t.forwardB += shared ? 0 : fb.forwardMs;
    t.gram += fa.gramMs + (shared ? 0 : fb.gramMs);
    const tAcc = performance.now();
    if (!acc) {
      const selA = fa.order.filter((name) => matchA.some((mt) => mt(name)));
      const selB = fb.order.filter((name) => matchB.some((mt) => mt(name)));
      if (selA.length === 0) throw new Error(`${WHERE}: no layer of ${A.label} matching ${A.globs.join(', ')} ran in the [${A.task.name}] forward`);
      if (selB.length === 0) throw new Error(`${WHERE}: no layer of ${B.label} matching ${B.globs.join(', ')} ran in the [${B.task.name}] forward`);
      if (v.mode === 'pixels' && r.spatial.length > 1)
        throw new Error(
          `${WHERE}: mode 'pixels' compares spatial positions, but the selected layers have several spatial sizes (${r.spatial.join(', ')}); select layers of one size or use mode 'flatten' or 'pool'`,
        );
      layersA = selA;
      layersB = selB;
      acc = new MinibatchCKA(layersA, layersB, { estimator: v.estimator, bootstrap: v.bootstrap, permutation: v.permutation, seed: v.seed });
    }
    const pick = (f: typeof fa, layers: string[], side: Side) =>
      layers.map((name) => {
        const g = f.grams.get(name);
        if (!g) throw new Error(`${WHERE}: layer '${name}' of ${side.label} did not run in batch ${batchIndex + 1}`);
        return g;
      });
    acc.update(pick(fa, layersA, A), pick(fb, layersB, B), v.mode === 'pixels' ? Math.sqrt(fa.grams.get(layersA[0])!.length) : n);
    t.accumulate += performance.now() - tAcc;
  };

  // Batches run in-process one after another, or on the workers with up to two batches queued per worker;
  // either way they are consumed in batch order, so the accumulator sees the same sums in the same order.
  // More workers than batches would only copy the models (an array source's batch count is known up front).
  const workers = Array.isArray(opts.images) ? Math.max(1, Math.min(v.workers, Math.floor(opts.images.length / v.batch))) : v.workers;
  const pool = workers > 1 ? await SimilarityPool.start(workers, A, B, shared, gramSettings) : undefined;
  const depth = pool ? 2 * pool.size : 1;
  const inFlight: { batchIndex: number; first: number; n: number; result: Promise<BatchGrams> }[] = [];
  const finishOldest = async () => {
    const job = inFlight.shift()!;
    const r = await job.result;
    if (pool && !shared) progress('A', job.batchIndex, job.first, forwardsPerImage * job.first + job.n);
    consume(job.batchIndex, job.n, r);
    batchSizes.push(job.n);
    progress(shared ? 'A' : 'B', job.batchIndex + 1, job.first + job.n, forwardsPerImage * (job.first + job.n));
  };
  try {
    let batchIndex = 0;
    const batches = planBatches(opts.images, v.batch, v.min);
    for (let tWait = performance.now(), next = await batches.next(); !next.done; tWait = performance.now(), next = await batches.next()) {
      t.images += performance.now() - tWait;
      const { items, merged: m } = next.value;
      merged += m;
      const n = items.length;
      const crops = items.map((it) => cropImage(it, opts.size));
      const first = names.length;
      names.push(...items.map((it) => it.name));
      const bi = batchIndex;
      const result = pool
        ? pool.run(bi, first, crops)
        : batchGrams(A, B, shared, crops, first, bi, gramSettings, () => progress('A', bi, first, forwardsPerImage * first + n));
      result.catch(() => undefined); // awaited in order below; a failure is reported there, not as unhandled
      inFlight.push({ batchIndex: bi, first, n, result });
      if (inFlight.length >= depth) await finishOldest();
      batchIndex++;
    }
    while (inFlight.length > 0) await finishOldest();
  } finally {
    await pool?.close();
  }
  if (!acc) throw new Error(`${WHERE}: no images`);

  const r = acc.result();
  const total = performance.now() - tStart;
  // With workers the forward and Gram times are summed over them (thread time), so divide by the workers for
  // the share of the wall time they stand for.
  const other = Math.max(0, total - (t.forwardA + t.forwardB + t.gram) / workers);
  const backend = backendInfo();
  const size = opts.size ? ([...opts.size] as [number, number]) : null;
  const models = { a: describeSide(A, inputA), b: describeSide(B, inputB) };
  const warnings = [...new Set([models.a, models.b].flatMap((m) => (m.weights?.warning ? [`${m.label}: ${m.weights.warning}`] : [])))];
  return {
    layersA: r.layersA,
    layersB: r.layersB,
    matrix: r.matrix,
    flags: r.flags,
    ...(r.ci ? { ci: r.ci, ciRaw: r.ciRaw, bootstrapMethod: r.bootstrap?.method } : {}),
    ...(r.permutation ? { permutation: r.permutation } : {}),
    models,
    ...(warnings.length ? { warnings } : {}),
    examples: r.examples,
    settings: {
      kernel: v.kernel,
      threshold: v.threshold,
      estimator: v.estimator,
      features,
      batch: v.batch,
      batchSizes,
      lastBatch:
        merged > 0
          ? `the last ${merged} image(s) were fewer than the ${v.min} the ${v.estimator} estimator needs per batch and were merged into the batch before`
          : 'no short last batch (nothing merged or dropped)',
      size,
      cropRule: size
        ? `each clean image is centre-cropped to ${size[0]}x${size[1]} (offset floor of half the margin); both models get the same crops`
        : 'images used as given (all one size); both models get the same images',
      degradationRule:
        "each model's input is its task's synthetic degradation of the clean crop (an SR task modcrops to its scale, then " +
        "bicubic-downsamples; a task without one gets the clean crop), noise seeded per (seed, degradation, image index)",
      layerOrder: 'execution order (first time each hook point fires in the forward)',
      bootstrap: v.bootstrap,
      permutation: v.permutation,
      seed: v.seed,
      sameModel: shared,
    },
    provenance: {
      backend: { name: backend?.name ?? tf.getBackend(), description: backend?.description },
      versions: { irlens: IRLENS_VERSION, node: process.version, ...tfVersions() },
      seed: v.seed,
      images: names,
      timings: { total, forwardA: t.forwardA, forwardB: t.forwardB, gram: t.gram, other, detail: { images: t.images, accumulate: t.accumulate }, workers },
      createdAt: new Date().toISOString(),
      run: runProvenance(opts.command ?? null),
    },
  };
}

function tfVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(tf.version)) out[k] = String(val);
  return out;
}

export interface BestMatch {
  layerA: string;
  /** Best-matching layer of B (highest CKA), or null when every cell of the row is undefined. */
  layerB: string | null;
  value: number | null;
  /** CKA with the layer of B of the same name, when B has one (same architecture). */
  sameName?: number | null;
}

/** For each layer of A, the layer of B with the highest CKA (and the same-name layer's CKA when there is one). */
export function bestMatches(r: Pick<SimilarityResult, 'layersA' | 'layersB' | 'matrix'>): BestMatch[] {
  return r.layersA.map((layerA, i) => {
    let best: number | null = null;
    let at = -1;
    r.matrix[i].forEach((v, j) => {
      if (v === null || (best !== null && v <= best)) return;
      best = v;
      at = j;
    });
    const same = r.layersB.indexOf(layerA);
    return {
      layerA,
      layerB: at >= 0 ? r.layersB[at] : null,
      value: best,
      ...(same >= 0 ? { sameName: r.matrix[i][same] } : {}),
    };
  });
}
