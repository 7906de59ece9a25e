/**
 * The wasm training kernels against the cpu backend's kernels, and the gradients of every op the restoration
 * models train through (grad on wasm vs grad on cpu).
 *
 * Tolerance: max |wasm - cpu| <= 1e-4 * max(1, max |cpu|) per output (float32 sums in a different order;
 * observed: at most 5e-7 of the magnitude). UnsortedSegmentSum, Slice, SplitV and Unpack (copies) must match
 * exactly.
 *
 * Where the cpu backend itself is wrong, the reference is built independently: its depthwise backprop kernels
 * ignore `dilations` (reference: the zero-expanded filter at dilation 1), and its ResizeBilinearGrad /
 * ResizeNearestNeighborGrad ignore halfPixelCenters and swap h/w of the bilinear result (reference: the
 * adjoint of the forward resize, assembled column by column from forward passes on one-hot images).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import {
  registerDilatedConvGradients,
  registerResizeGradFixes,
  registerWasmTrainingKernels,
  WASM_TRAINING_KERNELS,
} from '../../src/engine/wasm-kernels';

const REL_TOL = 1e-4;

interface HostTensor {
  values: number[];
  shape: number[];
  dtype: 'float32' | 'int32';
}

let seed = 12345;
function rand(): number {
  // Deterministic LCG: the same inputs on both backends and across runs.
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648 - 0.5;
}
function randomHost(shape: number[]): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { values: Array.from({ length: n }, () => rand() * 2), shape, dtype: 'float32' };
}
function toTensor(h: HostTensor): tf.Tensor {
  return tf.tensor(h.values, h.shape, h.dtype);
}
function toHost(t: tf.Tensor): HostTensor {
  return { values: Array.from(t.dataSync()), shape: t.shape.slice(), dtype: t.dtype as 'float32' | 'int32' };
}

/** Runs `f` on `backend` with host inputs, returns host outputs; checks that no tensor leaks. */
async function onBackend(backend: string, inputs: HostTensor[], f: (...ts: tf.Tensor[]) => tf.Tensor[]): Promise<HostTensor[]> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const ts = inputs.map(toTensor);
  const outs = tf.tidy(() => f(...ts));
  const host = outs.map(toHost);
  tf.dispose([...ts, ...outs]);
  expect(tf.memory().numTensors).toBe(before);
  return host;
}

function expectClose(got: HostTensor, want: HostTensor, label: string, relTol = REL_TOL): void {
  expect(got.shape, `${label}: shape`).toEqual(want.shape);
  let maxRef = 0;
  let maxErr = 0;
  for (let i = 0; i < want.values.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(want.values[i]));
    maxErr = Math.max(maxErr, Math.abs(got.values[i] - want.values[i]));
  }
  expect(maxErr, `${label}: max abs error ${maxErr} (max |ref| ${maxRef})`).toBeLessThanOrEqual(relTol * Math.max(1, maxRef));
}

async function compareKernel(name: string, inputs: Record<string, HostTensor>, attrs: Record<string, unknown>, label: string) {
  const names = Object.keys(inputs);
  const run = (...ts: tf.Tensor[]) => {
    const named: Record<string, tf.Tensor> = {};
    names.forEach((n, i) => (named[n] = ts[i]));
    return [tf.engine().runKernel(name, named, attrs as unknown as tf.NamedAttrMap) as tf.Tensor];
  };
  const [want] = await onBackend('cpu', Object.values(inputs), run);
  const [got] = await onBackend('wasm', Object.values(inputs), run);
  expectClose(got, want, `${name} ${label}`);
  return { got, want };
}

