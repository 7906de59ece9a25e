/**
 * Plain tensors read from checkpoints: dtype tables, element decoding (incl. float16/bfloat16, which Node 20
 * has no typed arrays for) and gathering strided views into row-major arrays.
 */
import * as os from 'node:os';

export type TensorDType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

/** Element arrays as this module hands them out: every float dtype becomes Float32Array, bool becomes Uint8Array. */
export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/**
 * A tensor in PyTorch layout (row-major, NCHW / OIHW). `dtype` is the dtype stored in the file; readers give
 * float16/bfloat16/float64 data as Float32Array values (writers accept Float64Array for float64 too).
 * Tensors from torch.save files are frozen objects (their `data` and `shape` arrays are not): build a new
 * object rather than reassigning fields.
 */
export interface RawTensor {
  shape: number[];
  dtype: TensorDType;
  data: TensorData;
}

/** Parameter and buffer names as PyTorch's state_dict() gives them, in file order. */
export type StateDict = Map<string, RawTensor>;

/** Errors whose message is already the final one-line message (`checkpoint <file>: ...`). */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export const DTYPE_ITEMSIZE: Readonly<Record<TensorDType, number>> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export const TENSOR_DTYPES = Object.keys(DTYPE_ITEMSIZE) as TensorDType[];

export function isFloatDType(dtype: TensorDType): boolean {
  return dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float64';
}

export function isTensorDType(x: unknown): x is TensorDType {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_ITEMSIZE, x);
}

/** Structural check, so tensors survive being copied between plain objects and Maps. */
export function isRawTensor(x: unknown): x is RawTensor {
  if (typeof x !== 'object' || x === null) return false;
  const t = x as Partial<RawTensor>;
  return Array.isArray(t.shape) && isTensorDType(t.dtype) && ArrayBuffer.isView(t.data);
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Every byte-level conversion below reinterprets little-endian file bytes as host typed arrays. */
export function requireLittleEndianHost(): void {
  if (os.endianness() !== 'LE') throw new Error('checkpoint readers need a little-endian host');
}

/** Copies `byteLength` bytes at `byteOffset` into a fresh (aligned) buffer. */
function alignedCopy(bytes: Uint8Array, byteOffset: number, byteLength: number): ArrayBuffer {
  const buf = new ArrayBuffer(byteLength);
  new Uint8Array(buf).set(bytes.subarray(byteOffset, byteOffset + byteLength));
  return buf;
}

// float16 -> float32 via a 64K lookup table built once (exact: every half value is a float32 value).
let halfTable: Float32Array | undefined;
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24;
    else if (exp === 31) table[h] = frac ? NaN : sign * Infinity;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  halfTable = table;
  return table;
}

/** float32 -> float16 bits, round to nearest even (as PyTorch's .half()). */
export function floatToHalfBits(value: number): number {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000; // implicit leading one, then shift into the subnormal range
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let bits = mant >>> shift;
    if (rest > half || (rest === half && bits & 1)) bits++;
    return sign | bits;
  }
  let bits = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && bits & 1)) bits++; // may carry into the exponent: still correct
  e = bits >> 10;
  return sign | (e >= 31 ? 0x7c00 : bits);
}

/** float32 -> bfloat16 bits, round to nearest even (as PyTorch's .bfloat16()). */
export function floatToBFloat16Bits(value: number): number {
  const f32 = new Float32Array([value]);
  const x = new Uint32Array(f32.buffer)[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Decodes `numel` little-endian elements of `dtype` starting at `byteOffset` into the array type readers hand
 * out (floats -> Float32Array, int64 -> BigInt64Array, bool -> Uint8Array).
 */
export function decodeElements(bytes: Uint8Array, byteOffset: number, numel: number, dtype: TensorDType): TensorData {
  const size = numel * DTYPE_ITEMSIZE[dtype];
  const buf = alignedCopy(bytes, byteOffset, size);
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf);
    case 'float64':
      return Float32Array.from(new Float64Array(buf));
    case 'float16': {
      const table = halfToFloatTable();
      const h = new Uint16Array(buf);
      const out = new Float32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = table[h[i]];
      return out;
    }
    case 'bfloat16': {
      const h = new Uint16Array(buf);
      const bits = new Uint32Array(numel);
      for (let i = 0; i < numel; i++) bits[i] = h[i] << 16;
      return new Float32Array(bits.buffer);
    }
    case 'int64':
      return new BigInt64Array(buf);
    case 'int32':
      return new Int32Array(buf);
    case 'int16':
      return new Int16Array(buf);
    case 'int8':
      return new Int8Array(buf);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buf);
  }
}

/** The inverse of decodeElements: little-endian bytes of `dtype` from the element array. */
export function encodeElements(data: TensorData, dtype: TensorDType): Uint8Array {
  const n = data.length;
  const expectBig = dtype === 'int64';
  if (expectBig !== data instanceof BigInt64Array) {
    throw new Error(`dtype ${dtype} cannot be written from a ${data.constructor.name}`);
  }
  const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const numbers = data as Exclude<TensorData, BigInt64Array>;
  switch (dtype) {
    case 'float32':
      return bytesOf(numbers instanceof Float32Array ? numbers : Float32Array.from(numbers));
    case 'float64':
      return bytesOf(numbers instanceof Float64Array ? numbers : Float64Array.from(numbers));
    case 'float16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = floatToHalfBits(numbers[i]);
      return bytesOf(out);
    }
    case 'bfloat16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = floatToBFloat16Bits(numbers[i]);
      return bytesOf(out);
    }
    case 'int64':
      return bytesOf(data as BigInt64Array);
    case 'int32':
      return bytesOf(numbers instanceof Int32Array ? numbers : Int32Array.from(numbers));
    case 'int16':
      return bytesOf(numbers instanceof Int16Array ? numbers : Int16Array.from(numbers));
    case 'int8':
      return bytesOf(numbers instanceof Int8Array ? numbers : Int8Array.from(numbers));
    case 'uint8':
      return bytesOf(numbers instanceof Uint8Array ? numbers : Uint8Array.from(numbers));
    case 'bool':
      return Uint8Array.from(numbers, (v) => (v ? 1 : 0));
  }
}

// Strided views (torch.ts rebuilds every tensor from storage, offset, shape and stride).
export { gatherStrided, isContiguous } from '../../util/strided';
