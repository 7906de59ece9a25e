/**
 * Family descriptors: everything irlens knows about one architecture family, in one object defined in the
 * family's own file and registered by one `registerFamily` call (src/models/index.ts imports each family file).
 * Layers above read it instead of keeping per-family tables: the multi-task adapter (`tasks`), training
 * defaults (`training`), the pre-training study (`study`), and the coming official-weights and ablation-variant
 * lists. Adding a family = one file + one import line.
 *
 * Builders over the registry (resolveSpec, createModel, inspectModel, countParameters) are in registry.ts.
 */
import { closestNames } from '../util/closest';
import type { RestorationModel, TaskSpec } from './model';

export type Config = Record<string, unknown>;

export interface PresetDef {
  name: string;
  family: string;
  /** Short description: task, paper configuration. */
  description: string;
  /** Overrides of the family defaults. */
  config: Config;
  /** Parameter count of the official implementation for this configuration, when published/measured. */
  officialParams?: number;
}

/** A preset as a family lists it (its family is the descriptor's). */
export type FamilyPreset = Omit<PresetDef, 'family'>;

/**
 * How a family becomes one network per task (src/pretrain/multitask.ts ties their bodies), or, with native
 * branches (EDT), one network with a branch per task.
 */
export interface TaskAdapter {
  /** state_dict key prefixes (module paths) of the task-specific parts (heads and tails). */
  headPrefixes(config: Config): string[];
  /** Config overrides for the single-task network of `task` (e.g. SwinIR's upscale); throws when impossible. */
  configFor(config: Config, task: TaskSpec): Config;
  /** Families with native task branches (EDT): config overrides giving exactly one branch per task. */
  nativeConfigFor?(config: Config, tasks: TaskSpec[]): Config;
}

/** configFor of same-size families: one network per task, only for scale-1 tasks. */
export function sameSizeOnly(family: string): TaskAdapter['configFor'] {
  return (_c, task) => {
    if (task.scale !== 1) throw new Error(`${family} restores same-size images and cannot train task '${task.name}' (scale ${task.scale})`);
    return {};
  };
}

/**
 * Training defaults. Each is optional: without it, registry.ts derives the value (loss 'l1'; patch multiple
 * from the model's paddingRule() and scale; default patch = the smallest multiple of that >= 64).
 */
export interface TrainingDefaults {
  /** Default loss, a name of src/pretrain/losses (parsed there: models does not import pretrain). */
  loss?: string;
  /** Multiple (GT pixels) every training patch of this config must be. */
  patchMultiple?(config: Config): number;
  /** A valid default training patch (GT pixels). */
  defaultPatch?(config: Config): number;
  /** Paper-scale training (the paper and official option files): the `paper` preset of `ablate variants`. */
  paper?: PaperTraining;
}

/** A family's paper-scale training budget and optimiser, as its official training options set them. */
export interface PaperTraining {
  steps: number;
  batch: number;
  /** Training patches: SR input side `lq` (GT = lq x scale), GT side `same` of same-size tasks. */
  patch: { lq: number; same: number };
  /** `schedule` is a name of src/pretrain/optim SCHEDULE_NAMES (checked there: models does not import pretrain). */
  lr: { peak: number; schedule: string; minFactor: number };
  optimizer: OptimizerSettings;
}

/** Adam or AdamW with its betas and (decoupled, AdamW) weight decay; eps is the trainer's 1e-8. */
export interface OptimizerSettings {
  kind: 'adam' | 'adamw';
  beta1: number;
  beta2: number;
  weightDecay: number;
}

/** What the family trains in the EDT pre-training study (src/pretrain/study/). */
export interface StudyDefaults {
  /** Preset and config overrides for the smoke/cpu study presets. */
  tiny: string;
  tinyConfig: Config;
  /** Preset and config overrides of the paper-size study. */
  paper: string;
  paperConfig: Config;
  /** Name of the SR task for this family: true SR (`sr-x2`), or pre-upsampled SR for same-size networks (`sr-up-x2`). */
  sr(scale: number): string;
}

/** One downloadable official checkpoint (filled by the official-weights work; empty by default). */
export interface OfficialWeightsEntry {
  /** File stem, e.g. 'SwinIR-M_x2'. */
  name: string;
  /** File name as published. */
  file: string;
  /** The preset whose config the checkpoint fits. */
  preset: string;
  /** Task branch it restores. */
  task: string;
  /** Page that publishes it (release page, model card, drive folder). */
  source: string;
  /** Direct download URL, when there is one. */
  url?: string;
  sizeBytes?: number;
  sha256?: string;
  /** Key of the state_dict inside the file ('params', 'params_ema', 'state_dict'), when nested. */
  paramKey?: string;
  note?: string;
}

