/**
 * Building from the family registry (family.ts), timm-style: `createModel('swinir-sr-x2')`, or a family name
 * with official hyper-parameters (`createModel('restormer', { config: { dim: 32 } })`). Config keys are the
 * official names (Restormer/MPRNet/SwinIR constructor kwargs, EDT's MODEL.* keys); unknown keys are an error.
 */
import { lcm } from '../util/stats';
import { withInitSeed, withShapeOnly } from './module';
import type { RestorationModel, TaskSpec } from './model';
import {
  closestModelNames,
  type Config,
  type FamilyDescriptor,
  getFamily,
  getPreset,
  hasFamily,
  listPresets,
  type PresetDef,
} from './family';

export {
  type Config,
  type FamilyDef,
  type FamilyDescriptor,
  type FamilyPreset,
  type PresetDef,
  getFamily,
  getPreset,
  hasFamily,
  listFamilies,
  listPresets,
  registerFamily,
  registerPreset,
} from './family';

/** Merges overrides into a family's defaults, refusing keys the official code does not have. */
export function resolveConfig(family: FamilyDescriptor, ...layers: Config[]): Config {
  const out: Config = { ...family.defaults };
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (!Object.prototype.hasOwnProperty.call(family.defaults, k)) // own keys: 'constructor', '__proto__' are not config
        throw new Error(`config: unknown key '${k}' for ${family.name} (expected one of: ${Object.keys(family.defaults).join(', ')})`);
      out[k] = v;
    }
  }
  family.validate?.(out);
  return out;
}

/** Resolves a preset or family name and its config without building anything. */
export function resolveSpec(name: string, config: Config = {}): { family: FamilyDescriptor; preset?: PresetDef; config: Config } {
  const preset = getPreset(name);
  if (preset) {
    const family = getFamily(preset.family);
    return { family, preset, config: resolveConfig(family, preset.config, config) };
  }
  if (hasFamily(name)) {
    const family = getFamily(name);
    return { family, config: resolveConfig(family, config) };
  }
  throw new Error(`unknown model '${name}' (closest: ${closestModelNames(name).join(', ')}; \`npm run models\` lists all ${listPresets().length} presets)`);
}

// --------------------------------------------------------------------------------------- size limit

/** Default ceiling of createModel, in parameters. */
export const DEFAULT_MAX_PARAMS = 100_000_000;

/** Parses a parameter count: 250000, 2.5e8, 250M, 6.2G (k/M/G suffixes, case-insensitive). */
export function parseParamCount(text: string, option = '--max-params'): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmg]?)\s*$/i.exec(text);
  const mult = { '': 1, k: 1e3, m: 1e6, g: 1e9 } as const;
  const n = m ? Number(m[1]) * mult[m[2].toLowerCase() as keyof typeof mult] : NaN;
  if (!Number.isFinite(n) || n < 1) throw new Error(`${option}: expected a positive parameter count such as 250M or 2e8, got '${text}'`);
  return Math.round(n);
}

/** The limit createModel applies: `maxParams`, else IRLENS_MAX_PARAMS, else DEFAULT_MAX_PARAMS. */
export function maxParamsLimit(maxParams?: number): number {
  if (maxParams !== undefined) {
    if (!(maxParams > 0)) throw new Error(`maxParams: expected a positive number, got ${maxParams}`);
    return maxParams;
  }
  const env = process.env.IRLENS_MAX_PARAMS;
  return env !== undefined && env !== '' ? parseParamCount(env, 'IRLENS_MAX_PARAMS') : DEFAULT_MAX_PARAMS;
}

/** 6_200_000_000 -> '6.2G', 26_126_644 -> '26.1M', 100_000_000 -> '100M' (one decimal at most). */
export function formatParamCount(n: number): string {
  for (const [unit, v] of [['G', 1e9], ['M', 1e6], ['k', 1e3]] as const) if (n >= v) return `${+(n / v).toFixed(1)}${unit}`;
  return String(n);
}

// ----------------------------------------------------------------------------------------- building

export interface CreateOptions {
  /** Official hyper-parameters overriding the preset/family defaults. */
  config?: Config;
  /** Seed of the random initialisation (default 0). */
  seed?: number;
  /** Refuse models with more parameters (default: IRLENS_MAX_PARAMS, else 100M). */
  maxParams?: number;
}

/** Parameter count of a resolved config from a shape-only build: no tensors, milliseconds for any size. */
function countResolved(family: FamilyDescriptor, config: Config): number {
  return withShapeOnly(() => family.build(config)).numParameters();
}

