/**
 * Loading a state_dict from any supported checkpoint file: format detection by content, the wrapper keys
 * official repos use ({'params': sd}, {'params_ema': sd}, {'state_dict': sd, 'epoch', 'optimizer'}, bare sd)
 * and DataParallel's 'module.' prefix.
 */
import * as fs from 'node:fs';
import { isSafetensors, parseSafetensors } from './safetensors';
import {
  isTensorView,
  isZip,
  LazyTorchCheckpoint,
  legacyMagicEnd,
  materializeAll,
  readTorchLegacy,
  readTorchZip,
  TensorView,
  TorchCheckpoint,
  TorchFormat,
} from './torch';
import { CheckpointError, isRawTensor, numelOf, RawTensor, requireLittleEndianHost, StateDict } from './tensor';

export type CheckpointFormat = TorchFormat | 'safetensors';

/** Wrapper keys tried in this order when no key is given. */
export const STATE_DICT_KEYS = ['params_ema', 'params', 'state_dict', 'model'] as const;
const ROOT = '(root)';

export interface ExtractOptions {
  /** Wrapper key to use (e.g. 'params' to skip 'params_ema'); '(root)' forces the top-level dict. */
  key?: string;
  /** Name used in error messages. */
  file?: string;
}

export interface LoadOptions extends Omit<ExtractOptions, 'file'> {
  /**
   * The model's tensors (state_dict name -> PyTorch shape). When given, only entries with these names and shapes
   * are read; any other entry comes back shape-only (empty data, listed in `unread`) so load-time checks can
   * name it without the file deciding an allocation. Broadcast (stride-0) views are accepted only here.
   */
  expected?: ReadonlyMap<string, readonly number[]>;
}

export interface LoadedStateDict {
  stateDict: StateDict;
  format: CheckpointFormat;
  /** Wrapper key the tensors came from, or '(root)'. */
  source: string;
  /** safetensors __metadata__ (absent for torch files). */
  metadata?: Record<string, string>;
  /** Entries whose data was not read (not in `expected`, or another shape there): shape-only, data empty. */
  unread: string[];
}

/** Detects the checkpoint format from the first bytes (never from the extension). */
export function detectCheckpointFormat(bytes: Uint8Array): CheckpointFormat | undefined {
  if (isZip(bytes)) return 'torch-zip';
  if (legacyMagicEnd(bytes) > 0) return 'torch-legacy';
  if (isSafetensors(bytes)) return 'safetensors';
  return undefined;
}

function notACheckpoint(bytes: Uint8Array, file: string): CheckpointError {
  // A safetensors file cut short: its u64 header size runs past the end but the JSON header starts right after.
  if (bytes.length >= 10 && bytes[8] === 0x7b) {
    const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
    if (n >= 2n && n < 2n ** 32n) {
      return new CheckpointError(
        `checkpoint ${file}: truncated safetensors file (header declares ${n} bytes, the file has ${bytes.length - 8} after the size field)`,
      );
    }
  }
  const pickle = bytes[0] === 0x80 ? ' (it is a plain pickle without torch.save framing)' : '';
  return new CheckpointError(
    `checkpoint ${file}: not a checkpoint${pickle}; expected a torch.save zip archive, a legacy torch.save file or safetensors`,
  );
}

