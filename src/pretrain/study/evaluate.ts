/**
 * Final evaluation: trained models (and the no-network baselines) on the held-out images, PSNR/SSIM with the
 * task's conventions (metricOptionsFor), and the per-arm summary over seeds with paired differences to scratch.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { imresize, parseDegradation } from '../../degradations';
import type { ImageF32 } from '../../io/types';
import { centerCrop, imageToTensor, tensorToImages } from '../../io/image';
import type { RestorationModel } from '../../models/model';
import type { Config } from '../../models/family';
import { loadSavedModel } from '../../weights/spec';
import { metricOptionsFor, psnr, ssim } from '../../analysis/metrics';
import type { NamedImage } from '../../analysis/similarity';
import { Rng } from '../../util/rng';
import { meanStd } from '../../util/stats';
import { describeTask, MultiTaskModel } from '../multitask';
import { FINAL_MODEL } from '../train-checkpoint';
import type { StudyConfig } from './config';
import type { PlannedStudyRun } from './plan';
import type { StudyArmResult, StudyArmSummary, StudyStat } from './types';

/** Mean, sample std and count (mean 0 for no values). */
export function studyStat(xs: number[]): StudyStat {
  return meanStd(xs);
}

// ----------------------------------------------------------------------------------------- models

/**
 * A trained model as a network whose task `target` carries the target's degradation (what layerSimilarity uses
 * to make its inputs): EDT's own branch, else the network wrapped as a one-task MultiTaskModel (same weights).
 */
export async function loadStudyModel(file: string, target: string): Promise<RestorationModel> {
  const { model } = await loadSavedModel(file);
  const own = model.tasks().find((t) => t.name === target);
  if (own && own.degradation === target) return model;
  try {
    const base = model instanceof MultiTaskModel ? model.taskNetwork(target) : model;
    const wrapper = new MultiTaskModel({ model: base.preset || base.family, config: base.config as Config, tasks: [target] });
    const src = new Map(base.stateEntries());
    for (const [k, p] of wrapper.taskNetwork(target).stateEntries()) {
      const s = src.get(k);
      if (!s) throw new Error(`study: '${file}' has no parameter '${k}'`);
      tf.tidy(() => p.variable.assign(s.variable));
    }
    return wrapper;
  } finally {
    model.dispose();
  }
}

/** PSNR/SSIM of `restore` on the held-out images for `target`; inputs seeded by (target, image) only. */
export async function evaluateRestorer(restore: (lq: ImageF32) => ImageF32, target: string, images: NamedImage[], size: number) {
  const task = describeTask(target);
  const deg = parseDegradation(target);
  const opts = metricOptionsFor(task);
  const perImage: { name: string; psnr: number; ssim: number }[] = [];
  for (const { name, image } of images) {
    const clean = size > 0 && (image.height > size || image.width > size) ? centerCrop(image, Math.min(size, image.height), Math.min(size, image.width)) : image;
    const { lq, gt } = await deg.applyPair(clean, new Rng(`study-eval:${target}:${name}`));
    const restored = restore(lq);
    perImage.push({ name, psnr: psnr(restored, gt, opts), ssim: ssim(restored, gt, opts) });
  }
  return { psnr: studyStat(perImage.map((p) => p.psnr)).mean, ssim: studyStat(perImage.map((p) => p.ssim)).mean, perImage };
}

export function evaluateModel(model: RestorationModel, target: string, images: NamedImage[], size: number) {
  return evaluateRestorer(
    (lq) => {
      const x = imageToTensor(lq);
      const y = model.restore(x, target);
      const out = tensorToImages(y)[0];
      tf.dispose([x, y]);
      return out;
    },
    target,
    images,
    size,
  );
}

/** The untrained reference: bicubic upscaling of an SR input (MATLAB imresize), the degraded input itself otherwise. */
export function evaluateInput(target: string, images: NamedImage[], size: number) {
  const scale = describeTask(target).scale;
  return evaluateRestorer((lq) => (scale > 1 ? imresize(lq, scale) : lq), target, images, size);
}


export function summariseStudy(c: StudyConfig, results: StudyArmResult[]): StudyArmSummary[] {
  const out: StudyArmSummary[] = [];
  for (const target of c.targets)
    for (const arm of c.arms) {
      const rows = results.filter((r) => r.target === target && r.arm === arm);
      if (rows.length === 0) continue;
      const s: StudyArmSummary = { target, arm, psnr: studyStat(rows.map((r) => r.psnr)), ssim: studyStat(rows.map((r) => r.ssim)) };
      if (arm !== 'scratch') {
        const base = new Map(results.filter((r) => r.target === target && r.arm === 'scratch').map((r) => [r.seed, r]));
        const paired = rows.filter((r) => base.has(r.seed));
        s.deltaPsnr = studyStat(paired.map((r) => r.psnr - base.get(r.seed)!.psnr));
        s.deltaSsim = studyStat(paired.map((r) => r.ssim - base.get(r.seed)!.ssim));
      }
      out.push(s);
    }
  return out;
}

/** Every finished target model and the no-network baselines on the held-out images. */
export async function evaluateStudy(config: StudyConfig, plan: PlannedStudyRun[], runDir: string, heldOut: NamedImage[]) {
  const results: StudyArmResult[] = [];
  for (const r of plan) {
    if (r.kind === 'pretrain') continue;
    const model = await loadStudyModel(path.join(runDir, r.id, FINAL_MODEL), r.target!);
    try {
      const m = await evaluateModel(model, r.target!, heldOut, config.finalEvalSize);
      results.push({ target: r.target!, arm: r.arm, seed: r.seed, ...m });
    } finally {
      model.dispose();
    }
  }
  const baselines = [];
  for (const target of config.targets)
    baselines.push({
      target,
      method: describeTask(target).scale > 1 ? 'bicubic upscaling of the input' : 'the degraded input itself',
      ...(await evaluateInput(target, heldOut, config.finalEvalSize)),
    });
  return { results, baselines };
}
