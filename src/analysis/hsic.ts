/**
 * HSIC estimators on Gram matrices, float64.
 *
 *   biased   HSIC0(K, L) = tr(K H L H) / (n-1)^2,  H = I - 11^T/n          (Gretton et al. 2005)
 *   unbiased HSIC1(K, L) = [ tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) (K~ 1).(L~ 1) ] / (n(n-3))
 *            with K~, L~ = K, L with zeroed diagonals, n >= 4                (Song et al. 2012)
 *
 * Gram matrices are symmetric (every kernel here produces symmetric ones), so tr(A B) = <A, B>_F is computed as
 * an elementwise dot product. Results are never clamped: HSIC1 of two different Grams can be negative and that
 * is part of the estimator being unbiased.
 *
 * For many layer pairs the per-Gram work (centring, row sums) is done once by `prepareGram`, then each pair costs
 * one O(n^2) dot product (`hsicPrepared`). A Gram whose entries are all identical (identical examples) is
 * replaced by zeros: its HSIC is 0 in exact arithmetic, and float rounding would otherwise leave ~1e-17 noise
 * that CKA would divide by. A Gram with any NaN/Inf entry gives NaN HSIC with every partner.
 */
import { assertSquare, centerGram, isConstantGram, mat, type Mat } from './gram';

export type Estimator = 'biased' | 'unbiased';

export const ESTIMATORS: readonly Estimator[] = ['biased', 'unbiased'];

/** Per-Gram quantities for repeated HSIC evaluations. */
export interface PreparedGram {
  estimator: Estimator;
  n: number;
  /** biased: H K H. unbiased: K~ (K with zero diagonal). */
  m: Float64Array;
  /** unbiased only: K~ 1. */
  rowSums: Float64Array;
  /** unbiased only: 1^T K~ 1. */
  total: number;
  /** All entries of K were identical (the matrices above are then all zeros). */
  constant: boolean;
}

export function assertEstimator(estimator: string, where: string): Estimator {
  if (!(ESTIMATORS as readonly string[]).includes(estimator)) {
    throw new Error(`${where}: unknown estimator '${estimator}', expected 'biased' or 'unbiased'`);
  }
  return estimator as Estimator;
}

/** Minimum n for each estimator: (n-1)^2 > 0 for HSIC0; n(n-3) > 0 and n-2 > 0 for HSIC1. */
export function minExamples(estimator: Estimator): number {
  return estimator === 'unbiased' ? 4 : 2;
}

export function assertEnoughExamples(n: number, estimator: Estimator, where: string): void {
  if (n < minExamples(estimator)) {
    throw new Error(
      estimator === 'unbiased'
        ? `${where}: unbiased HSIC1 (Song et al. 2012) needs n >= 4 examples per Gram, got n=${n}`
        : `${where}: biased HSIC0 needs n >= 2 examples per Gram, got n=${n}`,
    );
  }
}

/** K with its diagonal set to zero (K~ in Song et al.). */
export function zeroDiagonal(K: Mat): Mat {
  const n = assertSquare(K, 'hsic.ts zeroDiagonal');
  const out = mat(n, n, Float64Array.from(K.data));
  for (let i = 0; i < n; i++) out.data[i * n + i] = 0;
  return out;
}

function rowSumsOf(A: Mat): Float64Array {
  const n = A.rows;
  const r = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += A.data[i * n + j];
    r[i] = s;
  }
  return r;
}

