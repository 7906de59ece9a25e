/** Slice, SplitV and Unpack as copies inside the wasm heap. */
import * as tf from '@tensorflow/tfjs';
import { Attrs, WasmHeapBackend } from './common';

/**
 * Copies the box [begin, begin + size) of x into `out` (a fresh output of that many elements), inside the
 * wasm heap: one copyWithin per contiguous run (the trailing axes the box spans fully are one run). The
 * stock kernels first copy ALL of x into a new JS array (readSync) for every slice.
 */
export function copyBox(backend: WasmHeapBackend, x: tf.TensorInfo, begin: number[], size: number[], out: tf.TensorInfo): void {
  const rank = x.shape.length;
  if (size.some((s) => s === 0)) return;
  const bytes = tf.util.bytesPerElement(x.dtype);
  const strides = [...tf.util.computeStrides(x.shape), 1];
  let j = rank - 1; // axes after j are spanned fully: one run covers size[j] rows of them
  while (j > 0 && size[j] === x.shape[j]) j--;
  const run = rank === 0 ? bytes : size[j] * strides[j] * bytes;
  // Read the heap after makeOutput: growing the wasm memory replaces the buffer.
  const heap = backend.wasm.HEAPU8;
  const xBase = backend.dataIdMap.get(x.dataId).memoryOffset;
  let dst = backend.dataIdMap.get(out.dataId).memoryOffset;
  const idx = new Array<number>(Math.max(j, 0)).fill(0);
  for (;;) {
    let src = 0;
    for (let i = 0; i < rank; i++) src += (begin[i] + (i < j ? idx[i] : 0)) * strides[i];
    heap.copyWithin(dst, xBase + src * bytes, xBase + src * bytes + run);
    dst += run;
    let i = j - 1; // odometer over the axes before j
    while (i >= 0 && ++idx[i] === size[i]) idx[i--] = 0;
    if (i < 0) return;
  }
}

export type SliceKernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: WasmHeapBackend; attrs: Attrs };

export function sliceKernel({ inputs, backend, attrs }: SliceKernelArgs): tf.TensorInfo {
  const x = inputs.x;
  const [begin, size] = tf.slice_util.parseSliceParams(x, attrs.begin as number[], attrs.size as number[]);
  const out = backend.makeOutput(size, x.dtype);
  copyBox(backend, x, begin, size, out);
  return out;
}

export function splitVKernel({ inputs, backend, attrs }: SliceKernelArgs): tf.TensorInfo[] {
  const x = inputs.x;
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits as number | number[], axis);
  const begin = x.shape.map(() => 0);
  return sizes.map((s) => {
    const size = x.shape.slice();
    size[axis] = s;
    const out = backend.makeOutput(size, x.dtype);
    copyBox(backend, x, begin, size, out);
    begin[axis] += s;
    return out;
  });
}

export function unpackKernel({ inputs, backend, attrs }: SliceKernelArgs): tf.TensorInfo[] {
  const x = inputs.value;
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const outShape = x.shape.filter((_, i) => i !== axis);
  const size = x.shape.slice();
  size[axis] = 1;
  const begin = x.shape.map(() => 0);
  return Array.from({ length: x.shape[axis] }, (_, i) => {
    begin[axis] = i;
    const out = backend.makeOutput(outShape, x.dtype);
    copyBox(backend, x, begin, size, out);
    return out;
  });
}
