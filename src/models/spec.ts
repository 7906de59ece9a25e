/**
 * Model specs as users type them, and irlens's own checkpoint format.
 *
 *   restormer-tiny                      preset (or family) with seeded random weights
 *   swinir-sr-x2@001_classicalSR.pth    preset + official PyTorch weights (.pth) or safetensors
 *   runs/study/scratch.safetensors      a checkpoint saved by irlens (family/config/preset in its metadata)
 *
 * irlens checkpoints are safetensors in PyTorch layout (loadable by torch/safetensors as a state dict) with
 * metadata keys irlens.family, irlens.preset, irlens.config (JSON), irlens.version.
 */
import * as fs from 'node:fs';
import { loadStateDict, writeSafetensors } from './checkpoint';
import type { RestorationModel } from './model';
import { Config, createModel, resolveSpec } from './registry';
import { exportStateDict, loadWeights, LoadReport } from './weights';
import { IRLENS_VERSION } from '../version';

export interface LoadedModel {
  model: RestorationModel;
  /** Short label for reports and file names. */
  label: string;
  weights?: { file: string; source: string; report: LoadReport };
}

export interface SpecOptions {
  config?: Config;
  seed?: number;
  /** Weights file overriding any given in the spec. */
  weights?: string;
  /** state_dict wrapper key to prefer ('params', 'params_ema', 'state_dict'). */
  paramKey?: string;
  strict?: boolean;
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
  const model = createModel(name, { config: opts.config, seed: opts.seed });
  if (!weights) return { model, label: name };
  try {
    const w = await loadWeightsFile(model, weights, opts);
    return { model, label: `${name}@${baseName(weights)}`, weights: w };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** A short label for a weights file; run directories hold `model.safetensors`, so those take the folder's name. */
function baseName(file: string): string {
  const parts = file.split(/[\\/]/).filter((p) => p !== '');
  const stem = (parts.pop() ?? file).replace(/\.(pth|pt|safetensors|ckpt)$/i, '');
  return stem === 'model' && parts.length ? parts[parts.length - 1] : stem;
}

async function loadWeightsFile(model: RestorationModel, file: string, opts: SpecOptions) {
  if (!fs.existsSync(file)) throw new Error(`weights '${file}': file does not exist`);
  const loaded = await loadStateDict(file, { key: opts.paramKey });
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
  const model = createModel(fam.name, { config: { ...config, ...(opts.config ?? {}) } });
  model.preset = preset;
  try {
    const report = loadWeights(model, loaded.stateDict, { strict: opts.strict ?? true, source: `model '${file}'` });
    return { model, label: baseName(file), weights: { file, source: loaded.source, report } };
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
