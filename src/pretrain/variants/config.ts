/**
 * Settings of an architectural ablation (`ablate variants`): which family, preset and task, which variants
 * (the family descriptor's `variants`, config deltas applied on top of the studied preset), the seeds, and one
 * training budget that every variant gets (same steps x batch x patch, same data order per seed). Presets
 * smoke / cpu / paper, overrides from the command line, and every check that needs no training.
 */
import * as path from 'node:path';
import '../../models'; // registers the families and their variants
import { parseDegradation } from '../../degradations';
import { getFamily, hasFamily, listFamilies, variantDelta, type Config, type OptimizerSettings, type VariantTraining } from '../../models/family';
import { defaultLoss, inspectModel, resolveSpec } from '../../models/registry';
import { ADAM_099, checkInt } from '../experiment';
import { SCHEDULE_NAMES, type ScheduleName } from '../optim';
import { parseLossName, type LossName } from '../losses';
import { createTaskModel, describeTask } from '../multitask';

export const VARIANT_PRESETS = ['smoke', 'cpu', 'paper'] as const;
export type VariantPreset = (typeof VARIANT_PRESETS)[number];
export const VARIANTS_CONFIG_FORMAT = 'irlens-variants-config/1';
export const VARIANTS_FORMAT = 'irlens-variants/1';
export const VARIANTS_FILE = 'variants.json';

export interface VariantsConfig {
  format: typeof VARIANTS_CONFIG_FORMAT;
  preset: VariantPreset;
  /** Family name. */
  arch: string;
  /** Preset (or family) the variants are applied to, and official hyper-parameters overriding it. */
  model: string;
  modelConfig: Config;
  task: string;
  /** Variant names of the family, the baseline among them. */
  variants: string[];
  baseline: string;
  seeds: number[];
  steps: number;
  batch: number;
  /** Training patches: SR input side `lq` (GT = lq x scale), GT side `same` of same-size tasks. */
  patch: { lq: number; same: number };
  loss: LossName;
  lr: { peak: number; schedule: ScheduleName; minFactor: number };
  optimizer: OptimizerSettings;
  evalEvery: number;
  /** Trainer's evaluation crops (curves); the final evaluation crop (0 = whole held-out images). */
  evalSize: number;
  finalEvalSize: number;
  ckptEvery: number;
  logEvery: number;
  data: { kind: 'builtin' } | { kind: 'folder'; dir: string };
  /** Held-out images (at most `eval`, at least one training image left), split by a seeded shuffle. */
  split: { eval: number; seed: number };
  /** Bootstrap replicates of the paired intervals and the test level. */
  bootstrap: number;
  alpha: number;
}

/** A variant as the study trains it. */
export interface ResolvedVariant {
  name: string;
  description: string;
  /** The variant's overrides on top of the studied preset (config deltas of the family descriptor). */
  delta: Config;
  /** modelConfig + delta: what the run trains (before the task adapter). */
  modelConfig: Config;
  training: VariantTraining;
  /** Parameters of the trained (task) network, from a shape-only build. */
  params: number;
}

/** The families with variants. */
export function variantArchs(): string[] {
  return listFamilies()
    .filter((f) => f.variants && Object.keys(f.variants).length > 0)
    .map((f) => f.name);
}

function familyOf(arch: string) {
  const f = hasFamily(arch) ? getFamily(arch) : undefined;
  if (!f?.variants || Object.keys(f.variants).length === 0) throw new Error(`--arch: expected one of ${variantArchs().join(', ')}, got '${arch}'`);
  return f;
}

/** Default task: SR x2 for true-SR families (SwinIR, EDT), Gaussian denoising sigma 25 for same-size ones. */
export function defaultVariantTask(arch: string): string {
  const sr = familyOf(arch).study?.sr(2);
  return sr && /^sr-x\d$/.test(sr) ? sr : 'dn-25';
}

