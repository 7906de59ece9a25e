/**
 * The EDT pre-training study (Li et al., arXiv 2112.10175, section 4): for one architecture, at equal compute,
 *
 *   scratch    the target task only, on the fine-tuning pool, for pre-train + fine-tune steps;
 *   single     pre-train on the target task on the pre-training pool, then fine-tune on the fine-tuning pool;
 *   related    pre-train on related tasks (sr-x2+sr-x3+sr-x4 for an SR target, dn-15+dn-25+dn-50 for a
 *              denoising target), then fine-tune;
 *   unrelated  pre-train on unrelated tasks (sr-x2 + dn-25 + dr-light by default), then fine-tune;
 *
 * each arm on each target task (default sr-x2 and dn-25), for several seeds. The finished models are evaluated
 * on held-out images that no run trains on (PSNR/SSIM, BasicSR conventions) and compared with CKA: per layer
 * between each fine-tuned model and the scratch model of its target, and layer x layer between SR and denoising
 * models. study-report.ts renders the HTML report.
 *
 * Everything runs through runTraining (trainer.ts): one run directory per (seed, arm, phase) under the study's
 * run directory, so --resume skips finished runs and continues an interrupted one from its last checkpoint.
 *
 * Data: the images (built-in or --data) are split once, with a seeded shuffle, into a pre-training pool, a
 * fine-tuning pool and held-out evaluation images; the pools are materialised as folders
 * RUN/data/<pool>/{a-train,b-heldout}/ (copies of the built-in images, symbolic links for --data) so that the
 * trainer's folder source trains on a-train and holds out b-heldout (its held-out images are the last by name).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ImageF32 } from '../io/types';
import { BUILTIN_IMAGE_SIZE as BUILTIN_SIDE, BUILTIN_IMAGES, builtinImages } from '../io/builtin';
import { listImages } from '../io/folder';
import { centerCrop, cropImage, imageToTensor, readImage, tensorToImages } from '../io/image';
import type { RestorationModel, TaskSpec } from '../models/model';
import type { Config } from '../models/registry';
import { resolveSpec } from '../models/registry';
import { loadSavedModel } from '../models/spec';
import { psnr, ssim, type MetricOptions } from '../analysis/metrics';
import { layerSimilarity, type NamedImage, type SimilarityResult } from '../analysis/similarity';
import { backendInfo } from '../engine/backend';
import { writeFileAtomic } from '../util/fs';
import { Rng } from '../util/rng';
import { IRLENS_VERSION } from '../version';
import { imresize, modcrop, parseDegradation, registerDegradation, type Degradation, type DegradedPair } from './degradations';
import { createTaskModel, describeTask, MultiTaskModel } from './multitask';
import { FINAL_MODEL, LOG_FILE, readJsonFile, readTrainerState, RUN_FILE } from './train-checkpoint';
import { runTraining, type RunSpec, type TrainOptions } from './trainer';
import type { ScheduleSpec } from './optim';
import { writeStudyReport } from './study-report';

// ------------------------------------------------------------------------------------------ degradation

/**
 * 'sr-up-x<s>': bicubic x1/s then bicubic xs back to the original size (VDSR-style pre-upsampled SR), so that
 * networks that restore same-size images (Restormer, MPRNet, refnet) can take part in the SR arm of the study.
 */
function preUpsampledSr(factor: number, name: string): Degradation {
  const pair = (img: ImageF32): DegradedPair => {
    const gt = modcrop(img, factor);
    return { lq: imresize(imresize(gt, 1 / factor), factor), gt, params: { factor, preUpsampled: true } };
  };
  return {
    name,
    kind: 'sr',
    scale: 1,
    applySync: (img) => pair(img).lq,
    apply: async (img) => pair(img).lq,
    applyPair: async (img) => pair(img),
  };
}

registerDegradation({ form: 'sr-up-x<2..8>', pattern: /^sr-up-x([2-8])$/, make: (m) => preUpsampledSr(Number(m[1]), m[0]) });

// ------------------------------------------------------------------------------------------------ config

export const STUDY_ARCHS = ['edt', 'restormer', 'swinir', 'mprnet', 'refnet'] as const;
export type StudyArch = (typeof STUDY_ARCHS)[number];
export const STUDY_ARMS = ['scratch', 'single', 'related', 'unrelated'] as const;
export type StudyArm = (typeof STUDY_ARMS)[number];
export const STUDY_PRESETS = ['smoke', 'cpu', 'paper'] as const;
export type StudyPreset = (typeof STUDY_PRESETS)[number];
export const STUDY_CONFIG_FORMAT = 'irlens-pretrain-study-config/1';
export const STUDY_FORMAT = 'irlens-pretrain-study/1';
export const STUDY_FILE = 'study.json';

export type StudyLrSchedule = 'cosine' | 'multistep' | 'constant';

export interface StudyConfig {
  format: typeof STUDY_CONFIG_FORMAT;
  /** The preset the settings started from (informative). */
  preset: StudyPreset;
  arch: StudyArch;
  /** Preset of the network (e.g. edt-tiny) and official hyper-parameters overriding it. */
  model: string;
  modelConfig: Config;
  targets: string[];
  arms: StudyArm[];
  /** Pre-training task mixes: related tasks per target, one unrelated mix for all targets. */
  mixes: { related: Record<string, string[]>; unrelated: string[] };
  seeds: number[];
  stepsPretrain: number;
  stepsFinetune: number;
  batch: number;
  /** Training patches: SR input side `lq` (GT = lq x scale), GT side `same` of same-size tasks. */
  patch: { lq: number; same: number };
  /** Peak learning rates, schedules and the cosine floor (fraction of the peak). */
  lr: { pretrain: number; finetune: number; scratch: number; schedule: StudyLrSchedule; finetuneSchedule: StudyLrSchedule; minFactor: number };
  optimizer: { kind: 'adam' | 'adamw'; beta1: number; beta2: number; weightDecay: number };
  /** Training-curve evaluations every N steps on held-out crops of evalSize (0 = whole images). */
  evalEvery: number;
  evalSize: number;
  /** Final evaluation crop (0 = whole held-out images). */
  finalEvalSize: number;
  ckptEvery: number;
  logEvery: number;
  data: { kind: 'builtin' } | { kind: 'folder'; dir: string };
  /** Relative sizes of the pre-training pool, the fine-tuning pool and the held-out images; maxEval caps the latter. */
  split: { pretrain: number; finetune: number; eval: number; maxEval: number; seed: number };
  /** CKA: square tiles of the held-out images (at most tilesPerImage each), minibatch size. */
  cka: { enabled: boolean; tile: number; tilesPerImage: number; batch: number };
}

/** What each architecture trains in the study (tiny presets for smoke/cpu, the paper's sizes for paper). */
interface ArchDefaults {
  tiny: string;
  tinyConfig: Config;
  paper: string;
  paperConfig: Config;
  /** Name of the SR task for this family: true SR, or pre-upsampled SR for same-size networks. */
  sr: (scale: number) => string;
}

const ARCH: Record<StudyArch, ArchDefaults> = {
  // Windows 4x8 instead of edt-tiny's 6x24: with 6x24 the SR x2/x3/x4 mix needs 288 px patches (lcm of 48, 72
  // and 96), larger than the built-in 256 px images; 4x8 keeps the paper's wide windows at a size that fits.
  edt: { tiny: 'edt-tiny', tinyConfig: { WINDOW_SIZE: [4, 8] }, paper: 'edt-b-sr-x2', paperConfig: {}, sr: (s) => `sr-x${s}` },
  swinir: { tiny: 'swinir-tiny', tinyConfig: {}, paper: 'swinir-sr-x2', paperConfig: {}, sr: (s) => `sr-x${s}` },
  restormer: { tiny: 'restormer-tiny', tinyConfig: {}, paper: 'restormer', paperConfig: {}, sr: (s) => `sr-up-x${s}` },
  mprnet: { tiny: 'mprnet-tiny', tinyConfig: {}, paper: 'mprnet-denoise', paperConfig: {}, sr: (s) => `sr-up-x${s}` },
  refnet: { tiny: 'refnet-tiny', tinyConfig: {}, paper: 'refnet-tiny', paperConfig: {}, sr: (s) => `sr-up-x${s}` },
};

