/** BatchMatMul routes: transposes and batched products folded onto fast XNNPACK paths. */
import * as tf from '@tensorflow/tfjs';
import { Attrs } from './common';

export type MatMulRoute = 'transposed-2d' | 'shared-right' | 'grouped' | 'stock';

/**
 * Below this many multiply-adds (batch * m * k * n) the stock loop beats the grouped convolution, whose
 * transposes and operator set-up cost ~0.05 ms (measured: 64 x 4x4x4 stock 0.02 ms, grouped 0.05 ms).
 */
export const GROUPED_MIN_MACS = 1 << 17;

/**
 * BatchMatMul when every batch dim is 1 and an operand is transposed: transpose it explicitly (a cheap copy)
 * and use the stock XNNPACK path. Batched products with a shared right operand fold into one 2-D product.
 * True batches (same batch dims on both sides) of enough work run as one grouped convolution; broadcast
 * batches and tiny products stay on the stock kernel.
 */
export function matMulRoute(aShape: number[], bShape: number[], attrs: Attrs): MatMulRoute {
  const batch = (s: number[]) => s.slice(0, -2).reduce((p, q) => p * q, 1);
  const transposed = attrs.transposeA === true || attrs.transposeB === true;
  if (batch(aShape) === 1 && batch(bShape) === 1) return transposed ? 'transposed-2d' : 'stock';
  if (batch(bShape) === 1 && attrs.transposeA !== true) return 'shared-right';
  const sameBatch = aShape.length === bShape.length && aShape.slice(0, -2).every((d, i) => d === bShape[i]);
  const [m, k] = attrs.transposeA === true ? [aShape.at(-1)!, aShape.at(-2)!] : [aShape.at(-2)!, aShape.at(-1)!];
  const n = attrs.transposeB === true ? bShape.at(-2)! : bShape.at(-1)!;
  if (sameBatch && batch(aShape) * m * k * n >= GROUPED_MIN_MACS) return 'grouped';
  return 'stock';
}

export function swapLast(t: tf.Tensor): tf.Tensor {
  const perm = t.shape.map((_, i) => i);
  [perm[t.rank - 2], perm[t.rank - 1]] = [perm[t.rank - 1], perm[t.rank - 2]];
  return tf.transpose(t, perm);
}

export function fastBatchMatMul(a: tf.Tensor, b: tf.Tensor, attrs: Attrs, route: MatMulRoute): tf.Tensor {
  if (route === 'grouped') return groupedMatMul(a, b, attrs.transposeA === true, attrs.transposeB === true);
  const a2 = attrs.transposeA === true ? swapLast(a) : a;
  const b2 = attrs.transposeB === true ? swapLast(b) : b;
  if (route === 'transposed-2d') return stockMatMul(a2, b2);
  const aShape = a.shape as number[];
  const [m, k] = aShape.slice(-2);
  const n = (b2.shape as number[])[b2.rank - 1];
  const out = stockMatMul(a.reshape([1, a.size / k, k]), b2.reshape([1, k, n]));
  return out.reshape([...aShape.slice(0, -2), m, n]);
}

/**
 * C[g] = A[g] B[g] for g < G as ONE depthwise convolution, which XNNPACK runs as a grouped GEMM (3-4x the
 * stock loop on window-attention shapes; measured 384 x 64x30x64: 51 ms -> 15 ms). With the G products in the
 * channels, input X[0, r, l, g] = A[g][r, l] ([1, m, k, G]) and filter F[0, l, g, c] = B[g][l, c]
 * ([1, k, G, n], channel multiplier n): a 1 x k 'valid' depthwise conv gives out[0, r, 0, g*n + c] =
 * sum_l A[g][r, l] B[g][l, c], i.e. [m, G, n]. The operands and the result take one transpose each
 * (rank 3); transposeA/transposeB fold into those transposes.
 */
export function groupedMatMul(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): tf.Tensor {
  const batchDims = a.shape.slice(0, -2);
  const g = batchDims.reduce((p, q) => p * q, 1);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, k] = transposeA ? [ac, ar] : [ar, ac];
  const n = transposeB ? br : bc;
  const a3 = a.reshape([g, ar, ac]);
  const b3 = b.reshape([g, br, bc]);
  const aT = tf.transpose(a3, transposeA ? [2, 1, 0] : [1, 2, 0]);
  const bT = tf.transpose(b3, transposeB ? [2, 0, 1] : [1, 0, 2]);
  const x = aT.reshape([1, m, k, g]) as tf.Tensor4D;
  const filter = bT.reshape([1, k, g, n]) as tf.Tensor4D;
  const y = tf.depthwiseConv2d(x, filter, 1, 'valid'); // [1, m, 1, G*n]
  // Free each copy as soon as it is used (attention maps are the largest tensors of a block; a reshape shares
  // its source's data, so both go). No tape records inside a kernel, so nothing else holds them.
  tf.dispose([aT, bT, x, filter]);
  const yMGN = y.reshape([m, g, n]);
  const out = tf.transpose(yMGN, [1, 0, 2]);
  tf.dispose([y, yMGN]);
  return out.reshape([...batchDims, m, n]);
}

export function stockMatMul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const out = stockBatchMatMul!.kernelFunc({
    inputs: { a, b },
    backend: tf.engine().backend,
    attrs: { transposeA: false, transposeB: false },
  }) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(out);
}


let stockBatchMatMul: tf.KernelConfig | undefined;

/** The stock BatchMatMul kernel, which the replaced one (and stockMatMul) fall back to. */
export function setStockBatchMatMul(kernel: tf.KernelConfig): void {
  stockBatchMatMul = kernel;
}