function sum(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  return s;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Precomputes what `hsicPrepared` needs from one Gram. Throws on non-square K or too few examples. */
export function prepareGram(K: Mat, estimator: Estimator): PreparedGram {
  const n = assertSquare(K, 'hsic.ts prepareGram');
  assertEstimator(estimator, 'hsic.ts prepareGram');
  assertEnoughExamples(n, estimator, 'hsic.ts prepareGram');
  // A NaN/Inf anywhere (even on the diagonal, which HSIC1 ignores) must surface as a non-finite HSIC.
  if (!K.data.every(Number.isFinite)) {
    return { estimator, n, m: new Float64Array(n * n).fill(NaN), rowSums: new Float64Array(n).fill(NaN), total: NaN, constant: false };
  }
  const constant = isConstantGram(K);
  if (constant) return { estimator, n, m: new Float64Array(n * n), rowSums: new Float64Array(n), total: 0, constant };
  if (estimator === 'biased') return { estimator, n, m: centerGram(K).data, rowSums: new Float64Array(0), total: 0, constant };
  const Kt = zeroDiagonal(K);
  const rowSums = rowSumsOf(Kt);
  return { estimator, n, m: Kt.data, rowSums, total: sum(rowSums), constant };
}

/** HSIC of two prepared Grams (same estimator, same n). */
export function hsicPrepared(a: PreparedGram, b: PreparedGram): number {
  if (a.estimator !== b.estimator) throw new Error(`hsic.ts hsicPrepared: estimators differ ('${a.estimator}' vs '${b.estimator}')`);
  if (a.n !== b.n) throw new Error(`hsic.ts hsicPrepared: Grams have different sizes (n=${a.n} vs n=${b.n}); both must cover the same examples`);
  const n = a.n;
  if (a.estimator === 'biased') {
    // tr(K H L H) = <HKH, HLH>_F since H is symmetric and idempotent.
    return dot(a.m, b.m) / ((n - 1) * (n - 1));
  }
  const trace = dot(a.m, b.m); // tr(K~ L~)
  const sums = (a.total * b.total) / ((n - 1) * (n - 2)); // (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2))
  const rows = (2 / (n - 2)) * dot(a.rowSums, b.rowSums); // 2/(n-2) (K~ 1).(L~ 1)
  return (trace + sums - rows) / (n * (n - 3));
}

function assertSameSize(K: Mat, L: Mat, where: string): void {
  const n = assertSquare(K, where);
  const m = assertSquare(L, where);
  if (n !== m) throw new Error(`${where}: K is ${n}x${n} but L is ${m}x${m}; both Grams must cover the same examples`);
}

/** Biased HSIC0(K, L) = tr(K H L H) / (n-1)^2. */
export function hsic0(K: Mat, L: Mat): number {
  assertSameSize(K, L, 'hsic.ts hsic0');
  return hsicPrepared(prepareGram(K, 'biased'), prepareGram(L, 'biased'));
}

/** Unbiased HSIC1(K, L), Song et al. 2012 closed form. Throws for n < 4. May be negative. */
export function hsic1(K: Mat, L: Mat): number {
  assertSameSize(K, L, 'hsic.ts hsic1');
  return hsicPrepared(prepareGram(K, 'unbiased'), prepareGram(L, 'unbiased'));
}

/** HSIC with the named estimator. */
export function hsic(K: Mat, L: Mat, estimator: Estimator): number {
  return assertEstimator(estimator, 'hsic.ts hsic') === 'unbiased' ? hsic1(K, L) : hsic0(K, L);
}

/**
 * U-centring (Song et al. 2012; Kornblith's `center_gram(unbiased=True)`):
 * U = K~ - m 1^T - 1 m^T with m_j = sum_i K~_ij / (n-2) - sum(K~) / (2(n-1)(n-2)), and diag(U) = 0.
 */
export function uCenter(K: Mat): Mat {
  const n = assertSquare(K, 'hsic.ts uCenter');
  assertEnoughExamples(n, 'unbiased', 'hsic.ts uCenter');
  const Kt = zeroDiagonal(K);
  const colSums = rowSumsOf(Kt); // K~ is symmetric
  const total = sum(colSums);
  const m = colSums.map((c) => c / (n - 2) - total / (2 * (n - 1) * (n - 2)));
  const U = mat(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) U.data[i * n + j] = i === j ? 0 : Kt.data[i * n + j] - m[i] - m[j];
  }
  return U;
}

/** HSIC1 in the U-centring form <U_K, U_L>_F / (n(n-3)); equal to `hsic1` (tests prove it). */
export function hsic1UCentered(K: Mat, L: Mat): number {
  assertSameSize(K, L, 'hsic.ts hsic1UCentered');
  const n = K.rows;
  return dot(uCenter(K).data, uCenter(L).data) / (n * (n - 3));
}
