/** LAM and the ERF equal an independent numpy/torch computation (test/fixtures/make_ablation_fixtures.py). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { checkWindow, effectiveReceptiveField, lam, lamKernel } from '../../../src/analysis/ablation/lam';
import { readNpy } from '../../../src/io/npy';
import type { ImageF32 } from '../../../src/io/types';

const FIX = path.join(__dirname, '../../fixtures/ablation');
const L = JSON.parse(fs.readFileSync(path.join(FIX, 'lam.json'), 'utf8'));

beforeAll(async () => {
  await initBackend('wasm');
});

/** The fixture's TinyNet: x + conv2(gelu(conv1(x))), 3x3 convs with zero padding 1. */
function tinyNet() {
  const w = (k: string) => {
    const { shape, data } = L.weights[k] as { shape: number[]; data: number[] };
    const t = tf.tensor(data, shape);
    const r = shape.length === 4 ? tf.transpose(t, [2, 3, 1, 0]) : t.clone();
    t.dispose();
    return r;
  };
  const p = { w1: w('conv1.weight'), b1: w('conv1.bias'), w2: w('conv2.weight'), b2: w('conv2.bias') };
  const forward = (x: tf.Tensor4D): tf.Tensor4D =>
    tf.tidy(() => {
      const h = tf.add(tf.conv2d(x, p.w1 as tf.Tensor4D, 1, 'same'), p.b1);
      const g = tf.mul(tf.mul(h, 0.5), tf.add(1, tf.erf(tf.div(h, Math.SQRT2))));
      return tf.add(x, tf.add(tf.conv2d(g as tf.Tensor4D, p.w2 as tf.Tensor4D, 1, 'same'), p.b2)) as tf.Tensor4D;
    });
  return { forward, dispose: () => tf.dispose(Object.values(p)) };
}

function image(): ImageF32 {
  const a = readNpy(path.join(FIX, 'lam_image.npy'));
  return { data: Float32Array.from(a.data as ArrayLike<number>), height: a.shape[0], width: a.shape[1], channels: a.shape[2] };
}

describe('LAM (Gu & Dong 2021) and ERF', () => {
  it('kernel: normalised, centred, a delta at sigma 0', () => {
    const k = lamKernel(9, 1.2);
    expect(k.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(k[40]).toBe(Math.max(...k));
    expect(lamKernel(9, 0)[40]).toBeCloseTo(1, 12);
  });
  it('map, attribution and DI equal the numpy/torch reference', () => {
    const net = tinyNet();
    const before = tf.memory().numTensors;
    const [wx, wy, win] = L.window;
    const r = lam(net.forward, image(), { sigma: L.sigma, fold: L.fold, kernelSize: L.l, window: { x: wx, y: wy, w: win }, batch: 4 });
    expect(tf.memory().numTensors).toBe(before);
    const ref = L.map as number[];
    let maxd = 0;
    ref.forEach((v, i) => (maxd = Math.max(maxd, Math.abs(v - r.map[i]))));
    expect(maxd).toBeLessThan(1e-4);
    const attr = L.attribution as number[]; // CHW in the fixture
    const [H, W] = L.shape;
    const amax = Math.max(...attr.map(Math.abs));
    let ad = 0;
    for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) ad = Math.max(ad, Math.abs(attr[c * H * W + p] - r.attribution[p * 3 + c]));
    expect(ad / amax).toBeLessThan(1e-4);
    expect(r.diffusionIndex).toBeCloseTo(L.di, 2);
    // the map is local: nothing far from the window (3x3 convs twice + the blur) gets attribution
    expect(r.map[0]).toBeLessThan(1e-6);
    net.dispose();
  });
  it('ERF equals torch autograd', () => {
    const net = tinyNet();
    const before = tf.memory().numTensors;
    const [row, col] = L.erf_pixel;
    const e = effectiveReceptiveField(net.forward, image(), row, col);
    expect(tf.memory().numTensors).toBe(before);
    const ref = L.erf as number[];
    ref.forEach((v, i) => expect(Math.abs(v - e[i])).toBeLessThan(1e-5));
    // two 3x3 convs: a 5x5 support
    expect(e.filter((v) => v > 0).length).toBe(25);
    net.dispose();
  });
  it('refuses windows outside the output', () => {
    expect(() => checkWindow({ x: 10, y: 0, w: 16 }, 32, 24)).toThrow(/--window/);
    expect(() => checkWindow({ x: 0, y: 0, w: 0 }, 32, 24)).toThrow(/--window/);
  });
});
