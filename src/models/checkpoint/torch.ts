/**
 * Readers for torch.save files: the zip format (PyTorch >= 1.6: <prefix>/data.pkl + <prefix>/data/<key>)
 * and the legacy format (magic-number pickle, protocol, sys_info, object pickle, storage-key list, then
 * each storage as an int64 element count + raw bytes). Storages are decoded once per key and every
 * tensor is materialised row-major from (offset, size, stride), so shared storages and views work.
 */
import { unzipSync } from 'fflate';
import { BufferReader } from 'pickleparser';
import { isStorageTypeToken, oneLine, TorchPickleHooks, unpickleData, unpickleTorch } from './pickle';
import { CheckpointError, DTYPE_ITEMSIZE, decodeElements, gatherStrided, RawTensor, TensorData, TensorDType } from './tensor';

export type TorchFormat = 'torch-zip' | 'torch-legacy';

export interface TorchCheckpoint {
  /** The unpickled top-level value: dicts/OrderedDicts as Map, tuples/lists as arrays, tensors as RawTensor. */
  object: unknown;
  format: TorchFormat;
}

/**
 * A storage as handed from persistent_load to the tensor rebuild: its declared dtype and element count only.
 * The bytes are decoded on first use (materialise), so a pickle can name storages that are never read and a
 * zip member is inflated only when a tensor the caller wants needs it. Frozen; only this module makes them.
 */
class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: TensorDType,
    readonly numel: number,
  ) {
    Object.freeze(this);
  }
}

/**
 * A tensor as the pickle describes it: a strided view of a storage, not yet copied out. Frozen so a later BUILD
 * opcode cannot swap its shape after the bounds check.
 */
export class TensorView {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {
    Object.freeze(this);
  }

  get numel(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }
}

export function isTensorView(x: unknown): x is TensorView {
  return x instanceof TensorView;
}

/** A torch.save file unpickled with its tensors left as views; `materialize` copies views out. */
export interface LazyTorchCheckpoint {
  object: unknown;
  format: TorchFormat;
  /**
   * Copies views out of their storages, decoding (and for zip files inflating) only the storages they use, all
   * in one pass. A view with more elements than its storage (stride-0 broadcast) is refused unless its name is
   * in `allowBroadcast`: only a tensor the model really has may cost more than the file's content.
   */
  materialize(views: ReadonlyArray<{ name: string; view: TensorView }>, allowBroadcast?: ReadonlySet<string>): RawTensor[];
}

/** The largest data.pkl inflated from a zip; real ones are well under 1 MB per 1000 tensors. */
export const MAX_PICKLE_BYTES = 64 * 1024 * 1024;

/** The pickled integer 0x1950a86a20f9469cfc6c (10-byte LONG1) that opens every legacy torch.save file. */
const LEGACY_MAGIC = Uint8Array.from([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
const LEGACY_PROTOCOL_VERSION = 1001;

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5);
}

/**
 * The legacy magic pickle: PROTO n, optional FRAME (protocol 4+), LONG1 of 10 bytes, STOP. Returns the
 * position after it, or -1. Compared as bytes because pickleparser reads LONG1 only up to 8 bytes.
 */
export function legacyMagicEnd(bytes: Uint8Array): number {
  let p = 0;
  if (bytes[p] !== 0x80) return -1;
  p += 2;
  if (bytes[p] === 0x95) p += 9;
  if (bytes[p] !== 0x8a || bytes[p + 1] !== LEGACY_MAGIC.length) return -1;
  p += 2;
  for (let i = 0; i < LEGACY_MAGIC.length; i++) if (bytes[p + i] !== LEGACY_MAGIC[i]) return -1;
  p += LEGACY_MAGIC.length;
  return bytes[p] === 0x2e ? p + 1 : -1;
}

function isSafeCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function isCountList(x: unknown): x is number[] {
  return Array.isArray(x) && x.every(isSafeCount);
}

/** The tensor rebuild shared by both formats: checks the view against its storage's declared size; copies nothing. */
function rebuildTensorFrom(file: string) {
  return (storage: unknown, offset: unknown, size: unknown, stride: unknown): TensorView => {
    if (!(storage instanceof StorageRef)) {
      throw new CheckpointError(`checkpoint ${file}: tensor rebuild without a storage`);
    }
    if (!isSafeCount(offset) || !isCountList(size) || !isCountList(stride) || size.length !== stride.length) {
      throw new CheckpointError(`checkpoint ${file}: malformed tensor view of storage '${oneLine(storage.key)}'`);
    }
    const empty = size.some((d) => d === 0);
    let last = offset;
    for (let d = 0; d < size.length; d++) if (!empty) last += (size[d] - 1) * stride[d];
    if (!empty && !(last < storage.numel)) {
      throw new CheckpointError(
        `checkpoint ${file}: tensor view [${size}] stride [${stride}] offset ${offset} exceeds storage '${oneLine(storage.key)}' ` +
          `(${storage.numel} elements)`,
      );
    }
    return new TensorView(storage, offset, [...size], [...stride]);
  };
}

