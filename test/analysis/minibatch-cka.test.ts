import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { ckaFromGrams, debiasedCka } from '../../src/analysis/cka';
import { featureSettings, pixelPositions, toFeatures } from '../../src/analysis/features';
import { gramFromTensor, linearGram, mat, rbfGram, squareMat, type Mat } from '../../src/analysis/gram';
import { hsic1 } from '../../src/analysis/hsic';
import { MinibatchCKA } from '../../src/analysis/minibatch-cka';
import { Rng } from '../../src/util/rng';

function randn(rng: Rng, rows: number, cols: number): Mat {
  const m = mat(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = rng.normal();
  return m;
}

/** Rows [start, start + count) of X. */
function rowSlice(X: Mat, start: number, count: number): Mat {
  return mat(count, X.cols, X.data.slice(start * X.cols, (start + count) * X.cols));
}

/** A "model" with two layers on the same examples: layer 0 = X, layer 1 = a noisy nonlinear function of X. */
function twoLayers(rng: Rng, X: Mat): Mat[] {
  const Y = mat(X.rows, 4);
  for (let i = 0; i < X.rows; i++)
    for (let j = 0; j < 4; j++) Y.data[i * 4 + j] = Math.tanh(X.data[i * X.cols + j] + X.data[i * X.cols + j + 1]) + 0.3 * rng.normal();
  return [X, Y];
}

describe('MinibatchCKA: ratio of sums (Nguyen et al. 2021, Eq. 2)', () => {
  const rng = new Rng('minibatch');
  const N = 48;
  const X = randn(rng, N, 6);
  const [, Y] = twoLayers(rng, X);

  it('one batch holding all examples equals full-batch CKA (both estimators)', () => {
    for (const estimator of ['unbiased', 'biased'] as const) {
      const acc = new MinibatchCKA(['x'], ['y'], { estimator });
      const K = linearGram(X);
      const L = linearGram(Y);
      acc.update([K.data], [L.data], N);
      expect(acc.result().matrix[0][0]).toBe(ckaFromGrams(K, L, { estimator }).value);
    }
  });

  // "Equal batches" here: the N examples split into B consecutive batches of the same size m = N / B.
  // The accumulator's sums must then be exactly sum_b HSIC1(K_b, L_b) (and the self terms), and the result their
  // ratio, which is NOT the mean of per-batch CKA values.
  it('B equal-size batches: sums are sum_b HSIC1 over batches and CKA is their ratio, not the mean CKA', () => {
    const B = 4;
    const m = N / B;
    const acc = new MinibatchCKA(['x'], ['y'], { estimator: 'unbiased' });
    let kl = 0;
    let kk = 0;
    let ll = 0;
    let meanCka = 0;
    for (let b = 0; b < B; b++) {
      const K = linearGram(rowSlice(X, b * m, m));
      const L = rbfGram(rowSlice(Y, b * m, m));
      acc.update([K.data], [L.data], m);
      kl += hsic1(K, L);
      kk += hsic1(K, K);
      ll += hsic1(L, L);
      meanCka += debiasedCka(K, L).value! / B;
    }
    const sums = acc.sums();
    expect(sums.cross[0]).toBe(kl);
    expect(sums.selfA[0]).toBe(kk);
    expect(sums.selfB[0]).toBe(ll);
    const r = acc.result();
    expect(r.matrix[0][0]).toBeCloseTo(kl / Math.sqrt(kk * ll), 14);
    expect(Math.abs(r.matrix[0][0]! - meanCka)).toBeGreaterThan(1e-3);
    expect(r.batches).toBe(B);
    expect(r.examples).toBe(N);
  });

  it('B copies of the same batch give the single-batch CKA (sums scale by B)', () => {
    const K = linearGram(rowSlice(X, 0, 12));
    const L = linearGram(rowSlice(Y, 0, 12));
    const acc = new MinibatchCKA(['x'], ['y']);
    for (let b = 0; b < 5; b++) acc.update([K.data], [L.data], 12);
    expect(acc.result().matrix[0][0]).toBeCloseTo(debiasedCka(K, L).value!, 14);
    expect(acc.sums().cross[0] / 5).toBeCloseTo(hsic1(K, L), 14);
  });

  it('merging accumulators over disjoint batches equals one accumulator over all of them', () => {
    const all = new MinibatchCKA(['x'], ['y']);
    const parts = [new MinibatchCKA(['x'], ['y']), new MinibatchCKA(['x'], ['y'])];
    for (let b = 0; b < 4; b++) {
      const K = linearGram(rowSlice(X, b * 12, 12)).data;
      const L = linearGram(rowSlice(Y, b * 12, 12)).data;
      all.update([K], [L], 12);
      parts[b % 2].update([K], [L], 12);
    }
    parts[0].merge(parts[1]);
    expect(parts[0].result().matrix[0][0]).toBeCloseTo(all.result().matrix[0][0]!, 13);
    expect(parts[0].examples).toBe(48);
    expect(() => parts[0].merge(new MinibatchCKA(['x'], ['z']))).toThrow(/differ/);
    expect(() => parts[0].merge(parts[0])).toThrow(/itself/);
    const boot = (seed: number) => new MinibatchCKA(['x'], ['y'], { bootstrap: 3, seed });
    expect(() => boot(1).merge(boot(1))).toThrow(/different seeds/);
    expect(() => boot(1).merge(boot(2))).not.toThrow();
  });

  it('keeps negative values (no clamping) and orients rows = model A, columns = model B', () => {
    const r = new Rng('negative-minibatch');
    const acc = new MinibatchCKA(['a0', 'a1', 'a2'], ['b0', 'b1']);
    for (let b = 0; b < 2; b++) {
      const gA = [0, 1, 2].map(() => linearGram(randn(r, 6, 5)).data);
      const gB = [0, 1].map(() => linearGram(randn(r, 6, 5)).data);
      acc.update(gA, gB, 6);
    }
    const res = acc.result();
    expect(res.matrix.length).toBe(3);
    expect(res.matrix[0].length).toBe(2);
    expect(res.matrix.flat().some((v) => v !== null && v < 0)).toBe(true);
  });
});

describe('MinibatchCKA: degenerate input and validation', () => {
  const rng = new Rng('degenerate');

  it('throws for n < 4 with the unbiased estimator, and for wrong Gram counts or sizes', () => {
    const acc = new MinibatchCKA(['a'], ['b']);
    const g3 = linearGram(randn(rng, 3, 2)).data;
    expect(() => acc.update([g3], [g3], 3)).toThrow(/n >= 4.*n=3/);
    const g5 = linearGram(randn(rng, 5, 2)).data;
    expect(() => acc.update([g5, g5], [g5], 5)).toThrow(/expected 1 Grams for model A/);
    expect(() => acc.update([g5], [g3], 5)).toThrow(/layer 'b'.*n=5/);
    expect(() => new MinibatchCKA([], ['b'])).toThrow(/at least one layer/);
    expect(() => new MinibatchCKA(['a'], ['b'], { bootstrap: 1.5 })).toThrow(/bootstrap/);
    expect(() => new MinibatchCKA(['a'], ['b'], { estimator: 'x' as never })).toThrow(/unknown estimator/);
    // biased HSIC0 accepts small batches
    const biased = new MinibatchCKA(['a'], ['b'], { estimator: 'biased' });
    biased.update([g3], [g3], 3);
    expect(biased.result().matrix[0][0]).toBe(1);
  });

  it('flags a constant layer and a non-finite layer per cell', () => {
    const acc = new MinibatchCKA(['ok', 'constant', 'nan', 'inf'], ['ok']);
    for (let b = 0; b < 3; b++) {
      const X = randn(rng, 8, 3);
      const ok = linearGram(X).data;
      const constant = new Float64Array(64).fill(2.5);
      // a NaN on the diagonal (which HSIC1 ignores) must still be reported
      const nan = linearGram(X).data.map((v, i) => (b === 1 && i === 9 ? NaN : v));
      const inf = linearGram(X).data.map((v, i) => (b === 2 && i === 10 ? Infinity : v));
      acc.update([ok, constant, nan, inf], [ok], 8);
    }
    const r = acc.result();
    expect(r.matrix.map((row) => row[0])).toEqual([1, null, null, null]);
    expect(r.flags.map((row) => row[0])).toEqual([null, 'constant-features', 'non-finite', 'non-finite']);
  });
});

describe('MinibatchCKA: same model, bootstrap, permutation', () => {
  it('A against itself: the diagonal is exactly 1, also in every bootstrap replicate and for equal copies', () => {
    const rng = new Rng('self');
    const layers = ['l0', 'l1'];
    const acc = new MinibatchCKA(layers, layers, { bootstrap: 20, seed: 3 });
    for (let b = 0; b < 3; b++) {
      const grams = twoLayers(rng, randn(rng, 10, 6)).map((L) => rbfGram(L).data);
      acc.update(grams, grams.map((g) => Float64Array.from(g)), 10);
    }
    const r = acc.result();
    expect([r.matrix[0][0], r.matrix[1][1]]).toEqual([1, 1]);
    expect(r.ci![0][0]).toEqual({ lo: 1, hi: 1 });
    expect(r.ci![1][1]).toEqual({ lo: 1, hi: 1 });
    expect(r.ciRaw![1][1]).toEqual({ lo: 1, hi: 1 });
    expect(r.matrix[0][1]).toBe(r.matrix[1][0]);
  });

  it('bootstrap CI is seeded, ordered, and brackets the estimate for related layers; permutation baseline ~0', () => {
    const run = (seed: number) => {
      const rng = new Rng('boot-data');
      const acc = new MinibatchCKA(['x'], ['y'], { bootstrap: 200, permutation: true, seed });
      for (let b = 0; b < 8; b++) {
        const [X, Y] = twoLayers(rng, randn(rng, 16, 6));
        acc.update([linearGram(X).data], [linearGram(Y).data], 16);
      }
      return acc.result();
    };
    const r = run(7);
    const again = run(7);
    const other = run(8);
    expect(again.ci).toEqual(r.ci);
    expect(again.permutation).toEqual(r.permutation);
    expect(other.ci).not.toEqual(r.ci);
    const v = r.matrix[0][0]!;
    const { lo, hi } = r.ci![0][0];
    expect(lo!).toBeLessThan(hi!);
    expect(lo!).toBeLessThanOrEqual(v);
    expect(hi!).toBeGreaterThanOrEqual(v);
    expect(v).toBeGreaterThan(0.4);
    expect(Math.abs(r.permutation![0][0]!)).toBeLessThan(0.1);
    expect(r.bootstrap?.replicates).toBe(200);
    // Unbiased replicates centre near the plug-in (biased) CKA: the raw percentiles sit higher than the
    // re-centred interval by the same shift at both ends.
    const raw = r.ciRaw![0][0];
    const shift = raw.lo! - lo!;
    expect(shift).toBeGreaterThan(0);
    expect(raw.hi! - hi!).toBeCloseTo(shift, 12);
  });
});

describe('streaming pipeline: activations -> features -> Grams (tfjs) -> MinibatchCKA', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
  });

  it('tensor count and accumulator size stay flat over many updates', () => {
    const layers = ['conv', 'tokens'];
    const acc = new MinibatchCKA(layers, layers, { bootstrap: 5, permutation: true });
    const size = acc.stateSize();
    const before = tf.memory().numTensors;
    for (let b = 0; b < 60; b++) {
      const grams = tf.tidy(() => {
        const conv = tf.randomNormal([6, 4, 4, 3], 0, 1, 'float32', b);
        const tokens = tf.randomNormal([6, 5, 8], 0, 1, 'float32', 1000 + b);
        return [conv, tokens];
      });
      const features = grams.map((t, i) => toFeatures(t, { mode: i === 0 ? 'pool' : 'flatten' }));
      const gramsA = features.map((f) => gramFromTensor(f, 'linear'));
      features.forEach((f) => f.dispose());
      grams.forEach((t) => t.dispose());
      acc.update(gramsA, gramsA, 6);
      expect(acc.stateSize()).toBe(size);
    }
    expect(tf.memory().numTensors).toBe(before);
    const r = acc.result();
    expect(r.examples).toBe(360);
    expect([r.matrix[0][0], r.matrix[1][1]]).toEqual([1, 1]);
  });
});

