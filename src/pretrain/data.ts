/**
 * Training data: paired (lq, gt) patches as NHWC batches, deterministic from seeded Rngs; the sampler's state
 * (three counters) is checkpointed, so a resumed run draws exactly the batches an uninterrupted run would.
 *
 * Two sources:
 *   synthetic  clean images (the built-in set, or a folder) degraded on the fly by the task's degradation
 *              (src/degradations). A patch is degraded from a crop grown by a margin on each side (then
 *              the margin is cut away), so blur/resampling kernels see real neighbours as they would on the whole
 *              image, at the cost of a crop rather than a whole image per sample.
 *   paired     two folders of degraded inputs and targets (Rain100L rain/norain, GoPro blur/sharp, SIDD noisy/gt,
 *              DIV2K LR/HR), matched by position in the byte-sorted relative-path listings (names may differ:
 *              Rain100L's rain-001.png pairs with norain-001.png); both folders must hold the same number of images.
 *
 * Held-out evaluation images are the last `evalCount` of the sorted listing (the built-in set: retina, rocket);
 * they are never sampled for training; explicit file lists (fileListSource, the pre-training study's pools) name
 * the held-out images instead. Synthetic evaluation inputs are degraded once with an Rng seeded by
 * (seed, task, image name), so every evaluation of a run (and of a resumed run) sees the same inputs.
 *
 * Patch sizes are in GT pixels; for SR the LQ patch is patch/scale at the aligned position. Augmentation is
 * BasicSR's `augment`: horizontal flip, vertical flip, transpose (rot90 with the flips), each with probability
 * 1/2, applied identically to lq and gt. Images are decoded lazily through an LRU cache of bounded size.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageF32 } from '../io/types';
import { centerCrop, cropImage, imageToTensor, readImage, type Channels } from '../io/image';
import { listImages } from '../io/folder';
import { loadBuiltinImages } from '../io/builtin';
import type { TaskSpec } from '../models/model';
import { Rng } from '../util/rng';
import { parseDegradation, type Degradation } from '../degradations';

export interface ImagePair {
  lq: ImageF32;
  gt: ImageF32;
}

export interface EvalPair extends ImagePair {
  name: string;
}

export interface PairSource {
  /** One line for logs: where the images come from and how many. */
  readonly description: string;
  /** Number of training items (images or pairs). */
  readonly trainSize: number;
  /** Names of the held-out evaluation items. */
  readonly evalNames: readonly string[];
  /** A training patch pair of item `index` for `task` (patch in GT pixels), drawn from `rng`. */
  samplePatch(index: number, task: TaskSpec, patch: number, rng: Rng): Promise<ImagePair>;
  /** Held-out evaluation pairs for `task`, deterministic (cached after the first call). */
  evalPairs(task: TaskSpec): Promise<EvalPair[]>;
  /** Throws a one-line error when `task` cannot be served (no degradation for synthetic data, ...). */
  checkTask(task: TaskSpec): void;
  /** Smallest training image side in GT pixels, when known without decoding (validates patch sizes early). */
  readonly minSide?: number;
}

// ------------------------------------------------------------------------------------------ image cache

/** Decoded images kept by key up to `maxBytes` (least recently used evicted first). */
export class ImageCache {
  private readonly entries = new Map<string, ImageF32>();
  private bytes = 0;
  constructor(readonly maxBytes = 512 * 2 ** 20) {}

  async get(key: string, load: () => Promise<ImageF32>): Promise<ImageF32> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const img = await load();
    const size = img.data.byteLength;
    while (this.entries.size > 0 && this.bytes + size > this.maxBytes) {
      const [oldest, old] = this.entries.entries().next().value as [string, ImageF32];
      this.entries.delete(oldest);
      this.bytes -= old.data.byteLength;
    }
    if (size <= this.maxBytes) {
      this.entries.set(key, img);
      this.bytes += size;
    }
    return img;
  }

  get size(): number {
    return this.entries.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }
}

// ------------------------------------------------------------------------------------------ augmentation

