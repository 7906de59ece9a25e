/**
 * The backward-pass memory savings (src/engine/gradient-memory.ts): the same gradient bits as tfjs's own
 * bookkeeping on every family's training step, less memory held during the backward pass, no leaks, and the
 * cases the release must leave alone (higher-order gradients, a caller's dy, gradients handed on unchanged).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/engine/backend';
import { installGradientMemorySavings, SHAPE_ONLY_GRADIENT_KERNELS, uninstallGradientMemorySavings } from '../../src/engine/gradient-memory';
import { createModel } from '../../src/models';

/** Loss and every parameter gradient of one L1 step, as plain arrays. */
function stepGradients(preset: string, size: number): { loss: number; grads: Map<string, Float32Array> } {
  const model = createModel(preset, { seed: 3 });
  try {
    const task = model.task().name;
    const params = model.namedParameters().map(([name, p]) => [name, p.variable] as const);
    const x = tf.randomUniform([1, size, size, model.inChannels], 0, 1, 'float32', 5) as tf.Tensor4D;
    const target = tf.tidy(() => tf.randomUniform(model.forward(x, task).shape, 0, 1, 'float32', 6));
    const { value, grads } = tf.variableGrads(
      () => tf.mean(tf.abs(tf.sub(model.forward(x, task), target))) as tf.Scalar,
      params.map(([, v]) => v),
    );
    const out = new Map(params.filter(([, v]) => grads[v.name]).map(([name, v]) => [name, grads[v.name].dataSync() as Float32Array]));
    const loss = value.dataSync()[0];
    tf.dispose([x, target, value, ...Object.values(grads)]);
    return { loss, grads: out };
  } finally {
    model.dispose();
  }
}

// cpu (a slow reference backend): one family, as a check that nothing depends on the wasm kernels.
describe.each([
  ['wasm', ['restormer-tiny', 'mprnet-tiny', 'swinir-tiny', 'edt-tiny']],
  ['cpu', ['restormer-tiny']],
])('gradient memory savings on %s', (backend, presets) => {
  beforeAll(async () => {
    await initBackend(backend);
  });
  afterAll(() => installGradientMemorySavings());

  const sizes: Record<string, number> = { 'restormer-tiny': 16, 'mprnet-tiny': 16, 'swinir-tiny': 16, 'edt-tiny': 24 };
  it.each(presets as string[])('%s: a training step has the same loss and gradient bits as with tfjs bookkeeping, and leaks nothing', (preset) => {
    const size = sizes[preset];
    installGradientMemorySavings();
    stepGradients(preset, size); // warm caches (masks, primitives) before counting tensors
    const tensors = tf.memory().numTensors;
    const saving = stepGradients(preset, size);
    expect(tf.memory().numTensors).toBe(tensors);
    uninstallGradientMemorySavings();
    const plain = stepGradients(preset, size);
    installGradientMemorySavings();
    expect(saving.loss).toBe(plain.loss);
    expect([...saving.grads.keys()]).toEqual([...plain.grads.keys()]);
    for (const [name, g] of plain.grads) expect(Buffer.from(saving.grads.get(name)!.buffer).equals(Buffer.from(g.buffer)), name).toBe(true);
  });
});

