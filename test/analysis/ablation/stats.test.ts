import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootstrapMean, diffusionIndex, gini, pairedTest, percentile, std } from '../../../src/analysis/ablation/stats';

const FIX = JSON.parse(fs.readFileSync(path.join(__dirname, '../../fixtures/ablation/stats.json'), 'utf8'));

describe('ablation statistics equal scipy/numpy (test/fixtures/make_ablation_fixtures.py)', () => {
  for (const c of FIX.paired as { a: number[]; b: number[]; ties: boolean; t_statistic: number; t_p: number; w_p: number; indices: number[][]; ci: number[]; mean: number; std: number }[]) {
    it(`paired tests, n=${c.a.length}${c.ties ? ' with ties' : ''}`, () => {
      const r = pairedTest(c.a, c.b);
      expect(r.meanDiff).toBeCloseTo(c.mean, 12);
      expect(r.tTest!.statistic).toBeCloseTo(c.t_statistic, 9);
      expect(r.tTest!.pValue).toBeCloseTo(c.t_p, 9);
      expect(r.wilcoxon!.pValue).toBeCloseTo(c.w_p, 9);
      expect(r.notSignificant).toBe(!(c.t_p < 0.05 || c.w_p < 0.05));
      const d = c.a.map((v, i) => v - c.b[i]);
      expect(std(d)).toBeCloseTo(c.std, 12);
    });
    it(`bootstrap percentile interval from numpy's resamples, n=${c.a.length}`, () => {
      const d = c.a.map((v, i) => v - c.b[i]);
      const r = bootstrapMean(d, { indices: c.indices });
      expect(r.ci!.lo).toBeCloseTo(c.ci[0], 12);
      expect(r.ci!.hi).toBeCloseTo(c.ci[1], 12);
    });
  }
  it('gini and diffusion index as LAM computes them', () => {
    expect(gini(FIX.gini.values)).toBeCloseTo(FIX.gini.gini, 12);
    expect(diffusionIndex(FIX.gini.values)).toBeCloseTo(FIX.gini.di, 10);
    expect(gini(FIX.gini.negative)).toBeCloseTo(FIX.gini.gini_negative, 12);
  });
  it('properties: percentile endpoints, seeded bootstrap is reproducible and brackets the mean', () => {
    expect(percentile([3, 1, 2], 0)).toBe(1);
    expect(percentile([3, 1, 2], 100)).toBe(3);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const a = bootstrapMean(xs, { seed: 4, replicates: 500 });
    const b = bootstrapMean(xs, { seed: 4, replicates: 500 });
    expect(a).toEqual(b);
    expect(a.ci!.lo).toBeLessThan(a.mean);
    expect(a.ci!.hi).toBeGreaterThan(a.mean);
    expect(bootstrapMean([5]).ci).toBeNull();
    // a uniform map diffuses fully, a single spike not at all
    expect(diffusionIndex(new Array(100).fill(1))).toBeCloseTo(100, 4);
    const spike = new Array(100).fill(0);
    spike[3] = 1;
    expect(diffusionIndex(spike)).toBeLessThan(2);
  });
  it('refuses mismatched pairs', () => {
    expect(() => pairedTest([1, 2], [1])).toThrow(/pairs must match/);
  });
});