/** BasicSR augment on one image: hflip, then vflip, then transpose (H <-> W). */
export function flipRotate(img: ImageF32, hflip: boolean, vflip: boolean, transpose: boolean): ImageF32 {
  if (!hflip && !vflip && !transpose) return img;
  const { height: H, width: W, channels: C, data } = img;
  const oh = transpose ? W : H;
  const ow = transpose ? H : W;
  const out = new Float32Array(data.length);
  for (let y = 0; y < H; y++) {
    const sy = vflip ? H - 1 - y : y;
    for (let x = 0; x < W; x++) {
      const sx = hflip ? W - 1 - x : x;
      const s = (sy * W + sx) * C;
      const d = transpose ? (x * ow + y) * C : (y * ow + x) * C;
      for (let c = 0; c < C; c++) out[d + c] = data[s + c];
    }
  }
  return { data: out, height: oh, width: ow, channels: C };
}

/** Draws BasicSR's three coin flips from `rng` and applies them to both images. */
export function augmentPair(pair: ImagePair, rng: Rng): ImagePair {
  const h = rng.uniform() < 0.5;
  const v = rng.uniform() < 0.5;
  const t = rng.uniform() < 0.5;
  return { lq: flipRotate(pair.lq, h, v, t), gt: flipRotate(pair.gt, h, v, t) };
}

// ----------------------------------------------------------------------------------------------- helpers

export function defaultEvalCount(n: number): number {
  return Math.min(10, Math.max(1, Math.round(n * 0.2)));
}

function splitCount(n: number, evalCount: number | undefined, what: string): number {
  const k = evalCount ?? defaultEvalCount(n);
  if (!Number.isInteger(k) || k < 0) throw new Error(`--eval-count: expected a non-negative integer, got ${k}`);
  if (n - k < 1) throw new Error(`${what}: ${n} image(s) leave none for training after holding out ${k} for evaluation (--eval-count)`);
  return k;
}

function checkPatch(task: TaskSpec, patch: number): void {
  if (!Number.isInteger(patch) || patch < 1) throw new Error(`--patch: expected a positive integer, got ${patch}`);
  if (patch % task.scale !== 0) throw new Error(`--patch ${patch} is not a multiple of the scale ${task.scale} of task '${task.name}'`);
}

function tooSmall(name: string, img: ImageF32, need: number): Error {
  return new Error(`image '${name}' is ${img.height}x${img.width}, smaller than the ${need}x${need} training patch (--patch)`);
}

/** Centre crop to at most `size` (0 = whole image), then down to a multiple of `scale` (top-left, like modcrop). */
function evalCrop(img: ImageF32, size: number, scale: number): ImageF32 {
  let out = img;
  if (size > 0 && (img.height > size || img.width > size)) out = centerCrop(img, Math.min(size, img.height), Math.min(size, img.width));
  const h = out.height - (out.height % scale);
  const w = out.width - (out.width % scale);
  return h === out.height && w === out.width ? out : cropImage(out, 0, 0, h, w);
}

// -------------------------------------------------------------------------------------- synthetic source

export interface CleanImage {
  name: string;
  load(): Promise<ImageF32>;
}

export interface SyntheticOptions {
  /** Held-out images (the last ones by name); default defaultEvalCount(n). Not with heldOut. */
  evalCount?: number;
  /** Explicit held-out images: then every image of `images` trains and these are evaluated (no name split). */
  heldOut?: CleanImage[];
  /** Seed of the evaluation degradations. */
  seed?: number;
  /** Centre-crop evaluation images to at most this size (0 = whole images). */
  evalSize?: number;
  /** Context kept around a patch while degrading it, in GT pixels (rounded up to a multiple of the scale). */
  margin?: number;
  cache?: ImageCache;
  /** Known image sizes (built-in images), for early patch checks. */
  minSide?: number;
}

export class SyntheticSource implements PairSource {
  readonly description: string;
  readonly trainSize: number;
  readonly evalNames: readonly string[];
  readonly minSide?: number;
  private readonly train: CleanImage[];
  private readonly held: CleanImage[];
  private readonly degradations = new Map<string, Degradation>();
  private readonly evalCache = new Map<string, EvalPair[]>();
  private readonly cache: ImageCache;

