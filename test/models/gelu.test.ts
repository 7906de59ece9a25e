/**
 * Accuracy of gelu(): on wasm it is x * sigmoid(h(x)) (see layers.ts), elsewhere the erf form. Checked on a dense
 * grid against a float64 reference and against the cpu backend's tf.erf.
 *
 * Tolerances (measured worst case in brackets; print them with IRLENS_GELU_REPORT=1):
 * - gelu: |wasm - exact| <= 1e-6 * max(1, |x|)  [1.2e-7].
 * - Phi = gelu(x) / x for 0.25 <= |x| <= 10: |wasm - exact| <= 2.5e-7, i.e. an erf error <= 5e-7 [1.3e-7], and
 *   <= 5e-7 from the cpu backend's erf-based Phi [2.5e-7; its tf.erf is Abramowitz-Stegun 7.1.26, error 1.5e-7].
 * - gradient: |d gelu/dx (wasm) - (Phi + x phi)| <= 2e-6  [1.1e-6].
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/engine/backend';
import { gelu } from '../../src/models/layers';

/** erf in float64 from the all-positive series (2/sqrt(pi)) e^{-x^2} sum_n 2^n x^{2n+1} / (2n+1)!!. */
function erf64(x: number): number {
  const a = Math.abs(x);
  if (a > 6) return Math.sign(x); // 1 - erf(6) = 2e-17
  let term = a;
  let sum = a;
  for (let n = 1; term > 1e-17 * sum; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
}
/** Phi(x); the lower tail from erfc(|x|/sqrt 2) = 1 - erf is exact enough in absolute terms here. */
const phi64 = (x: number) => 0.5 * (1 + erf64(x / Math.SQRT2));
const density = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);

/** x in [-10, 10] every 1e-4, plus zeros, tiny and huge values. */
function grid(): Float32Array {
  const xs: number[] = [];
  for (let i = -100_000; i <= 100_000; i++) xs.push(i * 1e-4);
  xs.push(0, -0, 1e-30, -1e-30, 1e-8, -1e-8, 12, -12, 50, -50, 1e4, -1e4, 3e38, -3e38);
  return Float32Array.from(xs);
}

async function geluOn(backend: string, xs: Float32Array): Promise<{ y: Float32Array; dy: Float32Array }> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const x = tf.tensor1d(xs);
  const y = gelu(x);
  const dy = tf.grad((t: tf.Tensor) => gelu(t))(x);
  const out = { y: y.dataSync() as Float32Array, dy: dy.dataSync() as Float32Array };
  tf.dispose([x, y, dy]);
  expect(tf.memory().numTensors).toBe(before);
  return out;
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('gelu', () => {
  it('on wasm (sigmoid form) matches the exact GELU, its derivative and the cpu backend (erf form)', async () => {
    const xs = grid();
    const wasm = await geluOn('wasm', xs);
    const cpu = await geluOn('cpu', xs);
    await tf.setBackend('wasm');
    // Worst error of each check and where it happens (expect once per check: 200k points).
    const worst = { gelu: [0, 0], phi: [0, 0], phiCpu: [0, 0], grad: [0, 0] };
    const note = (key: keyof typeof worst, err: number, x: number) => {
      if (!(err <= worst[key][0])) worst[key] = [err, x]; // NaN errors are recorded too
    };
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i];
      note('gelu', Math.abs(wasm.y[i] - x * phi64(x)) / Math.max(1, Math.abs(x)), x);
      if (Math.abs(x) >= 0.25 && Math.abs(x) <= 10) {
        note('phi', Math.abs(wasm.y[i] / x - phi64(x)), x);
        note('phiCpu', Math.abs(wasm.y[i] / x - cpu.y[i] / x), x);
      }
      if (Math.abs(x) <= 100) note('grad', Math.abs(wasm.dy[i] - (phi64(x) + x * density(x))), x);
    }
    const at = (key: keyof typeof worst) => `${key}: max error ${worst[key][0]} at x = ${worst[key][1]}`;
    expect(worst.gelu[0], at('gelu')).toBeLessThanOrEqual(1e-6);
    expect(worst.phi[0], at('phi')).toBeLessThanOrEqual(2.5e-7);
    expect(worst.phiCpu[0], at('phiCpu')).toBeLessThanOrEqual(5e-7);
    expect(worst.grad[0], at('grad')).toBeLessThanOrEqual(2e-6);
    if (process.env.IRLENS_GELU_REPORT) console.log(Object.keys(worst).map((k) => at(k as keyof typeof worst)).join('\n'));
    // Signs and limits: gelu(-large) is -0 (the exact value underflows too), gelu(large) = x.
    expect(wasm.y[xs.indexOf(1e4)]).toBe(1e4);
    expect(Math.abs(wasm.y[xs.indexOf(-1e4)])).toBe(0);
    expect(wasm.y[xs.length - 2]).toBe(xs[xs.length - 2]);
    expect(Number.isFinite(wasm.dy[xs.length - 1])).toBe(true);
  });

  it('keeps NaN and works inside tf.tidy on any rank', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const y = tf.tidy(() => gelu(tf.tensor3d([NaN, 1, -1, 0], [1, 2, 2])));
    expect(y.shape).toEqual([1, 2, 2]);
    const v = Array.from(y.dataSync());
    expect(Number.isNaN(v[0])).toBe(true);
    expect(v[1]).toBeCloseTo(0.8413447, 6);
    expect(v[2]).toBeCloseTo(-0.1586553, 6);
    expect(v[3]).toBe(0);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