type Pad = 'same' | 'valid' | number | number[][];
interface ConvCase {
  x: [number, number, number, number]; // NHWC
  k: [number, number];
  ci: number;
  co: number; // channel multiplier for depthwise
  strides: number | [number, number];
  pad: Pad;
  dilations?: number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** Forward output shape, from the cpu conv op itself (so the cases need no hand-computed shapes). */
async function forwardShape(c: ConvCase, depthwise: boolean): Promise<number[]> {
  await tf.setBackend('cpu');
  return tf.tidy(() => {
    const x = tf.zeros(c.x) as tf.Tensor4D;
    const f = tf.zeros([c.k[0], c.k[1], c.ci, c.co]) as tf.Tensor4D;
    const pad = c.pad as 'same';
    const y = depthwise
      ? tf.depthwiseConv2d(x, f, c.strides, pad, 'NHWC', c.dilations ?? 1, c.dimRoundingMode)
      : tf.conv2d(x, f, c.strides, pad, 'NHWC', c.dilations ?? 1, c.dimRoundingMode);
    return y.shape;
  });
}

const CONV_CASES: ConvCase[] = [
  { x: [1, 8, 8, 3], k: [3, 3], ci: 3, co: 4, strides: 1, pad: 'same' },
  { x: [2, 9, 7, 5], k: [3, 3], ci: 5, co: 6, strides: 1, pad: 'valid' },
  { x: [2, 9, 7, 5], k: [3, 3], ci: 5, co: 6, strides: 2, pad: 'same' },
  { x: [1, 8, 8, 4], k: [3, 3], ci: 4, co: 3, strides: 2, pad: 'same' },
  { x: [1, 9, 8, 4], k: [3, 3], ci: 4, co: 3, strides: 2, pad: 'valid' },
  { x: [1, 8, 8, 4], k: [4, 4], ci: 4, co: 5, strides: 2, pad: [[0, 0], [1, 1], [1, 1], [0, 0]] },
  { x: [1, 7, 6, 3], k: [3, 3], ci: 3, co: 2, strides: 1, pad: [[0, 0], [2, 0], [0, 1], [0, 0]] },
  { x: [2, 6, 6, 8], k: [1, 1], ci: 8, co: 5, strides: 1, pad: 'valid' },
  { x: [1, 6, 6, 4], k: [2, 2], ci: 4, co: 3, strides: 2, pad: 'valid' },
  { x: [1, 7, 9, 2], k: [3, 2], ci: 2, co: 3, strides: [1, 2], pad: 'same' },
  { x: [1, 9, 9, 3], k: [3, 3], ci: 3, co: 2, strides: 2, pad: 1, dimRoundingMode: 'ceil' },
  { x: [1, 10, 10, 3], k: [5, 5], ci: 3, co: 4, strides: 1, pad: 'same' },
  { x: [1, 5, 5, 2], k: [1, 1], ci: 2, co: 3, strides: 2, pad: 'valid' },
];

const DEPTHWISE_CASES: ConvCase[] = [
  { x: [1, 8, 8, 4], k: [3, 3], ci: 4, co: 1, strides: 1, pad: 'same' },
  { x: [2, 9, 7, 3], k: [5, 5], ci: 3, co: 1, strides: 1, pad: 'same' },
  { x: [1, 8, 9, 5], k: [3, 3], ci: 5, co: 1, strides: 1, pad: 'valid' },
  { x: [1, 7, 7, 2], k: [3, 3], ci: 2, co: 1, strides: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { x: [2, 9, 8, 3], k: [3, 3], ci: 3, co: 1, strides: 2, pad: 'same' },
  { x: [1, 8, 8, 3], k: [3, 3], ci: 3, co: 2, strides: 1, pad: 'same' },
  { x: [1, 9, 9, 2], k: [4, 4], ci: 2, co: 2, strides: 2, pad: 'valid' },
];

/** Dilated cases: the cpu depthwise backprop kernels ignore dilations, so they are checked another way. */
const DILATED_DEPTHWISE_CASES: ConvCase[] = [
  { x: [1, 9, 9, 2], k: [3, 3], ci: 2, co: 1, strides: 1, pad: 'same', dilations: 2 },
  { x: [2, 11, 10, 3], k: [3, 3], ci: 3, co: 2, strides: 1, pad: 'valid', dilations: 3 },
  { x: [1, 9, 9, 2], k: [5, 5], ci: 2, co: 1, strides: 1, pad: [[0, 0], [3, 2], [4, 4], [0, 0]], dilations: 2 },
];

/** [kh,kw,a,b] host filter -> zero-expanded for dilation d. */
function dilateHost(f: HostTensor, d: number): HostTensor {
  const [kh, kw, a, b] = f.shape;
  const eh = (kh - 1) * d + 1;
  const ew = (kw - 1) * d + 1;
  const values = new Array<number>(eh * ew * a * b).fill(0);
  for (let i = 0; i < kh; i++)
    for (let j = 0; j < kw; j++)
      for (let k = 0; k < a * b; k++) values[((i * d) * ew + j * d) * a * b + k] = f.values[(i * kw + j) * a * b + k];
  return { values, shape: [eh, ew, a, b], dtype: 'float32' };
}

const filterShapeOf = (c: ConvCase) => [c.k[0], c.k[1], c.ci, c.co];
const convAttrs = (c: ConvCase) => ({ strides: c.strides, pad: c.pad, dimRoundingMode: c.dimRoundingMode });

function caseLabel(c: ConvCase): string {
  const dil = c.dilations ? ` d=${c.dilations}` : '';
  return `x=${c.x} k=${c.k} ${c.ci}->${c.co} s=${c.strides} pad=${JSON.stringify(c.pad)}${dil}`;
}

beforeAll(async () => {
  // Registered after the wasm backend has started (train-wasm.test.ts covers registering before).
  await tf.setBackend('wasm');
  await tf.ready();
  registerWasmTrainingKernels();
  registerWasmTrainingKernels(); // idempotent
  registerDilatedConvGradients(); // already done by the call above; must stay a no-op
});

describe('wasm training kernels vs cpu', () => {
  it('registers the kernels it lists', () => {
    for (const name of WASM_TRAINING_KERNELS) expect(tf.getKernel(name, 'wasm'), name).toBeDefined();
  });

  it('Conv2DBackpropFilter', async () => {
    for (const c of CONV_CASES) {
      const dyShape = await forwardShape(c, false);
      const attrs = { ...convAttrs(c), dataFormat: 'NHWC', filterShape: filterShapeOf(c) };
      await compareKernel('Conv2DBackpropFilter', { x: randomHost(c.x), dy: randomHost(dyShape) }, attrs, caseLabel(c));
    }
  });

  it('Conv2DBackpropInput (replaced)', async () => {
    for (const c of CONV_CASES) {
      const dyShape = await forwardShape(c, false);
      const attrs = { ...convAttrs(c), dataFormat: 'NHWC', inputShape: c.x };
      const inputs = { dy: randomHost(dyShape), filter: randomHost(filterShapeOf(c)) };
      await compareKernel('Conv2DBackpropInput', inputs, attrs, caseLabel(c));
    }
  });

  it('DepthwiseConv2dNativeBackpropInput', async () => {
    for (const c of DEPTHWISE_CASES) {
      const dyShape = await forwardShape(c, true);
      const attrs = { ...convAttrs(c), dilations: c.dilations ?? 1, inputShape: c.x };
      const inputs = { dy: randomHost(dyShape), filter: randomHost(filterShapeOf(c)) };
      await compareKernel('DepthwiseConv2dNativeBackpropInput', inputs, attrs, caseLabel(c));
    }
  });

  it('DepthwiseConv2dNativeBackpropFilter', async () => {
    for (const c of DEPTHWISE_CASES) {
      const dyShape = await forwardShape(c, true);
      const attrs = { ...convAttrs(c), dilations: c.dilations ?? 1, filterShape: filterShapeOf(c) };
      const inputs = { x: randomHost(c.x), dy: randomHost(dyShape) };
      await compareKernel('DepthwiseConv2dNativeBackpropFilter', inputs, attrs, caseLabel(c));
    }
  });

  it('depthwise backprop kernels with dilation equal the zero-expanded filter at dilation 1 (cpu)', async () => {
    for (const c of DILATED_DEPTHWISE_CASES) {
      const d = c.dilations ?? 1;
      const dyShape = await forwardShape(c, true);
      const filter = randomHost([c.k[0], c.k[1], c.ci, c.co]);
      const dy = randomHost(dyShape);
      const x = randomHost(c.x);
      const base = { strides: c.strides, pad: c.pad, dimRoundingMode: c.dimRoundingMode };
      const kernel = (name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>) =>
        tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
      const [wantDx] = await onBackend('cpu', [dy, dilateHost(filter, d)], (g, f) => [
        kernel('DepthwiseConv2dNativeBackpropInput', { dy: g, filter: f }, { ...base, dilations: 1, inputShape: c.x }),
      ]);
      const [gotDx] = await onBackend('wasm', [dy, filter], (g, f) => [
        kernel('DepthwiseConv2dNativeBackpropInput', { dy: g, filter: f }, { ...base, dilations: d, inputShape: c.x }),
      ]);
      expectClose(gotDx, wantDx, `DepthwiseConv2dNativeBackpropInput ${caseLabel(c)}`);
      const expanded = dilateHost(filter, d).shape;
      const [wantDw] = await onBackend('cpu', [x, dy], (xx, g) => {
        const attrs = { ...base, dilations: 1, filterShape: expanded };
        const full = kernel('DepthwiseConv2dNativeBackpropFilter', { x: xx, dy: g }, attrs);
        return [tf.stridedSlice(full, [0, 0, 0, 0], expanded, [d, d, 1, 1])];
      });
      const [gotDw] = await onBackend('wasm', [x, dy], (xx, g) => [
        kernel('DepthwiseConv2dNativeBackpropFilter', { x: xx, dy: g }, { ...base, dilations: d, filterShape: filter.shape }),
      ]);
      expectClose(gotDw, wantDw, `DepthwiseConv2dNativeBackpropFilter ${caseLabel(c)}`);
    }
  });

  it('UnsortedSegmentSum (exact)', async () => {
    const ids = (values: number[], shape: number[]): HostTensor => ({ values, shape, dtype: 'int32' });
    const cases: [HostTensor, HostTensor, number][] = [
      [randomHost([6, 3]), ids([0, 2, 2, 5, 0, 1], [6]), 7],
      [randomHost([10, 2, 3]), ids([1, 0, 3, 3, 1, 4, 4, 0, 2, 1], [10]), 5],
      [randomHost([64, 2]), ids(Array.from({ length: 64 }, (_, i) => (i * 7) % 15), [64]), 15],
      [{ values: [1, 2, 3, 4, 5, 6], shape: [3, 2], dtype: 'int32' }, ids([1, 1, 0], [3]), 2],
    ];
    for (const [x, segmentIds, numSegments] of cases) {
      const { got, want } = await compareKernel('UnsortedSegmentSum', { x, segmentIds }, { numSegments }, `x=${x.shape}`);
      // Bit-exact. (For int32 x the cpu kernel returns float32, TF and this kernel keep int32.)
      expect(got.values).toEqual(want.values);
      if (x.dtype === 'float32') expect(got.dtype).toBe('float32');
    }
  });

  it('BatchMatMul (replaced: transposes and shared right operand)', async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[5, 7], [7, 3], false, false],
      [[7, 5], [7, 3], true, false],
      [[5, 7], [3, 7], false, true],
      [[7, 5], [3, 7], true, true],
      [[1, 7, 5], [1, 3, 7], true, true],
      [[3, 5, 7], [7, 4], false, false],
      [[2, 3, 5, 7], [1, 1, 4, 7], false, true],
      [[4, 5, 7], [4, 7, 3], false, false],
      [[4, 7, 5], [4, 3, 7], true, true],
    ];
    for (const [as, bs, transposeA, transposeB] of cases) {
      const label = `${as} x ${bs} tA=${transposeA} tB=${transposeB}`;
      await compareKernel('BatchMatMul', { a: randomHost(as), b: randomHost(bs) }, { transposeA, transposeB }, label);
    }
  });

