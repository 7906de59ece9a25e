/**
 * Statistics of ablation studies: means with bootstrap 95% intervals over images, paired tests between two
 * conditions measured on the same images (or seeds), and the Gini coefficient behind LAM's diffusion index.
 * Everything in float64 (JS numbers). The paired tests come from @stdlib (well kept, scipy-compatible); the
 * bootstrap is a few lines over a seeded Rng, so runs are reproducible and a test can supply its own resamples.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
import ttest = require('@stdlib/stats-ttest');
// eslint-disable-next-line @typescript-eslint/no-require-imports
import wilcoxon = require('@stdlib/stats-wilcoxon');
import { Rng } from '../../util/rng';

export interface Interval {
  lo: number;
  hi: number;
}

export interface MeanWithInterval {
  mean: number;
  /** 95% percentile bootstrap interval of the mean (null with fewer than 2 values). */
  ci: Interval | null;
  n: number;
}

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
}

/** Sample standard deviation (ddof 1, like numpy's std(ddof=1)); 0 for one value. */
export function std(xs: ArrayLike<number>): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i] - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

/** The q-th percentile (0..100) with linear interpolation between order statistics, numpy's default method. */
export function percentile(xs: ArrayLike<number>, q: number): number {
  if (xs.length === 0) throw new Error('percentile: no values');
  const s = Float64Array.from(xs).sort();
  const pos = (q / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (pos - lo) * (s[hi] - s[lo]);
}

/** B x n resample indices (each row n draws with replacement from 0..n-1), from a seeded generator. */
export function bootstrapIndices(n: number, replicates: number, seed: number | string): Int32Array[] {
  const rng = new Rng(`${seed}:bootstrap`);
  return Array.from({ length: replicates }, () => {
    const row = new Int32Array(n);
    for (let i = 0; i < n; i++) row[i] = rng.int(0, n);
    return row;
  });
}

/**
 * Mean of `xs` with a 95% percentile bootstrap interval: the 2.5th and 97.5th percentiles of the resampled means.
 * `indices` (rows of resample indices) may be given to reproduce another implementation's draws exactly; with no
 * replicates the interval is null.
 */
export function bootstrapMean(
  xs: ArrayLike<number>,
  opts: { replicates?: number; seed?: number | string; indices?: ArrayLike<number>[] } = {},
): MeanWithInterval {
  const n = xs.length;
  if (n === 0) throw new Error('bootstrapMean: no values');
  const m = mean(xs);
  if (n < 2 || !Array.from(xs).every(Number.isFinite)) return { mean: m, ci: null, n };
  const rows = opts.indices ?? bootstrapIndices(n, opts.replicates ?? 2000, opts.seed ?? 0);
  if (rows.length === 0) return { mean: m, ci: null, n };
  const means = rows.map((row) => {
    if (row.length !== n) throw new Error(`bootstrapMean: a resample has ${row.length} indices, expected ${n}`);
    let s = 0;
    for (let i = 0; i < n; i++) s += xs[row[i]];
    return s / n;
  });
  return { mean: m, ci: { lo: percentile(means, 2.5), hi: percentile(means, 97.5) }, n };
}

export interface PairedTest {
  /** Mean of a - b. */
  meanDiff: number;
  ci: Interval | null;
  tTest: { statistic: number; pValue: number; df: number } | null;
  wilcoxon: { statistic: number; pValue: number } | null;
  /** Neither test rejects equality at alpha (or too few pairs to test). */
  notSignificant: boolean;
  alpha: number;
  n: number;
}

/**
 * Paired comparison of a and b measured on the same units (images, seeds): the mean difference with a bootstrap
 * interval, the paired t-test (scipy.stats.ttest_rel) and the Wilcoxon signed-rank test (scipy.stats.wilcoxon,
 * zero_method 'wilcox', no continuity correction, exact for n <= 50 without ties or zeros, like scipy's defaults;
 * the statistic is the sum of positive ranks). Too few or all-equal pairs give null tests.
 */
export function pairedTest(a: ArrayLike<number>, b: ArrayLike<number>, opts: { alpha?: number; replicates?: number; seed?: number | string } = {}): PairedTest {
  if (a.length !== b.length) throw new Error(`pairedTest: ${a.length} vs ${b.length} values; pairs must match`);
  const alpha = opts.alpha ?? 0.05;
  const d = Array.from(a, (v, i) => v - b[i]);
  const n = d.length;
  const boot = bootstrapMean(d, { replicates: opts.replicates, seed: opts.seed });
  const allZero = d.every((v) => v === 0);
  const finite = d.every(Number.isFinite);
  let t: PairedTest['tTest'] = null;
  let w: PairedTest['wilcoxon'] = null;
  if (n >= 2 && finite && std(d) > 0) {
    const r = ttest(Float64Array.from(a), Float64Array.from(b), { alpha });
    t = { statistic: r.statistic, pValue: r.pValue, df: r.df };
  }
  if (n >= 2 && finite && !allZero) {
    const r = wilcoxon(Float64Array.from(d), { alpha, zeroMethod: 'wilcox', correction: false });
    w = { statistic: r.statistic, pValue: r.pValue };
  }
  const rejects = (t && t.pValue < alpha) || (w && w.pValue < alpha);
  return { meanDiff: boot.mean, ci: boot.ci, tTest: t, wilcoxon: w, notSignificant: !rejects, alpha, n };
}

/**
 * Gini coefficient of non-negative values as LAM computes it (Gu & Dong 2021): values shifted up if any is negative,
 * 1e-7 added so none is zero, sorted, G = sum((2i - n - 1) x_i) / (n sum x_i) with i = 1..n.
 */
export function gini(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) throw new Error('gini: no values');
  let min = Infinity;
  for (let i = 0; i < n; i++) min = Math.min(min, values[i]);
  const shift = min < 0 ? -min : 0;
  const s = Float64Array.from(values, (v) => v + shift + 1e-7).sort();
  let num = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    num += (2 * (i + 1) - n - 1) * s[i];
    sum += s[i];
  }
  return num / (n * sum);
}

/** LAM's diffusion index: DI = (1 - Gini) x 100; larger means the attribution spreads over more input pixels. */
export function diffusionIndex(map: ArrayLike<number>): number {
  return (1 - gini(map)) * 100;
}