/** The family's paper-scale training (its descriptor's `training.paper`), its schedule name checked here. */
function paperTraining(arch: string): Pick<VariantsConfig, 'steps' | 'batch' | 'patch' | 'lr' | 'optimizer'> {
  const t = getFamily(arch).training?.paper;
  if (!t) throw new Error(`--preset paper: no paper training settings for '${arch}'`);
  const schedule = t.lr.schedule;
  if (!(SCHEDULE_NAMES as readonly string[]).includes(schedule)) throw new Error(`${arch} training.paper.lr.schedule: expected one of ${SCHEDULE_NAMES.join(', ')}, got '${schedule}'`);
  return { steps: t.steps, batch: t.batch, patch: { ...t.patch }, lr: { ...t.lr, schedule: schedule as ScheduleName }, optimizer: { ...t.optimizer } };
}

/** The settings of a preset (variants and baseline filled in by buildVariantsConfig). */
export function variantsPreset(preset: VariantPreset, arch: string, task?: string): VariantsConfig {
  const f = familyOf(arch);
  if (!(VARIANT_PRESETS as readonly string[]).includes(preset)) throw new Error(`--preset: expected one of ${VARIANT_PRESETS.join(', ')}, got '${preset}'`);
  const model = preset === 'paper' ? f.study?.paper ?? f.name : f.study?.tiny ?? f.name;
  const modelConfig = preset === 'paper' ? f.study?.paperConfig ?? {} : f.study?.tinyConfig ?? {};
  const base = {
    format: VARIANTS_CONFIG_FORMAT as typeof VARIANTS_CONFIG_FORMAT,
    preset,
    arch,
    model,
    modelConfig: { ...modelConfig },
    task: task ?? defaultVariantTask(arch),
    variants: [] as string[],
    baseline: '',
    loss: parseLossName(defaultLoss(f.name), `${f.name} training.loss`),
    data: { kind: 'builtin' as const },
    alpha: 0.05,
  };
  const adam = { ...ADAM_099 };
  switch (preset) {
    case 'smoke':
      return {
        ...base,
        seeds: [0, 1],
        steps: 3,
        batch: 2,
        patch: { lq: 24, same: 32 },
        lr: { peak: 2e-3, schedule: 'cosine', minFactor: 0.01 },
        optimizer: adam,
        evalEvery: 0,
        evalSize: 48,
        finalEvalSize: 64,
        ckptEvery: 0,
        logEvery: 1,
        split: { eval: 2, seed: 0 },
        bootstrap: 200,
      };
    case 'cpu':
      // Measured on the shared 2-core machine (wasm, other jobs running): swinir-tiny SR x2 at 48 px GT, 300 steps
      // per run in 65-146 s, 2 variants x 3 seeds in 10.5 min wall; restormer-tiny DN at 64 px, 150 steps in 60-120 s
      // (300 steps: ~2-4 min). So 2-3 variants x 3 seeds stay under 45 minutes. The report's notes say what it shows.
      return {
        ...base,
        seeds: [0, 1, 2],
        steps: 300,
        batch: 4,
        patch: { lq: 24, same: 64 },
        lr: { peak: 4e-3, schedule: 'cosine', minFactor: 0.01 },
        optimizer: adam,
        evalEvery: 100,
        evalSize: 128,
        finalEvalSize: 0,
        ckptEvery: 50,
        logEvery: 1,
        split: { eval: 3, seed: 0 },
        bootstrap: 2000,
      };
    case 'paper':
      return { ...base, seeds: [0, 1, 2], ...paperTraining(arch), evalEvery: 10_000, evalSize: 0, finalEvalSize: 0, ckptEvery: 10_000, logEvery: 100, split: { eval: 20, seed: 0 }, bootstrap: 2000 };
  }
}

/** Command-line overrides of a preset. */
export interface VariantsOverrides {
  model?: string;
  task?: string;
  variants: string[];
  baseline?: string;
  seeds?: number;
  steps?: number;
  batch?: number;
  data?: string;
  evalImages?: number;
}