  it('BatchMatMul (replaced: batches large enough for the grouped convolution)', async () => {
    // batch * m * k * n >= 2^17 takes the grouped route; window-attention-like shapes, every transpose flag.
    const cases: [number[], number[], boolean, boolean][] = [
      [[6, 24, 30], [6, 30, 40], false, false],
      [[6, 24, 30], [6, 40, 30], false, true], // q k^T
      [[6, 30, 24], [6, 30, 40], true, false],
      [[6, 30, 24], [6, 40, 30], true, true],
      [[2, 3, 24, 16], [2, 3, 16, 72], false, false], // rank 4: [windows, heads, N, d]
      [[2, 3, 72, 16], [2, 3, 72, 16], false, true],
      [[2, 24, 300], [2, 300, 24], false, false], // long k (Restormer's channel attention)
      [[40, 12, 12], [40, 12, 12], false, true],
    ];
    for (const [as, bs, transposeA, transposeB] of cases) {
      const label = `grouped ${as} x ${bs} tA=${transposeA} tB=${transposeB}`;
      await compareKernel('BatchMatMul', { a: randomHost(as), b: randomHost(bs) }, { transposeA, transposeB }, label);
    }
    // The route is taken: the product runs as a depthwise convolution inside the BatchMatMul kernel.
    await tf.setBackend('wasm');
    const [a, b] = [tf.ones([6, 24, 30]), tf.ones([6, 30, 40])];
    const prof = await tf.profile(() => tf.matMul(a, b));
    expect(prof.kernelNames).toContain('DepthwiseConv2dNative');
    tf.dispose([a, b, prof.result as tf.Tensor]);
  });