/**
 * Without a model to check against, broadcast views (torch .expand() results saved as is) may together
 * materialise at most this many elements beyond their storages, or the file's byte size if larger: a load
 * never costs much more than the file's content.
 */
export const BROADCAST_BUDGET_ELEMENTS = 1 << 20;

/** Shared by both formats: gathers views, after the broadcast check, from storages `load` decodes. */
function materializer(
  file: string,
  fileBytes: number,
  load: (refs: StorageRef[]) => Map<StorageRef, TensorData>,
): LazyTorchCheckpoint['materialize'] {
  return (views, allowBroadcast) => {
    let budget = Math.max(BROADCAST_BUDGET_ELEMENTS, fileBytes);
    for (const { name, view } of views) {
      if (view.numel <= view.storage.numel) continue;
      if (allowBroadcast) {
        if (allowBroadcast.has(name)) continue;
      } else if ((budget -= view.numel) >= 0) continue;
      throw new CheckpointError(
        `checkpoint ${file}: tensor '${oneLine(name)}' is a view of [${view.shape}] (${view.numel} elements) over storage ` +
          `'${oneLine(view.storage.key)}' of ${view.storage.numel} elements (stride [${view.stride}]); refusing a broadcast view ` +
          (allowBroadcast ? 'that the model does not have' : 'larger than the file holds (load it with a model to check it against)'),
      );
    }
    const data = load([...new Set(views.map((v) => v.view.storage))]);
    return views.map(({ view }) =>
      Object.freeze({
        shape: [...view.shape],
        dtype: view.storage.dtype,
        data: gatherStrided(data.get(view.storage)!, view.offset, view.shape, view.stride),
      }),
    );
  };
}

/**
 * Replaces every TensorView in an unpickled object by its materialised tensor (Maps and arrays are rebuilt;
 * shared and cyclic references stay shared). Used by parseTorchCheckpoint, which has no model to check against.
 */
export function materializeAll(lazy: LazyTorchCheckpoint): unknown {
  const views: { name: string; view: TensorView }[] = [];
  const seen = new Set<unknown>();
  const collect = (x: unknown, name: string): void => {
    if (x instanceof TensorView) {
      views.push({ name, view: x });
      return;
    }
    if (typeof x !== 'object' || x === null || seen.has(x)) return;
    seen.add(x);
    if (x instanceof Map) for (const [k, v] of x) collect(v, name ? `${name}.${String(k)}` : String(k));
    else if (Array.isArray(x)) x.forEach((v, i) => collect(v, name ? `${name}.${i}` : String(i)));
  };
  collect(lazy.object, '');
  const done = new Map<unknown, unknown>();
  const tensors = lazy.materialize(views);
  views.forEach(({ view }, i) => done.set(view, tensors[i]));
  const rebuild = (x: unknown): unknown => {
    if (typeof x !== 'object' || x === null) return x;
    if (done.has(x)) return done.get(x);
    if (x instanceof Map) {
      const out = new Map<unknown, unknown>();
      done.set(x, out);
      for (const [k, v] of x) out.set(k, rebuild(v));
      return out;
    }
    if (Array.isArray(x)) {
      const out: unknown[] = [];
      done.set(x, out);
      for (const v of x) out.push(rebuild(v));
      return Object.isFrozen(x) ? Object.freeze(out) : out;
    }
    return x;
  };
  return rebuild(lazy.object);
}

/** Checks ('storage', <storage type>, key, location, numel, ...) and returns its parts. */
function parseStoragePid(pid: unknown, file: string): { dtype: TensorDType; key: string; numel: number; rest: unknown[] } {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
    const what = Array.isArray(pid) ? String(pid[0]) : typeof pid;
    throw new CheckpointError(`checkpoint ${file}: unsupported persistent id '${oneLine(what)}' (expected a storage)`);
  }
  const [, type, key, , numel, ...rest] = pid;
  if (!isStorageTypeToken(type)) throw new CheckpointError(`checkpoint ${file}: storage id without a storage type`);
  if (typeof key !== 'string' || !isSafeCount(numel)) {
    throw new CheckpointError(`checkpoint ${file}: malformed storage id for key '${oneLine(String(key))}'`);
  }
  return { dtype: type.dtype, key, numel, rest };
}