  constructor(
    images: CleanImage[],
    label: string,
    private readonly opts: SyntheticOptions = {},
  ) {
    const byName = (xs: CleanImage[]) => [...xs].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    const sorted = byName(images);
    if (opts.heldOut) {
      if (opts.evalCount !== undefined) throw new Error(`${label}: give held-out images or --eval-count, not both`);
      if (sorted.length === 0) throw new Error(`${label}: no training images`);
      if (opts.heldOut.length === 0) throw new Error(`${label}: no held-out images`);
      const train = new Set(sorted.map((i) => i.name));
      const both = opts.heldOut.find((i) => train.has(i.name));
      if (both) throw new Error(`${label}: image '${both.name}' is both a training and a held-out image`);
      this.train = sorted;
      this.held = byName(opts.heldOut);
    } else {
      const k = splitCount(sorted.length, opts.evalCount, label);
      this.train = sorted.slice(0, sorted.length - k);
      this.held = sorted.slice(sorted.length - k);
    }
    this.trainSize = this.train.length;
    this.evalNames = this.held.map((i) => i.name);
    this.cache = opts.cache ?? new ImageCache();
    this.minSide = opts.minSide;
    this.description = `${label}: ${this.train.length} clean training images, ${this.held.length} held out (${this.evalNames.join(', ')}), degraded on the fly`;
  }

  checkTask(task: TaskSpec): void {
    this.degradation(task);
  }

  private degradation(task: TaskSpec): Degradation {
    let d = this.degradations.get(task.name);
    if (!d) {
      if (!task.degradation)
        throw new Error(`task '${task.name}' has no synthetic degradation; train it on paired folders (--lq-dir/--gt-dir) or pick a degradation name (sr-x2, dn-25, dr-light, ...)`);
      d = parseDegradation(task.degradation);
      this.degradations.set(task.name, d);
    }
    return d;
  }

  private image(item: CleanImage): Promise<ImageF32> {
    return this.cache.get(item.name, () => item.load());
  }

  async samplePatch(index: number, task: TaskSpec, patch: number, rng: Rng): Promise<ImagePair> {
    checkPatch(task, patch);
    const item = this.train[index];
    const img = await this.image(item);
    const s = task.scale;
    const H = img.height - (img.height % s);
    const W = img.width - (img.width % s);
    if (H < patch || W < patch) throw tooSmall(item.name, img, patch);
    const margin = Math.ceil((this.opts.margin ?? 16) / s) * s;
    // Aligned top-left corner of the GT patch, then the context window around it (clamped to the image).
    const y = s * rng.int(0, (H - patch) / s + 1);
    const x = s * rng.int(0, (W - patch) / s + 1);
    const y0 = Math.max(0, y - margin);
    const x0 = Math.max(0, x - margin);
    const y1 = Math.min(H, y + patch + margin);
    const x1 = Math.min(W, x + patch + margin);
    const region = cropImage(img, y0, x0, y1 - y0, x1 - x0);
    const { lq, gt } = await this.degradation(task).applyPair(region, rng);
    return {
      gt: cropImage(gt, y - y0, x - x0, patch, patch),
      lq: cropImage(lq, (y - y0) / s, (x - x0) / s, patch / s, patch / s),
    };
  }

  async evalPairs(task: TaskSpec): Promise<EvalPair[]> {
    const hit = this.evalCache.get(task.name);
    if (hit) return hit;
    const d = this.degradation(task);
    const pairs: EvalPair[] = [];
    for (const item of this.held) {
      const clean = evalCrop(await this.image(item), this.opts.evalSize ?? 0, task.scale);
      const rng = new Rng(`eval:${this.opts.seed ?? 0}:${task.name}:${item.name}`);
      const { lq, gt } = await d.applyPair(clean, rng);
      pairs.push({ name: item.name, lq, gt });
    }
    this.evalCache.set(task.name, pairs);
    return pairs;
  }
}

/** The built-in images as a synthetic source (all in memory: ten 256x256 images). */
export async function builtinSource(channels: Channels, opts: SyntheticOptions = {}): Promise<SyntheticSource> {
  const loaded = await loadBuiltinImages({ channels });
  const images = loaded.map(({ name, image }) => ({ name, load: async () => image }));
  return new SyntheticSource(images, 'built-in images', { ...opts, minSide: Math.min(...loaded.map((l) => Math.min(l.image.height, l.image.width))) });
}

/** A folder of clean images (sorted relative paths are the names) as a synthetic source. */
export function folderSource(dir: string, channels: Channels, opts: SyntheticOptions = {}): SyntheticSource {
  const files = listImages(dir);
  const images = files.map((file) => ({ name: file, load: () => readImage(file, { channels }) }));
  return new SyntheticSource(images, `--data ${dir}`, opts);
}

