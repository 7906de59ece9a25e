/**
 * Centered Kernel Alignment (Kornblith et al. 2019):
 *
 *   CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))
 *
 * with the biased HSIC0 or the unbiased HSIC1 ("debiased CKA", Nguyen et al. 2021), and the linear-kernel
 * feature-space form ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centred X, Y.
 *
 * Degenerate inputs — one design everywhere:
 * - Structural misuse (shapes differ, non-square Gram, n too small for the estimator, unknown option) THROWS.
 * - Data-dependent degeneracy returns `{ value: null, flag }`, never a silent NaN and never a clamped number:
 *     'non-finite'          an HSIC term is NaN/Inf (NaN/Inf in the input);
 *     'constant-features'   a self-HSIC is exactly 0 (all examples identical: the representation has no
 *                           variation the estimator can see);
 *     'negative-self-hsic'  a self-HSIC is < 0 (impossible in exact arithmetic for HSIC0/HSIC1 of a Gram, so
 *                           it signals rounding on a near-degenerate input).
 *   Otherwise `value` is the number as computed, negative values included.
 */
import { gram, type Kernel, type Mat, type RbfOptions } from './gram';
import { assertEstimator, hsicPrepared, prepareGram, type Estimator } from './hsic';

export type CkaFlag = 'constant-features' | 'non-finite' | 'negative-self-hsic';

export interface CkaValue {
  /** CKA, or null when `flag` says why it is undefined. */
  value: number | null;
  flag?: CkaFlag;
}

export interface CkaOptions {
  /** 'biased' (HSIC0, Kornblith 2019) or 'unbiased' (HSIC1, debiased CKA). Default 'biased'. */
  estimator?: Estimator;
}

/**
 * sqrt(a b), exactly `a` when a === b: self-similarity then comes out as exactly 1 (h / h) instead of
 * depending on how sqrt rounds.
 */
function geometricMean(a: number, b: number): number {
  return a === b ? a : Math.sqrt(a) * Math.sqrt(b);
}

/** CKA from the three HSIC terms (or their sums over minibatches): kl / sqrt(kk ll), with the flags above. */
export function ckaFromHsic(kl: number, kk: number, ll: number): CkaValue {
  if (!Number.isFinite(kl) || !Number.isFinite(kk) || !Number.isFinite(ll)) return { value: null, flag: 'non-finite' };
  if (kk === 0 || ll === 0) return { value: null, flag: 'constant-features' };
  if (kk < 0 || ll < 0) return { value: null, flag: 'negative-self-hsic' };
  return { value: kl / geometricMean(kk, ll) };
}

/** CKA between two Gram matrices over the same n examples. */
export function ckaFromGrams(K: Mat, L: Mat, opts: CkaOptions = {}): CkaValue {
  const estimator = assertEstimator(opts.estimator ?? 'biased', 'cka.ts ckaFromGrams');
  if (K.rows !== L.rows) {
    throw new Error(`cka.ts ckaFromGrams: K is ${K.rows}x${K.cols} but L is ${L.rows}x${L.cols}; both must cover the same examples`);
  }
  const a = prepareGram(K, estimator);
  const b = K === L ? a : prepareGram(L, estimator);
  return ckaFromHsic(hsicPrepared(a, b), hsicPrepared(a, a), hsicPrepared(b, b));
}

/** Debiased CKA: CKA with the unbiased HSIC1 (needs n >= 4). */
export function debiasedCka(K: Mat, L: Mat): CkaValue {
  return ckaFromGrams(K, L, { estimator: 'unbiased' });
}

export interface FeatureCkaOptions extends CkaOptions, RbfOptions {
  /** Default 'linear'. */
  kernel?: Kernel;
}

function assertSameExamples(X: Mat, Y: Mat, where: string): void {
  if (X.rows !== Y.rows) throw new Error(`${where}: X has ${X.rows} examples (rows) but Y has ${Y.rows}; rows must be the same examples`);
  if (X.data.length !== X.rows * X.cols || Y.data.length !== Y.rows * Y.cols) {
    throw new Error(`${where}: a Mat's data length does not match rows x cols`);
  }
}

/** CKA between two representations (rows = the same examples) via their Gram matrices. */
export function cka(X: Mat, Y: Mat, opts: FeatureCkaOptions = {}): CkaValue {
  assertSameExamples(X, Y, 'cka.ts cka');
  const kernel = opts.kernel ?? 'linear';
  const K = gram(X, kernel, opts);
  const L = X === Y ? K : gram(Y, kernel, opts);
  return ckaFromGrams(K, L, opts);
}

/** Column-centred copy of X (subtract each feature's mean over examples). */
export function centerColumns(X: Mat): Mat {
  const { rows: n, cols: p } = X;
  const mean = new Float64Array(p);
  for (let i = 0; i < n; i++) for (let k = 0; k < p; k++) mean[k] += X.data[i * p + k];
  for (let k = 0; k < p; k++) mean[k] /= n;
  const out = { rows: n, cols: p, data: new Float64Array(n * p) };
  for (let i = 0; i < n; i++) for (let k = 0; k < p; k++) out.data[i * p + k] = X.data[i * p + k] - mean[k];
  return out;
}

/** ||A^T B||_F^2 for A (n x p), B (n x q): the squared Frobenius norm of the p x q cross-covariance (unscaled). */
function crossCovarianceNormSq(A: Mat, B: Mat): number {
  const { rows: n, cols: p } = A;
  const q = B.cols;
  const c = new Float64Array(q);
  let s = 0;
  for (let j = 0; j < p; j++) {
    c.fill(0);
    for (let i = 0; i < n; i++) {
      const a = A.data[i * p + j];
      for (let k = 0; k < q; k++) c[k] += a * B.data[i * q + k];
    }
    for (let k = 0; k < q; k++) s += c[k] * c[k];
  }
  return s;
}

/**
 * Linear CKA in feature space (cheaper than Grams when p, q << n):
 * ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centred X, Y. Equals the biased linear Gram form.
 */
export function linearCkaFeatures(X: Mat, Y: Mat): CkaValue {
  assertSameExamples(X, Y, 'cka.ts linearCkaFeatures');
  if (X.rows < 2) throw new Error(`cka.ts linearCkaFeatures: needs n >= 2 examples, got n=${X.rows}`);
  // Identical examples: centring leaves rounding noise, not zeros; report them as constant like the Gram path.
  if (rowsIdentical(X) || rowsIdentical(Y)) return { value: null, flag: 'constant-features' };
  const Xc = centerColumns(X);
  const Yc = X === Y ? Xc : centerColumns(Y);
  const xx = crossCovarianceNormSq(Xc, Xc);
  const yy = Yc === Xc ? xx : crossCovarianceNormSq(Yc, Yc);
  return ckaFromHsic(crossCovarianceNormSq(Xc, Yc), xx, yy);
}

/** All rows bitwise equal to the first: exactly the case in which a linear or RBF Gram of X is constant. */
export function rowsIdentical(X: Mat): boolean {
  const { rows: n, cols: p, data } = X;
  for (let i = 1; i < n; i++) for (let k = 0; k < p; k++) if (data[i * p + k] !== data[k]) return false;
  return true;
}