/** Reads a torch.save zip archive (any archive-name prefix); storages stay in the archive until materialised. */
export function readTorchZip(bytes: Uint8Array, file: string): LazyTorchCheckpoint {
  const unzip = (filter: (f: { name: string; size: number; originalSize: number; compression: number }) => boolean) => {
    try {
      return unzipSync(bytes, { filter });
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError(`checkpoint ${file}: truncated or corrupt zip archive (${oneLine(String((e as Error).message))})`);
    }
  };
  // First pass: only data.pkl and byteorder (the entries torch.load reads besides the storages); every member's
  // declared size is remembered so storages can be checked before anything is inflated.
  const declared = new Map<string, number>();
  const entries = unzip((f) => {
    declared.set(f.name, f.originalSize);
    if (!/^[^/]+\/(data\.pkl|byteorder)$/.test(f.name)) return false;
    if (f.originalSize > MAX_PICKLE_BYTES) {
      throw new CheckpointError(
        `checkpoint ${file}: zip member '${oneLine(f.name)}' declares ${f.originalSize} bytes (limit ${MAX_PICKLE_BYTES}); refusing a possible zip bomb`,
      );
    }
    return true;
  });
  const pickles = Object.keys(entries).filter((n) => n.endsWith('/data.pkl'));
  if (pickles.length === 0) throw new CheckpointError(`checkpoint ${file}: zip archive has no <name>/data.pkl (not a torch.save file)`);
  if (pickles.length > 1) throw new CheckpointError(`checkpoint ${file}: zip archive has several data.pkl records (${pickles.join(', ')})`);
  const prefix = pickles[0].slice(0, -'data.pkl'.length);
  const byteorder = entries[`${prefix}byteorder`];
  if (byteorder && new TextDecoder().decode(byteorder).trim() !== 'little') {
    throw new CheckpointError(`checkpoint ${file}: big-endian checkpoints are not supported`);
  }
  const storages = new Map<string, StorageRef>();
  const hooks: TorchPickleHooks = {
    persistentLoad: (pid) => {
      const { dtype, key, numel } = parseStoragePid(pid, file);
      const cached = storages.get(key);
      if (cached) return cached;
      const name = `${prefix}data/${key}`;
      const size = declared.get(name);
      if (size === undefined) throw new CheckpointError(`checkpoint ${file}: missing storage record '${oneLine(name)}'`);
      const nbytes = numel * DTYPE_ITEMSIZE[dtype];
      if (size < nbytes) {
        throw new CheckpointError(`checkpoint ${file}: storage record '${oneLine(name)}' has ${size} bytes, expected ${nbytes}`);
      }
      const ref = new StorageRef(key, dtype, numel);
      storages.set(key, ref);
      return ref;
    },
    rebuildTensor: rebuildTensorFrom(file),
  };
  const object = unpickleTorch(new BufferReader(entries[pickles[0]]), file, pickles[0], hooks);
  const load = (refs: StorageRef[]): Map<StorageRef, TensorData> => {
    const wanted = new Map(refs.map((r) => [`${prefix}data/${r.key}`, r]));
    // Inflate exactly the records these storages need; a record may declare at most a few bytes more than its
    // storage (torch writes exactly nbytes), so the inflated total is bounded by what the tensors use.
    const records = unzip((f) => {
      const ref = wanted.get(f.name);
      if (!ref) return false;
      const nbytes = ref.numel * DTYPE_ITEMSIZE[ref.dtype];
      if (f.originalSize > nbytes + 64) {
        throw new CheckpointError(
          `checkpoint ${file}: storage record '${oneLine(f.name)}' declares ${f.originalSize} bytes but its storage needs ${nbytes}; ` +
            'refusing a possible zip bomb',
        );
      }
      return true;
    });
    const out = new Map<StorageRef, TensorData>();
    for (const [name, ref] of wanted) {
      const record = records[name];
      const nbytes = ref.numel * DTYPE_ITEMSIZE[ref.dtype];
      if (!record || record.length < nbytes) {
        throw new CheckpointError(`checkpoint ${file}: storage record '${oneLine(name)}' has ${record?.length ?? 0} bytes, expected ${nbytes}`);
      }
      out.set(ref, decodeElements(record, 0, ref.numel, ref.dtype));
    }
    return out;
  };
  return { object, format: 'torch-zip', materialize: materializer(file, bytes.length, load) };
}