async function readBytes(file: string): Promise<Uint8Array> {
  try {
    return await fs.promises.readFile(file);
  } catch (e) {
    throw new CheckpointError(`checkpoint ${file}: cannot read file (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function parseTorchLazy(bytes: Uint8Array, file: string): LazyTorchCheckpoint {
  requireLittleEndianHost();
  const format = detectCheckpointFormat(bytes);
  if (format === 'torch-zip') return readTorchZip(bytes, file);
  if (format === 'torch-legacy') return readTorchLegacy(bytes, file);
  if (format === 'safetensors') throw new CheckpointError(`checkpoint ${file}: is a safetensors file, not a torch.save file`);
  throw notACheckpoint(bytes, file);
}

/**
 * Unpickles a torch.save file (zip or legacy) held in memory; `file` names it in errors. Every tensor is
 * materialised; broadcast views (more elements than their storage) are refused, as no model is known here.
 */
export function parseTorchCheckpoint(bytes: Uint8Array, file = '<bytes>'): TorchCheckpoint {
  const lazy = parseTorchLazy(bytes, file);
  return { object: materializeAll(lazy), format: lazy.format };
}

/** Reads and unpickles a torch.save file. Only tensor/storage/OrderedDict globals are resolved; nothing runs. */
export async function readTorchCheckpoint(file: string): Promise<TorchCheckpoint> {
  return parseTorchCheckpoint(await readBytes(file), file);
}

function isDict(x: unknown): x is Map<unknown, unknown> | Record<string, unknown> {
  if (x instanceof Map) return true;
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !ArrayBuffer.isView(x) && !isRawTensor(x) && !isTensorView(x);
}

function dictEntries(x: Map<unknown, unknown> | Record<string, unknown>): [unknown, unknown][] {
  return x instanceof Map ? [...x.entries()] : Object.entries(x);
}

function dictGet(x: Map<unknown, unknown> | Record<string, unknown>, key: string): unknown {
  if (x instanceof Map) return x.get(key);
  return Object.prototype.hasOwnProperty.call(x, key) ? x[key] : undefined;
}

function describe(x: unknown): string {
  if (x === null) return 'None';
  if (isTensorView(x) || isRawTensor(x)) return 'tensor';
  if (Array.isArray(x)) return 'list';
  if (isDict(x)) return 'dict';
  return typeof x;
}

/**
 * Finds the state_dict inside an unpickled checkpoint: `opts.key` if given, else the first of
 * 'params_ema' > 'params' > 'state_dict' > 'model' holding a dict, else the top-level dict itself.
 * A leading 'module.' (DataParallel) is stripped from every key that has one.
 */
export function extractStateDict(obj: unknown, opts: ExtractOptions = {}): { stateDict: StateDict; source: string } {
  const { entries, source } = extractEntries(obj, opts, isRawTensor);
  return { stateDict: entries as StateDict, source };
}

/** extractStateDict over tensors or lazy views (`isLeaf` says which). */
function extractEntries<T extends RawTensor | TensorView>(
  obj: unknown,
  opts: ExtractOptions,
  isLeaf: (x: unknown) => x is T,
  shapeOnly: ReadonlySet<string> = new Set(),
): { entries: Map<string, T>; source: string } {
  const where = `checkpoint ${opts.file ?? '<object>'}`;
  if (!isDict(obj)) throw new CheckpointError(`${where}: top-level object is a ${describe(obj)}, expected a dict`);
  const topKeys = dictEntries(obj).map(([k]) => String(k));
  let source: string;
  let dict: unknown;
  if (opts.key !== undefined && opts.key !== ROOT) {
    dict = dictGet(obj, opts.key);
    if (dict === undefined) {
      throw new CheckpointError(`${where}: no key '${opts.key}' (top-level keys: ${topKeys.join(', ') || 'none'})`);
    }
    source = opts.key;
  } else {
    const wrapper = opts.key === ROOT ? undefined : STATE_DICT_KEYS.find((k) => isDict(dictGet(obj, k)));
    source = wrapper ?? ROOT;
    dict = wrapper ? dictGet(obj, wrapper) : obj;
  }
  if (!isDict(dict)) throw new CheckpointError(`${where}: '${source}' is a ${describe(dict)}, expected a dict of tensors`);
  const stateDict = new Map<string, T>();
  for (const [rawKey, value] of dictEntries(dict)) {
    if (typeof rawKey !== 'string') throw new CheckpointError(`${where}: '${source}' has a non-string key ${String(rawKey)}`);
    if (!isLeaf(value)) {
      const hint = source === ROOT ? ` (top-level keys: ${topKeys.join(', ')}; pass a key)` : '';
      throw new CheckpointError(`${where}: entry '${rawKey}' of '${source}' is a ${describe(value)}, not a tensor${hint}`);
    }
    if (!isTensorView(value) && !shapeOnly.has(rawKey) && numelOf(value.shape) !== (value as unknown as RawTensor).data.length) {
      throw new CheckpointError(`${where}: tensor '${rawKey}' has shape [${value.shape}] but ${(value as unknown as RawTensor).data.length} elements`);
    }
    const key = rawKey.startsWith('module.') ? rawKey.slice('module.'.length) : rawKey;
    if (stateDict.has(key)) throw new CheckpointError(`${where}: key '${key}' appears twice after stripping 'module.'`);
    stateDict.set(key, value);
  }
  if (stateDict.size === 0) throw new CheckpointError(`${where}: '${source}' holds no tensors`);
  return { entries: stateDict, source };
}

/** Loads the state_dict of a .pth/.pt/.ckpt (zip or legacy torch.save) or .safetensors file, detected by content. */
export async function loadStateDict(file: string, opts: LoadOptions = {}): Promise<LoadedStateDict> {
  return loadStateDictFromBytes(await readBytes(file), file, opts);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** A shape-only stand-in for an entry whose data is not read (see LoadOptions.expected). */
function unreadTensor(shape: readonly number[], dtype: RawTensor['dtype']): RawTensor {
  return Object.freeze({ shape: [...shape], dtype, data: new Float32Array(0) });
}

/** loadStateDict for bytes already in memory; `file` names them in errors. */
export function loadStateDictFromBytes(bytes: Uint8Array, file = '<bytes>', opts: LoadOptions = {}): LoadedStateDict {
  const { expected } = opts;
  const wanted = (name: string, shape: readonly number[]) => {
    const e = expected?.get(name);
    return expected === undefined || (e !== undefined && sameShape(e, shape));
  };
  const format = detectCheckpointFormat(bytes);
  if (format === undefined) throw notACheckpoint(bytes, file);
  if (format === 'safetensors') {
    const { tensors, metadata, unread } = parseSafetensors(bytes, file, wanted);
    const { entries } = extractEntries(tensors, { key: ROOT, file }, isRawTensor, new Set(unread));
    return { stateDict: entries, metadata, format, source: ROOT, unread: unread.map((k) => k.replace(/^module\./, '')) };
  }
  const lazy = parseTorchLazy(bytes, file);
  const { entries, source } = extractEntries(lazy.object, { key: opts.key, file }, isTensorView);
  const read = [...entries].filter(([name, view]) => wanted(name, view.shape)).map(([name, view]) => ({ name, view }));
  const tensors = lazy.materialize(read, expected ? new Set(read.map((r) => r.name)) : undefined);
  const byName = new Map(read.map((r, i) => [r.name, tensors[i]]));
  const stateDict: StateDict = new Map();
  const unread: string[] = [];
  for (const [name, view] of entries) {
    const t = byName.get(name);
    if (t) stateDict.set(name, t);
    else {
      stateDict.set(name, unreadTensor(view.shape, view.storage.dtype));
      unread.push(name);
    }
  }
  return { stateDict, format, source, unread };
}
