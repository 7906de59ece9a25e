import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { AdamOptimizer, clipByGlobalNorm, learningRate, restormerSchedule } from '../../src/pretrain/optim';

const fx = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/pretrain/optim.json'), 'utf8')) as {
  p0: number[];
  grads: number[][];
  lrs: number[];
  adamw: number[][];
  adam: number[][];
};

beforeAll(async () => {
  await initBackend('wasm');
});

describe('Adam / AdamW', () => {
  it('one AdamW step equals the hand-computed update', () => {
    const p = tf.variable(tf.tensor1d([1, -2]));
    const opt = new AdamOptimizer([['p', p]], { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    const g = tf.tensor1d([0.5, 0.1]);
    opt.step(new Map([[p, g]]), 0.1);
    // m = 0.1 g, v = 0.001 g^2; mhat = g, vhat = g^2 -> update lr * g / (|g| + eps) = lr * sign(g) (up to eps)
    const want = [1 * (1 - 0.1 * 0.01) - 0.1 * (0.5 / (0.5 + 1e-8)), -2 * (1 - 0.1 * 0.01) - 0.1 * (0.1 / (0.1 + 1e-8))];
    const got = p.dataSync();
    expect(got[0]).toBeCloseTo(want[0], 6);
    expect(got[1]).toBeCloseTo(want[1], 6);
    expect(opt.stepCounts()).toEqual({ p: 1 });
    opt.dispose();
    tf.dispose([p, g]);
  });

  for (const kind of ['adamw', 'adam'] as const) {
    it(`${kind}: three steps follow torch.optim (weight decay 0.05, betas 0.9/0.99, changing lr)`, () => {
      const p = tf.variable(tf.tensor1d(fx.p0));
      const opt = new AdamOptimizer([['w', p]], { kind, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.05 });
      fx.grads.forEach((g, i) => {
        const gt = tf.tensor1d(g);
        opt.step(new Map([[p, gt]]), fx.lrs[i]);
        gt.dispose();
        const got = p.dataSync();
        fx[kind][i].forEach((w, j) => expect(got[j]).toBeCloseTo(w, 5));
      });
      opt.dispose();
      p.dispose();
    });
  }

  it('state round-trips and a parameter without a gradient is left alone', () => {
    const a = tf.variable(tf.tensor1d([1, 2, 3]));
    const b = tf.variable(tf.tensor1d([4, 5]));
    const cfg = { kind: 'adamw' as const, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
    const opt = new AdamOptimizer([['a', a], ['b', b]], cfg);
    const g = tf.tensor1d([0.3, -0.2, 0.1]);
    opt.step(new Map([[a, g]]), 0.01);
    expect(Array.from(b.dataSync())).toEqual([4, 5]); // no decay either, like torch for grad=None
    const state = opt.state();
    expect([...state.tensors.keys()].sort()).toEqual(['exp_avg.a', 'exp_avg.b', 'exp_avg_sq.a', 'exp_avg_sq.b']);
    expect(state.meta.steps).toEqual({ a: 1, b: 0 });

    const a2 = tf.variable(a.clone());
    const b2 = tf.variable(b.clone());
    const opt2 = new AdamOptimizer([['a', a2], ['b', b2]], cfg);
    opt2.loadState(state);
    opt.step(new Map([[a, g]]), 0.01);
    opt2.step(new Map([[a2, g]]), 0.01);
    expect(Array.from(a2.dataSync())).toEqual(Array.from(a.dataSync()));
    expect(() => opt2.loadState({ ...state, meta: { ...state.meta, config: { ...cfg, weightDecay: 0 } } })).toThrow(/weightDecay/);
    opt.dispose();
    opt2.dispose();
    tf.dispose([a, b, a2, b2, g]);
  });

  it('clips by global norm like clip_grad_norm_', () => {
    const g1 = tf.tensor1d([3, 0]);
    const g2 = tf.tensor1d([0, 4]);
    const { grads, norm } = clipByGlobalNorm([g1, g2], 1);
    expect(norm).toBeCloseTo(5, 6);
    expect(grads[0].dataSync()[0]).toBeCloseTo(3 / (5 + 1e-6), 6);
    expect(grads[1].dataSync()[1]).toBeCloseTo(4 / (5 + 1e-6), 6);
    const same = clipByGlobalNorm([g1, g2], 10);
    expect(same.grads[0]).toBe(g1);
    tf.dispose([g1, g2, ...grads]);
  });
});

describe('learning-rate schedules', () => {
  it('cosine with linear warm-up', () => {
    const s = { kind: 'cosine' as const, lr: 1e-3, minLr: 1e-5, total: 10, warmup: 2 };
    expect(learningRate(s, 0)).toBeCloseTo(0.5e-3, 12);
    expect(learningRate(s, 1)).toBeCloseTo(1e-3, 12);
    // it = 6: halfway through the 8 cosine iterations
    expect(learningRate(s, 5)).toBeCloseTo(1e-5 + 0.5 * (1e-3 - 1e-5), 12);
    expect(learningRate(s, 9)).toBeCloseTo(1e-5, 12);
    const noWarm = { ...s, warmup: 0 };
    expect(learningRate(noWarm, 0)).toBeCloseTo(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + Math.cos(Math.PI / 10)), 12);
  });

  it("BasicSR's CosineAnnealingRestartCyclicLR (Restormer's schedule, scaled)", () => {
    const s = restormerSchedule(300, 3e-4, 1e-6);
    expect(s).toMatchObject({ periods: [92, 208], etaMins: [3e-4, 1e-6] });
    // First period: eta_min = lr, so constant.
    expect(learningRate(s, 0)).toBeCloseTo(3e-4, 12);
    expect(learningRate(s, 91)).toBeCloseTo(3e-4, 12);
    // it = 93: first iteration of the second period, (93 - 92) / 208 of the cosine
    expect(learningRate(s, 92)).toBeCloseTo(1e-6 + 0.5 * (3e-4 - 1e-6) * (1 + Math.cos((Math.PI * 1) / 208)), 12);
    expect(learningRate(s, 299)).toBeCloseTo(1e-6, 12);
  });

  it('multistep and constant', () => {
    const m = { kind: 'multistep' as const, lr: 2e-4, milestones: [5, 8], gamma: 0.5, warmup: 0 };
    expect(learningRate(m, 3)).toBe(2e-4);
    expect(learningRate(m, 4)).toBe(1e-4); // it = 5 reaches the first milestone
    expect(learningRate(m, 7)).toBe(5e-5);
    expect(learningRate({ kind: 'constant', lr: 1e-3 }, 1000)).toBe(1e-3);
  });
});