describe('gradient memory savings: what the backward pass holds and what it must keep', () => {
  beforeAll(async () => {
    await initBackend('wasm');
    installGradientMemorySavings();
  });

  /**
   * Bytes alive when the first layer's gradient runs (the last gradient of the pass) of a 24-layer chain that
   * saves a [64,64] activation per layer in the shape-only kernels Reshape, Add, Concat and Slice.
   */
  function bytesAtLastGradient(): number {
    let seen = -1;
    const probe = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
      save([]);
      return {
        value: tf.clone(x),
        gradFunc: (dy: tf.Tensor) => {
          seen = tf.memory().numBytes;
          return [tf.clone(dy)];
        },
      };
    });
    const w = tf.variable(tf.randomUniform([64, 64], -0.1, 0.1, 'float32', 1));
    const x0 = tf.randomUniform([64, 64], 0, 1, 'float32', 2);
    const { value, grads } = tf.variableGrads(() => {
      let x: tf.Tensor = probe(tf.matMul(x0, w));
      for (let i = 0; i < 24; i++) {
        const y = tf.reshape(tf.add(x, tf.reshape(x, [64, 64])), [64, 64]);
        x = tf.slice(tf.concat([y, x], 1), [0, 0], [64, 64]);
      }
      return tf.sum(x) as tf.Scalar;
    }, [w]);
    tf.dispose([value, grads.w, w, x0, ...Object.values(grads)]);
    return seen;
  }

  it('frees saved tensors and gradients of processed nodes during the pass', () => {
    const before = tf.memory().numBytes;
    const saving = bytesAtLastGradient() - before;
    uninstallGradientMemorySavings();
    const plain = bytesAtLastGradient() - before;
    installGradientMemorySavings();
    // tfjs: 24 layers x (saved activations + their gradients) of 16 KiB each; irlens: a handful of tensors.
    expect(plain).toBeGreaterThan(24 * 4 * 16384);
    expect(saving).toBeLessThan(plain / 8);
  });

  it('leaves higher-order gradients, a caller-provided dy and handed-on gradients intact', () => {
    const tensors = tf.memory().numTensors;
    // d2/dx2 of sum(reshape(x)^3 + x) = 6x, through shape-only kernels on both levels.
    const f = (x: tf.Tensor) => tf.sum(tf.add(tf.pow(tf.reshape(x, [2, 2]), 3), tf.reshape(x, [2, 2])));
    const x = tf.tensor1d([1, 2, 3, -1]);
    const d2 = tf.grad((x: tf.Tensor) => tf.sum(tf.grad(f)(x)))(x);
    expect(Array.from(d2.dataSync())).toEqual([6, 12, 18, -6]);
    // A dy from the caller is still usable afterwards.
    const dy = tf.tensor2d([[1, 2], [3, 4]]);
    const g = tf.grad((x: tf.Tensor) => tf.reshape(tf.add(x, x), [2, 2]))(x, dy);
    expect(Array.from(g.dataSync())).toEqual([2, 4, 6, 8]);
    expect(dy.isDisposed).toBe(false);
    expect(Array.from(dy.dataSync())).toEqual([1, 2, 3, 4]);
    // A custom gradient that hands the same dy to two inputs (each must get its own tensor).
    const both = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      save([]);
      return { value: tf.add(a, b), gradFunc: (dy: tf.Tensor) => [dy, dy] };
    });
    const ones = tf.ones([4]);
    const [ga, gb] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(both(tf.reshape(a, [4]), b) as tf.Tensor, tf.tensor1d([1, 2, 3, 4]))))([x, ones]);
    expect(Array.from(ga.dataSync())).toEqual([1, 2, 3, 4]);
    expect(Array.from(gb.dataSync())).toEqual([1, 2, 3, 4]);
    tf.dispose([x, d2, dy, g, ones, ga, gb]);
    expect(tf.memory().numTensors).toBe(tensors);
  });

  it('a gradient that reads more than the shape of a shape-only save fails loudly', () => {
    const name = 'IrlensTestShapeReader';
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: tf.getKernel('Identity', 'wasm')!.kernelFunc });
    tf.registerGradient({ kernelName: name, inputsToSave: ['x'], gradFunc: (_dy, saved) => ({ x: () => tf.mul(saved[0], 2) }) });
    (SHAPE_ONLY_GRADIENT_KERNELS as Set<string>).add(name);
    try {
      const x = tf.tensor1d([1, 2]);
      expect(() => tf.grad((x: tf.Tensor) => tf.sum(tf.engine().runKernel(name, { x }) as tf.Tensor))(x)).toThrow(/IrlensTestShapeReader gradient read '.*' of a saved input/);
      x.dispose();
    } finally {
      (SHAPE_ONLY_GRADIENT_KERNELS as Set<string>).delete(name);
      tf.unregisterGradient(name);
      tf.unregisterKernel(name, 'wasm');
    }
  });
});
