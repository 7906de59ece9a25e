/**
 * Every ablation mode equals an independent PyTorch forward-hook computation (test/fixtures/make_ablation_fixtures.py,
 * on the reference models of make_<family>_fixtures.py with the committed fixture weights): zero, mean (per-channel
 * over the evaluation set), resample (the fixture's derangement), noise (the fixture's noise) and identity.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { createModel } from '../../../src/models';
import { runWithCache, runWithHooks, disposeCache } from '../../../src/models/hooks';
import type { RestorationModel } from '../../../src/models/model';
import { ABLATION_MODES, PointStatsAccumulator } from '../../../src/analysis/ablation/modes';
import { addPointActivation, interventionHooks } from '../../../src/analysis/ablation/runner';
import { npyToTensor, readNpy } from '../../../src/io/npy';
import { loadFixtureModel, maxAbsDiff } from '../../models/harness';

const FIX = path.join(__dirname, '../../fixtures/ablation');
const META = JSON.parse(fs.readFileSync(path.join(FIX, 'interventions.json'), 'utf8')) as Record<string, { points: string[]; perm: number[]; noise_sigma: number; max_change: Record<string, number> }>;
const read = (f: string) => npyToTensor(readNpy(path.join(FIX, f)));
/** .npy noise is stored in irlens layout already (NHWC maps, [B, L, C] tokens). */
const readRaw = (f: string) => {
  const a = readNpy(path.join(FIX, f));
  return tf.tensor(Float32Array.from(a.data as ArrayLike<number>), a.shape);
};

const FAMILIES: Record<string, { preset: string; weights: string; tol: number }> = {
  swinir: { preset: 'swinir-tiny', weights: '../../fixtures/swinir/tiny.pth', tol: 2e-5 },
  restormer: { preset: 'restormer-tiny', weights: '../../fixtures/restormer/tiny.pth', tol: 2e-5 },
  mprnet: { preset: 'mprnet-tiny', weights: '../../fixtures/mprnet/tiny.pth', tol: 2e-5 },
  edt: { preset: 'edt-tiny', weights: '../../fixtures/edt/tiny.pth', tol: 1e-5 },
};

beforeAll(async () => {
  await initBackend('wasm');
});

for (const [fam, cfg] of Object.entries(FAMILIES)) {
  describe(`${fam}: ablation modes equal PyTorch forward hooks`, () => {
    let model: RestorationModel;
    let x: tf.Tensor4D;
    beforeAll(async () => {
      model = createModel(cfg.preset);
      await loadFixtureModel(model, path.join(__dirname, cfg.weights));
      x = read(`${fam}_input.npy`);
    });
    it('the unablated forward matches', () => {
      const y = model.forward(x);
      const ref = read(`${fam}_baseline.npy`);
      expect(maxAbsDiff(y, ref)).toBeLessThan(cfg.tol);
      tf.dispose([y, ref]);
    });
    for (const point of META[fam].points) {
      it(`${point}: ${ABLATION_MODES.join(', ')}`, () => {
        const before = tf.memory().numTensors;
        const { output, cache } = runWithCache(model, [point], () => model.forward(x));
        const acc = new PointStatsAccumulator();
        acc.add(cache.get(point)!);
        const stats = acc.result();
        tf.dispose(output);
        disposeCache(cache);
        for (const mode of ABLATION_MODES) {
          const noise = readRaw(`${fam}_${point}_eps.npy`);
          const iv = interventionHooks(model, { point, mode }, {
            stats,
            perm: Int32Array.from(META[fam].perm),
            noise: () => noise.clone(),
            noiseSigma: META[fam].noise_sigma,
            images: x.shape[0],
          });
          let y: tf.Tensor4D;
          try {
            y = runWithHooks(model, iv.hooks, () => model.forward(x));
          } finally {
            iv.undo();
          }
          const ref = read(`${fam}_${point}_${mode}.npy`);
          const d = maxAbsDiff(y, ref);
          // The intervention changes the output far more than the tolerance: the check can fail.
          expect(META[fam].max_change[`${point}/${mode}`]).toBeGreaterThan(100 * cfg.tol);
          expect(d, `${point}/${mode}`).toBeLessThan(cfg.tol);
          tf.dispose([y, ref, noise]);
        }
        expect(tf.memory().numTensors).toBe(before);
      });
    }
  });
}

const HEADS = JSON.parse(fs.readFileSync(path.join(FIX, 'heads.json'), 'utf8')) as Record<string, { point: string; input: string; perm: number[]; noise_sigma: number; head: number; max_change: Record<string, number> }>;

for (const [fam, h] of Object.entries(HEADS)) {
  it(`${fam}: per-head ablation of ${h.point}.${h.head} equals editing that head's channels before the PyTorch output projection`, async () => {
    const cfg = FAMILIES[fam];
    const model = createModel(cfg.preset);
    await loadFixtureModel(model, path.join(__dirname, cfg.weights));
    const x = read(h.input);
    const byPath = new Map(model.namedModules());
    const { output, cache } = runWithCache(model, [h.point], () => model.forward(x));
    const acc = new PointStatsAccumulator();
    addPointActivation(acc, h.point, cache.get(h.point)!, byPath);
    const stats = acc.result();
    tf.dispose(output);
    disposeCache(cache);
    const before = tf.memory().numTensors;
    const noise = readRaw(`${fam}_heads_eps.npy`);
    for (const mode of ['zero', 'mean', 'resample', 'noise'] as const) {
      const iv = interventionHooks(model, { point: h.point, mode, head: h.head }, {
        stats,
        perm: Int32Array.from(h.perm),
        noise: (shape) => {
          expect(shape).toEqual(noise.shape);
          return noise.clone();
        },
        noiseSigma: h.noise_sigma,
        images: x.shape[0],
      });
      const y = runWithHooks(model, iv.hooks, () => model.forward(x));
      iv.undo();
      const ref = read(`${fam}_heads_${mode}.npy`);
      expect(h.max_change[mode]).toBeGreaterThan(100 * cfg.tol);
      expect(maxAbsDiff(y, ref), `${fam} head ${h.head} ${mode}`).toBeLessThan(cfg.tol);
      tf.dispose([y, ref]);
    }
    noise.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    model.dispose();
  });
}
