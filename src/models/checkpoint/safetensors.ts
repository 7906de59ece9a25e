/**
 * safetensors read/write. Format: u64 little-endian header size N, N bytes of UTF-8 JSON
 * {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...} (padded with
 * spaces so the data starts 8-byte aligned), then the data buffer; offsets are relative to the buffer and
 * must cover it without holes or overlaps. Hand-written: no maintained npm package does both directions
 * without pulling in a tensor framework, and the format is a few dozen lines.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../../util/fs';
import {
  CheckpointError,
  decodeElements,
  DTYPE_ITEMSIZE,
  encodeElements,
  isFloatDType,
  isTensorDType,
  numelOf,
  RawTensor,
  requireLittleEndianHost,
  StateDict,
  TensorDType,
} from './tensor';

const TO_CODE: Readonly<Record<TensorDType, string>> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};
const FROM_CODE = new Map<string, TensorDType>(Object.entries(TO_CODE).map(([d, c]) => [c, d as TensorDType]));

/** The reference implementation's limit; real headers are a few MB at most. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsContent {
  tensors: StateDict;
  metadata: Record<string, string>;
  /** Tensors left shape-only (empty data) because `wanted` declined them; see parseSafetensors. */
  unread: string[];
}

export function isSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10) return false;
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return n >= 2n && n <= BigInt(bytes.length - 8) && bytes[8] === 0x7b; // '{'
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/**
 * Parses safetensors bytes; `name` is used in error messages. Floats come back as Float32Array. Tensors for
 * which `wanted(name, shape)` is false are not decoded: they come back shape-only (empty data) and are listed
 * in `unread`.
 */
export function parseSafetensors(
  bytes: Uint8Array,
  name = '<bytes>',
  wanted?: (tensor: string, shape: readonly number[]) => boolean,
): SafetensorsContent {
  requireLittleEndianHost();
  const fail = (what: string): never => {
    throw new CheckpointError(`checkpoint ${name}: ${what}`);
  };
  if (bytes.length < 8) fail('too short for a safetensors header');
  const headerSize = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerSize > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    fail(`safetensors header size ${headerSize} exceeds the file (${bytes.length} bytes)`);
  }
  const dataStart = 8 + Number(headerSize);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (e) {
    fail(`safetensors header is not valid JSON (${String((e as Error).message).split('\n')[0]})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('safetensors header is not a JSON object');
  const dataLength = bytes.length - dataStart;
  const metadataEntries: [string, string][] = [];
  const spans: { name: string; begin: number; end: number; dtype: TensorDType; shape: number[] }[] = [];
  for (const [key, value] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('__metadata__ is not an object');
      for (const [mk, mv] of Object.entries(value as Record<string, unknown>)) {
        if (typeof mv !== 'string') fail(`__metadata__ value of '${mk}' is not a string`);
        metadataEntries.push([mk, mv as string]);
      }
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof info !== 'object' || info === null) fail(`tensor '${key}' has no dtype/shape/data_offsets`);
    const dtype = FROM_CODE.get(String(info!.dtype));
    if (!dtype) fail(`unknown dtype '${String(info!.dtype)}' for tensor '${key}' (supported: ${[...FROM_CODE.keys()].join(', ')})`);
    const shape = info!.shape;
    const offsets = info!.data_offsets;
    if (!Array.isArray(shape) || !shape.every(isCount)) fail(`tensor '${key}' has a malformed shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) fail(`tensor '${key}' has malformed data_offsets`);
    const [begin, end] = offsets as [number, number];
    const nbytes = numelOf(shape as number[]) * DTYPE_ITEMSIZE[dtype!];
    if (end < begin || end - begin !== nbytes) fail(`tensor '${key}' has ${end - begin} data bytes, its dtype and shape need ${nbytes}`);
    if (end > dataLength) fail(`tensor '${key}' data [${begin}, ${end}) lies past the end of the file (truncated?)`);
    spans.push({ name: key, begin, end, dtype: dtype!, shape: shape as number[] });
  }
  // The spec requires the buffer to be fully indexed: sorted spans must tile [0, dataLength) exactly.
  const sorted = [...spans].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const s of sorted) {
    if (s.begin !== cursor) fail(`tensor '${s.name}' data starts at ${s.begin}, expected ${cursor} (overlap or hole)`);
    cursor = s.end;
  }
  if (cursor !== dataLength) fail(`data buffer has ${dataLength} bytes but tensors cover ${cursor}`);
  const tensors: StateDict = new Map();
  const unread: string[] = [];
  for (const s of spans) {
    if (wanted && !wanted(s.name, s.shape)) {
      tensors.set(s.name, { shape: s.shape, dtype: s.dtype, data: new Float32Array(0) });
      unread.push(s.name);
      continue;
    }
    const data = decodeElements(bytes, dataStart + s.begin, numelOf(s.shape), s.dtype);
    tensors.set(s.name, { shape: s.shape, dtype: s.dtype, data });
  }
  // Object.fromEntries defines own properties, so a '__proto__' key stays plain data.
  return { tensors, metadata: Object.fromEntries(metadataEntries), unread };
}