/** Related tasks of a target (the paper's multi-related-task pre-training): the same degradation at other levels. */
export function relatedMix(target: string): string[] {
  const sr = /^sr-(up-)?x(\d)$/.exec(target);
  if (sr) return [2, 3, 4].map((s) => `sr-${sr[1] ?? ''}x${s}`).concat(Number(sr[2]) > 4 ? [target] : []);
  if (/^dn-\d+(\.\d+)?$/.test(target)) return [...new Set(['dn-15', 'dn-25', 'dn-50', target])];
  if (/^dr-(light|heavy)$/.test(target)) return ['dr-light', 'dr-heavy'];
  if (/^blur-/.test(target)) return [...new Set([target, 'blur-motion', 'blur-defocus-r2', 'blur-defocus-r3'])];
  if (/^jpeg-q\d+$/.test(target)) return [...new Set(['jpeg-q10', 'jpeg-q20', 'jpeg-q40', target])];
  throw new Error(`--targets: no related tasks known for '${target}' (sr-x<s>, sr-up-x<s>, dn-<sigma>, dr-light/heavy, blur-*, jpeg-q<q>)`);
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/** The settings of a preset for an architecture; `targets` changes the task mixes that depend on them. */
export function studyPreset(preset: StudyPreset, arch: StudyArch = 'edt', targets?: string[]): StudyConfig {
  if (!(STUDY_ARCHS as readonly string[]).includes(arch)) throw new Error(`--arch: expected one of ${STUDY_ARCHS.join(', ')}, got '${arch}'`);
  if (!(STUDY_PRESETS as readonly string[]).includes(preset)) throw new Error(`--preset: expected one of ${STUDY_PRESETS.join(', ')}, got '${preset}'`);
  const a = ARCH[arch];
  const tg = targets ?? [a.sr(2), 'dn-25'];
  const paper = preset === 'paper';
  // The paper's unrelated mix is SR x2, x3 + DN g15 (configs/SRx2x3DNg15_EDTB_ImageNet200K); the small presets use
  // one mix holding every target so that each fine-tuning run reuses a pre-trained head.
  const unrelated = paper ? [a.sr(2), a.sr(3), 'dn-15'] : unique([...tg, a.sr(2), 'dn-25', 'dr-light']);
  const base: Omit<StudyConfig, 'stepsPretrain' | 'stepsFinetune' | 'seeds' | 'batch' | 'patch' | 'evalEvery' | 'evalSize' | 'finalEvalSize' | 'ckptEvery' | 'logEvery' | 'lr' | 'cka'> = {
    format: STUDY_CONFIG_FORMAT,
    preset,
    arch,
    model: paper ? a.paper : a.tiny,
    modelConfig: paper ? a.paperConfig : a.tinyConfig,
    targets: tg,
    arms: [...STUDY_ARMS],
    mixes: { related: Object.fromEntries(tg.map((t) => [t, relatedMix(t)])), unrelated },
    optimizer: { kind: 'adam', beta1: 0.9, beta2: 0.99, weightDecay: 0 },
    data: { kind: 'builtin' },
    split: { pretrain: 5, finetune: 2, eval: 3, maxEval: 20, seed: 0 },
  };
  switch (preset) {
    case 'smoke':
      return {
        ...base,
        seeds: [0],
        stepsPretrain: 6,
        stepsFinetune: 4,
        batch: 2,
        patch: { lq: 24, same: 64 },
        lr: { pretrain: 4e-3, finetune: 2e-3, scratch: 4e-3, schedule: 'cosine', finetuneSchedule: 'cosine', minFactor: 0.01 },
        evalEvery: 2,
        evalSize: 96,
        finalEvalSize: 128,
        ckptEvery: 0,
        logEvery: 1,
        cka: { enabled: true, tile: 64, tilesPerImage: 4, batch: 12 },
      };
    case 'cpu':
      // Measured on a 2-core machine (wasm, edt-tiny): tiny models pay mostly per-op overhead, so steps, not batch
      // size, set the time (~5-7 steps/s for SR x2 at 48 px, ~5 for DN at 64 px, ~2.5-3 for the 96 px SR x2/x3/x4
      // mix). SR x2 models sit on a plateau just below bicubic for their first ~300 steps at lr 4e-3 (probe: scratch
      // 27.5 dB after 360 steps, pre-trained + fine-tuned 28.1 dB, bicubic 27.7 dB), so fewer steps than 240 + 120
      // show nothing; with DN patches of 64 px and 3 seeds this takes ~30 min (less without other load).
      return {
        ...base,
        seeds: [0, 1, 2],
        stepsPretrain: 240,
        stepsFinetune: 120,
        batch: 4,
        patch: { lq: 24, same: 64 },
        lr: { pretrain: 4e-3, finetune: 2e-3, scratch: 4e-3, schedule: 'cosine', finetuneSchedule: 'cosine', minFactor: 0.01 },
        evalEvery: 40,
        evalSize: 128,
        finalEvalSize: 0,
        ckptEvery: 60,
        logEvery: 1,
        cka: { enabled: true, tile: 64, tilesPerImage: 16, batch: 16 },
      };
    case 'paper':
      // configs/SRx2_EDTB_ImageNet200K.py and its fine-tuning configs (..._Div2kFlickr2K__SRx2_ImageNet200K.py,
      // DNg25_EDTB_D4__DNg25_ImageNet200K.py): INPUT_SIZE 48 (SR input), 48 x 4 = 192 (DN/DR input), Adam
      // (0.9, 0.99), no weight decay, pre-training lr 2e-4 halved at 250k/400k/450k/475k of 500k iterations,
      // fine-tuning lr 1e-5 constant (500k iterations for SR, 800k for DN in the official configs), 4 images per
      // GPU. A batch of 32 assumes 8 GPUs.
      return {
        ...base,
        seeds: [0, 1, 2],
        stepsPretrain: 500_000,
        stepsFinetune: 500_000,
        batch: 32,
        patch: { lq: 48, same: 192 },
        lr: { pretrain: 2e-4, finetune: 1e-5, scratch: 2e-4, schedule: 'multistep', finetuneSchedule: 'constant', minFactor: 0.01 },
        evalEvery: 10_000,
        evalSize: 0,
        finalEvalSize: 0,
        ckptEvery: 10_000,
        logEvery: 100,
        split: { pretrain: 70, finetune: 20, eval: 10, maxEval: 20, seed: 0 },
        cka: { enabled: true, tile: 96, tilesPerImage: 4, batch: 16 },
      };
  }
}

/** Command-line style overrides of a preset. */
export interface StudyOverrides {
  targets?: string[];
  arms?: string[];
  seeds?: number;
  stepsPretrain?: number;
  stepsFinetune?: number;
  batch?: number;
  evalEvery?: number;
  data?: string;
  split?: [number, number, number];
  cka?: boolean;
}

function checkInt(v: number | undefined, option: string, min: number): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= min)) throw new Error(`${option}: expected an integer >= ${min}, got ${v}`);
}