  it('Slice, SplitV and Unpack (replaced: copies inside the wasm heap) equal cpu exactly', async () => {
    const intHost = (shape: number[]): HostTensor => ({ ...randomHost(shape), values: randomHost(shape).values.map((v) => Math.round(v * 1000)), dtype: 'int32' });
    const slices: [HostTensor, number[], number[]][] = [
      [randomHost([7]), [2], [4]],
      [randomHost([5, 6]), [1, 0], [3, 6]], // contiguous rows
      [randomHost([5, 6]), [1, 2], [3, -1]],
      [randomHost([4, 3, 10]), [0, 0, 5], [-1, -1, 5]], // a channel half (EDT's qkv halves)
      [randomHost([3, 4, 5, 6]), [1, 1, 2, 0], [2, 2, 3, 6]],
      [randomHost([3, 4, 5, 6]), [0, 0, 0, 0], [3, 4, 5, 6]], // everything
      [randomHost([2, 3, 4, 5, 6]), [1, 0, 1, 2, 3], [1, 3, 2, 2, 3]], // rank 5
      [randomHost([2, 3, 2, 3, 2, 4]), [0, 1, 0, 1, 1, 0], [2, 2, 2, 1, 1, 4]], // rank 6
      [randomHost([4, 5]), [2, 1], [0, 3]], // empty
      [intHost([4, 6, 5]), [1, 2, 1], [2, 3, 3]],
    ];
    const exact = (got: HostTensor, want: HostTensor, label: string) => {
      expect(got.shape, `${label}: shape`).toEqual(want.shape);
      expect(got.dtype, `${label}: dtype`).toBe(want.dtype);
      expect(got.values, label).toEqual(want.values);
    };
    const both = async (inputs: HostTensor[], f: (...ts: tf.Tensor[]) => tf.Tensor[], label: string) => {
      const want = await onBackend('cpu', inputs, f);
      const got = await onBackend('wasm', inputs, f);
      expect(got.length, label).toBe(want.length);
      want.forEach((w, i) => exact(got[i], w, `${label} output ${i}`));
    };
    for (const [x, begin, size] of slices)
      await both([x], (t) => [tf.slice(t, begin, size)], `slice ${x.shape} begin ${begin} size ${size}`);
    const splits: [number[], number[] | number, number][] = [
      [[3, 4, 5, 6], 3, 0], // q/k/v stacked along the batch
      [[3, 4, 5, 6], [1, 3, 2], 3],
      [[3, 4, 5, 6], [2, -1], -2],
      [[2, 3, 4, 5, 6], [1, 2], 1],
      [[12, 30], 2, 1],
    ];
    for (const [shape, sizes, axis] of splits)
      await both([randomHost(shape)], (t) => tf.split(t, sizes, axis), `split ${shape} ${JSON.stringify(sizes)} axis ${axis}`);
    for (const [shape, axis] of [[[3, 4, 5], 0], [[2, 3, 4, 5, 6], 2], [[4, 5, 3], -1]] as [number[], number][])
      await both([randomHost(shape)], (t) => tf.unstack(t, axis), `unstack ${shape} axis ${axis}`);
    await both([intHost([3, 5, 2])], (t) => tf.unstack(t, 1), 'unstack int32');
    // bool and string tensors (string data lives outside the wasm heap: the stock kernel handles it).
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const b = tf.tensor2d([[true, false, true], [false, false, true]], [2, 3], 'bool');
        expect(Array.from(tf.slice(b, [0, 1], [2, 2]).dataSync()), `bool slice on ${backend}`).toEqual([0, 1, 0, 1]);
        expect(tf.split(b, [1, 2], 1).map((t) => Array.from(t.dataSync())), `bool split on ${backend}`).toEqual([[1, 0], [0, 1, 0, 1]]);
        const str = tf.tensor1d(['a', 'bb', 'c', 'dd']);
        expect(tf.slice(str, [1], [2]).arraySync(), `string slice on ${backend}`).toEqual(['bb', 'c']);
      });
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('Identity (replaced: shares the data) gives independent tensors: each can be disposed alone', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.tensor2d([[1, 2], [3, 4]]);
    const c = tf.clone(x);
    x.dispose();
    expect(Array.from(c.dataSync())).toEqual([1, 2, 3, 4]);
    c.dispose();
    tf.tidy(() => {
      expect(Array.from(tf.clone(tf.tensor1d([true, false], 'bool')).dataSync())).toEqual([1, 0]);
      expect(tf.clone(tf.tensor1d(['a', 'bb'])).arraySync()).toEqual(['a', 'bb']);
    });
    // Gradients save tensors through clones: a second backward pass still sees them.
    const v = tf.tidy(() => tf.variable(tf.tensor1d([1, 2, 3])));
    for (let i = 0; i < 2; i++) {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(tf.square(v), 2)), [v]);
      expect(Array.from(grads[v.name].dataSync())).toEqual([4, 8, 12]);
      tf.dispose([value, ...Object.values(grads)]);
    }
    v.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

