import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { charbonnierLoss, computeLoss, edgeLoss, l1Loss, laplacianEdges, mprnetLoss } from '../../src/pretrain/losses';

interface LossFixture {
  shape_nhwc: [number, number, number, number];
  target: number[];
  stages: number[][];
  l1: number;
  charbonnier: number;
  edge: number;
  lap_x: number[];
  mprnet: number;
  grad_stage3: number[];
}

const fx = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/pretrain/losses.json'), 'utf8')) as LossFixture;
const t4 = (v: number[]) => tf.tensor4d(v, fx.shape_nhwc);
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

beforeAll(async () => {
  await initBackend('wasm');
});

describe('losses', () => {
  it('L1 and Charbonnier match hand-computed values', () => {
    const x = tf.tensor4d([0, 0.5, 1, 0.25], [1, 2, 2, 1]);
    const y = tf.tensor4d([0.1, 0.5, 0.7, 0.25], [1, 2, 2, 1]);
    expect(l1Loss(x, y).dataSync()[0]).toBeCloseTo((0.1 + 0 + 0.3 + 0) / 4, 6);
    const e = 1e-3;
    const want = (Math.sqrt(0.01 + e * e) + e + Math.sqrt(0.09 + e * e) + e) / 4;
    expect(charbonnierLoss(x, y).dataSync()[0]).toBeCloseTo(want, 6);
    tf.dispose([x, y]);
  });

  it("MPRNet's Laplacian edges, edge loss and total loss match PyTorch (odd sizes)", () => {
    const target = t4(fx.target);
    const stages = fx.stages.map(t4);
    const lap = laplacianEdges(stages[0]);
    expect(maxAbs(lap.dataSync(), fx.lap_x)).toBeLessThan(1e-5);
    expect(l1Loss(stages[0], target).dataSync()[0]).toBeCloseTo(fx.l1, 5);
    expect(charbonnierLoss(stages[0], target).dataSync()[0]).toBeCloseTo(fx.charbonnier, 5);
    expect(edgeLoss(stages[0], target).dataSync()[0]).toBeCloseTo(fx.edge, 5);
    expect(mprnetLoss(stages, target).dataSync()[0]).toBeCloseTo(fx.mprnet, 5);
    expect(computeLoss('mprnet', stages, target).dataSync()[0]).toBeCloseTo(fx.mprnet, 5);
    expect(() => computeLoss('mprnet', stages[0], target)).toThrow(/stage outputs/);
    tf.dispose([target, lap, ...stages]);
  });

  it('the gradient of the MPRNet loss on wasm matches PyTorch autograd', () => {
    const target = t4(fx.target);
    const [s3, s2, s1] = fx.stages.map(t4);
    const g = tf.grad((x: tf.Tensor) => mprnetLoss([x as tf.Tensor4D, s2, s1], target))(s3);
    const scale = Math.max(...fx.grad_stage3.map(Math.abs));
    expect(maxAbs(g.dataSync(), fx.grad_stage3) / scale).toBeLessThan(1e-4);
    tf.dispose([target, s3, s2, s1, g]);
  });

  it('frees every intermediate tensor', () => {
    const target = t4(fx.target);
    const stages = fx.stages.map(t4);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) mprnetLoss(stages, target).dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([target, ...stages]);
  });
});
