/**
 * NumPy .npy files (format versions 1.0, 2.0, 3.0) and the edge converters for PyTorch tensor layouts.
 *
 * Layout rule: inside irlens, image batches and feature maps are NHWC float32. PyTorch (and .npy files written
 * from it) use NCHW for batches and CHW for single images. readNpy/writeNpy never reorder axes; conversion happens
 * only in npyToTensor (NCHW or CHW -> NHWC) and tensorToNpy (NHWC -> NCHW or CHW), at the boundary.
 *
 * Supported dtypes: float32 '<f4', float64 '<f8', uint8 '|u1', int32 '<i4', int64 '<i8' (read as BigInt64Array),
 * little-endian, any rank including 0-d. Fortran-order files are transposed to C order on reading.
 *
 * Hand-written rather than npm `npyjs` (1.2.0, source read): its parser does not check the data length against
 * the shape (a truncated file silently yields a short array), leaves Fortran-order data untransposed, builds typed
 * arrays at unaligned offsets of the caller's buffer, its load() fetches URLs instead of reading files and pulls
 * in cross-fetch, and its writer only emits version 1.0. The format (NEP 1) is a 10-12 byte preamble and a
 * Python-literal header, so the reader and writer below are short.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from '../util/fs';
import { gatherStrided } from '../util/strided';

export type NpyDtype = 'float32' | 'float64' | 'uint8' | 'int32' | 'int64';
export type NpyData = Float32Array | Float64Array | Uint8Array | Int32Array | BigInt64Array;

export interface NpyArray {
  /** C-order shape; [] for a 0-d array. */
  shape: number[];
  dtype: NpyDtype;
  /** C-order values, product(shape) of them. */
  data: NpyData;
}

interface DtypeInfo {
  descr: string;
  size: number;
  ctor: new (buffer: ArrayBuffer) => NpyData;
}

const DTYPES: Record<NpyDtype, DtypeInfo> = {
  float32: { descr: '<f4', size: 4, ctor: Float32Array },
  float64: { descr: '<f8', size: 8, ctor: Float64Array },
  uint8: { descr: '|u1', size: 1, ctor: Uint8Array },
  int32: { descr: '<i4', size: 4, ctor: Int32Array },
  int64: { descr: '<i8', size: 8, ctor: BigInt64Array },
};

/** descr strings accepted on reading ('<u1' and '|i4' style spellings included) -> dtype. */
const DESCR_TO_DTYPE: Record<string, NpyDtype> = {
  '<f4': 'float32', '<f8': 'float64', '|u1': 'uint8', '<u1': 'uint8', '=u1': 'uint8',
  '<i4': 'int32', '<i8': 'int64',
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ALIGN = 64; // numpy >= 1.14 pads the preamble + header to 64 bytes

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function npyError(name: string, reason: string): Error {
  return new Error(`npy '${name}': ${reason}`);
}

interface Header {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
}

/** A header excerpt for messages: one line, control characters shown as '?', at most 120 characters. */
function headerExcerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?').trim();
  return flat.length > 120 ? `${flat.slice(0, 120)}...` : flat;
}

/** Parses the header dict, e.g. "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }". */
function parseHeader(text: string, name: string): Header {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined) {
    throw npyError(name, `header has no simple 'descr' (structured dtypes are not supported): ${headerExcerpt(text)}`);
  }
  if (fortran === undefined || shapeText === undefined) throw npyError(name, `malformed header: ${headerExcerpt(text)}`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim().replace(/L$/, '')) // Python 2 wrote longs as 3L
    .filter((s) => s.length > 0)
    .map((s) => {
      if (!/^\d+$/.test(s)) throw npyError(name, `malformed shape (${headerExcerpt(shapeText)})`);
      const d = Number(s);
      if (!Number.isSafeInteger(d)) throw npyError(name, `shape (${headerExcerpt(shapeText)}) has a dimension too large to index`);
      return d;
    });
  if (!Number.isSafeInteger(product(shape) * 8)) throw npyError(name, `shape (${headerExcerpt(shapeText)}) holds more elements than can be indexed`);
  return { descr, fortranOrder: fortran === 'True', shape };
}

/** Reorders Fortran-order (first index fastest) values into C order (last index fastest). */
function fortranToC<T extends NpyData>(src: T, shape: readonly number[]): T {
  if (shape.length <= 1 || src.length === 0) return src;
  // Fortran order is the C-order array seen through column-major strides.
  const fStride: number[] = [];
  let s = 1;
  for (const d of shape) {
    fStride.push(s);
    s *= d;
  }
  return gatherStrided(src, 0, shape, fStride);
}

