/**
 * Gram matrices for CKA/HSIC (Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited").
 *
 * Two paths:
 * - float64, pure JS (`linearGram`, `rbfGram`): for tests, fixtures and small data.
 * - TF.js (`gramFromTensor`): the heavy X X^T runs on the tfjs backend in float32; everything after it
 *   (symmetrising, squared distances, median bandwidth, exp) runs in float64.
 *
 * The float64 kernels are short hand-written loops over Float64Array on purpose: mathjs matrices box every
 * number into nested JS arrays (slow, and no typed-array input), and these O(n^2 p) loops are all we need.
 *
 * Matrices are plain data: row-major `Mat`, rows = examples.
 */
import * as tf from '@tensorflow/tfjs';

/** A dense row-major float64 matrix. */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export type Kernel = 'linear' | 'rbf';

export interface RbfOptions {
  /** Kornblith's bandwidth factor: sigma^2 = threshold^2 * median(squared distances). Default 1. */
  threshold?: number;
}

/** A rows x cols matrix: zero-filled, wrapping a Float64Array `data` (not copied), or converting other arrays. */
export function mat(rows: number, cols: number, data?: Float64Array | ArrayLike<number>): Mat {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new Error(`gram.ts mat: rows and cols must be non-negative integers, got ${rows}x${cols}`);
  }
  const d = data === undefined ? new Float64Array(rows * cols) : data instanceof Float64Array ? data : Float64Array.from(data);
  if (d.length !== rows * cols) {
    throw new Error(`gram.ts mat: expected ${rows}x${cols}=${rows * cols} values, got ${d.length}`);
  }
  return { rows, cols, data: d };
}

/** A matrix from nested rows (tests, JSON fixtures). */
export function matFromRows(rowsData: ArrayLike<ArrayLike<number>>): Mat {
  const rows = rowsData.length;
  const cols = rows === 0 ? 0 : rowsData[0].length;
  const out = mat(rows, cols);
  for (let i = 0; i < rows; i++) {
    if (rowsData[i].length !== cols) throw new Error(`gram.ts matFromRows: row ${i} has ${rowsData[i].length} values, expected ${cols}`);
    for (let j = 0; j < cols; j++) out.data[i * cols + j] = rowsData[i][j];
  }
  return out;
}

/** Wraps a flat n x n Gram (as produced by `gramFromTensor`) as a Mat; `where` names the caller for errors. */
export function squareMat(data: Float64Array, n: number, where = 'gram.ts squareMat'): Mat {
  if (data.length !== n * n) throw new Error(`${where}: expected an n x n Gram with n=${n} (${n * n} values), got ${data.length}`);
  return { rows: n, cols: n, data };
}

/** Throws unless K is square; returns n. */
export function assertSquare(K: Mat, where: string): number {
  if (K.rows !== K.cols || K.data.length !== K.rows * K.cols) {
    throw new Error(`${where}: expected a square Gram matrix, got ${K.rows}x${K.cols} with ${K.data.length} values`);
  }
  return K.rows;
}

/** Linear kernel Gram K = X X^T (n x n), float64. */
export function linearGram(X: Mat): Mat {
  const { rows: n, cols: p, data: x } = X;
  const K = mat(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) s += x[i * p + k] * x[j * p + k];
      K.data[i * n + j] = s;
      K.data[j * n + i] = s;
    }
  }
  return K;
}

/**
 * Median of the values, with numpy's convention for an even count (mean of the two middle values).
 * Hand-written: a typed-array sort avoids boxing n^2 distances, and the even-count rule must match numpy.
 */
export function median(values: Float64Array): number {
  if (values.length === 0) throw new Error('gram.ts median: empty input');
  const s = Float64Array.from(values).sort(); // numeric sort; NaN sorts last
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Squared Euclidean distances from a linear Gram: d_ij = K_ii + K_jj - 2 K_ij (not clamped, as Kornblith). */
export function squaredDistancesFromGram(K: Mat): Mat {
  const n = assertSquare(K, 'gram.ts squaredDistancesFromGram');
  const D = mat(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) D.data[i * n + j] = K.data[i * n + i] + K.data[j * n + j] - 2 * K.data[i * n + j];
  }
  return D;
}

function validThreshold(threshold: number | undefined, where: string): number {
  const t = threshold ?? 1;
  if (!Number.isFinite(t) || t <= 0) throw new Error(`${where}: threshold must be a finite number > 0, got ${threshold}`);
  return t;
}

/**
 * RBF Gram exp(-d_ij / (2 sigma^2)) from a linear Gram, with Kornblith's bandwidth
 * sigma^2 = threshold^2 * median(d), the median taken over all n^2 entries (zero diagonal included).
 *
 * All distances zero (every example identical) gives the all-ones Gram: the sigma -> 0+ limit, whose HSIC is 0,
 * so CKA reports 'constant-features'. A zero median with some non-zero distances has no meaningful bandwidth
 * and throws.
 */
