import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { cka, ckaFromGrams, debiasedCka, linearCkaFeatures, type CkaValue } from '../../src/analysis/cka';
import {
  centerGram,
  gram,
  gramFromTensor,
  linearGram,
  mat,
  matFromRows,
  rbfGram,
  squareMat,
  type Kernel,
  type Mat,
} from '../../src/analysis/gram';
import { hsic0, hsic1, hsic1UCentered } from '../../src/analysis/hsic';
import { Rng } from '../../src/util/rng';

function randn(rng: Rng, rows: number, cols: number, offset = 0): Mat {
  const m = mat(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = rng.normal() + offset;
  return m;
}

function matmul(A: Mat, B: Mat): Mat {
  const C = mat(A.rows, B.cols);
  for (let i = 0; i < A.rows; i++)
    for (let k = 0; k < A.cols; k++)
      for (let j = 0; j < B.cols; j++) C.data[i * B.cols + j] += A.data[i * A.cols + k] * B.data[k * B.cols + j];
  return C;
}

function mapMat(A: Mat, f: (v: number, i: number, j: number) => number): Mat {
  const out = mat(A.rows, A.cols);
  for (let i = 0; i < A.rows; i++) for (let j = 0; j < A.cols; j++) out.data[i * A.cols + j] = f(A.data[i * A.cols + j], i, j);
  return out;
}

/** Random orthogonal matrix: Gram-Schmidt on a Gaussian matrix. */
function randomOrthogonal(rng: Rng, p: number): Mat {
  const Q = randn(rng, p, p);
  for (let j = 0; j < p; j++) {
    for (let k = 0; k < j; k++) {
      let d = 0;
      for (let i = 0; i < p; i++) d += Q.data[i * p + j] * Q.data[i * p + k];
      for (let i = 0; i < p; i++) Q.data[i * p + j] -= d * Q.data[i * p + k];
    }
    let norm = 0;
    for (let i = 0; i < p; i++) norm += Q.data[i * p + j] ** 2;
    for (let i = 0; i < p; i++) Q.data[i * p + j] /= Math.sqrt(norm);
  }
  return Q;
}

/** Y related to X: a random projection through tanh plus noise. */
function related(rng: Rng, X: Mat, q: number, noise = 0.3): Mat {
  const W = randn(rng, X.cols, q);
  return mapMat(matmul(X, W), (v) => Math.tanh(v / Math.sqrt(X.cols)) + noise * rng.normal());
}

function value(c: CkaValue): number {
  if (c.value === null) throw new Error(`unexpected flag ${c.flag}`);
  return c.value;
}

interface FixtureCase {
  name: string;
  n: number;
  x: number[][];
  y: number[][];
  results: Record<string, Record<string, number>>;
}

const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/cka/cases.json'), 'utf8')) as { cases: FixtureCase[] };

describe('numpy cross-check (test/fixtures/make_cka_fixtures.py)', () => {
  const kernels: [string, Kernel, number][] = [
    ['linear', 'linear', 1],
    ['rbf_1', 'rbf', 1],
    ['rbf_0.5', 'rbf', 0.5],
  ];
  for (const c of fixture.cases) {
    for (const [key, kernel, threshold] of kernels) {
      it(`${c.name} (n=${c.n}) ${key}: HSIC0/HSIC1 terms and CKA equal numpy to 1e-9`, () => {
        const X = matFromRows(c.x);
        const Y = matFromRows(c.y);
        const K = gram(X, kernel, { threshold });
        const L = gram(Y, kernel, { threshold });
        const r = c.results[key];
        const scale0 = Math.sqrt(r.hsic0_kk * r.hsic0_ll);
        expect(Math.abs(hsic0(K, L) - r.hsic0_kl) / scale0).toBeLessThan(1e-9);
        expect(Math.abs(hsic0(K, K) - r.hsic0_kk) / r.hsic0_kk).toBeLessThan(1e-9);
        expect(Math.abs(hsic0(L, L) - r.hsic0_ll) / r.hsic0_ll).toBeLessThan(1e-9);
        expect(Math.abs(value(ckaFromGrams(K, L, { estimator: 'biased' })) - r.cka_biased)).toBeLessThan(1e-9);
        const scale1 = Math.sqrt(r.hsic1_kk * r.hsic1_ll);
        expect(Math.abs(hsic1(K, L) - r.hsic1_kl) / scale1).toBeLessThan(1e-9);
        expect(Math.abs(hsic1(K, K) - r.hsic1_kk) / r.hsic1_kk).toBeLessThan(1e-9);
        expect(Math.abs(hsic1(L, L) - r.hsic1_ll) / r.hsic1_ll).toBeLessThan(1e-9);
        expect(Math.abs(value(debiasedCka(K, L)) - r.cka_unbiased)).toBeLessThan(1e-9);
        if (key === 'linear') expect(Math.abs(value(linearCkaFeatures(X, Y)) - r.cka_feature_space)).toBeLessThan(1e-9);
      });
    }
  }

  it('the fixture includes a negative HSIC1 (independent case, RBF) and irlens keeps it negative', () => {
    const c = fixture.cases.find((k) => k.name === 'independent')!;
    expect(c.results.rbf_1.hsic1_kl).toBeLessThan(0);
    const v = value(debiasedCka(rbfGram(matFromRows(c.x)), rbfGram(matFromRows(c.y))));
    expect(v).toBeLessThan(0);
    expect(Math.abs(v - c.results.rbf_1.cka_unbiased)).toBeLessThan(1e-9);
  });
});

describe('identities', () => {
  const rng = new Rng('identities');
  const X = randn(rng, 30, 8, 0.7);
  const Y = related(rng, X, 5);

  it('linear Gram form equals the feature-space form', () => {
    const gramForm = value(ckaFromGrams(linearGram(X), linearGram(Y)));
    expect(Math.abs(gramForm - value(linearCkaFeatures(X, Y)))).toBeLessThan(1e-12);
  });

  it('Song et al. closed-form HSIC1 equals the U-centring form', () => {
    const sym = mapMat(randn(rng, 12, 12), (v) => v); // a symmetric but non-PSD matrix too
    for (let i = 0; i < 12; i++) for (let j = 0; j < i; j++) sym.data[i * 12 + j] = sym.data[j * 12 + i];
    const pairs: [Mat, Mat][] = [
      [linearGram(X), linearGram(Y)],
      [rbfGram(X), rbfGram(Y, { threshold: 0.5 })],
      [sym, linearGram(randn(rng, 12, 3))],
    ];
    for (const [K, L] of pairs) {
      const scale = Math.sqrt(hsic1UCentered(K, K) * hsic1UCentered(L, L));
      expect(Math.abs(hsic1(K, L) - hsic1UCentered(K, L)) / scale).toBeLessThan(1e-12);
    }
    const n4 = [linearGram(randn(rng, 4, 3)), linearGram(randn(rng, 4, 2))];
    expect(hsic1(n4[0], n4[1])).toBeCloseTo(hsic1UCentered(n4[0], n4[1]), 12);
  });

  it('HSIC0 equals tr(K H L H)/(n-1)^2 with an explicit H', () => {
    const K = linearGram(X);
    const L = rbfGram(Y);
    const n = K.rows;
    const H = mapMat(mat(n, n), (_, i, j) => (i === j ? 1 : 0) - 1 / n);
    const KHLH = matmul(matmul(matmul(K, H), L), H);
    let tr = 0;
    for (let i = 0; i < n; i++) tr += KHLH.data[i * n + i];
    expect(hsic0(K, L)).toBeCloseTo(tr / (n - 1) ** 2, 10);
    // H K H is idempotent under centring
    expect(Math.max(...centerGram(centerGram(K)).data.map((v, i) => Math.abs(v - centerGram(K).data[i])))).toBeLessThan(1e-10);
  });

  it('CKA(X, X) is exactly 1 for every kernel and estimator, also for an equal copy', () => {
    const copy = mat(X.rows, X.cols, Float64Array.from(X.data));
    for (const kernel of ['linear', 'rbf'] as const) {
      for (const estimator of ['biased', 'unbiased'] as const) {
        expect(cka(X, X, { kernel, estimator }).value).toBe(1);
        expect(cka(X, copy, { kernel, estimator }).value).toBe(1);
      }
    }
    expect(linearCkaFeatures(X, X).value).toBe(1);
    expect(linearCkaFeatures(X, copy).value).toBe(1);
  });

  it('is symmetric', () => {
    for (const kernel of ['linear', 'rbf'] as const) {
      for (const estimator of ['biased', 'unbiased'] as const) {
        expect(cka(X, Y, { kernel, estimator }).value).toBe(cka(Y, X, { kernel, estimator }).value);
      }
    }
    expect(value(linearCkaFeatures(X, Y))).toBeCloseTo(value(linearCkaFeatures(Y, X)), 14);
  });

  it('is invariant to orthogonal transforms, isotropic scaling and translation; not to a random invertible map', () => {
    const Q = randomOrthogonal(rng, X.cols);
    const shift = randn(rng, 1, X.cols, 3).data;
    const transforms: [string, Mat][] = [
      ['orthogonal', matmul(X, Q)],
      ['scaling', mapMat(X, (v) => 3.7 * v)],
      ['translation', mapMat(X, (v, _, j) => v + shift[j])],
      ['all three', mapMat(matmul(X, Q), (v, _, j) => 0.2 * v + shift[j])],
    ];
    for (const kernel of ['linear', 'rbf'] as const) {
      for (const estimator of ['biased', 'unbiased'] as const) {
        const base = value(cka(X, Y, { kernel, estimator }));
        for (const [, Xt] of transforms) expect(Math.abs(value(cka(Xt, Y, { kernel, estimator })) - base)).toBeLessThan(1e-10);
      }
    }
    // A random invertible, badly conditioned map: stretch one direction by 20 after a rotation.
    const stretch = mapMat(mat(X.cols, X.cols), (_, i, j) => (i === j ? (i === 0 ? 20 : 1) : 0));
    const A = matmul(matmul(Q, stretch), randomOrthogonal(rng, X.cols));
    const XA = matmul(X, A);
    for (const estimator of ['biased', 'unbiased'] as const) {
      const base = value(cka(X, Y, { estimator }));
      expect(Math.abs(value(cka(XA, Y, { estimator })) - base)).toBeGreaterThan(1e-2);
      expect(value(cka(X, XA, { estimator }))).toBeLessThan(0.95);
    }
  });

  it('independent data at small n: unbiased ~0 on average, biased clearly > 0', () => {
    const seeds = 100;
    let biased = 0;
    let unbiased = 0;
    for (let s = 0; s < seeds; s++) {
      const r = new Rng(`independent-${s}`);
      const K = linearGram(randn(r, 20, 50));
      const L = linearGram(randn(r, 20, 50));
      biased += value(ckaFromGrams(K, L, { estimator: 'biased' }));
      unbiased += value(debiasedCka(K, L));
    }
    expect(Math.abs(unbiased / seeds)).toBeLessThan(0.03);
    expect(biased / seeds).toBeGreaterThan(0.5);
  });
});

describe('no clamping, degenerate inputs', () => {
  it('keeps negative HSIC1 and negative debiased CKA values', () => {
    let found = false;
    for (let s = 0; s < 20 && !found; s++) {
      const r = new Rng(`negative-${s}`);
      const K = linearGram(randn(r, 8, 6));
      const L = linearGram(randn(r, 8, 6));
      const h = hsic1(K, L);
      if (h < 0) {
        found = true;
        const v = value(debiasedCka(K, L));
        expect(v).toBeLessThan(0);
        expect(v).toBeCloseTo(h / Math.sqrt(hsic1(K, K) * hsic1(L, L)), 14);
      }
    }
    expect(found).toBe(true);
  });

  it('throws a clear error for HSIC1 / debiased CKA with n < 4 and for mismatched sizes', () => {
    const r = new Rng('small');
    const K3 = linearGram(randn(r, 3, 4));
    expect(() => hsic1(K3, K3)).toThrow(/n >= 4.*n=3/);
    expect(() => debiasedCka(K3, K3)).toThrow(/n >= 4/);
    expect(value(ckaFromGrams(K3, K3))).toBe(1); // biased is fine at n = 3
    expect(() => hsic0(linearGram(randn(r, 1, 2)), linearGram(randn(r, 1, 2)))).toThrow(/n >= 2/);
    expect(() => hsic0(K3, linearGram(randn(r, 5, 2)))).toThrow(/same examples/);
    expect(() => cka(randn(r, 5, 2), randn(r, 6, 2))).toThrow(/same examples/);
    expect(() => ckaFromGrams(K3, K3, { estimator: 'fancy' as never })).toThrow(/unknown estimator/);
  });

  it('flags constant features instead of returning NaN or noise', () => {
    const r = new Rng('constant');
    const X = randn(r, 10, 4);
    const C = mapMat(mat(10, 3), (_, __, j) => 0.1 * (j + 1)); // every example identical
    for (const kernel of ['linear', 'rbf'] as const) {
      for (const estimator of ['biased', 'unbiased'] as const) {
        expect(cka(X, C, { kernel, estimator })).toEqual({ value: null, flag: 'constant-features' });
        expect(cka(C, C, { kernel, estimator })).toEqual({ value: null, flag: 'constant-features' });
      }
    }
    expect(linearCkaFeatures(X, C)).toEqual({ value: null, flag: 'constant-features' });
    expect(hsic1(linearGram(C), linearGram(X))).toBe(0);
  });

  it('flags NaN and Inf inputs as non-finite', () => {
    const r = new Rng('nan');
    const X = randn(r, 10, 4);
    for (const bad of [NaN, Infinity]) {
      const Y = mapMat(randn(r, 10, 3), (v, i, j) => (i === 2 && j === 1 ? bad : v));
      for (const estimator of ['biased', 'unbiased'] as const) {
        expect(cka(X, Y, { estimator })).toEqual({ value: null, flag: 'non-finite' });
        expect(cka(X, Y, { kernel: 'rbf', estimator })).toEqual({ value: null, flag: 'non-finite' });
      }
      expect(linearCkaFeatures(X, Y)).toEqual({ value: null, flag: 'non-finite' });
    }
  });

  it('rejects an RBF bandwidth that does not exist and bad thresholds', () => {
    const rows = [[0, 0], [0, 0], [0, 0], [0, 0], [1, 1]]; // 20 of 25 distances are 0
    expect(() => rbfGram(matFromRows(rows))).toThrow(/median squared distance is 0/);
    expect(() => rbfGram(matFromRows([[1], [2]]), { threshold: 0 })).toThrow(/threshold/);
  });
});

describe('TF.js float32 Gram path', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
  });

  function tensorOf(X: Mat): tf.Tensor2D {
    return tf.tensor2d(Float32Array.from(X.data), [X.rows, X.cols]);
  }

  it('agrees with the float64 path to 1e-4 relative (linear and RBF), without leaking tensors', () => {
    const r = new Rng('tfjs');
    // post-ReLU-like features with a large mean: the case where float32 loses the most
    const X = mapMat(randn(r, 24, 300), (v) => Math.max(v, 0) + 2);
    const Y = related(r, X, 64, 0.2);
    const roundedX = mat(X.rows, X.cols, Float32Array.from(X.data));
    const roundedY = mat(Y.rows, Y.cols, Float32Array.from(Y.data));
    const tx = tensorOf(X);
    const ty = tensorOf(Y);
    const before = tf.memory().numTensors;
    for (const kernel of ['linear', 'rbf'] as const) {
      const K32 = squareMat(gramFromTensor(tx, kernel), 24);
      const L32 = squareMat(gramFromTensor(ty, kernel), 24);
      const K64 = kernel === 'linear' ? centerGram(linearGram(roundedX)) : rbfGram(roundedX);
      const L64 = kernel === 'linear' ? centerGram(linearGram(roundedY)) : rbfGram(roundedY);
      const maxAbs = Math.max(...K64.data.map(Math.abs));
      const maxErr = Math.max(...K64.data.map((v, i) => Math.abs(v - K32.data[i])));
      expect(maxErr / maxAbs).toBeLessThan(1e-4);
      for (const estimator of ['biased', 'unbiased'] as const) {
        const c32 = value(ckaFromGrams(K32, L32, { estimator }));
        const c64 = value(ckaFromGrams(K64, L64, { estimator }));
        expect(Math.abs(c32 - c64) / Math.abs(c64)).toBeLessThan(1e-4);
        // the column-centred Gram has the same HSIC as the raw one
        if (kernel === 'linear') expect(value(ckaFromGrams(linearGram(roundedX), linearGram(roundedY), { estimator }))).toBeCloseTo(c64, 10);
      }
    }
    expect(tf.memory().numTensors).toBe(before);
    tx.dispose();
    ty.dispose();
  });

  it('gives an exactly constant Gram for identical examples, and validates its input', () => {
    const c = tf.fill([6, 5], 0.3) as tf.Tensor2D;
    expect(gramFromTensor(c, 'linear').every((v) => v === 0)).toBe(true);
    expect(gramFromTensor(c, 'rbf').every((v) => v === 1)).toBe(true);
    const z = tf.zeros([2, 2, 2]);
    expect(() => gramFromTensor(z as unknown as tf.Tensor2D)).toThrow(/rank-2/);
    z.dispose();
    expect(() => gramFromTensor(c, 'rbf', -1)).toThrow(/threshold/);
    c.dispose();
  });

  it('NaN activations give a Gram that CKA flags as non-finite (both kernels)', () => {
    const r = new Rng('tf-nan');
    const X = randn(r, 8, 5);
    const bad = tensorOf(mapMat(X, (v, i, j) => (i === 0 && j === 0 ? NaN : v)));
    const good = tensorOf(X);
    for (const kernel of ['linear', 'rbf'] as const) {
      const K = squareMat(gramFromTensor(bad, kernel), 8);
      const L = squareMat(gramFromTensor(good, kernel), 8);
      expect(debiasedCka(K, L)).toEqual({ value: null, flag: 'non-finite' });
    }
    bad.dispose();
    good.dispose();
  });
});