/** Parses .npy bytes; `name` is used in error messages. */
export function decodeNpy(bytes: Uint8Array, name = '<bytes>'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m)) {
    throw npyError(name, 'not a .npy file (missing \\x93NUMPY magic)');
  }
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerStart = 10;
    headerLength = view.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw npyError(name, 'truncated preamble');
    headerStart = 12;
    headerLength = view.getUint32(8, true);
  } else {
    throw npyError(name, `unsupported format version ${major}.${bytes[7]} (expected 1.0, 2.0 or 3.0)`);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) throw npyError(name, 'truncated header');
  // Version 3.0 allows utf8 in the header (field names); 1.0/2.0 are latin1.
  const headerText = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));
  const header = parseHeader(headerText, name);
  const dtype = DESCR_TO_DTYPE[header.descr];
  if (dtype === undefined) {
    const hint = header.descr.startsWith('>') ? ' (big-endian: save with arr.astype(arr.dtype.newbyteorder("<")))' : '';
    throw npyError(name, `unsupported dtype '${headerExcerpt(header.descr)}'${hint}; expected <f4, <f8, |u1, <i4 or <i8`);
  }
  const info = DTYPES[dtype];
  const byteLength = product(header.shape) * info.size;
  if (bytes.length - dataStart < byteLength) {
    throw npyError(
      name,
      `truncated data: shape (${header.shape.join(', ')}) ${dtype} needs ${byteLength} bytes, ` +
        `file has ${bytes.length - dataStart}`,
    );
  }
  // Copy into a fresh, aligned buffer (the data offset inside a Node Buffer need not be a multiple of 8).
  // (Buffer.prototype.slice would return a view, so copy explicitly.)
  const copy = new Uint8Array(byteLength);
  copy.set(bytes.subarray(dataStart, dataStart + byteLength));
  let data = new info.ctor(copy.buffer);
  if (header.fortranOrder) data = fortranToC(data, header.shape);
  return { shape: header.shape, dtype, data };
}

/** Reads a .npy file (path) or .npy bytes. */
export function readNpy(source: string | Uint8Array): NpyArray {
  if (typeof source !== 'string') return decodeNpy(source);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(source);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw npyError(source, err.code === 'ENOENT' ? 'file does not exist' : err.message.split('\n')[0]);
  }
  return decodeNpy(bytes, source);
}

function dtypeOfData(data: NpyData): NpyDtype | undefined {
  return (Object.keys(DTYPES) as NpyDtype[]).find((d) => data instanceof DTYPES[d].ctor);
}

function pythonShape(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

/** Serialises an array to .npy bytes (version 1.0, or 2.0 when the header exceeds 65535 bytes), like numpy.save. */
export function encodeNpy(arr: NpyArray, name = '<bytes>'): Uint8Array {
  const { shape, dtype, data } = arr;
  const info = DTYPES[dtype];
  if (info === undefined) throw npyError(name, `unsupported dtype '${String(dtype)}'; expected ${Object.keys(DTYPES).join(', ')}`);
  if (dtypeOfData(data) !== dtype) {
    throw npyError(name, `dtype '${dtype}' does not match data of type ${data.constructor.name}`);
  }
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw npyError(name, `shape must hold non-negative integers, got [${shape.join(', ')}]`);
  }
  if (product(shape) !== data.length) {
    throw npyError(name, `shape (${shape.join(', ')}) holds ${product(shape)} values, data has ${data.length}`);
  }
  if (os.endianness() !== 'LE') throw npyError(name, 'writing .npy is only implemented on little-endian hosts');
  const dict = `{'descr': '${info.descr}', 'fortran_order': False, 'shape': ${pythonShape(shape)}, }`;
  const paddedFor = (preambleBytes: number) => Math.ceil((preambleBytes + dict.length + 1) / ALIGN) * ALIGN;
  const version = paddedFor(10) - 10 <= 0xffff ? 1 : 2;
  const preamble = version === 1 ? 10 : 12;
  const padded = paddedFor(preamble);
  const headerText = dict + ' '.repeat(padded - preamble - dict.length - 1) + '\n';
  const out = new Uint8Array(padded + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, headerText.length, true);
  else view.setUint32(8, headerText.length, true);
  for (let i = 0; i < headerText.length; i++) out[preamble + i] = headerText.charCodeAt(i);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), padded);
  return out;
}