/** A preset with overrides applied, validated (one-line errors naming the option). */
export function buildStudyConfig(preset: StudyPreset, arch: StudyArch, o: StudyOverrides = {}): StudyConfig {
  const c = studyPreset(preset, arch, o.targets);
  checkInt(o.seeds, '--seeds', 1);
  checkInt(o.stepsPretrain, '--steps-pretrain', 1);
  checkInt(o.stepsFinetune, '--steps-finetune', 1);
  checkInt(o.batch, '--batch', 1);
  checkInt(o.evalEvery, '--eval-every', 0);
  if (o.arms) {
    const bad = o.arms.filter((a) => !(STUDY_ARMS as readonly string[]).includes(a));
    if (bad.length) throw new Error(`--arms: unknown arm '${bad[0]}' (arms: ${STUDY_ARMS.join(', ')})`);
    c.arms = STUDY_ARMS.filter((a) => o.arms!.includes(a));
  }
  if (o.seeds !== undefined) c.seeds = Array.from({ length: o.seeds }, (_, i) => i);
  if (o.stepsPretrain !== undefined) c.stepsPretrain = o.stepsPretrain;
  if (o.stepsFinetune !== undefined) c.stepsFinetune = o.stepsFinetune;
  if (o.batch !== undefined) c.batch = o.batch;
  if (o.evalEvery !== undefined) c.evalEvery = o.evalEvery;
  if (o.data !== undefined) c.data = { kind: 'folder', dir: path.resolve(o.data) };
  if (o.split) {
    if (!o.split.every((x) => Number.isFinite(x) && x >= 0) || o.split[0] <= 0 || o.split[1] <= 0 || o.split[2] <= 0)
      throw new Error(`--split: expected three positive weights PRETRAIN,FINETUNE,EVAL, got ${o.split.join(',')}`);
    c.split = { ...c.split, pretrain: o.split[0], finetune: o.split[1], eval: o.split[2] };
  }
  if (o.cka !== undefined) c.cka = { ...c.cka, enabled: o.cka };
  validateStudyConfig(c);
  return c;
}

/** Checks everything that can be checked without training (targets trainable by the architecture, patches, arms). */
export function validateStudyConfig(c: StudyConfig): void {
  if (c.format !== STUDY_CONFIG_FORMAT) throw new Error(`study config: format '${c.format}' is not ${STUDY_CONFIG_FORMAT}`);
  if (!(STUDY_ARCHS as readonly string[]).includes(c.arch)) throw new Error(`--arch: expected one of ${STUDY_ARCHS.join(', ')}, got '${c.arch}'`);
  resolveSpec(c.model, c.modelConfig);
  if (c.targets.length === 0) throw new Error('--targets: no target task');
  if (new Set(c.targets).size !== c.targets.length) throw new Error(`--targets: repeated task in ${c.targets.join(',')}`);
  if (!c.arms.includes('scratch')) throw new Error('--arms: scratch is the reference of every comparison and must be included');
  if (c.arms.length < 2) throw new Error('--arms: give scratch and at least one pre-training arm (single, related, unrelated)');
  if (c.seeds.length === 0) throw new Error('--seeds: expected at least 1');
  for (const [k, v] of [['--steps-pretrain', c.stepsPretrain], ['--steps-finetune', c.stepsFinetune], ['--batch', c.batch]] as const)
    checkInt(v, k, 1);
  for (const t of unique([...c.targets, ...tasksOfMixes(c)])) {
    let task: TaskSpec;
    try {
      parseDegradation(t);
      task = describeTask(t);
    } catch (e) {
      throw new Error(`--targets: '${t}' is not a synthetic task (${(e as Error).message.split('\n')[0]})`);
    }
    try {
      createTaskModel(c.model, task, { config: c.modelConfig, seed: 0 }).dispose();
    } catch (e) {
      throw new Error(`--arch ${c.arch}: ${c.model} cannot train '${t}' (${(e as Error).message.split('\n')[0]})`);
    }
  }
}

function tasksOfMixes(c: StudyConfig): string[] {
  const out: string[] = [];
  if (c.arms.includes('related')) for (const t of c.targets) out.push(...(c.mixes.related[t] ?? relatedMix(t)));
  if (c.arms.includes('unrelated')) out.push(...c.mixes.unrelated);
  return out;
}

// ------------------------------------------------------------------------------------------------- plan

export type StudyRunKind = 'pretrain' | 'finetune' | 'scratch';

export interface PlannedStudyRun {
  /** Relative directory under the study's run directory, e.g. 'seed-0/finetune-single-sr-x2'. */
  id: string;
  seed: number;
  arm: StudyArm;
  kind: StudyRunKind;
  tasks: string[];
  /** Target of a fine-tuning or scratch run. */
  target?: string;
  /** Id of the pre-training run a fine-tuning run starts from. */
  from?: string;
  pool: 'pretrain' | 'finetune';
  steps: number;
  /** GT patch (one per run: the trainer draws every task's patches at one size). */
  patch: number;
  /** Seed of initialisation, data order and task choice of the run. */
  trainSeed: number;
}

export interface ComputeAccounting {
  arm: StudyArm;
  target: string;
  pretrainSteps: number;
  finetuneSteps: number;
  totalSteps: number;
  /** Training patches seen (steps x batch). */
  patches: number;
  /** GT patch sizes of the runs. */
  patchSizes: string;
}

/** Units (GT pixels) a training patch of `task` must be a multiple of for `model`. */
function patchUnit(c: StudyConfig, task: string, cache: Map<string, number>): number {
  let u = cache.get(task);
  if (u === undefined) {
    const spec = describeTask(task);
    const m = createTaskModel(c.model, spec, { config: c.modelConfig, seed: 0 });
    try {
      const branch = m.tasks().some((b) => b.name === task) ? task : undefined;
      u = m.paddingRule(branch).multiple * spec.scale;
    } finally {
      m.dispose();
    }
    cache.set(task, u);
  }
  return u;
}

/** Smallest GT patch that is a multiple of every task's unit and at least each task's preferred patch. */
export function runPatch(c: StudyConfig, tasks: string[], cache = new Map<string, number>()): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const unit = tasks.reduce((l, t) => {
    const u = patchUnit(c, t, cache);
    return (l * u) / gcd(l, u);
  }, 1);
  const want = Math.max(...tasks.map((t) => (describeTask(t).scale > 1 ? c.patch.lq * describeTask(t).scale : c.patch.same)));
  return Math.ceil(want / unit) * unit;
}

const ARM_SEED: Record<StudyArm, number> = { scratch: 0, single: 1, related: 2, unrelated: 3 };

/** Every training run of the study, in execution order (seed by seed; pre-training before fine-tuning). */
export function planStudy(c: StudyConfig): PlannedStudyRun[] {
  const cache = new Map<string, number>();
  const runs: PlannedStudyRun[] = [];
  for (const seed of c.seeds) {
    const dir = `seed-${seed}`;
    const pre = new Map<string, PlannedStudyRun>();
    const pretrainFor = (arm: StudyArm, target: string): PlannedStudyRun => {
      const tasks = arm === 'single' ? [target] : arm === 'related' ? c.mixes.related[target] ?? relatedMix(target) : c.mixes.unrelated;
      const key = `${arm}:${tasks.join('+')}`;
      let r = pre.get(key);
      if (!r) {
        r = {
          id: `${dir}/pretrain-${arm}-${tasks.join('+')}`,
          seed,
          arm,
          kind: 'pretrain',
          tasks,
          pool: 'pretrain',
          steps: c.stepsPretrain,
          patch: runPatch(c, tasks, cache),
          trainSeed: 1000 * seed + ARM_SEED[arm],
        };
        pre.set(key, r);
        runs.push(r);
      }
      return r;
    };
    const finetunes: PlannedStudyRun[] = [];
    for (const arm of c.arms) {
      if (arm === 'scratch') continue;
      for (const target of c.targets) {
        const from = pretrainFor(arm, target);
        finetunes.push({
          id: `${dir}/finetune-${arm}-${target}`,
          seed,
          arm,
          kind: 'finetune',
          tasks: [target],
          target,
          from: from.id,
          pool: 'finetune',
          steps: c.stepsFinetune,
          patch: runPatch(c, [target], cache),
          trainSeed: from.trainSeed,
        });
      }
    }
    runs.push(...finetunes);
    for (const target of c.targets)
      runs.push({
        id: `${dir}/scratch-${target}`,
        seed,
        arm: 'scratch',
        kind: 'scratch',
        tasks: [target],
        target,
        pool: 'finetune',
        steps: c.stepsPretrain + c.stepsFinetune,
        patch: runPatch(c, [target], cache),
        trainSeed: 1000 * seed + ARM_SEED.scratch,
      });
  }
  return runs;
}