/** Reads a safetensors file (path) or buffer. */
export function readSafetensors(input: Uint8Array | string): SafetensorsContent {
  if (typeof input !== 'string') return parseSafetensors(input);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(input);
  } catch (e) {
    throw new CheckpointError(`checkpoint ${input}: cannot read file (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return parseSafetensors(bytes, input);
}

export interface SafetensorsWriteOptions {
  /** Store every float tensor with this dtype instead of its own (e.g. 'float16' to halve the size). */
  floatDType?: 'float32' | 'float16' | 'bfloat16' | 'float64';
}

/**
 * Encodes tensors as safetensors bytes (`label` starts error messages). Header keys are sorted by name; the data is laid out by
 * descending element size, then name, so every tensor starts aligned to its element size.
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, RawTensor>,
  metadata: Record<string, string> = {},
  opts: SafetensorsWriteOptions = {},
  label = 'safetensors',
): Uint8Array {
  requireLittleEndianHost();
  const fail = (what: string): never => {
    throw new Error(`${label}: ${what}`);
  };
  const entries = [...tensors.entries()].map(([name, t]) => {
    if (name === '__metadata__') fail(`tensor name '__metadata__' is reserved`);
    if (!isTensorDType(t.dtype)) fail(`tensor '${name}' has unknown dtype '${String(t.dtype)}'`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || numelOf(t.shape) !== t.data.length) {
      fail(`tensor '${name}' has shape [${t.shape}] but ${t.data.length} elements`);
    }
    const dtype = opts.floatDType && isFloatDType(t.dtype) ? opts.floatDType : t.dtype;
    let raw: Uint8Array;
    try {
      raw = encodeElements(t.data, dtype);
    } catch (e) {
      return fail(`tensor '${name}': ${(e as Error).message}`);
    }
    return { name, shape: t.shape, dtype, raw };
  });
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const layout = [...entries].sort((a, b) => DTYPE_ITEMSIZE[b.dtype] - DTYPE_ITEMSIZE[a.dtype] || byName(a, b));
  const offsets = new Map<string, [number, number]>();
  let cursor = 0;
  for (const e of layout) {
    offsets.set(e.name, [cursor, cursor + e.raw.length]);
    cursor += e.raw.length;
  }
  // Built with Object.fromEntries (own data properties) so names like '__proto__' stay ordinary keys.
  const headerEntries: [string, unknown][] = [];
  const metaEntries = Object.entries(metadata);
  for (const [k, v] of metaEntries) if (typeof v !== 'string') fail(`metadata '${k}' is not a string`);
  if (metaEntries.length > 0) headerEntries.push(['__metadata__', Object.fromEntries(metaEntries)]);
  for (const e of [...entries].sort(byName)) {
    headerEntries.push([e.name, { dtype: TO_CODE[e.dtype], shape: [...e.shape], data_offsets: offsets.get(e.name) }]);
  }
  let json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(headerEntries)));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) {
    const padded = new Uint8Array(json.length + pad).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.length + cursor);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  const dataStart = 8 + json.length;
  for (const e of layout) out.set(e.raw, dataStart + offsets.get(e.name)![0]);
  return out;
}

/** Writes tensors + string metadata as a safetensors file, atomically (temp file + rename). */
export function writeSafetensors(
  file: string,
  tensors: ReadonlyMap<string, RawTensor>,
  metadata: Record<string, string> = {},
  opts: SafetensorsWriteOptions = {},
): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata, opts, `safetensors ${file}`));
}
