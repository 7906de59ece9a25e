/**
 * The study's settings: formats, arms, presets (smoke / cpu / paper) per architecture, command-line overrides and
 * the validation of everything checkable before training. What each architecture trains comes from its family
 * descriptor's `study` slot (src/models/family.ts).
 */
import * as path from 'node:path';
import '../../models'; // registers the families whose `study` slots list the architectures
import { parseDegradation } from '../../degradations';
import { getFamily, hasFamily, listFamilies, type Config, type OptimizerSettings, type StudyDefaults } from '../../models/family';
import { resolveSpec } from '../../models/registry';
import type { TaskSpec } from '../../models/model';
import { ADAM_099, checkInt } from '../experiment';
import { createTaskModel, describeTask } from '../multitask';

/** A family with a `study` slot in its descriptor (src/models/family.ts). */
export type StudyArch = string;

/** The architectures the study can run: every registered family whose descriptor has a `study` slot. */
export function studyArchs(): string[] {
  return listFamilies()
    .filter((f) => f.study)
    .map((f) => f.name);
}

/** What `arch` trains in the study; a one-line error naming --arch for a family without a study slot. */
export function studyDefaults(arch: string): StudyDefaults {
  const f = hasFamily(arch) ? getFamily(arch) : undefined;
  if (!f?.study) throw new Error(`--arch: expected one of ${studyArchs().join(', ')}, got '${arch}'`);
  return f.study;
}
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
  optimizer: OptimizerSettings;
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

export function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/** The settings of a preset for an architecture; `targets` changes the task mixes that depend on them. */
export function studyPreset(preset: StudyPreset, arch: StudyArch = 'edt', targets?: string[]): StudyConfig {
  const a = studyDefaults(arch);
  if (!(STUDY_PRESETS as readonly string[]).includes(preset)) throw new Error(`--preset: expected one of ${STUDY_PRESETS.join(', ')}, got '${preset}'`);
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
    optimizer: { ...ADAM_099 },
    data: { kind: 'builtin' },
    split: { pretrain: 5, finetune: 2, eval: 3, maxEval: 20, seed: 0 },
  };
  // The small presets' patches and learning rates (tiny networks learn fast at 4e-3).
  const small = () => ({
    patch: { lq: 24, same: 64 },
    lr: { pretrain: 4e-3, finetune: 2e-3, scratch: 4e-3, schedule: 'cosine' as const, finetuneSchedule: 'cosine' as const, minFactor: 0.01 },
    logEvery: 1,
  });
  switch (preset) {
    case 'smoke':
      return {
        ...base,
        ...small(),
        seeds: [0],
        stepsPretrain: 6,
        stepsFinetune: 4,
        batch: 2,
        evalEvery: 2,
        evalSize: 96,
        finalEvalSize: 128,
        ckptEvery: 0,
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
        ...small(),
        seeds: [0, 1, 2],
        stepsPretrain: 240,
        stepsFinetune: 120,
        batch: 4,
        evalEvery: 40,
        evalSize: 128,
        finalEvalSize: 0,
        ckptEvery: 60,
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
  studyDefaults(c.arch);
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
