/**
 * Model specs as users type them, and irlens's own checkpoint format.
 *
 *   restormer-tiny                      preset; a tiny preset loads irlens's shipped trained weights (weights/),
 *                                       any other preset (or a --config override) gets seeded random weights
 *   restormer-tiny@random               seeded random init on purpose (or SpecOptions.randomInit / --random-init)
 *   restormer-tiny@dn25                 shipped trained weights by name (weights/MANIFEST.json)
 *   swinir-sr-x2@001_classicalSR_DF2K_s64w8_SwinIR-M_x2
 *                                       official weights by catalog name: from the cache, downloaded on first use
 *   swinir-sr-x2@001_classicalSR.pth    preset + a weights file (official .pth or safetensors)
 *   runs/study/scratch.safetensors      a checkpoint saved by irlens (family/config/preset in its metadata)
 *
 * Every LoadedModel carries `provenance` (src/weights/provenance.ts): official, irlens-trained, file or random-init.
 *
 * irlens checkpoints are safetensors in PyTorch layout (loadable by torch/safetensors as a state dict) with
 * metadata keys irlens.family, irlens.preset, irlens.config (JSON), irlens.version.
 */
import * as fs from 'node:fs';
import { loadStateDict, writeSafetensors } from '../models/checkpoint';
import type { RestorationModel } from '../models/model';
import { Config, createModel, resolveSpec } from '../models/registry';
import { expectedShapes, exportStateDict, loadWeights, LoadReport } from '../models/weights';
import { IRLENS_VERSION } from '../version';
import { closestNames } from '../util/closest';
import { catalogNames, defaultShippedWeights, findOfficialWeights, findShippedWeights, shippedWeightsDir, type ShippedWeightsEntry } from './catalog';
import { getOfficialWeights, type GetOptions } from './get';
import { sha256File } from './hash';
import { randomInitProvenance, type WeightsProvenance } from './provenance';
import * as path from 'node:path';

export interface LoadedModel {
  model: RestorationModel;
  /** Short label for reports and file names. */
  label: string;
  weights?: { file: string; source: string; report: LoadReport };
  /** Which weights the model runs with (describeWeights() turns it into the line every output carries). */
  provenance: WeightsProvenance;
}

export interface SpecOptions {
  config?: Config;
  seed?: number;
  /** Weights file overriding any given in the spec. */
  weights?: string;
  /** state_dict wrapper key to prefer ('params', 'params_ema', 'state_dict'). */
  paramKey?: string;
  strict?: boolean;
  /** Refuse models with more parameters (createModel's limit; default IRLENS_MAX_PARAMS, else 100M). */
  maxParams?: number;
  /** Seeded random weights even where trained ones exist (the CLI's --random-init). */
  randomInit?: boolean;
  /** Where and how official weights named in the spec are fetched on first use (cache root, mirror, progress). */
  download?: GetOptions;
}

const looksLikePath = (s: string) => /[\\/]/.test(s) || /\.(pth|pt|safetensors|ckpt)$/i.test(s);