export function rbfFromLinearGram(K: Mat, opts: RbfOptions = {}): Mat {
  const threshold = validThreshold(opts.threshold, 'gram.ts rbfGram');
  const D = squaredDistancesFromGram(K);
  const n = D.rows;
  // NaN/Inf input: a NaN Gram, which CKA flags as 'non-finite' (rather than a misleading bandwidth error).
  if (!D.data.every(Number.isFinite)) return mat(n, n, new Float64Array(n * n).fill(NaN));
  const med = median(D.data);
  if (med === 0) {
    if (D.data.every((d) => d === 0)) return mat(n, n, new Float64Array(n * n).fill(1));
    throw new Error(
      'gram.ts rbfGram: the median squared distance is 0 (more than half of the example pairs coincide), so ' +
        "Kornblith's median bandwidth is undefined; use the linear kernel or more varied examples",
    );
  }
  const scale = -1 / (2 * threshold * threshold * med);
  for (let i = 0; i < D.data.length; i++) D.data[i] = Math.exp(D.data[i] * scale);
  return D;
}

/** RBF Gram of the rows of X (float64), Kornblith's median bandwidth. */
export function rbfGram(X: Mat, opts: RbfOptions = {}): Mat {
  return rbfFromLinearGram(linearGram(X), opts);
}

/** Gram of X for the named kernel (float64). */
export function gram(X: Mat, kernel: Kernel, opts: RbfOptions = {}): Mat {
  if (kernel === 'linear') return linearGram(X);
  if (kernel === 'rbf') return rbfGram(X, opts);
  throw new Error(`gram.ts gram: unknown kernel '${kernel as string}', expected 'linear' or 'rbf'`);
}

/** H K H with H = I - 11^T/n: K_ij - rowMean_i - colMean_j + grandMean. */
export function centerGram(K: Mat): Mat {
  const n = assertSquare(K, 'gram.ts centerGram');
  const k = K.data;
  const rowMean = new Float64Array(n);
  const colMean = new Float64Array(n);
  let grand = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      rowMean[i] += k[i * n + j];
      colMean[j] += k[i * n + j];
    }
  }
  for (let i = 0; i < n; i++) {
    grand += rowMean[i];
    rowMean[i] /= n;
    colMean[i] /= n;
  }
  grand /= n * n;
  const C = mat(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) C.data[i * n + j] = k[i * n + j] - rowMean[i] - colMean[j] + grand;
  }
  return C;
}

/** True when all n^2 entries are identical: the Gram of identical examples, which carries no signal. */
export function isConstantGram(K: Mat): boolean {
  const k = K.data;
  for (let i = 1; i < k.length; i++) if (k[i] !== k[0]) return false;
  return k.length > 0 && !Number.isNaN(k[0]);
}

/** Gram[idx_i, idx_j]: example re-indexing for permutation baselines (idx a permutation) and bootstrap. */
export function reindexGram(K: Mat, idx: ArrayLike<number>): Mat {
  const n = assertSquare(K, 'gram.ts reindexGram');
  const m = idx.length;
  const out = mat(m, m);
  for (let i = 0; i < m; i++) {
    const row = idx[i] * n;
    for (let j = 0; j < m; j++) out.data[i * m + j] = K.data[row + idx[j]];
  }
  return out;
}

export interface GramFromTensorOptions {
  /**
   * Centre the feature columns on the backend before X X^T (default true). HSIC0 and HSIC1 are unchanged by it
   * (H K H and U-centring remove exactly what it removes), and it keeps the float32 product from losing the
   * signal under a large mean (e.g. post-ReLU activations). The linear Gram returned is then H X X^T H.
   */
  centerFeatures?: boolean;
}

/**
 * n x n Gram (row-major Float64Array) of the rows of `x`: X X^T on the tfjs backend (float32), then float64.
 * The float32 product is symmetrised in float64; for 'rbf' the squared distances diag_i + diag_j - 2 K_ij,
 * the median bandwidth and exp are float64. Examples that are all identical give an exactly constant Gram
 * (zeros for linear, ones for rbf) rather than float32 rounding noise. `x` is not disposed.
 */
export function gramFromTensor(
  x: tf.Tensor2D,
  kernel: Kernel = 'linear',
  threshold = 1,
  opts: GramFromTensorOptions = {},
): Float64Array {
  if (x.rank !== 2) throw new Error(`gram.ts gramFromTensor: expected a rank-2 [n, p] tensor, got shape [${x.shape.join(', ')}]`);
  if (kernel !== 'linear' && kernel !== 'rbf') {
    throw new Error(`gram.ts gramFromTensor: unknown kernel '${kernel as string}', expected 'linear' or 'rbf'`);
  }
  validThreshold(threshold, 'gram.ts gramFromTensor');
  const [n] = x.shape;
  const range = tf.tidy(() => tf.max(x, 0).sub(tf.min(x, 0)).max());
  const constant = range.dataSync()[0] === 0;
  range.dispose();
  if (constant) return new Float64Array(n * n).fill(kernel === 'linear' ? 0 : 1);

  const product = tf.tidy(() => {
    const xc = opts.centerFeatures === false ? x : tf.sub(x, tf.mean(x, 0, true));
    return tf.matMul(xc, xc, false, true);
  });
  const f32 = product.dataSync();
  product.dispose();
  const K = mat(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) K.data[i * n + j] = 0.5 * (f32[i * n + j] + f32[j * n + i]);
  }
  return kernel === 'linear' ? K.data : rbfFromLinearGram(K, { threshold }).data;
}
