/**
 * state_dict <-> model: strict loading like torch's load_state_dict, and PyTorch-layout export.
 */
import type { RestorationModel } from './model';
import type { Module, TorchTensor } from './module';

export interface LoadReport {
  loaded: number;
  /** Checkpoint keys skipped because the model recomputes them (buffers such as attn_mask). */
  skipped: string[];
  missing: string[];
  unexpected: string[];
}

type StateLike = Map<string, { shape: number[]; data: ArrayLike<number> | BigInt64Array }>;

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function listForError(keys: string[], max = 12): string {
  return keys.length <= max ? keys.join(', ') : `${keys.slice(0, max).join(', ')}, ... (${keys.length} in all)`;
}

/**
 * Loads a PyTorch-layout state dict into `model`. Strict mode (default) reports missing keys, unexpected keys
 * and shape mismatches by name in one error, after checking everything and before assigning anything, so a
 * failed load leaves the model untouched. Keys matching model.ignoredStateKeys() are skipped.
 */
export function loadWeights(
  model: Module & Partial<Pick<RestorationModel, 'ignoredStateKeys'>>,
  stateDict: StateLike,
  opts: { strict?: boolean; source?: string } = {},
): LoadReport {
  const strict = opts.strict ?? true;
  const ignored = model.ignoredStateKeys?.() ?? [];
  const entries = model.stateEntries();
  const expected = new Set(entries.map(([k]) => k));
  const skipped: string[] = [];
  const unexpected: string[] = [];
  for (const k of stateDict.keys()) {
    if (expected.has(k)) continue;
    if (ignored.some((re) => re.test(k))) skipped.push(k);
    else unexpected.push(k);
  }
  const missing: string[] = [];
  const mismatched: string[] = [];
  for (const [k, p] of entries) {
    const t = stateDict.get(k);
    if (!t) missing.push(k);
    else if (!sameShape(t.shape, p.torchShape)) mismatched.push(`${k}: checkpoint [${t.shape}] vs model [${p.torchShape}]`);
  }
  const problems: string[] = [];
  if (mismatched.length) problems.push(`shape mismatch: ${listForError(mismatched)}`);
  if (strict && missing.length) problems.push(`missing keys: ${listForError(missing)}`);
  if (strict && unexpected.length) problems.push(`unexpected keys: ${listForError(unexpected)}`);
  if (problems.length) throw new Error(`${opts.source ?? 'state_dict'}: ${problems.join('; ')}`);
  // NaN/Inf weights would not fail anywhere later: wasm's clipByValue turns them into 0 and the output is silently wrong.
  for (const [k] of entries) {
    const t = stateDict.get(k);
    if (!t || t.data instanceof BigInt64Array) continue;
    const bad = firstNonFinite(t.data);
    if (bad >= 0) {
      throw new Error(`${opts.source ?? 'state_dict'}: tensor '${k}' has ${t.data[bad]} at index ${bad} (weights must be finite)`);
    }
  }

  // A shared parameter (MPRNet's PReLU) is assigned once per key; the values are identical in a real checkpoint.
  let loaded = 0;
  for (const [k, p] of entries) {
    const t = stateDict.get(k);
    if (!t) continue;
    const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>, Number);
    p.assignFromTorch({ shape: t.shape, data });
    loaded++;
  }
  return { loaded, skipped, missing, unexpected };
}

/** Index of the first NaN/Infinity in `data`, or -1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return i;
  return -1;
}

/**
 * The model's state_dict names and PyTorch shapes, for checkpoint readers (`expected` of loadStateDict): they
 * read only tensors the model has, with its shapes, so a checkpoint cannot make them allocate more.
 */
export function expectedShapes(model: Module): Map<string, number[]> {
  return new Map(model.stateEntries().map(([k, p]) => [k, [...p.torchShape]]));
}

/** The model's parameters as a PyTorch-layout state dict (shared parameters under every key, like state_dict()). */
export function exportStateDict(model: Module): Map<string, TorchTensor> {
  const out = new Map<string, TorchTensor>();
  for (const [k, p] of model.stateEntries()) out.set(k, p.toTorch());
  return out;
}