/** Throws when a run's patch cannot fit the built-in 256 px images (folder images are checked by the trainer). */
export function checkPlanFits(c: StudyConfig, runs: PlannedStudyRun[]): void {
  if (c.data.kind !== 'builtin') return;
  const big = runs.find((r) => r.patch > BUILTIN_SIDE);
  if (big)
    throw new Error(
      `--preset ${c.preset}: run ${big.id} (${big.tasks.join('+')}) needs ${big.patch} px training patches, larger than the ${BUILTIN_SIDE} px built-in images; give --data with larger images`,
    );
}

/** Steps per arm and target: scratch gets pre-train + fine-tune steps on the target alone. */
export function computeAccounting(c: StudyConfig, runs: PlannedStudyRun[]): ComputeAccounting[] {
  const seed = c.seeds[0];
  const byId = new Map(runs.map((r) => [r.id, r]));
  const out: ComputeAccounting[] = [];
  for (const target of c.targets)
    for (const arm of c.arms) {
      if (arm === 'scratch') {
        const r = runs.find((x) => x.seed === seed && x.kind === 'scratch' && x.target === target)!;
        out.push({ arm, target, pretrainSteps: 0, finetuneSteps: r.steps, totalSteps: r.steps, patches: r.steps * c.batch, patchSizes: `${r.patch}` });
      } else {
        const ft = runs.find((x) => x.seed === seed && x.kind === 'finetune' && x.arm === arm && x.target === target)!;
        const pre = byId.get(ft.from!)!;
        out.push({
          arm,
          target,
          pretrainSteps: pre.steps,
          finetuneSteps: ft.steps,
          totalSteps: pre.steps + ft.steps,
          patches: (pre.steps + ft.steps) * c.batch,
          patchSizes: `${pre.patch} (pre-training ${pre.tasks.join('+')}), ${ft.patch} (fine-tuning)`,
        });
      }
    }
  return out;
}

// ------------------------------------------------------------------------------------------------- data

export interface StudySplit {
  pretrain: string[];
  finetune: string[];
  eval: string[];
  /** How the split was made. */
  rule: string;
  source: string;
}

interface SourceImage {
  name: string;
  file: string;
}

function sourceImages(c: StudyConfig): SourceImage[] {
  if (c.data.kind === 'builtin') return builtinImages().map((b) => ({ name: b.name, file: b.path }));
  const dir = c.data.dir;
  return listImages(dir).map((file) => ({ name: path.relative(dir, file).split(path.sep).join('/'), file }));
}

/** Pool sizes from the split weights: held-out images capped at maxEval, every part at least one image. */
export function splitCounts(n: number, s: StudyConfig['split']): [number, number, number] {
  if (n < 3) throw new Error(`--data: ${n} image(s); the study needs at least 3 (pre-training pool, fine-tuning pool, held-out)`);
  const total = s.pretrain + s.finetune + s.eval;
  const e = Math.max(1, Math.min(s.maxEval, Math.round((n * s.eval) / total), n - 2));
  const rest = n - e;
  const f = Math.max(1, Math.min(rest - 1, Math.round((rest * s.finetune) / (s.pretrain + s.finetune))));
  return [rest - f, f, e];
}

/** The seeded split of the images into pools (names). */
export function studySplit(c: StudyConfig): StudySplit {
  const images = sourceImages(c);
  const [p, f, e] = splitCounts(images.length, c.split);
  const order = new Rng(`study-split:${c.split.seed}`).permutation(images.length);
  const names = Array.from(order, (i) => images[i].name);
  const sorted = (xs: string[]) => [...xs].sort();
  return {
    pretrain: sorted(names.slice(0, p)),
    finetune: sorted(names.slice(p, p + f)),
    eval: sorted(names.slice(p + f, p + f + e)),
    rule: `seeded shuffle (Rng 'study-split:${c.split.seed}') of the ${images.length} images, then ${p} pre-training / ${f} fine-tuning / ${e} held-out (weights ${c.split.pretrain}:${c.split.finetune}:${c.split.eval}, held-out capped at ${c.split.maxEval})`,
    source: c.data.kind === 'builtin' ? `the ${BUILTIN_IMAGES.length} built-in 256x256 images (data/)` : `--data ${c.data.dir}`,
  };
}

const TRAIN_DIR = 'a-train';
const HELD_DIR = 'b-heldout';

/**
 * Materialises RUN/data/<pool>/{a-train,b-heldout}: built-in images are copied (atomically), folder images
 * linked. Existing entries are kept (a resumed study has them already).
 */