/** Writes a .npy file atomically. */
export function writeNpy(file: string, arr: NpyArray): void {
  writeFileAtomic(file, encodeNpy(arr, file));
}

export interface NpyToTensorOptions {
  /** How errors and warnings name the array, e.g. "--input 'x.npy'" (default 'npy array'). */
  name?: string;
  /** Warn once on stderr when values lie outside [0,1] (image inputs; feature maps leave it off). */
  unitRange?: boolean;
}

/** Index of the first NaN/Infinity, or -1. */
export function firstNonFiniteIndex(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return i;
  return -1;
}

/** Row-major index -> "(i, j, ...)" for messages. */
export function formatIndex(flat: number, shape: readonly number[]): string {
  const idx: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(shape[d] > 0 ? flat % shape[d] : 0);
    flat = shape[d] > 0 ? Math.floor(flat / shape[d]) : 0;
  }
  return `(${idx.join(', ')})`;
}

/**
 * PyTorch layout -> irlens layout: a float (N,C,H,W) or (C,H,W) array becomes an NHWC float32 tensor
 * (N = 1 for CHW). Any channel count is accepted (feature maps as well as images). Empty arrays and NaN/Inf
 * values are refused (the wasm backend's clipping would silently turn NaN into 0). The caller disposes it.
 */
export function npyToTensor(arr: NpyArray, opts: NpyToTensorOptions = {}): tf.Tensor4D {
  const name = opts.name ?? 'npy array';
  if (arr.dtype !== 'float32' && arr.dtype !== 'float64') {
    throw new Error(`${name}: expected a float32 or float64 array, got ${arr.dtype} (save it with arr.astype(np.float32))`);
  }
  if (arr.shape.length !== 3 && arr.shape.length !== 4) {
    throw new Error(`${name}: expected shape (N,C,H,W) or (C,H,W), got (${arr.shape.join(', ')})`);
  }
  if (arr.shape.some((d) => d === 0)) throw new Error(`${name}: array of shape (${arr.shape.join(', ')}) is empty`);
  const bad = firstNonFiniteIndex(arr.data as Float32Array | Float64Array);
  if (bad >= 0) {
    throw new Error(`${name}: value ${arr.data[bad]} at index ${formatIndex(bad, arr.shape)} (values must be finite)`);
  }
  if (opts.unitRange) {
    let lo = Infinity;
    let hi = -Infinity;
    let outside = 0;
    for (const v of arr.data as Float32Array | Float64Array) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      if (v < 0 || v > 1) outside++;
    }
    if (outside > 0) {
      process.stderr.write(
        `irlens: warning: ${name}: ${outside} of ${arr.data.length} values lie outside [0,1] (min ${lo}, max ${hi}); ` +
          'images are expected in [0,1] and outputs are clipped to it\n',
      );
    }
  }
  const [n, c, h, w] = arr.shape.length === 4 ? arr.shape : [1, ...arr.shape];
  const values = arr.data instanceof Float32Array ? arr.data.slice() : Float32Array.from(arr.data as Float64Array);
  return tf.tidy(() => tf.transpose(tf.tensor4d(values, [n, c, h, w], 'float32'), [0, 2, 3, 1]));
}

/**
 * irlens layout -> PyTorch layout: an NHWC tensor (or HWC) becomes a float32 array in NCHW, or CHW when
 * layout is 'CHW' (then N must be 1). The tensor is not disposed.
 */
export function tensorToNpy(t: tf.Tensor4D | tf.Tensor3D, layout: 'NCHW' | 'CHW' = 'NCHW'): NpyArray {
  if (t.rank !== 3 && t.rank !== 4) throw new Error(`tensorToNpy: expected an NHWC or HWC tensor, got rank ${t.rank}`);
  const shape = t.shape as number[];
  const [n, h, w, c] = t.rank === 4 ? shape : [1, ...shape];
  if (layout === 'CHW' && n !== 1) {
    throw new Error(`tensorToNpy: layout 'CHW' needs a single image, got a batch of ${n}`);
  }
  if (layout !== 'NCHW' && layout !== 'CHW') throw new Error(`tensorToNpy: layout must be 'NCHW' or 'CHW', got '${String(layout)}'`);
  const data = tf.tidy(() => {
    const nchw = tf.transpose(tf.cast(tf.reshape(t, [n, h, w, c]), 'float32'), [0, 3, 1, 2]);
    return (nchw.dataSync() as Float32Array).slice();
  });
  return { shape: layout === 'CHW' ? [c, h, w] : [n, c, h, w], dtype: 'float32', data };
}