/** Explicit training and held-out files (names label them in logs and seed the evaluation inputs). */
export function fileListSource(
  train: readonly { name: string; file: string }[],
  heldOut: readonly { name: string; file: string }[],
  channels: Channels,
  opts: Omit<SyntheticOptions, 'heldOut' | 'evalCount'> = {},
): SyntheticSource {
  const clean = (xs: readonly { name: string; file: string }[]) => xs.map(({ name, file }) => ({ name, load: () => readImage(file, { channels }) }));
  return new SyntheticSource(clean(train), `file lists (${train.length} training, ${heldOut.length} held-out images)`, { ...opts, heldOut: clean(heldOut) });
}

// ----------------------------------------------------------------------------------------- paired source

export interface PairedOptions {
  evalCount?: number;
  evalSize?: number;
  cache?: ImageCache;
}

export class PairedFolderSource implements PairSource {
  readonly description: string;
  readonly trainSize: number;
  readonly evalNames: readonly string[];
  private readonly pairs: { lq: string; gt: string }[];
  private readonly cache: ImageCache;
  private readonly evalCache = new Map<string, EvalPair[]>();

  constructor(
    readonly lqDir: string,
    readonly gtDir: string,
    private readonly channels: Channels,
    private readonly opts: PairedOptions = {},
  ) {
    const lq = listImages(lqDir);
    const gt = listImages(gtDir);
    if (lq.length !== gt.length)
      throw new Error(`--lq-dir ${lqDir} has ${lq.length} images but --gt-dir ${gtDir} has ${gt.length}; pairs are matched by sorted name`);
    this.pairs = lq.map((l, i) => ({ lq: l, gt: gt[i] }));
    const k = splitCount(this.pairs.length, opts.evalCount, `--lq-dir ${lqDir}`);
    this.trainSize = this.pairs.length - k;
    this.evalNames = this.pairs.slice(this.trainSize).map((p) => p.gt);
    this.cache = opts.cache ?? new ImageCache();
    this.description = `paired folders ${lqDir} -> ${gtDir}: ${this.trainSize} training pairs, ${k} held out`;
  }

  checkTask(): void {}

  /** Loads pair `i`, checking that gt is `scale` times lq (gt modcropped when it is up to scale-1 larger). */
  private async load(i: number, scale: number): Promise<ImagePair> {
    const { lq: lf, gt: gf } = this.pairs[i];
    const lq = await this.cache.get(lf, () => readImage(lf, { channels: this.channels }));
    let gt = await this.cache.get(gf, () => readImage(gf, { channels: this.channels }));
    const h = lq.height * scale;
    const w = lq.width * scale;
    if (gt.height < h || gt.width < w || gt.height - h >= scale || gt.width - w >= scale)
      throw new Error(`pair ${lf} / ${gf}: target is ${gt.height}x${gt.width}, expected ${h}x${w} (input ${lq.height}x${lq.width} times scale ${scale})`);
    if (gt.height !== h || gt.width !== w) gt = cropImage(gt, 0, 0, h, w);
    return { lq, gt };
  }

  async samplePatch(index: number, task: TaskSpec, patch: number, rng: Rng): Promise<ImagePair> {
    checkPatch(task, patch);
    const s = task.scale;
    const { lq, gt } = await this.load(index, s);
    const lp = patch / s;
    if (lq.height < lp || lq.width < lp) throw tooSmall(this.pairs[index].gt, gt, patch);
    const y = rng.int(0, lq.height - lp + 1);
    const x = rng.int(0, lq.width - lp + 1);
    return { lq: cropImage(lq, y, x, lp, lp), gt: cropImage(gt, y * s, x * s, patch, patch) };
  }