function preparePools(c: StudyConfig, split: StudySplit, runDir: string): Record<'pretrain' | 'finetune', string> {
  const byName = new Map(sourceImages(c).map((s) => [s.name, s]));
  const place = (pool: string, sub: string, names: string[]) => {
    for (const name of names) {
      const src = byName.get(name)!;
      const ext = path.extname(src.file);
      const flat = name.replace(/\//g, '__');
      const dest = path.join(runDir, 'data', pool, sub, flat.endsWith(ext) ? flat : `${flat}${ext}`);
      if (fs.existsSync(dest)) continue;
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      if (c.data.kind === 'builtin') writeFileAtomic(dest, fs.readFileSync(src.file));
      else fs.symlinkSync(path.resolve(src.file), dest);
    }
  };
  place('pretrain', TRAIN_DIR, split.pretrain);
  place('pretrain', HELD_DIR, split.eval);
  place('finetune', TRAIN_DIR, split.finetune);
  place('finetune', HELD_DIR, split.eval);
  return { pretrain: path.resolve(runDir, 'data', 'pretrain'), finetune: path.resolve(runDir, 'data', 'finetune') };
}

async function loadHeldOut(c: StudyConfig, split: StudySplit, channels: 1 | 3): Promise<NamedImage[]> {
  const byName = new Map(sourceImages(c).map((s) => [s.name, s]));
  return Promise.all(split.eval.map(async (name) => ({ name, image: await readImage(byName.get(name)!.file, { channels }) })));
}

// ------------------------------------------------------------------------------------------ run specs

function schedule(kind: StudyLrSchedule, lr: number, steps: number, minFactor: number): ScheduleSpec {
  switch (kind) {
    case 'constant':
      return { kind: 'constant', lr };
    case 'cosine':
      return { kind: 'cosine', lr, minLr: lr * minFactor, total: steps, warmup: 0 };
    case 'multistep':
      // The EDT configs' T_PERIOD [250k, 400k, 450k, 475k] of 500k: halve at 50/80/90/95% of the run.
      return { kind: 'multistep', lr, milestones: [0.5, 0.8, 0.9, 0.95].map((f) => Math.round(f * steps)), gamma: 0.5, warmup: 0 };
  }
}

function runSpec(c: StudyConfig, r: PlannedStudyRun, pools: Record<'pretrain' | 'finetune', string>, runDir: string, evalCount: number): RunSpec {
  const lr = r.kind === 'pretrain' ? c.lr.pretrain : r.kind === 'finetune' ? c.lr.finetune : c.lr.scratch;
  const kind = r.kind === 'finetune' ? c.lr.finetuneSchedule : c.lr.schedule;
  const train: TrainOptions = {
    steps: r.steps,
    batch: c.batch,
    patch: r.patch,
    loss: 'l1',
    optimizer: { kind: c.optimizer.kind, beta1: c.optimizer.beta1, beta2: c.optimizer.beta2, eps: 1e-8, weightDecay: c.optimizer.weightDecay },
    schedule: schedule(kind, lr, r.steps, c.lr.minFactor),
    clipNorm: 0,
    evalEvery: c.evalEvery,
    ckptEvery: c.ckptEvery,
    logEvery: c.logEvery,
    seed: r.trainSeed,
    taskOrder: 'round-robin',
    freeze: 'none',
    keepCheckpoints: 1,
  };
  const common = { format: 'irlens-run/1' as const, tasks: r.tasks, data: { kind: 'folder' as const, dir: pools[r.pool] }, evalCount, evalSize: c.evalSize, train };
  if (r.kind === 'finetune') return { ...common, command: 'finetune', from: path.resolve(runDir, r.from!, FINAL_MODEL) };
  return { ...common, command: 'train', model: c.model, modelConfig: c.modelConfig };
}

// ---------------------------------------------------------------------------------------- results

export interface StudyRunRecord extends PlannedStudyRun {
  /** trained: started here; resumed: continued from a checkpoint; skipped: finished before this invocation. */
  status: 'trained' | 'resumed' | 'skipped';
  /** Training seconds (the trainer's count, evaluations and checkpoints excluded) and wall seconds of this invocation. */
  trainSeconds: number;
  wallSeconds: number;
  /** The trainer's last evaluation (held-out crops of evalSize) per task. */
  trainerEval?: Record<string, { psnr: number; ssim: number }>;
}

export interface StudyArmResult {
  target: string;
  arm: StudyArm;
  seed: number;
  psnr: number;
  ssim: number;
  /** Per held-out image. */
  perImage: { name: string; psnr: number; ssim: number }[];
}

export interface StudyStat {
  mean: number;
  std: number;
  n: number;
}

export interface StudyArmSummary {
  target: string;
  arm: StudyArm;
  psnr: StudyStat;
  ssim: StudyStat;
  /** Paired difference to scratch of the same seed (absent for scratch). */
  deltaPsnr?: StudyStat;
  deltaSsim?: StudyStat;
}

export interface StudyCurve {
  target: string;
  arm: StudyArm;
  seed: number;
  /** Step where fine-tuning starts (0 for scratch). */
  switchStep: number;
  /** [step, L1 loss] of the target task's batches, binned to at most ~300 points. */
  loss: [number, number][];
  /** [step, PSNR] of the target on the held-out crops (pre-training phase: only when the mix holds the target). */
  psnr: [number, number][];
}

export interface StudyLayerCurve {
  target: string;
  /** An arm, or 'scratch (other seed)' for the seed-to-seed baseline. */
  label: string;
  layers: string[];
  /** Per seed: CKA of each layer with the same layer of the scratch model. */
  perSeed: { seed: number; values: (number | null)[] }[];
  mean: (number | null)[];
  std: (number | null)[];
}

export interface StudyCkaMap {
  /** e.g. 'scratch', 'single' (fine-tuned models of that arm). */
  arm: StudyArm;
  srTarget: string;
  dnTarget: string;
  /** Seed-mean matrix in a full similarity result (the first seed's, with matrix = mean over seeds). */
  mean: SimilarityResult;
  perSeed: { seed: number; matrix: (number | null)[][] }[];
}

export interface StudySelfMap {
  target: string;
  /** Scratch model against itself, seed-mean matrix (the first seed's result with matrix = mean over seeds). */
  mean: SimilarityResult;
  perSeed: { seed: number; matrix: (number | null)[][] }[];
  /** CKA between the body's input (first layer) and its output (second to last layer): near 1 = the body barely transforms. */
  bodyMixing: number | null;
}

export interface StudyCka {
  settings: string;
  images: string[];
  examples: number;
  perLayer: StudyLayerCurve[];
  maps: StudyCkaMap[];
  selfMaps: StudySelfMap[];
  seconds: number;
  note?: string;
}

export interface StudyResult {
  format: typeof STUDY_FORMAT;
  config: StudyConfig;
  runDir: string;
  split: StudySplit;
  accounting: ComputeAccounting[];
  accountingRule: string;
  runs: StudyRunRecord[];
  results: StudyArmResult[];
  summary: StudyArmSummary[];
  /** No network: bicubic upscaling (SR) or the degraded input itself, on the same held-out inputs. */
  baselines: { target: string; method: string; psnr: number; ssim: number; perImage: { name: string; psnr: number; ssim: number }[] }[];
  evaluation: string;
  curves: StudyCurve[];
  cka?: StudyCka;
  notes: string[];
  provenance: {
    createdAt: string;
    command?: string;
    backend: { name: string; description?: string };
    versions: Record<string, string>;
    host: { cpus: number; platform: string; totalMemGiB: number };
    /** Wall seconds of this invocation, and the summed training seconds of every run. */
    wallSeconds: number;
    /** Every invocation on this run directory (a resumed study has several), oldest first. */
    invocations: StudyInvocation[];
    trainSeconds: number;
    ckaSeconds: number;
    evalSeconds: number;
  };
}

export function studyStat(xs: number[]): StudyStat {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, n);
  const std = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
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

function metricOptions(task: TaskSpec): MetricOptions {
  if (task.kind !== 'sr') return { cropBorder: 0, testYChannel: false, quantize: true };
  const factor = task.scale > 1 ? task.scale : Number(/x(\d+)$/.exec(task.name)?.[1] ?? 1);
  return { cropBorder: factor, testYChannel: true, quantize: true };
}

/** PSNR/SSIM of `restore` on the held-out images for `target`; inputs seeded by (target, image) only. */
async function evaluateRestorer(restore: (lq: ImageF32) => ImageF32, target: string, images: NamedImage[], size: number) {
  const task = describeTask(target);
  const deg = parseDegradation(target);
  const opts = metricOptions(task);
  const perImage: { name: string; psnr: number; ssim: number }[] = [];
  for (const { name, image } of images) {
    const clean = size > 0 && (image.height > size || image.width > size) ? centerCrop(image, Math.min(size, image.height), Math.min(size, image.width)) : image;
    const { lq, gt } = await deg.applyPair(clean, new Rng(`study-eval:${target}:${name}`));
    const restored = restore(lq);
    perImage.push({ name, psnr: psnr(restored, gt, opts), ssim: ssim(restored, gt, opts) });
  }
  return { psnr: studyStat(perImage.map((p) => p.psnr)).mean, ssim: studyStat(perImage.map((p) => p.ssim)).mean, perImage };
}

function evaluateModel(model: RestorationModel, target: string, images: NamedImage[], size: number) {
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
function evaluateInput(target: string, images: NamedImage[], size: number) {
  const scale = describeTask(target).scale;
  return evaluateRestorer((lq) => (scale > 1 ? imresize(lq, scale) : lq), target, images, size);
}

// ------------------------------------------------------------------------------------------- curves

interface LogLine {
  type: 'train' | 'eval';
  step: number;
  task?: string;
  loss?: number;
  eval?: Record<string, { psnr: number }>;
}

function readLog(dir: string): LogLine[] {
  const file = path.join(dir, LOG_FILE);
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogLine);
}

/** Mean loss per bin of `width` steps (bins by step), as [mean step, mean loss]. */
function binLoss(points: [number, number][], width: number): [number, number][] {
  const bins = new Map<number, [number, number, number]>();
  for (const [s, v] of points) {
    const k = Math.floor((s - 1) / width);
    const b = bins.get(k) ?? [0, 0, 0];
    bins.set(k, [b[0] + s, b[1] + v, b[2] + 1]);
  }
  return [...bins.values()].map(([s, v, n]) => [s / n, v / n] as [number, number]).sort((a, b) => a[0] - b[0]);
}

function runCurve(dir: string, target: string, offset: number): { loss: [number, number][]; psnr: [number, number][] } {
  const log = readLog(dir);
  return {
    loss: log.filter((l) => l.type === 'train' && l.task === target && Number.isFinite(l.loss)).map((l) => [l.step + offset, l.loss!] as [number, number]),
    psnr: log.filter((l) => l.type === 'eval' && l.eval?.[target]).map((l) => [l.step + offset, l.eval![target].psnr] as [number, number]),
  };
}

function studyCurves(c: StudyConfig, runs: PlannedStudyRun[], runDir: string): StudyCurve[] {
  const total = c.stepsPretrain + c.stepsFinetune;
  const width = Math.max(1, Math.ceil(total / 300));
  const out: StudyCurve[] = [];
  for (const r of runs) {
    if (r.kind === 'pretrain') continue;
    const target = r.target!;
    if (r.kind === 'scratch') {
      const cv = runCurve(path.join(runDir, r.id), target, 0);
      out.push({ target, arm: 'scratch', seed: r.seed, switchStep: 0, loss: binLoss(cv.loss, width), psnr: cv.psnr });
    } else {
      const pre = runCurve(path.join(runDir, r.from!), target, 0);
      const ft = runCurve(path.join(runDir, r.id), target, c.stepsPretrain);
      out.push({ target, arm: r.arm, seed: r.seed, switchStep: c.stepsPretrain, loss: binLoss([...pre.loss, ...ft.loss], width), psnr: [...pre.psnr, ...ft.psnr] });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- CKA

/** Square tiles of side `tile` (a grid, row-major, at most `max` per image) of the held-out images. */
function tiles(images: NamedImage[], tile: number, max: number): NamedImage[] {
  const out: NamedImage[] = [];
  for (const { name, image } of images) {
    const ny = Math.floor(image.height / tile);
    const nx = Math.floor(image.width / tile);
    if (ny === 0 || nx === 0) throw new Error(`study CKA: held-out image '${name}' is ${image.height}x${image.width}, smaller than the ${tile} px tile`);
    let k = 0;
    for (let y = 0; y < ny && k < max; y++) for (let x = 0; x < nx && k < max; x++, k++) out.push({ name: `${name}@${y},${x}`, image: cropImage(image, y * tile, x * tile, tile, tile) });
  }
  return out;
}

function ckaTile(c: StudyConfig, cache: Map<string, number>): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const unit = c.targets.reduce((l, t) => {
    const u = patchUnit(c, t, cache);
    return (l * u) / gcd(l, u);
  }, 1);
  return Math.max(unit, Math.round(c.cka.tile / unit) * unit);
}

function meanStd(rows: (number | null)[][]): { mean: (number | null)[]; std: (number | null)[] } {
  const len = rows[0]?.length ?? 0;
  const mean: (number | null)[] = [];
  const std: (number | null)[] = [];
  for (let i = 0; i < len; i++) {
    const xs = rows.map((r) => r[i]).filter((v): v is number => v !== null && Number.isFinite(v));
    if (xs.length === 0) {
      mean.push(null);
      std.push(null);
    } else {
      const s = studyStat(xs);
      mean.push(s.mean);
      std.push(s.std);
    }
  }
  return { mean, std };
}

function diagonal(r: SimilarityResult): (number | null)[] {
  return r.layersA.map((l, i) => {
    const j = r.layersB.indexOf(l);
    return j >= 0 ? r.matrix[i][j] : null;
  });
}

/** Runs `one` for every seed and keeps the seed-mean matrix in the first seed's result (labels say so). */
async function seedMeanMap(seeds: number[], one: (seed: number) => Promise<SimilarityResult>): Promise<{ mean: SimilarityResult; perSeed: { seed: number; matrix: (number | null)[][] }[] }> {
  const perSeed: { seed: number; matrix: (number | null)[][] }[] = [];
  let first: SimilarityResult | undefined;
  for (const seed of seeds) {
    const r = await one(seed);
    first ??= r;
    perSeed.push({ seed, matrix: r.matrix });
  }
  const f = first!;
  const mean = f.matrix.map((row, i) => row.map((_, j) => meanStd(perSeed.map((p) => [p.matrix[i][j]])).mean[0]));
  // A cell undefined in every seed keeps the first seed's flag (why it is undefined).
  const flags = f.flags.map((row, i) => row.map((fl, j) => (mean[i][j] === null ? fl ?? 'non-finite' : null)));
  const suffix = seeds.length > 1 ? ` (mean of ${seeds.length} seeds)` : '';
  const models = { a: { ...f.models.a, label: `${f.models.a.label}${suffix}` }, b: { ...f.models.b, label: `${f.models.b.label}${suffix}` } };
  return { mean: { ...f, matrix: mean, flags, models }, perSeed };
}

/** CKA of the first layer (head output = body input) with the second to last (body output) of a self map. */
function bodyMixing(r: SimilarityResult): number | null {
  const n = r.layersA.length;
  return n >= 3 ? r.matrix[0][n - 2] : null;
}

async function studyCka(c: StudyConfig, runs: PlannedStudyRun[], runDir: string, images: NamedImage[], notify: (l: string) => void): Promise<StudyCka> {
  const t0 = performance.now();
  const tile = ckaTile(c, new Map());
  const examples = tiles(images, tile, c.cka.tilesPerImage);
  if (examples.length < 4) throw new Error(`study CKA: ${examples.length} tiles of ${tile} px; the unbiased estimator needs at least 4 (more or larger held-out images)`);
  const batch = Math.max(4, Math.min(c.cka.batch, examples.length));
  const finalOf = (seed: number, arm: StudyArm, target: string) => {
    const r = runs.find((x) => x.seed === seed && x.target === target && x.arm === arm && x.kind !== 'pretrain')!;
    return path.join(runDir, r.id, FINAL_MODEL);
  };
  const similarity = async (fa: string, ta: string, la: string, fb: string, tb: string, lb: string, seed: number) => {
    const a = await loadStudyModel(fa, ta);
    try {
      const b = await loadStudyModel(fb, tb);
      try {
        return await layerSimilarity({ modelA: a, modelB: b, labelA: la, labelB: lb, taskA: ta, taskB: tb, images: examples, batch, seed: 1000 + seed });
      } finally {
        b.dispose();
      }
    } finally {
      a.dispose();
    }
  };

  const perLayer: StudyLayerCurve[] = [];
  for (const target of c.targets) {
    const labels: string[] = [...c.arms.filter((a) => a !== 'scratch'), ...(c.seeds.length > 1 ? ['scratch (other seed)'] : [])];
    for (const label of labels) {
      const perSeed: { seed: number; values: (number | null)[] }[] = [];
      let layers: string[] = [];
      for (const [i, seed] of c.seeds.entries()) {
        const other = c.seeds[(i + 1) % c.seeds.length];
        const fileA = label === 'scratch (other seed)' ? finalOf(other, 'scratch', target) : finalOf(seed, label as StudyArm, target);
        const labelA = label === 'scratch (other seed)' ? `scratch seed ${other}` : `${label} seed ${seed}`;
        const r = await similarity(fileA, target, labelA, finalOf(seed, 'scratch', target), target, `scratch seed ${seed}`, seed);
        layers = r.layersA;
        perSeed.push({ seed, values: diagonal(r) });
      }
      const { mean, std } = meanStd(perSeed.map((p) => p.values));
      perLayer.push({ target, label, layers, perSeed, mean, std });
      notify(`irlens: study CKA ${target}: ${label} vs scratch, per layer ${mean.map((v) => (v === null ? '—' : v.toFixed(2))).join(' ')}`);
    }
  }

  const maps: StudyCkaMap[] = [];
  const srTarget = c.targets.find((t) => describeTask(t).kind === 'sr');
  const dnTarget = c.targets.find((t) => describeTask(t).kind === 'dn');
  if (srTarget && dnTarget) {
    for (const arm of c.arms) {
      const m = await seedMeanMap(c.seeds, (seed) =>
        similarity(finalOf(seed, arm, srTarget), srTarget, `${arm} ${srTarget}`, finalOf(seed, arm, dnTarget), dnTarget, `${arm} ${dnTarget}`, seed),
      );
      maps.push({ arm, srTarget, dnTarget, ...m });
      notify(`irlens: study CKA map ${arm}: ${srTarget} vs ${dnTarget} (${m.mean.layersA.length} x ${m.mean.layersB.length} layers)`);
    }
  }

  // Each scratch model against itself: the representation structure of an SR and a denoising network (EDT Fig. 3).
  const selfMaps: StudySelfMap[] = [];
  for (const target of c.targets) {
    const m = await seedMeanMap(c.seeds, async (seed) => {
      const model = await loadStudyModel(finalOf(seed, 'scratch', target), target);
      try {
        return await layerSimilarity({ modelA: model, labelA: `scratch ${target}`, taskA: target, images: examples, batch, seed: 1000 + seed });
      } finally {
        model.dispose();
      }
    });
    selfMaps.push({ target, ...m, bodyMixing: bodyMixing(m.mean) });
    notify(`irlens: study CKA self ${target}: ${m.mean.layersA.length} layers`);
  }
  return {
    settings: `debiased CKA (unbiased HSIC1, minibatch ratio of sums), linear kernel, features flattened per tile; ${examples.length} tiles of ${tile}x${tile} px from the ${images.length} held-out images (grid, at most ${c.cka.tilesPerImage} per image), minibatches of ${batch}; each model gets its own task's degradation of the same clean tiles`,
    images: examples.map((e) => e.name),
    examples: examples.length,
    perLayer,
    maps,
    selfMaps,
    seconds: (performance.now() - t0) / 1000,
    ...(srTarget && dnTarget ? {} : { note: 'no SR/denoising target pair among the targets: no SR vs DN maps' }),
  };
}

// --------------------------------------------------------------------------------------------- run

export interface StudyOptions {
  resume?: boolean;
  /** One-line progress notices (runs, ETA, CKA). */
  notify?: (line: string) => void;
  /** Progress bar of each training run (TTY only). */
  progress?: boolean;
  /** Write reports/<base>.{html,json}; default reports/pretrain-study-<arch>. Pass null to write nothing. */
  out?: string | null;
  /** The command line, for the report's provenance. */
  command?: string;
  /** Called after each run (tests). */
  onRun?: (r: StudyRunRecord) => void;
}

export function defaultStudyRunDir(arch: StudyArch): string {
  return path.join('runs', `pretrain-study-${arch}`);
}

export function defaultStudyOut(arch: StudyArch): string {
  return path.join('reports', `pretrain-study-${arch}`);
}

export interface StudyInvocation {
  startedAt: string;
  wallSeconds: number;
  trained: number;
  resumed: number;
  skipped: number;
  command?: string;
}

const INVOCATIONS_FILE = 'invocations.json';

/** Appends this invocation to RUN/invocations.json (rewritten atomically) and returns the whole list. */
function recordInvocation(runDir: string, inv: StudyInvocation): StudyInvocation[] {
  const file = path.join(runDir, INVOCATIONS_FILE);
  const list = fs.existsSync(file) ? readJsonFile<StudyInvocation[]>(file, 'study') : [];
  list.push(inv);
  writeFileAtomic(file, `${JSON.stringify(list, null, 2)}\n`);
  return list;
}

function runStatus(dir: string): 'done' | 'partial' | 'new' {
  if (!fs.existsSync(path.join(dir, RUN_FILE))) return 'new';
  const st = readTrainerState(dir);
  if (st?.done && fs.existsSync(path.join(dir, FINAL_MODEL))) return 'done';
  return 'partial';
}

function firstDifference(a: unknown, b: unknown, at = ''): string | undefined {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
      if (d) return d;
    }
  }
  return `${at || 'config'} (${JSON.stringify(b)} in the study, ${JSON.stringify(a)} now)`;
}

/** Reads the configuration stored by a study run directory (for --resume). */
export function readStudyConfig(runDir: string): StudyConfig {
  const file = path.join(runDir, STUDY_FILE);
  if (!fs.existsSync(file)) throw new Error(`--resume: '${runDir}' holds no study (${STUDY_FILE} missing)`);
  const c = readJsonFile<{ config: StudyConfig }>(file, '--resume').config;
  if (c?.format !== STUDY_CONFIG_FORMAT) throw new Error(`--resume: '${file}' is not an irlens study`);
  return c;
}

function fmtDuration(sec: number): string {
  if (!Number.isFinite(sec)) return '?';
  const m = Math.floor(sec / 60);
  const s = Math.round(sec % 60);
  return m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

/** Seconds per step by run signature (tasks and patch), learnt from the runs done so far, for the ETA. */
class Eta {
  private readonly rate = new Map<string, number>();
  private all: number[] = [];
  private key(r: PlannedStudyRun) {
    return `${r.tasks.join('+')}@${r.patch}`;
  }
  record(r: PlannedStudyRun, secPerStep: number) {
    if (!(secPerStep > 0)) return;
    this.rate.set(this.key(r), secPerStep);
    this.all.push(secPerStep);
  }
  estimate(rest: PlannedStudyRun[]): number {
    if (this.all.length === 0) return NaN;
    const fallback = this.all.reduce((a, b) => a + b, 0) / this.all.length;
    // 10% on top for evaluations and checkpoints.
    return 1.1 * rest.reduce((s, r) => s + r.steps * (this.rate.get(this.key(r)) ?? fallback), 0);
  }
}

/**
 * Runs (or resumes) the whole study in `runDir` and returns its result; writes <out>.json and <out>.html unless
 * `out` is null. Everything checkable is checked before anything is written.
 */
export async function runStudy(config: StudyConfig, runDir: string, opts: StudyOptions = {}): Promise<StudyResult> {
  const tStart = performance.now();
  const notify = opts.notify ?? (() => {});
  validateStudyConfig(config);
  const studyFile = path.join(runDir, STUDY_FILE);
  if (opts.resume) {
    const stored = readStudyConfig(runDir);
    const diff = firstDifference(config, stored);
    if (diff) throw new Error(`--resume: settings differ from the study in '${runDir}': ${diff}; a resumed study keeps its settings`);
  } else if (fs.existsSync(studyFile)) {
    throw new Error(`--run-dir '${runDir}' already holds a study; pass --resume to continue it or choose another directory`);
  }
  const split = studySplit(config);
  const plan = planStudy(config);
  checkPlanFits(config, plan);
  const accounting = computeAccounting(config, plan);
  const out = opts.out === undefined ? defaultStudyOut(config.arch) : opts.out;

  fs.mkdirSync(runDir, { recursive: true });
  if (!opts.resume) writeFileAtomic(studyFile, `${JSON.stringify({ config, split, plan, createdAt: new Date().toISOString() }, null, 2)}\n`);
  const pools = preparePools(config, split, runDir);
  const totalSteps = plan.reduce((s, r) => s + r.steps, 0);
  notify(
    `irlens: study ${config.arch} (${config.model}, preset ${config.preset}): ${plan.length} runs, ${totalSteps.toLocaleString('en-US')} steps; ` +
      `split ${split.pretrain.length}/${split.finetune.length}/${split.eval.length} images (pre-training/fine-tuning/held-out)`,
  );

  const eta = new Eta();
  const records: StudyRunRecord[] = [];
  for (const [i, r] of plan.entries()) {
    const dir = path.join(runDir, r.id);
    const status = runStatus(dir);
    const label = `[${i + 1}/${plan.length}] ${r.id} (${r.tasks.join('+')}, ${r.steps} steps, patch ${r.patch})`;
    let record: StudyRunRecord;
    if (status === 'done') {
      const st = readTrainerState(dir)!;
      record = { ...r, status: 'skipped', trainSeconds: st.elapsedSec, wallSeconds: 0, trainerEval: st.lastEval };
      notify(`irlens: ${label}: finished before, skipped`);
    } else {
      notify(`irlens: ${label}: ${status === 'partial' ? 'resuming' : 'training'}`);
      const w0 = performance.now();
      const spec = runSpec(config, r, pools, runDir, split.eval.length);
      const res = await runTraining(spec, dir, { resume: status === 'partial', progress: opts.progress });
      const wall = (performance.now() - w0) / 1000;
      const st = readTrainerState(dir);
      record = { ...r, status: status === 'partial' ? 'resumed' : 'trained', trainSeconds: st?.elapsedSec ?? wall, wallSeconds: wall, trainerEval: res.eval };
      if (res.stepsPerSec > 0) eta.record(r, wall / Math.max(1, r.steps - (res.resumedFrom ?? 0)));
      const ev = res.eval ? Object.entries(res.eval).map(([t, m]) => `${t} ${m.psnr.toFixed(2)} dB`).join(', ') : '';
      const left = eta.estimate(plan.slice(i + 1));
      notify(`irlens: ${label}: done in ${fmtDuration(wall)} (${res.stepsPerSec.toFixed(2)} steps/s; ${ev}); ETA of the training ${fmtDuration(left)}`);
    }
    records.push(record);
    opts.onRun?.(record);
  }

  // Final evaluation of every finished target model on the whole held-out images.
  const e0 = performance.now();
  const channels = 3;
  const heldOut = await loadHeldOut(config, split, channels);
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
    baselines.push({ target, method: describeTask(target).scale > 1 ? 'bicubic upscaling of the input' : 'the degraded input itself', ...(await evaluateInput(target, heldOut, config.finalEvalSize)) });
  const evalSeconds = (performance.now() - e0) / 1000;
  const summary = summariseStudy(config, results);
  for (const s of summary)
    notify(
      `irlens: study ${s.target} ${s.arm}: PSNR ${s.psnr.mean.toFixed(2)} ± ${s.psnr.std.toFixed(2)} dB, SSIM ${s.ssim.mean.toFixed(4)}` +
        (s.deltaPsnr ? ` (vs scratch ${s.deltaPsnr.mean >= 0 ? '+' : ''}${s.deltaPsnr.mean.toFixed(2)} ± ${s.deltaPsnr.std.toFixed(2)} dB)` : ''),
    );

  for (const b of baselines) notify(`irlens: study ${b.target} input baseline (${b.method}): PSNR ${b.psnr.toFixed(2)} dB, SSIM ${b.ssim.toFixed(4)}`);
  const cka = config.cka.enabled ? await studyCka(config, plan, runDir, heldOut, notify) : undefined;
  const invocations = recordInvocation(runDir, {
    startedAt: new Date(Date.now() - (performance.now() - tStart)).toISOString(),
    wallSeconds: (performance.now() - tStart) / 1000,
    trained: records.filter((r) => r.status === 'trained').length,
    resumed: records.filter((r) => r.status === 'resumed').length,
    skipped: records.filter((r) => r.status === 'skipped').length,
    ...(opts.command ? { command: opts.command } : {}),
  });
  const backend = backendInfo();
  const result: StudyResult = {
    format: STUDY_FORMAT,
    config,
    runDir: path.resolve(runDir),
    split,
    accounting,
    accountingRule:
      'equal compute in optimisation steps: every pre-trained arm gets stepsPretrain steps of pre-training (all tasks of its mix together, ' +
      'round-robin, one task per batch) and stepsFinetune steps of fine-tuning on the target; scratch gets stepsPretrain + stepsFinetune steps on the ' +
      'target alone, on the fine-tuning pool. Batch size is the same everywhere; patch sizes (and so FLOPs per step) differ between tasks and mixes ' +
      '(see the patch column), so equal steps are not exactly equal FLOPs.',
    runs: records,
    results,
    summary,
    baselines,
    evaluation:
      `final models evaluated on the ${heldOut.length} held-out images (${config.finalEvalSize > 0 ? `centre crops of at most ${config.finalEvalSize} px` : 'whole images'}), ` +
      'inputs degraded with noise/rain seeded by (target, image) only, so every arm and seed sees the same inputs; PSNR/SSIM with BasicSR conventions ' +
      '(8-bit quantised outputs; SR: Y channel, border of the scale cropped; others: RGB, no crop). Curves: the trainer\'s evaluations on the same ' +
      `held-out images (${config.evalSize > 0 ? `centre crops of at most ${config.evalSize} px` : 'whole'}), noise seeded per run.`,
    curves: studyCurves(config, plan, runDir),
    ...(cka ? { cka } : {}),
    notes: studyNotes(config),
    provenance: {
      createdAt: new Date().toISOString(),
      ...(opts.command ? { command: opts.command } : {}),
      backend: { name: backend?.name ?? tf.getBackend(), description: backend?.description },
      versions: { irlens: IRLENS_VERSION, node: process.version, ...Object.fromEntries(Object.entries(tf.version).map(([k, v]) => [k, String(v)])) },
      host: { cpus: os.cpus().length, platform: `${os.platform()} ${os.arch()}`, totalMemGiB: Math.round(os.totalmem() / 2 ** 30) },
      wallSeconds: (performance.now() - tStart) / 1000,
      invocations,
      trainSeconds: records.reduce((s, r) => s + r.trainSeconds, 0),
      ckaSeconds: cka?.seconds ?? 0,
      evalSeconds,
    },
  };
  if (out !== null) {
    const files = await writeStudyReport(result, out);
    notify(`irlens: study report ${files.html}, ${files.json}`);
  }
  return result;
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

/** What the study at this preset's scale can and cannot show. */
export function studyNotes(c: StudyConfig): string[] {
  const notes: string[] = [];
  if (c.preset !== 'paper') {
    notes.push(
      `Scale: ${c.model} (tiny), ${c.stepsPretrain} pre-training + ${c.stepsFinetune} fine-tuning steps of batch ${c.batch}, ${c.seeds.length} seed(s), ` +
        `${c.data.kind === 'builtin' ? 'ten 256x256 built-in images' : 'the images of --data'} split into small pools. This is minutes of CPU training; ` +
        'the paper pre-trains EDT-B for 500k iterations on 200k ImageNet images and fine-tunes on DIV2K+Flickr2K.',
      'What it can show: that the pipeline works end to end (equal-compute arms, multi-task pre-training with shared bodies, fine-tuning with reused or new heads, ' +
        'held-out evaluation, per-layer and layer x layer CKA), and differences between arms when they exceed the seed-to-seed spread.',
      'What it cannot show: the paper\'s result. Differences between arms at this scale may be within noise (compare them with the ± std over seeds and the ' +
        'per-seed values in the JSON); the tiny models are far from convergence, the pre-training pool is a handful of images, not ImageNet, and with so few ' +
        'steps a pre-trained model mostly differs from scratch by its learning-rate schedule and data. The CKA plots show the method working, not the paper\'s finding.',
    );
  } else {
    notes.push(
      'Paper settings (EDT, arXiv 2112.10175, and its official configs): EDT-B, pre-training on ImageNet (200k images) for 500k iterations, SR input patches ' +
        '48x48, denoising/deraining inputs 192x192, Adam (0.9, 0.99), lr 2e-4 halved at 250k/400k/450k/475k, fine-tuning at lr 1e-5 (500k iterations for SR, ' +
        '800k for DN in the official configs; one stepsFinetune here), 4 images per GPU (batch 32 assumes 8 GPUs). Give --data with large images: the SR x2/x3/x4 ' +
        'mix needs a patch that is a multiple of every scale\'s unit.',
      'Differences from the paper: one GT patch size per run (the trainer draws every task of a mix at one size, so SR x2 inputs in the x2/x3/x4 mix are larger ' +
        'than 48), the pools come from one folder split by --split, and the scratch arm trains for pre-train + fine-tune steps (equal compute) instead of the ' +
        'paper\'s from-scratch schedule.',
    );
  }
  notes.push(
    'What the paper found (for comparison): pre-training helps SR much more than denoising (denoising gains 0.02-0.11 dB); multi-related-task pre-training is the ' +
      'most effective and data-efficient; CKA shows pre-training mostly changes the higher layers of SR models (more local information there) and barely touches denoising models.',
  );
  return notes;
}

/** The study JSON without the bulky parts, for quick looks (notebooks). */
export function readStudyResult(file: string): StudyResult {
  const r = readJsonFile<StudyResult>(file, 'study report');
  if (r.format !== STUDY_FORMAT) throw new Error(`study report: '${file}' is not an irlens study report (${STUDY_FORMAT})`);
  return r;
}