/** Parses a config given as a JSON string (CLI --config) into an object, with a one-line error. */
export function parseConfigJson(text: string | undefined, option = '--config'): Config {
  if (text === undefined || text === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${option}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${option}: expected a JSON object of official hyper-parameters`);
  return v as Config;
}

/** Loads a model from a spec string (see the file comment). */
export async function loadModelSpec(spec: string, opts: SpecOptions = {}): Promise<LoadedModel> {
  const at = spec.lastIndexOf('@');
  let name = spec;
  let weights = opts.weights;
  if (at > 0) {
    name = spec.slice(0, at);
    weights = weights ?? spec.slice(at + 1);
  }
  if (looksLikePath(name) && at <= 0) return loadSavedModel(name, opts);
  const seed = opts.seed ?? 0;
  if (weights === 'random' || (opts.randomInit && !opts.weights)) return randomModel(name, opts, seed, weights === 'random' ? `${name}@random` : name);
  if (!weights) {
    // Trained weights by default where irlens ships them; a --config override changes the architecture they fit.
    const shipped = opts.config && Object.keys(opts.config).length ? undefined : defaultShippedWeights(name);
    return shipped ? loadShipped(shipped, name, opts, name) : randomModel(name, opts, seed, name);
  }
  if (!opts.weights && !fs.existsSync(weights)) {
    const shipped = findShippedWeights(weights, name);
    if (shipped) return loadShipped(shipped, name, opts, `${name}@${weights}`);
    const official = findOfficialWeights(weights);
    if (official) {
      const got = await getOfficialWeights(official, opts.download);
      const loaded = await loadFileInto(name, got.file, { ...opts, paramKey: opts.paramKey ?? official.paramKey }, `${name}@${official.name}`);
      loaded.provenance = { source: 'official', name: official.name, file: got.file, sha256: got.sha256, trainedBy: `authors of ${official.family} (${official.source})`, ...(official.url ? { url: official.url } : {}) };
      return loaded;
    }
    if (!looksLikePath(weights))
      throw new Error(`weights '${weights}': no such file, and not a name in the weights catalog (closest: ${closestNames(weights, catalogNames(), 3).join(', ')}; see irlens weights list)`);
  }
  const loaded = await loadFileInto(name, weights, opts, `${name}@${baseName(weights)}`);
  loaded.provenance = { source: 'file', file: path.resolve(weights), sha256: await sha256File(weights), trainedBy: 'unknown (user file)' };
  return loaded;
}

function randomModel(name: string, opts: SpecOptions, seed: number, label: string): LoadedModel {
  const model = createModel(name, { config: opts.config, seed, maxParams: opts.maxParams });
  return { model, label, provenance: randomInitProvenance(seed) };
}

/** A preset with a weights file loaded strictly into it (provenance filled in by the caller). */
async function loadFileInto(name: string, file: string, opts: SpecOptions, label: string): Promise<LoadedModel> {
  const model = createModel(name, { config: opts.config, seed: opts.seed, maxParams: opts.maxParams });
  try {
    const w = await loadWeightsFile(model, file, opts);
    return { model, label, weights: w, provenance: { source: 'file', file } };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Shipped trained weights (an irlens checkpoint carrying its own config), checked against MANIFEST.json. */
async function loadShipped(entry: ShippedWeightsEntry, preset: string, opts: SpecOptions, label: string): Promise<LoadedModel> {
  const file = path.join(shippedWeightsDir(), entry.file);
  if (!fs.existsSync(file)) throw new Error(`weights ${entry.name}: ${file} is missing (weights/MANIFEST.json lists it); reinstall irlens or use ${preset}@random`);
  const sha256 = await sha256File(file);
  if (sha256 !== entry.sha256) throw new Error(`weights ${entry.name}: ${file} has sha256 ${sha256}, weights/MANIFEST.json says ${entry.sha256}`);
  const loaded = await loadSavedModel(file, { ...opts, config: undefined });
  if (loaded.model.family !== resolveSpec(preset).family.name) {
    loaded.model.dispose();
    throw new Error(`weights ${entry.name}: trained for ${entry.preset}, not ${preset}`);
  }
  loaded.model.preset = entry.preset;
  loaded.label = label;
  loaded.provenance = { source: 'irlens-trained', name: entry.name, file, sha256, trainedBy: entry.trainedBy, recipe: entry.recipe };
  return loaded;
}

/** A short label for a weights file; run directories hold `model.safetensors`, so those take the folder's name. */
function baseName(file: string): string {
  const parts = file.split(/[\\/]/).filter((p) => p !== '');
  const stem = (parts.pop() ?? file).replace(/\.(pth|pt|safetensors|ckpt)$/i, '');
  return stem === 'model' && parts.length ? parts[parts.length - 1] : stem;
}

async function loadWeightsFile(model: RestorationModel, file: string, opts: SpecOptions) {
  if (!fs.existsSync(file)) throw new Error(`weights '${file}': file does not exist`);
  const loaded = await loadStateDict(file, { key: opts.paramKey, expected: expectedShapes(model) });
  const report = loadWeights(model, loaded.stateDict, { strict: opts.strict ?? true, source: `weights '${file}'` });
  return { file, source: loaded.source, report };
}

/** Loads an irlens checkpoint (safetensors with irlens metadata) by path alone. */
export async function loadSavedModel(file: string, opts: SpecOptions = {}): Promise<LoadedModel> {
  if (!fs.existsSync(file)) throw new Error(`model '${file}': file does not exist`);
  const loaded = await loadStateDict(file);
  const meta = loaded.metadata ?? {};
  const family = meta['irlens.family'];
  if (!family)
    throw new Error(`model '${file}': no irlens metadata (irlens.family); give an architecture as PRESET@${file}`);
  let config: Config;
  try {
    config = JSON.parse(meta['irlens.config'] ?? '{}') as Config;
  } catch {
    throw new Error(`model '${file}': metadata irlens.config is not valid JSON`);
  }
  const preset = meta['irlens.preset'] || undefined;
  const { family: fam } = resolveSpec(family, config);
  const model = createModel(fam.name, { config: { ...config, ...(opts.config ?? {}) }, maxParams: opts.maxParams });
  model.preset = preset;
  try {
    const report = loadWeights(model, loaded.stateDict, { strict: opts.strict ?? true, source: `model '${file}'` });
    const provenance: WeightsProvenance = { source: 'file', file: path.resolve(file), sha256: await sha256File(file), trainedBy: meta['irlens.trained-by'] || 'irlens (checkpoint metadata)' };
    return { model, label: baseName(file), weights: { file, source: loaded.source, report }, provenance };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Saves a model as an irlens checkpoint (atomic write), loadable with loadSavedModel / loadModelSpec. */
export function saveModel(model: RestorationModel, file: string, extraMetadata: Record<string, string> = {}): void {
  const sd = exportStateDict(model);
  const tensors = new Map([...sd].map(([k, t]) => [k, { shape: t.shape, dtype: 'float32' as const, data: t.data }]));
  writeSafetensors(file, tensors, {
    ...extraMetadata,
    'irlens.family': model.family,
    'irlens.preset': model.preset ?? '',
    'irlens.config': JSON.stringify(model.config),
    'irlens.version': IRLENS_VERSION,
  });
}
