/**
 * The small statistics and integer helpers used across irlens, in one place, from mathjs: means and sample
 * standard deviations over seeds and images, medians of timings, gcd/lcm of patch multiples.
 * (analysis/gram.ts keeps its own float64 median over n^2 distances: a typed-array sort without boxing.)
 */
import { gcd as mathGcd, lcm as mathLcm, mean as mathMean, median as mathMedian, std as mathStd } from 'mathjs';

/** Arithmetic mean; NaN for an empty list. */
export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : (mathMean([...xs]) as number);
}

/** Sample standard deviation (n - 1); 0 for fewer than two values (one seed has no spread). */
export function std(xs: readonly number[]): number {
  return xs.length < 2 ? 0 : (mathStd([...xs], 'unbiased') as unknown as number);
}

/** Median (mean of the two middle values for an even count); NaN for an empty list. */
export function median(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : (mathMedian([...xs]) as number);
}

/** Mean, sample std and count of a list (what the reports print as mean ± std over n). */
export function meanStd(xs: readonly number[]): { mean: number; std: number; n: number } {
  return { mean: xs.length === 0 ? 0 : mean(xs), std: std(xs), n: xs.length };
}

export function gcd(a: number, b: number): number {
  return mathGcd(a, b) as number;
}

/** Least common multiple of positive integers (1 for none). */
export function lcm(...xs: number[]): number {
  return xs.reduce((l, x) => mathLcm(l, x) as number, 1);
}
