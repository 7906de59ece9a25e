/**
 * Evaluation data of an ablation study: clean images degraded by the task's synthetic degradation (seeded per
 * image, like the CKA study), or real paired folders (LQ and GT matched by file name: Rain100L input/target,
 * GoPro blur/sharp, SIDD noisy/clean layouts), centre-cropped to one size and stacked into batches.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ImageF32 } from '../../io/types';
import { centerCrop, convertChannels, cropImage, imageToTensor, readImage } from '../../io/image';
import { listImages } from '../../io/folder';
import type { RestorationModel } from '../../models/model';
import { parseDegradation } from '../../degradations';
import { metricOptionsFor, type MetricOptions } from '../metrics';
import { Rng } from '../../util/rng';
import type { AblationBatch } from './runner';
import type { NamedImage } from '../similarity';

export type { NamedImage };

/** The project's one metric rule for the task (metricOptionsFor: BasicSR conventions). */
export function taskMetric(model: RestorationModel, task?: string): MetricOptions {
  return metricOptionsFor(model.task(task));
}

/**
 * Pairs made from clean images by a degradation (default: the task's), seeded by (seed, degradation, image index).
 * A task without a synthetic degradation (deblur, derain: real data) needs one named, or paired folders.
 */
export async function syntheticPairs(model: RestorationModel, task: string | undefined, clean: NamedImage[], size: [number, number], seed: number, degradation?: string) {
  const spec = model.task(task);
  const name = degradation ?? spec.degradation;
  if (!name)
    throw new Error(`--degradation: task '${spec.name}' has no synthetic degradation (its data are real); name one (e.g. blur-motion, dn-25) or give paired --lq/--gt folders`);
  const deg = parseDegradation(name);
  if (deg.scale !== spec.scale) throw new Error(`--degradation: '${name}' has scale ${deg.scale}, task '${spec.name}' expects ${spec.scale}`);
  const ch = model.inChannels === 1 ? 1 : 3;
  const out: { name: string; lq: ImageF32; gt: ImageF32 }[] = [];
  for (let i = 0; i < clean.length; i++) {
    const { name, image } = clean[i];
    if (image.height < size[0] || image.width < size[1])
      throw new Error(`--size: image '${name}' is ${image.height}x${image.width}, smaller than ${size[0]}x${size[1]}`);
    const c = convertChannels(centerCrop(image, size[0], size[1]), ch);
    const p = await deg.applyPair(c, new Rng(`${seed}:degrade:${deg.name}:${i}`));
    out.push({ name, lq: p.lq, gt: p.gt });
  }
  return { pairs: out, degradation: deg.name };
}

/** LQ/GT files matched by relative path, else by name without extension; one-line errors for unmatched sets. */
export function matchPairedFolders(lqDir: string, gtDir: string): { name: string; lq: string; gt: string }[] {
  const lq = listImages(lqDir);
  const gt = listImages(gtDir);
  const stem = (f: string) => f.replace(/\.[^./\\]+$/, '');
  const byRel = new Map(gt.map((f) => [path.relative(gtDir, f), f]));
  const byStem = new Map(gt.map((f) => [stem(path.relative(gtDir, f)), f]));
  const pairs = lq.map((f) => {
    const rel = path.relative(lqDir, f);
    const g = byRel.get(rel) ?? byStem.get(stem(rel));
    if (!g) throw new Error(`--gt: no ground truth for '${rel}' in '${gtDir}' (files are matched by name)`);
    return { name: rel, lq: f, gt: g };
  });
  if (pairs.length === 0) throw new Error(`--lq: no images in '${lqDir}'`);
  return pairs;
}

/** Reads paired files and centre-crops them to `size` (GT side; LQ side size / scale). */
export async function pairedFromFolders(model: RestorationModel, task: string | undefined, files: { name: string; lq: string; gt: string }[], size: [number, number]) {
  const scale = model.task(task).scale;
  const ch = model.inChannels === 1 ? 1 : 3;
  const out: { name: string; lq: ImageF32; gt: ImageF32 }[] = [];
  for (const f of files) {
    const lq = await readImage(f.lq, { channels: ch });
    const gt = await readImage(f.gt, { channels: model.outChannels === 1 ? 1 : 3 });
    if (gt.height !== lq.height * scale || gt.width !== lq.width * scale)
      throw new Error(`--gt: '${f.gt}' is ${gt.height}x${gt.width}, expected ${scale}x the LQ '${f.lq}' (${lq.height}x${lq.width})`);
    const [h, w] = [Math.floor(size[0] / scale), Math.floor(size[1] / scale)];
    if (lq.height < h || lq.width < w) throw new Error(`--size: '${f.lq}' is ${lq.height}x${lq.width}, smaller than the crop ${h}x${w}`);
    // The GT window is the LQ window scaled, so the two stay aligned whatever the parity of the margins.
    const top = Math.floor((lq.height - h) / 2);
    const left = Math.floor((lq.width - w) / 2);
    out.push({ name: f.name, lq: cropImage(lq, top, left, h, w), gt: cropImage(gt, top * scale, left * scale, h * scale, w * scale) });
  }
  return out;
}

/** Stacks pairs into batches of at most `batch` images (the caller disposes each batch's lq tensor). */
export function toBatches(pairs: { name: string; lq: ImageF32; gt: ImageF32 }[], batch: number): AblationBatch[] {
  const out: AblationBatch[] = [];
  for (let i = 0; i < pairs.length; i += batch) {
    const part = pairs.slice(i, i + batch);
    out.push({ lq: imageToTensor(part.map((p) => p.lq)), gt: part.map((p) => p.gt), names: part.map((p) => p.name) });
  }
  return out;
}

export function disposeBatches(batches: AblationBatch[]): void {
  tf.dispose(batches.map((b) => b.lq));
}
