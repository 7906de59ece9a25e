/**
 * Readers for torch.save files: the zip format (PyTorch >= 1.6: <prefix>/data.pkl + <prefix>/data/<key>)
 * and the legacy format (magic-number pickle, protocol, sys_info, object pickle, storage-key list, then
 * each storage as an int64 element count + raw bytes). Storages are decoded once per key and every
 * tensor is materialised row-major from (offset, size, stride), so shared storages and views work.
 */
import { unzipSync } from 'fflate';
import { BufferReader } from 'pickleparser';
import { isStorageTypeToken, oneLine, TorchPickleHooks, unpickleData, unpickleTorch } from './pickle';
import {
  CheckpointError,
  DTYPE_ITEMSIZE,
  decodeElements,
  gatherStrided,
  RawTensor,
  TensorData,
  TensorDType,
} from './tensor';

export type TorchFormat = 'torch-zip' | 'torch-legacy';

export interface TorchCheckpoint {
  /** The unpickled top-level value: dicts/OrderedDicts as Map, tuples/lists as arrays, tensors as RawTensor. */
  object: unknown;
  format: TorchFormat;
}

/** A decoded storage as handed from persistent_load to the tensor rebuild. Frozen; only this module makes them. */
class StorageHandle {
  constructor(
    readonly key: string,
    readonly dtype: TensorDType,
    readonly elements: TensorData,
  ) {
    Object.freeze(this);
  }
}

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

/** The tensor rebuild shared by both formats: checks the view against its storage, then gathers it. */
function rebuildTensorFrom(file: string) {
  return (storage: unknown, offset: unknown, size: unknown, stride: unknown): RawTensor => {
    if (!(storage instanceof StorageHandle)) {
      throw new CheckpointError(`checkpoint ${file}: tensor rebuild without a storage`);
    }
    if (!isSafeCount(offset) || !isCountList(size) || !isCountList(stride) || size.length !== stride.length) {
      throw new CheckpointError(`checkpoint ${file}: malformed tensor view of storage '${storage.key}'`);
    }
    const empty = size.some((d) => d === 0);
    let last = offset;
    for (let d = 0; d < size.length; d++) if (!empty) last += (size[d] - 1) * stride[d];
    if (!empty && last >= storage.elements.length) {
      throw new CheckpointError(
        `checkpoint ${file}: tensor view [${size}] stride [${stride}] offset ${offset} exceeds storage '${storage.key}' ` +
          `(${storage.elements.length} elements)`,
      );
    }
    const shape = [...size];
    const data = gatherStrided(storage.elements, offset, shape, stride);
    // Frozen so a later BUILD opcode in the pickle cannot swap its shape or data after these checks.
    return Object.freeze({ shape, dtype: storage.dtype, data });
  };
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

/** Reads a torch.save zip archive (any archive-name prefix). */
export function readTorchZip(bytes: Uint8Array, file: string): TorchCheckpoint {
  let entries: Record<string, Uint8Array>;
  try {
    // Only the entries torch.load reads are inflated; .data/serialization_id, version, code/ are skipped.
    entries = unzipSync(bytes, { filter: (f) => /^[^/]+\/(data\.pkl|data\/[^/]+|byteorder)$/.test(f.name) });
  } catch (e) {
    throw new CheckpointError(`checkpoint ${file}: truncated or corrupt zip archive (${oneLine(String((e as Error).message))})`);
  }
  const pickles = Object.keys(entries).filter((n) => n.endsWith('/data.pkl'));
  if (pickles.length === 0) throw new CheckpointError(`checkpoint ${file}: zip archive has no <name>/data.pkl (not a torch.save file)`);
  if (pickles.length > 1) throw new CheckpointError(`checkpoint ${file}: zip archive has several data.pkl records (${pickles.join(', ')})`);
  const prefix = pickles[0].slice(0, -'data.pkl'.length);
  const byteorder = entries[`${prefix}byteorder`];
  if (byteorder && new TextDecoder().decode(byteorder).trim() !== 'little') {
    throw new CheckpointError(`checkpoint ${file}: big-endian checkpoints are not supported`);
  }
  const storages = new Map<string, StorageHandle>();
  const hooks: TorchPickleHooks = {
    persistentLoad: (pid) => {
      const { dtype, key, numel } = parseStoragePid(pid, file);
      const cached = storages.get(key);
      if (cached) return cached;
      const name = `${prefix}data/${key}`;
      const record = entries[name];
      if (!record) throw new CheckpointError(`checkpoint ${file}: missing storage record '${name}'`);
      const nbytes = numel * DTYPE_ITEMSIZE[dtype];
      if (record.length < nbytes) {
        throw new CheckpointError(`checkpoint ${file}: storage record '${name}' has ${record.length} bytes, expected ${nbytes}`);
      }
      const handle = new StorageHandle(key, dtype, decodeElements(record, 0, numel, dtype));
      storages.set(key, handle);
      return handle;
    },
    rebuildTensor: rebuildTensorFrom(file),
  };
  const object = unpickleTorch(new BufferReader(entries[pickles[0]]), file, pickles[0], hooks);
  return { object, format: 'torch-zip' };
}

/** Reads a legacy (pre-1.6 / _use_new_zipfile_serialization=False) torch.save file. */
export function readTorchLegacy(bytes: Uint8Array, file: string): TorchCheckpoint {
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
  const storages = new Map<string, StorageHandle>();
  const loadRoot = (key: string, dtype: TensorDType): StorageHandle => {
    const cached = storages.get(key);
    if (cached) return cached;
    const rec = records.get(key);
    if (!rec) throw new CheckpointError(`checkpoint ${file}: missing storage record '${oneLine(key)}'`);
    const handle = new StorageHandle(key, dtype, decodeElements(bytes, rec.offset, rec.numel, dtype));
    storages.set(key, handle);
    return handle;
  };
  const main = new BufferReader(bytes);
  main.skip(objectStart);
  const object = unpickleTorch(main, file, 'object pickle', {
    persistentLoad: (pid) => {
      const { dtype, key, rest } = parseStoragePid(pid, file);
      const root = loadRoot(key, dtype);
      const view = rest[0];
      if (view === undefined || view === null) return root;
      // Pre-1.0 storage views: (view_key, offset, size) in elements of the root storage.
      if (!Array.isArray(view) || typeof view[0] !== 'string' || !isSafeCount(view[1]) || !isSafeCount(view[2])) {
        throw new CheckpointError(`checkpoint ${file}: malformed storage view of '${oneLine(key)}'`);
      }
      const [viewKey, offset, size] = view as [string, number, number];
      if (offset + size > root.elements.length) throw new CheckpointError(`checkpoint ${file}: storage view '${oneLine(viewKey)}' out of bounds`);
      const cached = storages.get(viewKey);
      if (cached) return cached;
      const handle = new StorageHandle(viewKey, dtype, root.elements.subarray(offset, offset + size));
      storages.set(viewKey, handle);
      return handle;
    },
    rebuildTensor: rebuildTensorFrom(file),
  });
  return { object, format: 'torch-legacy' };
}