// ------------------------------------------------------------------------------------ gradient coverage

interface GradCase {
  name: string;
  inputs: number[][];
  /** Builds the op output from the inputs; the loss is sum(output * fixed random weights). */
  f: (...ts: tf.Tensor[]) => tf.Tensor;
}

const t4 = (t: tf.Tensor) => t as tf.Tensor4D;

const GRAD_CASES: GradCase[] = [
  ...[
    { k: 1, s: 1, pad: 'valid' as Pad, d: 1 },
    { k: 3, s: 1, pad: 'same' as Pad, d: 1 },
    { k: 3, s: 2, pad: 'same' as Pad, d: 1 },
    { k: 3, s: 2, pad: 'valid' as Pad, d: 1 },
    { k: 4, s: 2, pad: [[0, 0], [1, 1], [1, 1], [0, 0]] as Pad, d: 1 },
    { k: 3, s: 1, pad: [[0, 0], [1, 0], [2, 1], [0, 0]] as Pad, d: 1 },
    { k: 3, s: 1, pad: 'same' as Pad, d: 2 },
    { k: 3, s: 1, pad: 'valid' as Pad, d: 2 },
  ].map((c) => ({
    name: `conv2d k${c.k} s${c.s} pad=${JSON.stringify(c.pad)} d${c.d}`,
    inputs: [[2, 9, 9, 3], [c.k, c.k, 3, 4]],
    f: (x: tf.Tensor, w: tf.Tensor) => tf.conv2d(t4(x), t4(w), c.s, c.pad as 'same', 'NHWC', c.d),
  })),
  ...[3, 5].map((k) => ({
    name: `depthwiseConv2d ${k}x${k}`,
    inputs: [[2, 8, 8, 4], [k, k, 4, 1]],
    f: (x: tf.Tensor, w: tf.Tensor) => tf.depthwiseConv2d(t4(x), t4(w), 1, 'same'),
  })),
  {
    name: 'depthwiseConv2d 3x3 dilation 2',
    inputs: [[1, 9, 9, 3], [3, 3, 3, 1]],
    f: (x, w) => tf.depthwiseConv2d(t4(x), t4(w), 1, 'same', 'NHWC', 2),
  },
  {
    name: 'conv2dTranspose k2 s2',
    inputs: [[2, 5, 4, 6], [2, 2, 3, 6]],
    f: (x, w) => tf.conv2dTranspose(t4(x), t4(w), [2, 10, 8, 3], 2, 'valid'),
  },
  { name: 'matMul', inputs: [[5, 7], [7, 3]], f: (a, b) => tf.matMul(a, b) },
  { name: 'matMul tA', inputs: [[7, 5], [7, 3]], f: (a, b) => tf.matMul(a, b, true, false) },
  { name: 'matMul tB', inputs: [[5, 7], [3, 7]], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'batched matMul', inputs: [[2, 3, 5, 7], [2, 3, 7, 4]], f: (a, b) => tf.matMul(a, b) },
  { name: 'batched matMul tB (q k^T)', inputs: [[6, 5, 7], [6, 5, 7]], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'batched matMul tA', inputs: [[6, 7, 5], [6, 7, 4]], f: (a, b) => tf.matMul(a, b, true, false) },
  { name: 'softmax', inputs: [[3, 4, 9]], f: (x) => tf.softmax(x) },
  { name: 'erf (exact GELU)', inputs: [[4, 9]], f: (x) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))) },
  { name: 'sigmoid', inputs: [[4, 9]], f: (x) => tf.sigmoid(x) },
  { name: 'leakyRelu', inputs: [[4, 9]], f: (x) => tf.leakyRelu(x, 0.2) },
  { name: 'prelu', inputs: [[2, 4, 4, 3], [3]], f: (x, a) => tf.prelu(x, a) },
  { name: 'relu', inputs: [[4, 9]], f: (x) => tf.relu(x) },
  { name: 'avgPool 2x2', inputs: [[1, 8, 8, 3]], f: (x) => tf.avgPool(t4(x), 2, 2, 'valid') },
  {
    name: 'gather (relative position bias)',
    inputs: [[9, 2]],
    f: (table) => tf.gather(table, tf.tensor1d([0, 4, 4, 8, 3, 3, 3, 1, 0, 7, 7, 2, 5, 6, 4, 4], 'int32')).reshape([4, 4, 2]),
  },
  {
    name: 'slice/concat/split',
    inputs: [[2, 6, 6, 4]],
    f: (x) => tf.concat(tf.split(tf.slice(x, [0, 1, 0, 0], [2, 4, 5, 4]), [1, 3], 3).reverse(), 3),
  },
  { name: 'pad', inputs: [[1, 4, 5, 2]], f: (x) => tf.pad(x, [[0, 0], [1, 2], [2, 0], [0, 0]]) },
  { name: 'mirrorPad reflect', inputs: [[1, 4, 5, 2]], f: (x) => tf.mirrorPad(x, [[0, 0], [1, 2], [2, 1], [0, 0]], 'reflect') },
  {
    name: 'mirrorPad symmetric',
    inputs: [[1, 4, 5, 2]],
    f: (x) => tf.mirrorPad(x, [[0, 0], [1, 2], [2, 1], [0, 0]], 'symmetric'),
  },
  {
    name: 'transpose/reshape (pixel shuffle)',
    inputs: [[2, 4, 6, 3]],
    f: (x) => tf.transpose(x.reshape([2, 2, 2, 3, 2, 3]), [0, 3, 1, 4, 2, 5]),
  },
  {
    name: 'mean/sum/square/sqrt/rsqrt (layer norm)',
    inputs: [[2, 5, 6]],
    f: (x) => {
      const mu = tf.mean(x, -1, true);
      const v = tf.mean(tf.square(tf.sub(x, mu)), -1, true);
      return tf.add(tf.mul(tf.sub(x, mu), tf.rsqrt(tf.add(v, 1e-5))), tf.sqrt(tf.add(tf.sum(tf.square(x), -1, true), 1)));
    },
  },
  { name: 'maximum', inputs: [[4, 9], [4, 9]], f: (a, b) => tf.maximum(a, b) },
  { name: 'abs', inputs: [[4, 9]], f: (x) => tf.abs(x) },
  { name: 'clipByValue', inputs: [[4, 9]], f: (x) => tf.clipByValue(x, -0.3, 0.4) },
];