describe('features', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
  });

  /** [N, H, W, C] tensor whose channel c at (n, h, w) holds n*1000 + (h*W + w) + c/100: rows reveal positions. */
  function positional(N: number, H: number, W: number, C: number): tf.Tensor4D {
    const v = new Float32Array(N * H * W * C);
    for (let n = 0; n < N; n++)
      for (let q = 0; q < H * W; q++) for (let c = 0; c < C; c++) v[(n * H * W + q) * C + c] = n * 1000 + q + c / 100;
    return tf.tensor4d(v, [N, H, W, C]);
  }

  it('flatten, pool and pixels give the documented shapes and values, without leaks', () => {
    const x = positional(2, 4, 5, 3);
    const before = tf.memory().numTensors;
    const flat = toFeatures(x);
    expect(flat.shape).toEqual([2, 60]);
    const pool = toFeatures(x, { mode: 'pool' });
    expect(pool.shape).toEqual([2, 3]);
    const mean = tf.tidy(() => x.mean([1, 2]));
    expect(Array.from(pool.dataSync())).toEqual(Array.from(mean.dataSync()));
    mean.dispose();
    const pixels = toFeatures(x, { mode: 'pixels', maxPixels: 7, seed: 1, batchIndex: 0 });
    expect(pixels.shape).toEqual([14, 3]);
    const all = toFeatures(x, { mode: 'pixels', maxPixels: 100 });
    expect(all.shape).toEqual([40, 3]);
    const ones = tf.ones([3, 6, 8]);
    const tokens = toFeatures(ones, { mode: 'pixels', maxPixels: 2 });
    expect(tokens.shape).toEqual([6, 8]);
    [flat, pool, pixels, all, tokens, ones].forEach((t) => t.dispose());
    expect(tf.memory().numTensors).toBe(before);
    const x2 = tf.ones([2, 3]);
    expect(() => toFeatures(x2, { mode: 'pixels' })).toThrow(/spatial dimensions/);
    expect(() => toFeatures(x2, { mode: 'voxels' as never })).toThrow(/unknown feature mode/);
    expect(toFeatures(x2, { mode: 'pool' }).shape).toEqual([2, 3]);
    x.dispose();
    x2.dispose();
  });

  it('pixels mode picks the same positions for layers of equal spatial size (any channel count), per batch', () => {
    const opts = { mode: 'pixels' as const, maxPixels: 5, seed: 42, batchIndex: 3 };
    const a = positional(2, 6, 6, 4);
    const b = positional(2, 6, 6, 9);
    const fa = toFeatures(a, opts);
    const fb = toFeatures(b, opts);
    const pos = (f: tf.Tensor2D, C: number) => {
      const v = f.dataSync();
      return Array.from({ length: f.shape[0] }, (_, r) => Math.round(v[r * C]));
    };
    const pa = pos(fa, 4);
    expect(pos(fb, 9)).toEqual(pa);
    // rows: image 0's positions then image 1's, within [0, 36), as pixelPositions reports
    const expected = pixelPositions([6, 6], 2, opts);
    expect(pa).toEqual([...Array.from(expected[0]), ...Array.from(expected[1]).map((q) => 1000 + q)]);
    expect(new Set(expected[0]).size).toBe(5);
    const otherBatch = pixelPositions([6, 6], 2, { ...opts, batchIndex: 4 });
    expect(Array.from(otherBatch[0])).not.toEqual(Array.from(expected[0]));
    expect(featureSettings(opts).rule).toMatch(/same spatial size|equal spatial size/);
    [a, b, fa, fb].forEach((t) => t.dispose());
  });

  it('Grams of pixel features from two "models" line up: CKA of a layer with a rescaled copy is 1', () => {
    const x = tf.randomNormal([3, 8, 8, 4], 0, 1, 'float32', 5) as tf.Tensor4D;
    const y = tf.tidy(() => x.mul(2.5).add(1));
    const opts = { mode: 'pixels' as const, maxPixels: 10, seed: 9 };
    const fx = toFeatures(x, opts);
    const fy = toFeatures(y, opts);
    const n = fx.shape[0];
    const K = squareMat(gramFromTensor(fx, 'linear'), n);
    const L = squareMat(gramFromTensor(fy, 'linear'), n);
    expect(debiasedCka(K, L).value!).toBeCloseTo(1, 5);
    [x, y, fx, fy].forEach((t) => t.dispose());
  });
});
