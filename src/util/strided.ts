/**
 * Strided views of flat typed arrays, materialised row-major: PyTorch tensors that are views of a shared storage
 * (checkpoints) and Fortran-order .npy arrays (a view with column-major strides) both go through here.
 */

export type StridedElements = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/**
 * Materialises the view (offset, shape, stride) of `storage` as a fresh row-major array of the same type.
 * The caller has checked that every index lies inside the storage.
 */
export function gatherStrided<T extends StridedElements>(storage: T, offset: number, shape: readonly number[], stride: readonly number[]): T {
  let numel = 1;
  for (const d of shape) numel *= d;
  const Ctor = storage.constructor as { new (n: number): T };
  const out = new Ctor(numel);
  if (numel === 0) return out;
  // Element copies below go through a Float32Array view of the types: the same code works for BigInt64Array.
  const o = out as unknown as Float32Array;
  const s = storage as unknown as Float32Array;
  if (isContiguous(shape, stride)) {
    o.set(s.subarray(offset, offset + numel));
    return out;
  }
  // Odometer over the index tuple: no per-element division, works for any rank.
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let src = offset;
  for (let i = 0; i < numel; i++) {
    o[i] = s[src];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += stride[d];
      if (idx[d] < shape[d]) break;
      src -= stride[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** Row-major contiguity, ignoring the strides of size-1 dimensions (as PyTorch does). */
export function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}