export function buildVariantsConfig(preset: VariantPreset, arch: string, o: VariantsOverrides): VariantsConfig {
  const c = variantsPreset(preset, arch, o.task);
  checkInt(o.seeds, '--seeds', 2);
  checkInt(o.steps, '--steps', 1);
  checkInt(o.batch, '--batch', 1);
  checkInt(o.evalImages, '--eval-images', 1);
  if (o.model !== undefined) c.model = o.model;
  c.variants = o.variants;
  c.baseline = o.baseline ?? o.variants[0] ?? '';
  if (o.seeds !== undefined) c.seeds = Array.from({ length: o.seeds }, (_, i) => i);
  if (o.steps !== undefined) c.steps = o.steps;
  if (o.batch !== undefined) c.batch = o.batch;
  if (o.data !== undefined) c.data = { kind: 'folder', dir: path.resolve(o.data) };
  if (o.evalImages !== undefined) c.split = { ...c.split, eval: o.evalImages };
  validateVariantsConfig(c);
  return c;
}

/** The network config of a task's single-task network (the family adapter's overrides, as createTaskModel does). */
function taskConfig(model: string, config: Config, task: string): Config {
  const spec = describeTask(task);
  const { family, config: resolved } = resolveSpec(model, config);
  const adapter = family.tasks;
  if (adapter?.nativeConfigFor) return { ...config, ...adapter.nativeConfigFor(resolved, [spec]) };
  const own = inspectModel(model, config).tasks;
  if (own.some((t) => t.name === spec.name) || own.every((t) => t.scale === spec.scale)) return config;
  return adapter ? { ...config, ...adapter.configFor(resolved, spec) } : config;
}

/** Each variant of the config: its delta on the studied preset, merged config and parameter count. */
export function resolveVariants(c: VariantsConfig): ResolvedVariant[] {
  const f = familyOf(c.arch);
  const { family, config: base } = resolveSpec(c.model, c.modelConfig);
  if (family.name !== f.name) throw new Error(`--model: '${c.model}' is a ${family.name} model, not ${f.name} (--arch ${c.arch})`);
  return c.variants.map((name) => {
    const delta = variantDelta(f, name, base);
    const modelConfig = { ...c.modelConfig, ...delta };
    let params: number;
    try {
      params = inspectModel(c.model, taskConfig(c.model, modelConfig, c.task)).params;
    } catch (e) {
      throw new Error(`--variants: ${name} on ${c.model} is not a valid network (${(e as Error).message.split('\n')[0]})`);
    }
    const v = f.variants![name];
    return { name, description: v.description, delta, modelConfig, training: { ...(v.training ?? {}) }, params };
  });
}

/** Everything checkable before training: names, counts, the task, that every variant builds for the task. */
export function validateVariantsConfig(c: VariantsConfig): void {
  if (c.format !== VARIANTS_CONFIG_FORMAT) throw new Error(`variants config: format '${c.format}' is not ${VARIANTS_CONFIG_FORMAT}`);
  familyOf(c.arch);
  if (c.variants.length < 2) throw new Error('--variants: expected at least two comma-separated variant names (the first is the baseline unless --baseline)');
  if (new Set(c.variants).size !== c.variants.length) throw new Error(`--variants: repeated name in ${c.variants.join(',')}`);
  if (!c.variants.includes(c.baseline)) throw new Error(`--baseline: '${c.baseline}' is not among --variants ${c.variants.join(',')}`);
  if (c.seeds.length < 2) throw new Error('--seeds: expected at least 2 (paired differences need two seeds)');
  for (const [k, v] of [['--steps', c.steps], ['--batch', c.batch]] as const) checkInt(v, k, 1);
  try {
    parseDegradation(c.task);
  } catch (e) {
    throw new Error(`--task: '${c.task}' is not a synthetic task (${(e as Error).message.split('\n')[0]})`);
  }
  for (const v of resolveVariants(c)) {
    try {
      createTaskModel(c.model, describeTask(c.task), { config: v.modelConfig, seed: 0 }).dispose();
    } catch (e) {
      throw new Error(`--task: ${c.model} with variant ${v.name} cannot train '${c.task}' (${(e as Error).message.split('\n')[0]})`);
    }
  }
}
