/**
 * Families and presets, timm-style: `createModel('swinir-sr-x2')`, or a family name with official
 * hyper-parameters (`createModel('restormer', { config: { dim: 32 } })`). Config keys are the official names
 * (Restormer/MPRNet/SwinIR constructor kwargs, EDT's MODEL.* keys); unknown keys are an error.
 */
import { distance } from 'fastest-levenshtein';
import { withInitSeed, withZeroInit } from './module';
import type { RestorationModel, TaskSpec } from './model';

export type Config = Record<string, unknown>;

export interface FamilyDef {
  name: string;
  /** Every accepted config key with its default (the official defaults). */
  defaults: Config;
  /** Builds an untrained model; parameters are drawn from the init seed that createModel sets. */
  build(config: Config): RestorationModel;
  /** Optional extra validation of a merged config (one-line error on nonsense values). */
  validate?(config: Config): void;
}

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

const families = new Map<string, FamilyDef>();
const presets = new Map<string, PresetDef>();

export function registerFamily(def: FamilyDef): void {
  families.set(def.name, def);
}

export function registerPreset(def: PresetDef): void {
  if (!families.has(def.family)) throw new Error(`preset ${def.name}: unknown family ${def.family}`);
  presets.set(def.name, def);
}

export function listFamilies(): FamilyDef[] {
  return [...families.values()];
}

export function listPresets(): PresetDef[] {
  return [...presets.values()];
}

export function getFamily(name: string): FamilyDef {
  const f = families.get(name);
  if (!f) throw new Error(`unknown model family '${name}' (families: ${[...families.keys()].join(', ')})`);
  return f;
}

export function getPreset(name: string): PresetDef | undefined {
  return presets.get(name);
}

/** Merges overrides into a family's defaults, refusing keys the official code does not have. */
export function resolveConfig(family: FamilyDef, ...layers: Config[]): Config {
  const out: Config = { ...family.defaults };
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (!(k in family.defaults))
        throw new Error(`config: unknown key '${k}' for ${family.name} (expected one of: ${Object.keys(family.defaults).join(', ')})`);
      out[k] = v;
    }
  }
  family.validate?.(out);
  return out;
}

export interface CreateOptions {
  /** Official hyper-parameters overriding the preset/family defaults. */
  config?: Config;
  /** Seed of the random initialisation (default 0). */
  seed?: number;
}

/** Resolves a preset or family name and its config without building anything. */
export function resolveSpec(name: string, config: Config = {}): { family: FamilyDef; preset?: PresetDef; config: Config } {
  const preset = presets.get(name);
  if (preset) {
    const family = getFamily(preset.family);
    return { family, preset, config: resolveConfig(family, preset.config, config) };
  }
  if (families.has(name)) {
    const family = getFamily(name);
    return { family, config: resolveConfig(family, config) };
  }
  const names = [...presets.keys(), ...families.keys()];
  const close = names
    .map((n) => [n, distance(name, n)] as const)
    .sort((a, b) => a[1] - b[1])
    .slice(0, 5)
    .map(([n]) => n);
  throw new Error(`unknown model '${name}' (closest: ${close.join(', ')}; \`npm run models\` lists all ${presets.size} presets)`);
}

/** Builds a preset or family with seeded random initialisation. */
export function createModel(name: string, opts: CreateOptions = {}): RestorationModel {
  const { family, preset, config } = resolveSpec(name, opts.config);
  const model = withInitSeed(opts.seed ?? 0, () => family.build(config));
  model.preset = preset?.name;
  return model;
}

/** Parameter count and task branches of a preset/family config, from a zero-weight build that is then freed. */
export function inspectModel(name: string, config: Config = {}): { params: number; tasks: TaskSpec[]; config: Config } {
  const { family, preset, config: resolved } = resolveSpec(name, config);
  const model = withZeroInit(() => family.build(resolved));
  model.preset = preset?.name;
  try {
    return { params: model.numParameters(), tasks: model.tasks(), config: resolved };
  } finally {
    model.dispose();
  }
}