function gradOf(c: GradCase, weights: tf.Tensor | null) {
  return (...ts: tf.Tensor[]): tf.Tensor[] => {
    const g = tf.grads((...xs: tf.Tensor[]) => {
      const y = c.f(...xs);
      return tf.sum(weights ? tf.mul(y, weights.reshape(y.shape)) : y);
    });
    return g(ts);
  };
}

describe('gradients on wasm equal gradients on cpu', () => {
  for (const c of GRAD_CASES) {
    it(c.name, async () => {
      const inputs = c.inputs.map(randomHost);
      // Output size from a cpu forward pass, then fixed random loss weights so dy is not all ones.
      await tf.setBackend('cpu');
      const outSize = tf.tidy(() => c.f(...inputs.map(toTensor)).size);
      const weights = randomHost([outSize]);
      const run = (...ts: tf.Tensor[]) => {
        const w = ts[ts.length - 1];
        return gradOf(c, w)(...ts.slice(0, -1));
      };
      const want = await onBackend('cpu', [...inputs, weights], run);
      const got = await onBackend('wasm', [...inputs, weights], run);
      want.forEach((w, i) => expectClose(got[i], w, `${c.name} d/dinput${i}`));
    });
  }

  it('resize gradients equal the adjoint of the forward resize (wasm and fixed cpu)', async () => {
    const cases: [string, number[], [number, number], (x: tf.Tensor4D, size: [number, number]) => tf.Tensor4D][] = [
      ['bilinear', [1, 5, 6, 3], [10, 12], (x, size) => tf.image.resizeBilinear(x, size, false, false)],
      ['bilinear halfPixelCenters', [1, 5, 6, 3], [10, 12], (x, size) => tf.image.resizeBilinear(x, size, false, true)],
      ['bilinear halfPixelCenters down', [1, 8, 7, 2], [4, 3], (x, size) => tf.image.resizeBilinear(x, size, false, true)],
      ['bilinear halfPixelCenters x1.5', [1, 4, 6, 2], [6, 9], (x, size) => tf.image.resizeBilinear(x, size, false, true)],
      ['bilinear alignCorners', [1, 5, 6, 2], [9, 13], (x, size) => tf.image.resizeBilinear(x, size, true, false)],
      ['nearest', [1, 5, 6, 3], [10, 12], (x, size) => tf.image.resizeNearestNeighbor(x, size, false, false)],
      ['nearest halfPixelCenters', [1, 5, 6, 2], [9, 13], (x, size) => tf.image.resizeNearestNeighbor(x, size, false, true)],
      ['nearest down', [1, 8, 8, 2], [4, 4], (x, size) => tf.image.resizeNearestNeighbor(x, size, false, false)],
    ];
    registerResizeGradFixes('cpu');
    for (const [label, shape, size, resize] of cases) {
      const x = randomHost(shape);
      const dy = randomHost([shape[0], size[0], size[1], shape[3]]);
      const grad = (xx: tf.Tensor, g: tf.Tensor) => [tf.grad((a: tf.Tensor) => tf.sum(tf.mul(resize(t4(a), size), g)))(xx)];
      // Adjoint reference: dx[i] = <resize(e_i), dy> with a batch of one-hot images e_i (forward passes only).
      const [want] = await onBackend('cpu', [dy], (g) => {
        const n = shape[1] * shape[2] * shape[3];
        const basis = tf.oneHot(tf.range(0, n, 1, 'int32'), n).reshape([n, shape[1], shape[2], shape[3]]);
        const columns = resize(t4(basis), size).reshape([n, -1]);
        return [tf.matMul(columns, g.reshape([-1, 1])).reshape(shape)];
      });
      const [gotWasm] = await onBackend('wasm', [x, dy], grad);
      const [gotCpu] = await onBackend('cpu', [x, dy], grad);
      expectClose(gotWasm, want, `${label} wasm`);
      expectClose(gotCpu, want, `${label} cpu`);
    }
  });

  it('dilated conv gradients equal the gradients of the conv with the zero-expanded filter (cpu)', async () => {
    const x = randomHost([1, 9, 9, 3]);
    const w = randomHost([3, 3, 3, 2]);
    const dilated = (xx: tf.Tensor, ww: tf.Tensor) => tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.square(tf.conv2d(t4(a), t4(b), 1, 'same', 'NHWC', 2))))([xx, ww]);
    const expanded = (xx: tf.Tensor, ww: tf.Tensor) => tf.grads((a: tf.Tensor, b: tf.Tensor) => {
      // Zero-expand with differentiable ops: [3,3] taps at stride 2 -> 5x5.
      const spread = tf.pad(b.reshape([3, 1, 3, 1, 3, 2]), [[0, 0], [0, 1], [0, 0], [0, 1], [0, 0], [0, 0]]);
      const big = tf.slice(spread.reshape([6, 6, 3, 2]), [0, 0, 0, 0], [5, 5, 3, 2]);
      return tf.sum(tf.square(tf.conv2d(t4(a), t4(big), 1, 'same')));
    })([xx, ww]);
    const want = await onBackend('cpu', [x, w], expanded);
    const gotWasm = await onBackend('wasm', [x, w], dilated);
    const gotCpu = await onBackend('cpu', [x, w], dilated);
    want.forEach((r, i) => {
      expectClose(gotWasm[i], r, `dilated conv wasm d/dinput${i}`);
      expectClose(gotCpu[i], r, `dilated conv cpu d/dinput${i}`);
    });
  });
});
