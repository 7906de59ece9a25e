/**
 * The weights catalog: every released checkpoint of the official repositories (src/weights/official/, read
 * together with any `officialWeights` a family descriptor lists) and the trained tiny weights shipped in the
 * package's weights/ folder (weights/MANIFEST.json).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { OfficialWeightsEntry } from '../models/family';
import { listFamilies } from '../models/registry';
import { closestNames } from '../util/closest';
import { PACKAGE_ROOT } from '../version';
import { EDT_OFFICIAL_WEIGHTS } from './official/edt';
import { MPRNET_OFFICIAL_WEIGHTS } from './official/mprnet';
import { RESTORMER_OFFICIAL_WEIGHTS } from './official/restormer';
import { SWINIR_OFFICIAL_WEIGHTS } from './official/swinir';

/** An official checkpoint with the family it belongs to. */
export interface OfficialCatalogEntry extends OfficialWeightsEntry {
  family: string;
}

const BUILTIN_OFFICIAL: Record<string, OfficialWeightsEntry[]> = {
  restormer: RESTORMER_OFFICIAL_WEIGHTS,
  mprnet: MPRNET_OFFICIAL_WEIGHTS,
  swinir: SWINIR_OFFICIAL_WEIGHTS,
  edt: EDT_OFFICIAL_WEIGHTS,
};

const registered: OfficialCatalogEntry[] = [];

/** Adds a checkpoint to the catalog (a lab's own release, a mirror-only file); its name must be new. */
export function registerOfficialWeights(entry: OfficialCatalogEntry): void {
  if (officialWeights().some((e) => e.name === entry.name)) throw new Error(`weights '${entry.name}' is already in the catalog`);
  registered.push(entry);
}

/** Every official checkpoint: family descriptors' lists first, then irlens's per-family lists, then registered ones. */
export function officialWeights(): OfficialCatalogEntry[] {
  const out: OfficialCatalogEntry[] = [];
  const seen = new Set<string>();
  const add = (family: string, e: OfficialWeightsEntry) => {
    if (seen.has(e.name)) return;
    seen.add(e.name);
    out.push({ ...e, family });
  };
  for (const f of listFamilies()) for (const e of f.officialWeights ?? []) add(f.name, e);
  for (const [family, list] of Object.entries(BUILTIN_OFFICIAL)) for (const e of list) add(family, e);
  for (const e of registered) add(e.family, e);
  return out;
}

/** One held-out measurement: the model's output and the degraded input, each against the clean image. */
export interface HeldOutScore {
  model: { psnr: number; ssim: number };
  degraded: { psnr: number; ssim: number };
  /** model.psnr - degraded.psnr (dB). */
  psnrGain: number;
}

/** A trained checkpoint shipped in weights/ (one row of weights/MANIFEST.json). */
export interface ShippedWeightsEntry {
  name: string;
  file: string;
  preset: string;
  tasks: string[];
  /** The preset loads these weights when no weights are named. */
  default: boolean;
  sha256: string;
  bytes: number;
  trainedBy: string;
  recipe: string;
  trainImages: string[];
  evalImages: string[];
  heldOut: Record<string, HeldOutScore>;
}

export interface WeightsManifest {
  format: 'irlens-weights/1';
  weights: ShippedWeightsEntry[];
  [key: string]: unknown;
}

/** The package's weights/ folder. */
export function shippedWeightsDir(): string {
  return path.join(PACKAGE_ROOT, 'weights');
}

let manifestCache: { file: string; mtimeMs: number; manifest: WeightsManifest } | undefined;

/** weights/MANIFEST.json; an empty list when the folder has none (a checkout without trained weights). */
export function readWeightsManifest(dir = shippedWeightsDir()): WeightsManifest {
  const file = path.join(dir, 'MANIFEST.json');
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return { format: 'irlens-weights/1', weights: [] };
  }
  if (manifestCache && manifestCache.file === file && manifestCache.mtimeMs === st.mtimeMs) return manifestCache.manifest;
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const m = parsed as Partial<WeightsManifest>;
  if (m.format !== 'irlens-weights/1' || !Array.isArray(m.weights))
    throw new Error(`${file}: expected {"format": "irlens-weights/1", "weights": [...]}`);
  manifestCache = { file, mtimeMs: st.mtimeMs, manifest: m as WeightsManifest };
  return manifestCache.manifest;
}

export function shippedWeights(): ShippedWeightsEntry[] {
  return readWeightsManifest().weights;
}

/** The shipped weights a preset loads by default, if any. */
export function defaultShippedWeights(preset: string): ShippedWeightsEntry | undefined {
  return shippedWeights().find((w) => w.preset === preset && w.default);
}

/** Shipped weights by name: the full name, or the part after the preset (`restormer-tiny@dn25`). */
export function findShippedWeights(name: string, preset?: string): ShippedWeightsEntry | undefined {
  const all = shippedWeights();
  return all.find((w) => w.name === name) ?? (preset ? all.find((w) => w.preset === preset && w.name === `${preset}-${name}`) : undefined);
}

/** Official weights by name or file name. */
export function findOfficialWeights(name: string): OfficialCatalogEntry | undefined {
  const all = officialWeights();
  return all.find((e) => e.name === name) ?? all.find((e) => e.file === name);
}

/** Every catalog name (official and shipped), for "closest" suggestions. */
export function catalogNames(): string[] {
  return [...officialWeights().map((e) => e.name), ...shippedWeights().map((w) => w.name)];
}

/** The official entry named `name`, or a one-line error with the closest names. */
export function requireOfficialWeights(name: string): OfficialCatalogEntry {
  const e = findOfficialWeights(name);
  if (e) return e;
  if (findShippedWeights(name)) throw new Error(`weights '${name}' ship with irlens (weights/); there is nothing to download`);
  throw new Error(`weights '${name}': not in the catalog (closest: ${closestNames(name, catalogNames(), 3).join(', ')}; see irlens weights list)`);
}