/** What a variant changes in training rather than in the network (Restormer's progressive patches). */
export interface VariantTraining {
  /** Progressive patch/batch stages scaled from the family's official schedule (trainer.scaleProgressive). */
  progressive?: boolean;
}

/** An ablation variant: a named config change of the family (empty by default). */
export interface VariantDef {
  description: string;
  /**
   * Config overrides applied on top of the preset/family config being studied; a function of that resolved
   * config where the change is relative to it (e.g. "4 RSTBs of the preset's width and depth").
   */
  config: Config | ((base: Readonly<Config>) => Config);
  /** A training change (same steps, different patches), when the variant is one. */
  training?: VariantTraining;
  officialParams?: number;
}

/**
 * `config` without the non-official ablation switches that hold their default value: a model's `config` stays
 * the official constructor's arguments (what checkpoints store and parity tests compare), and a switch appears
 * only when a variant turned it. Loading fills absent switches from the family defaults.
 */
export function withoutDefaultSwitches<T extends object>(config: T, switches: Partial<T>): T {
  const out = { ...config } as Record<string, unknown>;
  for (const [k, v] of Object.entries(switches)) if (JSON.stringify(out[k]) === JSON.stringify(v)) delete out[k];
  return out as T;
}

/** The config overrides of a family's variant on top of the resolved base config; one-line error for an unknown name. */
export function variantDelta(family: FamilyDescriptor, name: string, base: Readonly<Config>): Config {
  const v = family.variants?.[name];
  if (!v) throw new Error(`--variants: ${family.name} has no variant '${name}' (variants: ${Object.keys(family.variants ?? {}).join(', ') || 'none'})`);
  return typeof v.config === 'function' ? v.config(base) : { ...v.config };
}

export interface FamilyDescriptor {
  name: string;
  /** Every accepted config key with its default (the official defaults and key names). */
  defaults: Config;
  /** Extra validation of a merged config (one-line error on nonsense values). */
  validate?(config: Config): void;
  /** Builds an untrained model; parameters are drawn from the init seed that createModel sets. */
  build(config: Config): RestorationModel;
  presets?: FamilyPreset[];
  /** Multi-task split; families without one train as single-task networks only. */
  tasks?: TaskAdapter;
  training?: TrainingDefaults;
  /** Present for families the pre-training study can run. */
  study?: StudyDefaults;
  officialWeights?: OfficialWeightsEntry[];
  variants?: Record<string, VariantDef>;
}

/** Former name of the descriptor type. */
export type FamilyDef = FamilyDescriptor;

const families = new Map<string, FamilyDescriptor>();
const presets = new Map<string, PresetDef>();

/** Registers a family and its presets; a family or preset name that is taken is an error. */
export function registerFamily(def: FamilyDescriptor): void {
  if (families.has(def.name)) throw new Error(`family '${def.name}' is already registered`);
  for (const p of def.presets ?? []) if (presets.has(p.name)) throw new Error(`preset '${p.name}' is already registered`);
  families.set(def.name, def);
  for (const p of def.presets ?? []) presets.set(p.name, { ...p, family: def.name });
}

/** Adds a preset to a registered family (presets are normally listed in the descriptor). */
export function registerPreset(def: PresetDef): void {
  if (!families.has(def.family)) throw new Error(`preset ${def.name}: unknown family ${def.family}`);
  if (presets.has(def.name)) throw new Error(`preset '${def.name}' is already registered`);
  presets.set(def.name, def);
}

export function listFamilies(): FamilyDescriptor[] {
  return [...families.values()];
}

export function listPresets(): PresetDef[] {
  return [...presets.values()];
}

export function hasFamily(name: string): boolean {
  return families.has(name);
}

export function getFamily(name: string): FamilyDescriptor {
  const f = families.get(name);
  if (!f) throw new Error(`unknown model family '${name}' (families: ${[...families.keys()].join(', ')})`);
  return f;
}

export function getPreset(name: string): PresetDef | undefined {
  return presets.get(name);
}

/** The closest preset/family names to a mistyped model name. */
export function closestModelNames(name: string, k = 5): string[] {
  return closestNames(name, [...presets.keys(), ...families.keys()], k);
}