  async evalPairs(task: TaskSpec): Promise<EvalPair[]> {
    const hit = this.evalCache.get(task.name);
    if (hit) return hit;
    const out: EvalPair[] = [];
    const s = task.scale;
    const size = this.opts.evalSize ?? 0;
    for (let i = this.trainSize; i < this.pairs.length; i++) {
      let { lq, gt } = await this.load(i, s);
      if (size > 0 && (gt.height > size || gt.width > size)) {
        // Aligned centre crop of at most `size` GT pixels.
        const lh = Math.floor(Math.min(size, gt.height) / s);
        const lw = Math.floor(Math.min(size, gt.width) / s);
        const ly = Math.floor((lq.height - lh) / 2);
        const lx = Math.floor((lq.width - lw) / 2);
        lq = cropImage(lq, ly, lx, lh, lw);
        gt = cropImage(gt, ly * s, lx * s, lh * s, lw * s);
      }
      out.push({ name: this.pairs[i].gt, lq, gt });
    }
    this.evalCache.set(task.name, out);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------- sampler

export interface SamplerState {
  /** Epochs started (the order of epoch e is a permutation drawn from (seed, e)). */
  epoch: number;
  /** Next position in the current epoch's order. */
  pos: number;
  /** Samples drawn so far (sample i draws from an Rng seeded by (seed, i)). */
  drawn: number;
}

export interface Batch {
  task: string;
  lq: tf.Tensor4D;
  gt: tf.Tensor4D;
}

/**
 * Draws batches: items in a fresh random order each epoch (like a shuffling DataLoader), one patch per item,
 * augmented. Counter-based randomness: epoch e's order comes from an Rng seeded by (seed, e) and sample i's
 * crop, degradation and flips from one seeded by (seed, i), so the whole state is three counters, and saving
 * it (a checkpoint) never perturbs the random stream: runs with different checkpoint intervals draw the same
 * batches.
 */
export class PatchSampler {
  private order: Int32Array = new Int32Array(0);
  private epoch = 0;
  private pos = 0;
  private drawn = 0;

  constructor(
    readonly source: PairSource,
    readonly seed: number | string,
    state?: SamplerState,
    readonly augment = true,
  ) {
    if (state) {
      const ok = [state.epoch, state.pos, state.drawn].every((v) => Number.isInteger(v) && v >= 0) && state.pos <= source.trainSize;
      if (!ok) throw new Error(`sampler state: ${JSON.stringify(state)} does not fit ${source.trainSize} training items (data changed?)`);
      this.epoch = state.epoch;
      this.pos = state.pos;
      this.drawn = state.drawn;
      if (this.epoch > 0) this.order = this.epochOrder(this.epoch);
    }
  }

  private epochOrder(epoch: number): Int32Array {
    return new Rng(`order:${this.seed}:${epoch}`).permutation(this.source.trainSize);
  }

  private nextIndex(): number {
    if (this.epoch === 0 || this.pos >= this.order.length) {
      this.epoch += 1;
      this.order = this.epochOrder(this.epoch);
      this.pos = 0;
    }
    return this.order[this.pos++];
  }

  /** The next `batch` patch pairs of `task` as host images (for inspection and tests). */
  async nextPairs(task: TaskSpec, batch: number, patch: number): Promise<ImagePair[]> {
    const out: ImagePair[] = [];
    for (let i = 0; i < batch; i++) {
      const index = this.nextIndex();
      const rng = new Rng(`sample:${this.seed}:${this.drawn++}`);
      const pair = await this.source.samplePatch(index, task, patch, rng);
      out.push(this.augment ? augmentPair(pair, rng) : pair);
    }
    return out;
  }

  /** The next batch as NHWC tensors (the caller disposes them). */
  async nextBatch(task: TaskSpec, batch: number, patch: number): Promise<Batch> {
    const pairs = await this.nextPairs(task, batch, patch);
    return { task: task.name, lq: imageToTensor(pairs.map((p) => p.lq)), gt: imageToTensor(pairs.map((p) => p.gt)) };
  }

  state(): SamplerState {
    return { epoch: this.epoch, pos: this.pos, drawn: this.drawn };
  }

  get currentEpoch(): number {
    return this.epoch;
  }
}

// ------------------------------------------------------------------------------------------ task choice

export type TaskOrder = 'round-robin' | 'random';

/**
 * Which task each batch trains (a batch is all one task). round-robin: tasks[step mod n]; random: a seeded draw
 * with probabilities proportional to `weights` (default equal), from an Rng keyed by (seed, step) so the choice
 * of a step does not depend on earlier steps and needs no state of its own.
 */
export function taskForStep(tasks: readonly string[], step: number, order: TaskOrder, seed: number, weights?: readonly number[]): string {
  if (tasks.length === 1 || order === 'round-robin') return tasks[step % tasks.length];
  const w = weights ?? tasks.map(() => 1);
  const total = w.reduce((a, b) => a + b, 0);
  let u = new Rng(`task:${seed}:${step}`).uniform() * total;
  for (let i = 0; i < tasks.length; i++) {
    u -= w[i];
    if (u < 0) return tasks[i];
  }
  return tasks[tasks.length - 1];
}