/** Parameter count of a preset/family config (PyTorch's sum of numel over unique parameters), allocating nothing. */
export function countParameters(name: string, config: Config = {}): number {
  const { family, config: resolved } = resolveSpec(name, config);
  return countResolved(family, resolved);
}

/** Builds a preset or family with seeded random initialisation, after checking its size against the limit. */
export function createModel(name: string, opts: CreateOptions = {}): RestorationModel {
  const { family, preset, config } = resolveSpec(name, opts.config);
  const limit = maxParamsLimit(opts.maxParams);
  const params = countResolved(family, config);
  if (params > limit)
    throw new Error(
      `model ${name} with config ${JSON.stringify(opts.config ?? {})} has ${formatParamCount(params)} parameters ` +
        `(~${(params * 4e-9).toFixed(1)} GB); the limit is ${formatParamCount(limit)} (raise it with --max-params or IRLENS_MAX_PARAMS)`,
    );
  const model = withInitSeed(opts.seed ?? 0, () => family.build(config));
  model.preset = preset?.name;
  return model;
}

/** Parameter count and task branches of a preset/family config, from a shape-only build (nothing allocated). */
export function inspectModel(name: string, config: Config = {}): { params: number; tasks: TaskSpec[]; config: Config } {
  const { family, preset, config: resolved } = resolveSpec(name, config);
  const model = withShapeOnly(() => family.build(resolved));
  model.preset = preset?.name;
  return { params: model.numParameters(), tasks: model.tasks(), config: resolved };
}

// ---------------------------------------------------------------------------------- training defaults

/** The training defaults of a preset/family config: the descriptor's, else derived from the model. */
export interface ResolvedTrainingDefaults {
  /** Loss name of src/pretrain/losses. */
  loss: string;
  /** Every training patch (GT pixels) must be a multiple of this. */
  patchMultiple: number;
  /** A valid default patch (GT pixels): the smallest multiple of patchMultiple that is >= 64. */
  patch: number;
}

/** Smallest multiple of `multiple` that is at least `atLeast`. */
function roundUp(atLeast: number, multiple: number): number {
  return Math.ceil(atLeast / multiple) * multiple;
}

/**
 * The GT-pixel multiple of a model's training patches: for every branch, the input (patch / scale) must fit
 * its paddingRule multiple, so the patch is a multiple of multiple * scale; lcm over the branches.
 */
export function patchMultipleOf(model: RestorationModel): number {
  return model.tasks().reduce((m, t) => lcm(m, model.paddingRule(t.name).multiple * t.scale), 1);
}

/**
 * Training defaults of a preset/family config. With `tasks`, the patch multiple is that of the networks that
 * train them (EDT with exactly those branches, other families' per-task networks from their task adapter),
 * as createTrainModel builds them; without, that of the model's own branches.
 */
export function trainingDefaults(name: string, config: Config = {}, tasks?: readonly TaskSpec[]): ResolvedTrainingDefaults {
  const { family, config: resolved } = resolveSpec(name, config);
  const t = family.training ?? {};
  const build = (extra: Config) => withShapeOnly(() => family.build(resolveSpec(name, { ...config, ...extra }).config));
  let patchMultiple: number;
  if (t.patchMultiple) patchMultiple = t.patchMultiple(resolved);
  else if (!tasks || tasks.length === 0) patchMultiple = patchMultipleOf(build({}));
  else {
    const adapter = family.tasks;
    const native = adapter?.nativeConfigFor ? build(adapter.nativeConfigFor(resolved, [...tasks])) : undefined;
    const own = build({});
    patchMultiple = tasks.reduce((m, task) => {
      let net = native ?? own;
      let branch: string | undefined = task.name;
      if (!net.tasks().some((b) => b.name === task.name)) {
        branch = undefined;
        if (!native && adapter && !net.tasks().every((b) => b.scale === task.scale)) net = build(adapter.configFor(resolved, task));
      }
      return lcm(m, net.paddingRule(branch).multiple * task.scale);
    }, 1);
  }
  const patch = t.defaultPatch ? t.defaultPatch(resolved) : roundUp(64, patchMultiple);
  return { loss: t.loss ?? 'l1', patchMultiple, patch };
}

/** `trainingDefaults(name, config).patch`. */
export function defaultPatch(name: string, config: Config = {}, tasks?: readonly TaskSpec[]): number {
  return trainingDefaults(name, config, tasks).patch;
}

/** Default loss of a family (its descriptor's training.loss, else 'l1'); an unknown or missing family gets 'l1'. */
export function defaultLoss(family: string | undefined): string {
  return family !== undefined && hasFamily(family) ? (getFamily(family).training?.loss ?? 'l1') : 'l1';
}