/** Reads a legacy (pre-1.6 / _use_new_zipfile_serialization=False) torch.save file. */
export function readTorchLegacy(bytes: Uint8Array, file: string): LazyTorchCheckpoint {
  const start = legacyMagicEnd(bytes);
  if (start < 0) throw new CheckpointError(`checkpoint ${file}: not a legacy torch.save file (no magic number)`);
  const reader = new BufferReader(bytes);
  reader.skip(start);
  const protocol = unpickleData(reader, file, 'protocol version');
  if (protocol !== LEGACY_PROTOCOL_VERSION) {
    throw new CheckpointError(`checkpoint ${file}: unsupported legacy protocol version ${oneLine(String(protocol))}`);
  }
  const sysInfo = unpickleData(reader, file, 'sys_info');
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) {
    throw new CheckpointError(`checkpoint ${file}: big-endian checkpoints are not supported`);
  }
  // The object pickle refers to storages whose bytes come after it, and only its persistent ids tell each
  // storage's dtype (hence its byte size). So walk it once with placeholders to learn the dtypes and where
  // it ends (the same whitelist applies: a hostile pickle is refused here already), then parse it for real.
  const objectStart = reader.position;
  const placeholder = Object.freeze({});
  const dtypes = new Map<string, TensorDType>();
  unpickleTorch(reader, file, 'object pickle', {
    persistentLoad: (pid) => {
      const { dtype, key } = parseStoragePid(pid, file);
      dtypes.set(key, dtype);
      return placeholder;
    },
    rebuildTensor: () => placeholder,
  });
  const keys = unpickleData(reader, file, 'storage key list');
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) {
    throw new CheckpointError(`checkpoint ${file}: malformed storage key list`);
  }
  // Each storage: int64 little-endian element count, then the elements.
  const records = new Map<string, { offset: number; numel: number }>();
  let pos = reader.position;
  for (const key of keys as string[]) {
    const dtype = dtypes.get(key);
    if (!dtype) throw new CheckpointError(`checkpoint ${file}: storage '${oneLine(key)}' is listed but never used`);
    if (pos + 8 > bytes.length) throw new CheckpointError(`checkpoint ${file}: truncated before storage '${oneLine(key)}'`);
    const count = Number(new DataView(bytes.buffer, bytes.byteOffset + pos, 8).getBigInt64(0, true));
    const end = pos + 8 + count * DTYPE_ITEMSIZE[dtype];
    if (count < 0 || end > bytes.length) throw new CheckpointError(`checkpoint ${file}: storage '${oneLine(key)}' is truncated`);
    records.set(key, { offset: pos + 8, numel: count });
    pos = end;
  }
  // Pre-1.0 storage views (view_key, offset, size) are storages of their own over a root storage's elements.
  const views = new Map<StorageRef, { root: string; offset: number }>();
  const refs = new Map<string, StorageRef>();
  const main = new BufferReader(bytes);
  main.skip(objectStart);
  const object = unpickleTorch(main, file, 'object pickle', {
    persistentLoad: (pid) => {
      const { dtype, key, rest } = parseStoragePid(pid, file);
      const rec = records.get(key);
      if (!rec) throw new CheckpointError(`checkpoint ${file}: missing storage record '${oneLine(key)}'`);
      let root = refs.get(key);
      if (!root) refs.set(key, (root = new StorageRef(key, dtype, rec.numel)));
      const view = rest[0];
      if (view === undefined || view === null) return root;
      if (!Array.isArray(view) || typeof view[0] !== 'string' || !isSafeCount(view[1]) || !isSafeCount(view[2])) {
        throw new CheckpointError(`checkpoint ${file}: malformed storage view of '${oneLine(key)}'`);
      }
      const [viewKey, offset, size] = view as [string, number, number];
      if (offset + size > rec.numel) throw new CheckpointError(`checkpoint ${file}: storage view '${oneLine(viewKey)}' out of bounds`);
      const cached = refs.get(viewKey);
      if (cached) return cached;
      const ref = new StorageRef(viewKey, dtype, size);
      refs.set(viewKey, ref);
      views.set(ref, { root: key, offset });
      return ref;
    },
    rebuildTensor: rebuildTensorFrom(file),
  });
  const decoded = new Map<string, TensorData>();
  const decodeRoot = (key: string, dtype: TensorDType): TensorData => {
    let data = decoded.get(key);
    if (!data) {
      const rec = records.get(key)!;
      decoded.set(key, (data = decodeElements(bytes, rec.offset, rec.numel, dtype)));
    }
    return data;
  };
  const load = (wanted: StorageRef[]): Map<StorageRef, TensorData> => {
    const out = new Map<StorageRef, TensorData>();
    for (const ref of wanted) {
      const v = views.get(ref);
      out.set(ref, v ? decodeRoot(v.root, ref.dtype).subarray(v.offset, v.offset + ref.numel) : decodeRoot(ref.key, ref.dtype));
    }
    return out;
  };
  return { object, format: 'torch-legacy', materialize: materializer(file, bytes.length, load) };
}
