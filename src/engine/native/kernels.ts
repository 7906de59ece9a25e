/**
 * Native kernels for the TF.js wasm backend: BatchMatMul, _FusedMatMul, Conv2D, FusedConv2D,
 * DepthwiseConv2dNative and FusedDepthwiseConv2D computed by the addon (OpenBLAS sgemm, see
 * native/irlens_native.cc) straight into the output tensor's memory in the wasm heap.
 *
 * Each kernel replaces whatever is registered for 'wasm' (the stock kernel or irlens's composition from
 * wasm-kernels.ts) and falls back to it for what it does not handle: NCHW, non-float32 dtypes, empty
 * tensors, bias/PReLU weights that are not per-channel. The gradient kernels (Conv2DBackpropInput/Filter,
 * depthwise backprops) are compositions of conv/depthwise/matMul, so they run on these kernels too.
 *
 * Memory: inputs are read and outputs written at their `memoryOffset` in the wasm Memory's ArrayBuffer; the
 * output is made with the backend's own makeOutput, and the heap is read after it (growing the memory
 * replaces the buffer).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { adoptWasmKernel } from '../wasm-kernels';
import { GATED_GELU_GRAD_KERNEL, GATED_GELU_KERNEL, GELU_GRAD_KERNEL, GELU_KERNEL } from '../wasm/gelu';
import { PRELU_GRAD_KERNEL, PRELU_KERNEL } from '../wasm/prelu';
import { ADAM_STEP_KERNEL, type AdamStepAttrs } from '../wasm/adam-step';
import {
  ATTENTION_PROBS_GRAD_KERNEL,
  ATTENTION_PROBS_KERNEL,
  PACKED_WINDOW_ATTENTION_GRAD_KERNEL,
  PACKED_WINDOW_ATTENTION_KERNEL,
  WINDOW_ATTENTION_GRAD_KERNEL,
  WINDOW_ATTENTION_KERNEL,
  type WindowAttentionAttrs,
} from '../wasm/window-attention';
import { LAYER_NORM_GRAD_KERNEL, LAYER_NORM_KERNEL, type LayerNormAttrs } from '../wasm/layer-norm';
import { nativeAddon, type NativeAddon } from './addon';
import { registerChannelAttentionKernels } from './channel-attention';
import { offset, size, type KernelArgs, type WasmBackend } from './wasm-heap';

type Attrs = Record<string, unknown>;
type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];
type Shape4 = [number, number, number, number];

export const NATIVE_KERNELS = [
  'BatchMatMul',
  '_FusedMatMul',
  'Conv2D',
  'FusedConv2D',
  'DepthwiseConv2dNative',
  'FusedDepthwiseConv2D',
  'Conv2DBackpropInput',
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'Transpose',
  'Slice',
  'SplitV',
  'Concat',
  'Add',
  'Sub',
  'Multiply',
  'RealDiv',
  'Sum',
  'Mean',
] as const;
type NativeKernelName = (typeof NATIVE_KERNELS)[number];

/** Activation codes of the addon's epilogue (native/irlens_native.cc, enum Activation). */
const ACTIVATIONS: Record<string, number> = { linear: 0, relu: 1, relu6: 2, leakyrelu: 3, prelu: 4, sigmoid: 5, elu: 6 };

/**
 * Epilogue params (biasOff, biasLen, act, alpha, preluOff, preluLen), or null when the bias or PReLU weights
 * are not a scalar or one value per output channel (those go to the fallback kernel).
 */
function epilogue(backend: WasmBackend, inputs: KernelArgs['inputs'], attrs: Attrs, channels: number): number[] | null {
  const act = ACTIVATIONS[(attrs.activation as string | undefined) ?? 'linear'];
  if (act === undefined) return null;
  const perChannel = (t: tf.TensorInfo | undefined): [number, number] | null | undefined => {
    if (t === undefined) return undefined;
    if (t.dtype !== 'float32') return null;
    const n = size(t.shape);
    if (n !== 1 && !(n === channels && t.shape[t.shape.length - 1] === channels)) return null;
    return [offset(backend, t), n];
  };
  const bias = perChannel(inputs.bias);
  const prelu = act === ACTIVATIONS.prelu ? perChannel(inputs.preluActivationWeights) : undefined;
  if (bias === null || prelu === null || (act === ACTIVATIONS.prelu && prelu === undefined)) return null;
  const alpha = act === ACTIVATIONS.leakyrelu ? ((attrs.leakyreluAlpha as number | undefined) ?? 0.2) : 0;
  return [bias?.[0] ?? -1, bias?.[1] ?? 0, act, alpha, prelu?.[0] ?? -1, prelu?.[1] ?? 0];
}

function float32(...ts: (tf.TensorInfo | undefined)[]): boolean {
  return ts.every((t) => t !== undefined && t.dtype === 'float32');
}

// ------------------------------------------------------------------------------------------------ matMul

/** Batch index into an operand for each output batch index, with numpy broadcasting of the batch dims. */
function batchIndices(batchShape: number[], outBatch: number[]): Int32Array {
  const out = new Int32Array(size(outBatch));
  const lead = outBatch.length - batchShape.length;
  const strides = tf.util.computeStrides(batchShape);
  const idx = new Array<number>(outBatch.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let s = 0;
    for (let d = 0; d < batchShape.length; d++) {
      if (batchShape[d] !== 1) s += idx[d + lead] * (d < batchShape.length - 1 ? strides[d] : 1);
    }
    out[o] = s;
    for (let d = outBatch.length - 1; d >= 0 && ++idx[d] === outBatch[d]; d--) idx[d] = 0;
  }
  return out;
}

function matMul(addon: NativeAddon, args: KernelArgs, fused: boolean): tf.TensorInfo | null {
  const { a, b } = args.inputs;
  const attrs = args.attrs ?? {};
  if (!float32(a, b) || a!.shape.length < 2 || b!.shape.length < 2) return null;
  const ta = attrs.transposeA === true;
  const tb = attrs.transposeB === true;
  const as = a!.shape;
  const bs = b!.shape;
  const [m, k] = ta ? [as[as.length - 1], as[as.length - 2]] : [as[as.length - 2], as[as.length - 1]];
  const [kb, n] = tb ? [bs[bs.length - 1], bs[bs.length - 2]] : [bs[bs.length - 2], bs[bs.length - 1]];
  if (k !== kb) return null; // the fallback throws tfjs's own shape error
  const batchA = as.slice(0, -2);
  const batchB = bs.slice(0, -2);
  let outBatch: number[];
  try {
    outBatch = tf.broadcast_util.assertAndGetBroadcastShape(batchA, batchB);
  } catch {
    return null;
  }
  const ep = fused ? epilogue(args.backend, args.inputs, attrs, n) : [-1, 0, 0, 0, -1, 0];
  if (ep === null) return null;
  const out = args.backend.makeOutput([...outBatch, m, n], 'float32');
  const batches = size(outBatch);
  if (batches * m * n === 0) return out; // nothing to compute
  // k = 0: the addon writes zeros (+ epilogue); the stock kernel leaves the output uninitialised.
  const params = new Float64Array([
    k === 0 ? 0 : offset(args.backend, a!),
    k === 0 ? 0 : offset(args.backend, b!),
    offset(args.backend, out),
    batches,
    size(batchA),
    size(batchB),
    m,
    n,
    k,
    ta ? 1 : 0,
    tb ? 1 : 0,
    ...ep,
  ]);
  addon.matMul(args.backend.wasm.HEAPU8.buffer as ArrayBuffer, params, batchIndices(batchA, outBatch), batchIndices(batchB, outBatch));
  return out;
}

// -------------------------------------------------------------------------------------------------- conv

function pair(v: unknown): [number, number] {
  if (v == null) return [1, 1];
  if (typeof v === 'number') return [v, v];
  return [(v as number[])[0], (v as number[])[1]];
}

/** The addon's 15 conv shape fields (ConvShape in native/irlens_native.cc); co: output channels, or the
 * channel multiplier of a depthwise conv. */
function convShapeParams(info: tf.backend_util.Conv2DInfo, co: number): number[] {
  return [
    info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.filterHeight, info.filterWidth, co, info.outHeight,
    info.outWidth, info.strideHeight, info.strideWidth, info.dilationHeight, info.dilationWidth, info.padInfo.top, info.padInfo.left,
  ];
}

function conv(addon: NativeAddon, args: KernelArgs, depthwise: boolean, fused: boolean): tf.TensorInfo | null {
  const { x, filter } = args.inputs;
  const attrs = args.attrs ?? {};
  if (!float32(x, filter) || x!.shape.length !== 4 || filter!.shape.length !== 4) return null;
  if (attrs.dataFormat === 'NCHW' || attrs.dataFormat === 'channelsFirst') return null;
  const fs = filter!.shape as Shape4;
  if (x!.shape[3] !== fs[2]) return null;
  let info: tf.backend_util.Conv2DInfo;
  try {
    info = tf.backend_util.computeConv2DInfo(
      x!.shape as Shape4,
      fs,
      pair(attrs.strides),
      pair(attrs.dilations),
      attrs.pad as 'same' | 'valid' | number | ExplicitPadding,
      attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
      depthwise,
      'channelsLast',
    );
  } catch {
    return null;
  }
  if (info.outHeight < 0 || info.outWidth < 0) return null;
  if (size(x!.shape) === 0 || size(fs) === 0) return null;
  const ep = fused ? epilogue(args.backend, args.inputs, attrs, info.outChannels) : [-1, 0, 0, 0, -1, 0];
  if (ep === null) return null;
  const out = args.backend.makeOutput([info.batchSize, info.outHeight, info.outWidth, info.outChannels], 'float32');
  // An empty output has nothing to compute (the stock XNNPACK kernels corrupt the heap on it: measured,
  // x [1,1,1,1], filter 4x1, stride 3, explicit pads giving a 0-row output).
  if (size(out.shape) === 0) return out;
  const params = new Float64Array([
    offset(args.backend, x!),
    offset(args.backend, filter!),
    offset(args.backend, out),
    ...convShapeParams(info, depthwise ? fs[3] : info.outChannels),
    ...ep,
  ]);
  const heap = args.backend.wasm.HEAPU8.buffer as ArrayBuffer;
  if (depthwise) addon.depthwise(heap, params);
  else addon.conv2d(heap, params);
  return out;
}

// ----------------------------------------------------------------------------------------- conv gradients

/**
 * Input gradient (dy, filter -> dx) or filter gradient (x, dy -> dW) of Conv2D / DepthwiseConv2dNative on
 * oneDNN's backward primitives. null (the composition in src/engine/wasm/conv-grads.ts runs instead) for NCHW,
 * non-float32, empty tensors, and when the addon has no oneDNN or oneDNN only its reference loop for the shape.
 */
function convBackward(addon: NativeAddon, args: KernelArgs, depthwise: boolean, gradient: 'input' | 'filter'): tf.TensorInfo | null {
  const attrs = args.attrs ?? {};
  if (attrs.dataFormat === 'NCHW' || attrs.dataFormat === 'channelsFirst') return null;
  const { dy } = args.inputs;
  const other = gradient === 'input' ? args.inputs.filter : args.inputs.x;
  if (!float32(dy, other) || dy!.shape.length !== 4 || other!.shape.length !== 4) return null;
  const xShape = (gradient === 'input' ? attrs.inputShape : other!.shape) as Shape4 | undefined;
  const fShape = (gradient === 'input' ? other!.shape : attrs.filterShape) as Shape4 | undefined;
  if (!xShape || !fShape || xShape.length !== 4 || fShape.length !== 4) return null;
  let info: tf.backend_util.Conv2DInfo;
  try {
    info = tf.backend_util.computeConv2DInfo(
      xShape,
      fShape,
      pair(attrs.strides),
      depthwise ? pair(attrs.dilations) : 1, // tfjs's Conv2D gradients require dilation 1
      attrs.pad as 'same' | 'valid' | number | ExplicitPadding,
      attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
      depthwise,
      'channelsLast',
    );
  } catch {
    return null;
  }
  if (info.outHeight !== dy!.shape[1] || info.outWidth !== dy!.shape[2] || info.outChannels !== dy!.shape[3] || info.batchSize !== dy!.shape[0]) return null;
  if (size(xShape) === 0 || size(fShape) === 0 || size(dy!.shape) === 0) return null;
  const out = args.backend.makeOutput(gradient === 'input' ? xShape : fShape, 'float32');
  const params = new Float64Array([
    offset(args.backend, gradient === 'input' ? dy! : other!),
    offset(args.backend, gradient === 'input' ? other! : dy!),
    offset(args.backend, out),
    ...convShapeParams(info, depthwise ? fShape[3] : info.outChannels),
    gradient === 'input' ? 0 : 1,
    depthwise ? 1 : 0,
  ]);
  if (addon.convBackward(args.backend.wasm.HEAPU8.buffer as ArrayBuffer, params)) return out;
  args.backend.disposeData(out.dataId);
  return null;
}

// ------------------------------------------------------------------------------------------------ copies

/** Row-major strides (elements) of every axis, the last one included. */
const stridesOf = (shape: readonly number[]) => (shape.length === 0 ? [] : [...tf.util.computeStrides(shape as number[]), 1]);

/** Element sizes the addon's copy handles: float32/int32 (4 bytes) and bool (1 byte in the wasm heap). */
const COPY_BYTES: Partial<Record<tf.DataType, number>> = { float32: 4, int32: 4, bool: 1 };

/**
 * Copies the box `shape` of `x` (starting at element `begin`, read with strides `inStrides`) into `out` (from
 * element `outBegin`, written with strides `outStrides`; by default `out` is the box itself, contiguous), after
 * dropping size-1 axes and merging axes that are contiguous on both sides, so a slice of whole rows is one
 * memcpy and a transpose is a tiled 2-D copy.
 */
function copyBox(
  addon: NativeAddon,
  backend: WasmBackend,
  x: tf.TensorInfo,
  out: tf.TensorInfo,
  begin: number,
  shape: number[],
  inStrides: number[],
  outBegin = 0,
  outStrides = stridesOf(shape),
): void {
  const os = outStrides;
  const dims: [number, number, number][] = [];
  shape.forEach((n, d) => {
    if (n !== 1) dims.push([n, inStrides[d], os[d]]);
  });
  const merged: [number, number, number][] = [];
  for (const [n, is, o] of dims) {
    const prev = merged.at(-1);
    if (prev && prev[1] === n * is && prev[2] === n * o) merged[merged.length - 1] = [prev[0] * n, is, o];
    else merged.push([n, is, o]);
  }
  if (merged.length === 0) merged.push([1, 1, 1]);
  const bytes = COPY_BYTES[x.dtype]!;
  const params = new Float64Array([
    offset(backend, x) + begin * bytes,
    offset(backend, out) + outBegin * bytes,
    bytes,
    merged.length,
    ...merged.map((m) => m[0]),
    ...merged.map((m) => m[1]),
    ...merged.map((m) => m[2]),
  ]);
  addon.copy(backend.wasm.HEAPU8.buffer as ArrayBuffer, params);
}


function transpose(addon: NativeAddon, args: KernelArgs): tf.TensorInfo | null {
  const x = args.inputs.x;
  const perm = (args.attrs?.perm ?? []) as number[];
  if (!x || COPY_BYTES[x.dtype] === undefined || perm.length !== x.shape.length || x.shape.length > 8) return null;
  const out = args.backend.makeOutput(perm.map((p) => x.shape[p]), x.dtype);
  if (size(x.shape) === 0) return out;
  const is = stridesOf(x.shape);
  copyBox(addon, args.backend, x, out, 0, out.shape, perm.map((p) => is[p]));
  return out;
}

function slice(addon: NativeAddon, args: KernelArgs): tf.TensorInfo | null {
  const x = args.inputs.x;
  if (!x || COPY_BYTES[x.dtype] === undefined || x.shape.length > 8) return null;
  const [begin, sz] = tf.slice_util.parseSliceParams(x, args.attrs?.begin as number[], args.attrs?.size as number[]);
  const out = args.backend.makeOutput(sz, x.dtype);
  if (size(sz) === 0) return out;
  const is = stridesOf(x.shape);
  copyBox(addon, args.backend, x, out, begin.reduce((acc, b, d) => acc + b * is[d], 0), sz, is);
  return out;
}

function splitV(addon: NativeAddon, args: KernelArgs): tf.TensorInfo[] | null {
  const x = args.inputs.x;
  if (!x || COPY_BYTES[x.dtype] === undefined || x.shape.length > 8) return null;
  const axis = tf.util.parseAxisParam(args.attrs?.axis as number, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, args.attrs?.numOrSizeSplits as number | number[], axis);
  const is = stridesOf(x.shape);
  let start = 0;
  return sizes.map((s) => {
    const shape = x.shape.slice();
    shape[axis] = s;
    const out = args.backend.makeOutput(shape, x.dtype);
    if (size(shape) > 0) copyBox(addon, args.backend, x, out, start * is[axis], shape, is);
    start += s;
    return out;
  });
}

/** Concat: each input copied into its box of the output (tfjs-wasm copies element rows one call at a time). */
function concat(addon: NativeAddon, args: KernelArgs): tf.TensorInfo | null {
  const xs = Object.values(args.inputs).filter((t): t is tf.TensorInfo => t !== undefined);
  if (xs.length === 0 || xs.some((t) => COPY_BYTES[t.dtype] === undefined || t.dtype !== xs[0].dtype || t.shape.length > 8)) return null;
  const axis = tf.util.parseAxisParam(args.attrs?.axis as number, xs[0].shape)[0];
  const outShape = tf.backend_util.computeOutShape(xs.map((t) => t.shape), axis);
  if (size(outShape) < MIN_NATIVE_ELEMENTS) return null;
  const out = args.backend.makeOutput(outShape, xs[0].dtype);
  const os = stridesOf(outShape);
  let start = 0;
  for (const x of xs) {
    if (size(x.shape) > 0) copyBox(addon, args.backend, x, out, 0, x.shape, stridesOf(x.shape), start * os[axis], os);
    start += x.shape[axis];
  }
  return out;
}

// ------------------------------------------------------------------------------------ elementwise, reduce

/**
 * Below this many output elements the stock kernels run: the call costs more than a single-threaded pass saves.
 * Above it the addon runs the op on every thread (the stock wasm kernels use one).
 */
const MIN_NATIVE_ELEMENTS = 1 << 14;

const BINARY_OPS = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3 } as const;

/** a op b with numpy broadcasting, float32 only: one correctly rounded operation per element, as the stock kernels. */
function binary(addon: NativeAddon, args: KernelArgs, op: number): tf.TensorInfo | null {
  const { a, b } = args.inputs;
  if (!float32(a, b) || a!.shape.length > 8 || b!.shape.length > 8) return null;
  let shape: number[];
  try {
    shape = tf.broadcast_util.assertAndGetBroadcastShape(a!.shape, b!.shape);
  } catch {
    return null;
  }
  if (size(shape) < MIN_NATIVE_ELEMENTS) return null;
  // Strides of each operand along the output axes (0 where it broadcasts), then merge contiguous axes.
  const stridesAlong = (t: tf.TensorInfo) => {
    const st = stridesOf(t.shape);
    const lead = shape.length - t.shape.length;
    return shape.map((_, d) => (d < lead || t.shape[d - lead] === 1 ? 0 : st[d - lead]));
  };
  const as = stridesAlong(a!);
  const bs = stridesAlong(b!);
  const dims: [number, number, number][] = [];
  shape.forEach((n, d) => {
    if (n === 1) return;
    const prev = dims.at(-1);
    if (prev && prev[1] === n * as[d] && prev[2] === n * bs[d]) dims[dims.length - 1] = [prev[0] * n, as[d], bs[d]];
    else dims.push([n, as[d], bs[d]]);
  });
  if (dims.length === 0) dims.push([1, 1, 1]);
  const out = args.backend.makeOutput(shape, 'float32');
  const params = new Float64Array([
    offset(args.backend, a!),
    offset(args.backend, b!),
    offset(args.backend, out),
    op,
    dims.length,
    ...dims.map((d) => d[0]),
    ...dims.map((d) => d[1]),
    ...dims.map((d) => d[2]),
  ]);
  addon.binary(args.backend.wasm.HEAPU8.buffer as ArrayBuffer, params);
  return out;
}

/** Sum / Mean of float32 over axes that are contiguous (after dropping size-1 axes), accumulated in float64. */
function reduce(addon: NativeAddon, args: KernelArgs, mean: boolean): tf.TensorInfo | null {
  const x = args.inputs.x;
  if (!float32(x) || size(x!.shape) < MIN_NATIVE_ELEMENTS) return null;
  const shape = x!.shape;
  const axes = [...new Set(tf.util.parseAxisParam(args.attrs?.axis as number | number[], shape))].sort((p, q) => p - q);
  const reduced = axes.filter((d) => shape[d] !== 1);
  if (reduced.length === 0) return null;
  const lo = reduced[0];
  const hi = reduced[reduced.length - 1];
  for (let d = lo; d <= hi; d++) if (shape[d] !== 1 && !reduced.includes(d)) return null; // not one contiguous block
  const outShape = args.attrs?.keepDims ? shape.map((n, d) => (axes.includes(d) ? 1 : n)) : shape.filter((_, d) => !axes.includes(d));
  const out = args.backend.makeOutput(outShape, 'float32');
  const prod = (from: number, to: number) => shape.slice(from, to).reduce((p, q) => p * q, 1);
  const params = new Float64Array([offset(args.backend, x!), offset(args.backend, out), prod(0, lo), prod(lo, hi + 1), prod(hi + 1, shape.length), mean ? 1 : 0]);
  addon.reduce(args.backend.wasm.HEAPU8.buffer as ArrayBuffer, params);
  return out;
}

// ------------------------------------------------------------------------------------------ registration

type Compute = (addon: NativeAddon, args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[] | null;

const COMPUTE: Record<NativeKernelName, Compute> = {
  BatchMatMul: (addon, args) => matMul(addon, args, false),
  _FusedMatMul: (addon, args) => matMul(addon, args, true),
  Conv2D: (addon, args) => conv(addon, args, false, false),
  FusedConv2D: (addon, args) => conv(addon, args, false, true),
  DepthwiseConv2dNative: (addon, args) => conv(addon, args, true, false),
  FusedDepthwiseConv2D: (addon, args) => conv(addon, args, true, true),
  Conv2DBackpropInput: (addon, args) => convBackward(addon, args, false, 'input'),
  Conv2DBackpropFilter: (addon, args) => convBackward(addon, args, false, 'filter'),
  DepthwiseConv2dNativeBackpropInput: (addon, args) => convBackward(addon, args, true, 'input'),
  DepthwiseConv2dNativeBackpropFilter: (addon, args) => convBackward(addon, args, true, 'filter'),
  Transpose: transpose,
  Slice: slice,
  SplitV: splitV,
  Concat: concat,
  Add: (addon, args) => binary(addon, args, BINARY_OPS.Add),
  Sub: (addon, args) => binary(addon, args, BINARY_OPS.Sub),
  Multiply: (addon, args) => binary(addon, args, BINARY_OPS.Multiply),
  RealDiv: (addon, args) => binary(addon, args, BINARY_OPS.RealDiv),
  Sum: (addon, args) => reduce(addon, args, false),
  Mean: (addon, args) => reduce(addon, args, true),
};

const nativeFuncs = new Set<tf.KernelFunc>();
/** Per kernel: calls computed natively, calls handed to the fallback (tests check that cases hit the addon). */
const calls = new Map<NativeKernelName, { native: number; fallback: number }>(NATIVE_KERNELS.map((n) => [n, { native: 0, fallback: 0 }]));
const fallbacks = new Map<NativeKernelName, tf.KernelConfig>();
let registered = false;

// ------------------------------------------------------------------------------------------------- GELU

/**
 * Fused exact GELU, Restormer's gated GELU and their gradients (native/irlens_native.cc): one pass each instead of 17 tfjs ops. New kernel
 * names, so nothing falls back; src/engine/wasm/gelu.ts calls them when they are registered.
 */
function registerGeluKernels(addon: NativeAddon): void {
  if (tf.getKernel(GELU_KERNEL, 'wasm')) return;
  const elementwise = (args: KernelArgs, names: string[], fn: 'gelu' | 'geluGrad'): tf.TensorInfo => {
    const ins = names.map((n) => args.inputs[n]!);
    if (ins.some((t) => t.dtype !== 'float32')) throw new Error(`native kernels: ${fn} needs float32 inputs`);
    const out = args.backend.makeOutput(ins[0].shape, 'float32');
    const n = size(out.shape);
    if (n > 0) {
      const params = new Float64Array([...ins.map((t) => offset(args.backend, t)), offset(args.backend, out), n]);
      addon[fn](args.backend.wasm.HEAPU8.buffer as ArrayBuffer, params);
    }
    return out;
  };
  tf.registerKernel({ kernelName: GELU_KERNEL, backendName: 'wasm', kernelFunc: (args) => elementwise(args as unknown as KernelArgs, ['x'], 'gelu') });
  tf.registerKernel({ kernelName: GELU_GRAD_KERNEL, backendName: 'wasm', kernelFunc: (args) => elementwise(args as unknown as KernelArgs, ['dy', 'x'], 'geluGrad') });
  tf.registerGradient({
    kernelName: GELU_KERNEL,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => tf.engine().runKernel(GELU_GRAD_KERNEL, { dy: dy as tf.Tensor, x: saved[0] }) as tf.Tensor }),
  });
  // The gated form: rows of 2h channels in, rows of h out (the gradient has the input's shape).
  const gated = (args: KernelArgs, names: string[], fn: 'gatedGelu' | 'gatedGeluGrad'): tf.TensorInfo => {
    const ins = names.map((n) => args.inputs[n]!);
    const x = ins[ins.length - 1];
    const channels = x.shape[x.shape.length - 1];
    if (ins.some((t) => t.dtype !== 'float32') || x.shape.length === 0 || channels % 2 !== 0) {
      throw new Error(`native kernels: ${fn} needs float32 x with an even last axis, got [${x.shape}] ${x.dtype}`);
    }
    const h = channels / 2;
    const out = args.backend.makeOutput(fn === 'gatedGelu' ? [...x.shape.slice(0, -1), h] : x.shape, 'float32');
    const rows = h === 0 ? 0 : size(x.shape) / channels;
    if (rows > 0) {
      const params = new Float64Array([...ins.map((t) => offset(args.backend, t)), offset(args.backend, out), rows, h]);
      addon[fn](args.backend.wasm.HEAPU8.buffer as ArrayBuffer, params);
    }
    return out;
  };
  tf.registerKernel({ kernelName: GATED_GELU_KERNEL, backendName: 'wasm', kernelFunc: (args) => gated(args as unknown as KernelArgs, ['x'], 'gatedGelu') });
  tf.registerKernel({ kernelName: GATED_GELU_GRAD_KERNEL, backendName: 'wasm', kernelFunc: (args) => gated(args as unknown as KernelArgs, ['dy', 'x'], 'gatedGeluGrad') });
  tf.registerGradient({
    kernelName: GATED_GELU_KERNEL,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => tf.engine().runKernel(GATED_GELU_GRAD_KERNEL, { dy: dy as tf.Tensor, x: saved[0] }) as tf.Tensor }),
  });
}

/**
 * Fused PReLU with one parameter and its gradient [dx, dalpha] (native/irlens_native.cc). New kernel names, so
 * nothing falls back; src/engine/wasm/prelu.ts calls them when they are registered.
 */
function registerPreluKernels(addon: NativeAddon): void {
  if (tf.getKernel(PRELU_KERNEL, 'wasm')) return;
  const check = (ts: tf.TensorInfo[], alpha: tf.TensorInfo) => {
    if (ts.some((t) => t.dtype !== 'float32') || alpha.dtype !== 'float32' || size(alpha.shape) !== 1) {
      throw new Error(`native kernels: PReLU needs float32 inputs and one alpha, got alpha [${alpha.shape}] ${alpha.dtype}`);
    }
  };
  tf.registerKernel({
    kernelName: PRELU_KERNEL,
    backendName: 'wasm',
    kernelFunc: (raw) => {
      const { inputs, backend } = raw as unknown as KernelArgs;
      const { x, alpha } = inputs as Record<string, tf.TensorInfo>;
      check([x], alpha);
      const y = backend.makeOutput(x.shape, 'float32');
      const n = size(x.shape);
      if (n > 0) addon.prelu(backend.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array([offset(backend, x), offset(backend, alpha), offset(backend, y), n]));
      return y;
    },
  });
  tf.registerKernel({
    kernelName: PRELU_GRAD_KERNEL,
    backendName: 'wasm',
    kernelFunc: (raw) => {
      const { inputs, backend } = raw as unknown as KernelArgs;
      const { dy, x, alpha } = inputs as Record<string, tf.TensorInfo>;
      check([dy, x], alpha);
      const dx = backend.makeOutput(x.shape, 'float32');
      const da = backend.makeOutput(alpha.shape, 'float32');
      const params = [offset(backend, dy), offset(backend, x), offset(backend, alpha), offset(backend, dx), offset(backend, da), size(x.shape)];
      addon.preluGrad(backend.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array(params));
      return [dx, da];
    },
  });
  tf.registerGradient({
    kernelName: PRELU_KERNEL,
    inputsToSave: ['x', 'alpha'],
    gradFunc: (dy, saved) => {
      const [dx, da] = tf.engine().runKernel(PRELU_GRAD_KERNEL, { dy: dy as tf.Tensor, x: saved[0], alpha: saved[1] }) as tf.Tensor[];
      return { x: () => dx, alpha: () => da };
    },
  });
}

/**
 * Fused LayerNorm and its gradient (native/irlens_native.cc): one pass each way. New kernel names, so nothing
 * falls back; src/engine/wasm/layer-norm.ts calls them when they are registered. Inputs: x [..., n], weight [n],
 * optional bias [n]; the gradient kernel returns [dx, dweight] and dbias when there is a bias.
 */
function registerLayerNormKernels(addon: NativeAddon): void {
  if (tf.getKernel(LAYER_NORM_KERNEL, 'wasm')) return;
  const check = (ts: tf.TensorInfo[]): number => {
    if (ts.some((t) => t.dtype !== 'float32')) throw new Error('native kernels: LayerNorm needs float32 inputs');
    const n = ts[0].shape.at(-1) ?? 1;
    if (ts.slice(1).some((t) => size(t.shape) !== n)) throw new Error(`native kernels: LayerNorm weight/bias must have ${n} values (the last axis of x)`);
    return n;
  };
  tf.registerKernel({
    kernelName: LAYER_NORM_KERNEL,
    backendName: 'wasm',
    kernelFunc: (raw) => {
      const { inputs, backend, attrs } = raw as unknown as KernelArgs;
      const { x, weight, bias } = inputs as Record<string, tf.TensorInfo>;
      const { eps, centred } = attrs as unknown as LayerNormAttrs;
      const n = check(bias ? [x, weight, bias] : [x, weight]);
      const out = backend.makeOutput(x.shape, 'float32');
      const rows = n === 0 ? 0 : size(x.shape) / n;
      if (rows > 0) {
        const params = [offset(backend, x), offset(backend, weight), bias ? offset(backend, bias) : -1, offset(backend, out), rows, n, eps, centred ? 1 : 0];
        addon.layerNorm(backend.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array(params));
      }
      return out;
    },
  });
  tf.registerKernel({
    kernelName: LAYER_NORM_GRAD_KERNEL,
    backendName: 'wasm',
    kernelFunc: (raw) => {
      const { inputs, backend, attrs } = raw as unknown as KernelArgs;
      const { dy, x, weight } = inputs as Record<string, tf.TensorInfo>;
      const { eps, centred, hasBias } = attrs as unknown as LayerNormAttrs & { hasBias: boolean };
      const n = check([x, weight]);
      const dx = backend.makeOutput(x.shape, 'float32');
      const dw = backend.makeOutput(weight.shape, 'float32');
      const db = hasBias ? backend.makeOutput(weight.shape, 'float32') : undefined;
      const rows = n === 0 ? 0 : size(x.shape) / n;
      const params = [offset(backend, dy), offset(backend, x), offset(backend, weight), offset(backend, dx), offset(backend, dw), db ? offset(backend, db) : -1, rows, n, eps, centred ? 1 : 0];
      addon.layerNormGrad(backend.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array(params));
      return db ? [dx, dw, db] : [dx, dw];
    },
  });
  tf.registerGradient({
    kernelName: LAYER_NORM_KERNEL,
    inputsToSave: ['x', 'weight'],
    gradFunc: (dy, saved, attrs) => {
      const grads = tf.engine().runKernel(LAYER_NORM_GRAD_KERNEL, { dy: dy as tf.Tensor, x: saved[0], weight: saved[1] }, attrs) as tf.Tensor[];
      const map: Record<string, () => tf.Tensor> = { x: () => grads[0], weight: () => grads[1] };
      if (grads.length === 3) map.bias = () => grads[2];
      return map;
    },
  });
}

/** Fused Adam/AdamW update (src/engine/wasm/adam-step.ts): outputs [param, expAvg, expAvgSq]. */
function registerAdamKernel(addon: NativeAddon): void {
  if (tf.getKernel(ADAM_STEP_KERNEL, 'wasm')) return;
  tf.registerKernel({
    kernelName: ADAM_STEP_KERNEL,
    backendName: 'wasm',
    kernelFunc: (raw) => {
      const { inputs, backend, attrs } = raw as unknown as KernelArgs;
      const ins = ['param', 'expAvg', 'expAvgSq', 'grad'].map((k) => inputs[k]!);
      const n = size(ins[0].shape);
      if (ins.some((t) => t.dtype !== 'float32' || size(t.shape) !== n)) throw new Error('native kernels: Adam step needs float32 param, moments and gradient of one size');
      const outs = [0, 1, 2].map(() => backend.makeOutput(ins[0].shape, 'float32'));
      const a = attrs as unknown as AdamStepAttrs;
      if (n > 0) {
        const params = [...ins, ...outs].map((t) => offset(backend, t));
        params.push(n, a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.decoupled ? 1 : 0, a.bc1, a.bc2Sqrt);
        addon.adamStep(backend.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array(params));
      }
      return outs;
    },
  });
}

/** How a window-attention kernel's q, k, v arrive (src/engine/wasm/window-attention.ts). */
type AttentionLayout = 'tokens' | 'packed' | 'heads';

/**
 * The fused window attention kernels and their gradients (src/engine/wasm/window-attention.ts): q, k, v in
 * token layout [B', N, C] (three inputs, or one packed [B', N, 3C]), or per head [B'*heads, N, d] for the
 * probabilities; bias [heads or 1, N, N], mask [nW, N, N] (zeros of [1, N, N] when attrs say there is none).
 */
function registerWindowAttentionKernels(addon: NativeAddon): void {
  if (tf.getKernel(WINDOW_ATTENTION_KERNEL, 'wasm')) return;
  const operandNames: Record<AttentionLayout, string[]> = { tokens: ['q', 'k', 'v'], packed: ['qkv'], heads: ['q', 'k'] };
  // [bw, heads, n, d, biasHeads, nW, scale] and C = heads * d, after checking every shape against the first operand.
  const geometry = (ins: Record<string, tf.TensorInfo>, a: WindowAttentionAttrs, layout: AttentionLayout) => {
    const { bias, mask } = ins;
    const operands = operandNames[layout].map((name) => ins[name]);
    const [rows, n, cols] = operands[0].shape;
    const channels = layout === 'packed' ? cols / 3 : layout === 'tokens' ? cols : cols * a.heads;
    const bw = layout === 'heads' ? rows / a.heads : rows;
    const d = channels / a.heads;
    const ok =
      [...operands, bias, mask].every((t) => t.dtype === 'float32') &&
      operands[0].shape.length === 3 && Number.isInteger(bw) && Number.isInteger(d) && Number.isInteger(channels) &&
      operands.every((t) => t.shape.join() === operands[0].shape.join()) &&
      bias.shape.join() === [a.hasBias ? bias.shape[0] : 1, n, n].join() && (bias.shape[0] === 1 || bias.shape[0] === a.heads) &&
      mask.shape.length === 3 && mask.shape[1] === n && mask.shape[2] === n && bw % mask.shape[0] === 0;
    if (!ok) {
      const got = [...operandNames[layout], 'bias', 'mask'].map((name) => `${name} [${ins[name].shape}]`).join(', ');
      throw new Error(`native kernels: window attention (${layout}) got ${got} for ${a.heads} heads`);
    }
    return { geo: [bw, a.heads, n, d, bias.shape[0], mask.shape[0], a.scale], channels, empty: size(operands[0].shape) === 0 };
  };
  type Geometry = ReturnType<typeof geometry>;
  type Compute = (ins: Record<string, tf.TensorInfo>, a: WindowAttentionAttrs, g: Geometry, backend: WasmBackend) => tf.TensorInfo | tf.TensorInfo[];
  const register = (kernelName: string, layout: AttentionLayout, compute: Compute) =>
    tf.registerKernel({
      kernelName,
      backendName: 'wasm',
      kernelFunc: (raw) => {
        const { inputs, backend, attrs } = raw as unknown as KernelArgs;
        const ins = inputs as Record<string, tf.TensorInfo>;
        const a = attrs as unknown as WindowAttentionAttrs;
        return compute(ins, a, geometry(ins, a, layout), backend);
      },
    });
  // Runs the addon function unless there is nothing to compute; tensors become their offsets (absent bias /
  // mask: -1), numbers pass as they are.
  const call = (fn: 'windowAttention' | 'windowAttentionGrad' | 'attentionProbs' | 'attentionProbsGrad', backend: WasmBackend, empty: boolean, params: (tf.TensorInfo | number | undefined)[]) => {
    if (empty) return;
    const values = params.map((p) => (typeof p === 'number' ? p : p === undefined ? -1 : offset(backend, p)));
    addon[fn](backend.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array(values));
  };
  const biasMask = (ins: Record<string, tf.TensorInfo>, a: WindowAttentionAttrs) => [a.hasBias ? ins.bias : undefined, a.hasMask ? ins.mask : undefined];
  // Byte offsets of q, k, v inside one packed [B', N, 3C] tensor.
  const packed = (backend: WasmBackend, t: tf.TensorInfo, c: number) => [0, 1, 2].map((i) => offset(backend, t) + 4 * i * c);
  const outputShape = (ins: Record<string, tf.TensorInfo>, name: string, g: Geometry) => [ins[name].shape[0], ins[name].shape[1], g.channels];

  register(WINDOW_ATTENTION_KERNEL, 'tokens', (ins, a, g, backend) => {
    const out = backend.makeOutput(outputShape(ins, 'q', g), 'float32');
    call('windowAttention', backend, g.empty, [ins.q, ins.k, ins.v, ...biasMask(ins, a), out, ...g.geo, g.channels, g.channels]);
    return out;
  });
  register(PACKED_WINDOW_ATTENTION_KERNEL, 'packed', (ins, a, g, backend) => {
    const out = backend.makeOutput(outputShape(ins, 'qkv', g), 'float32');
    call('windowAttention', backend, g.empty, [...packed(backend, ins.qkv, g.channels), ...biasMask(ins, a), out, ...g.geo, 3 * g.channels, g.channels]);
    return out;
  });
  register(WINDOW_ATTENTION_GRAD_KERNEL, 'tokens', (ins, a, g, backend) => {
    const [dq, dk, dv] = [0, 1, 2].map(() => backend.makeOutput(ins.q.shape, 'float32'));
    const dBias = a.hasBias ? backend.makeOutput(ins.bias.shape, 'float32') : undefined;
    call('windowAttentionGrad', backend, g.empty, [ins.dy, ins.q, ins.k, ins.v, ...biasMask(ins, a), dq, dk, dv, dBias, ...g.geo, g.channels, g.channels]);
    return dBias ? [dq, dk, dv, dBias] : [dq, dk, dv];
  });
  register(PACKED_WINDOW_ATTENTION_GRAD_KERNEL, 'packed', (ins, a, g, backend) => {
    const dqkv = backend.makeOutput(ins.qkv.shape, 'float32');
    const dBias = a.hasBias ? backend.makeOutput(ins.bias.shape, 'float32') : undefined;
    const params = [ins.dy, ...packed(backend, ins.qkv, g.channels), ...biasMask(ins, a), ...packed(backend, dqkv, g.channels), dBias];
    call('windowAttentionGrad', backend, g.empty, [...params, ...g.geo, 3 * g.channels, g.channels]);
    return dBias ? [dqkv, dBias] : [dqkv];
  });
  register(ATTENTION_PROBS_KERNEL, 'heads', (ins, a, g, backend) => {
    const [bh, n] = ins.q.shape;
    const out = backend.makeOutput([bh, n, n], 'float32');
    call('attentionProbs', backend, g.empty, [ins.q, ins.k, ...biasMask(ins, a), out, ...g.geo]);
    return out;
  });
  register(ATTENTION_PROBS_GRAD_KERNEL, 'heads', (ins, a, g, backend) => {
    const [dq, dk] = [0, 1].map(() => backend.makeOutput(ins.q.shape, 'float32'));
    const dBias = a.hasBias ? backend.makeOutput(ins.bias.shape, 'float32') : undefined;
    call('attentionProbsGrad', backend, g.empty, [ins.dy, ins.probs, ins.q, ins.k, dq, dk, dBias, ...g.geo]);
    return dBias ? [dq, dk, dBias] : [dq, dk];
  });

  // Gradients: the operands' gradients in order, then the bias's when there is one (the mask gets zeros).
  const gradient = (kernelName: string, gradKernel: string, operands: string[], outputsToSave?: boolean[]) =>
    tf.registerGradient({
      kernelName,
      inputsToSave: [...operands, 'bias', 'mask'],
      outputsToSave,
      gradFunc: (dy, saved, attrs) => {
        const named = Object.fromEntries([...operands, 'bias', 'mask'].map((name, i) => [name, saved[i]]));
        if (outputsToSave) named.probs = saved[operands.length + 2];
        const grads = tf.engine().runKernel(gradKernel, { dy: dy as tf.Tensor, ...named }, attrs) as tf.Tensor[];
        const map: Record<string, () => tf.Tensor> = Object.fromEntries(operands.map((name, i) => [name, () => grads[i]]));
        map.mask = () => tf.zerosLike(named.mask);
        map.bias = grads.length > operands.length ? () => grads[operands.length] : () => tf.zerosLike(named.bias);
        return map;
      },
    });
  gradient(WINDOW_ATTENTION_KERNEL, WINDOW_ATTENTION_GRAD_KERNEL, operandNames.tokens);
  gradient(PACKED_WINDOW_ATTENTION_KERNEL, PACKED_WINDOW_ATTENTION_GRAD_KERNEL, operandNames.packed);
  gradient(ATTENTION_PROBS_KERNEL, ATTENTION_PROBS_GRAD_KERNEL, operandNames.heads, [true]);
}

/**
 * Registers the native kernels for 'wasm' when the addon is available (after registerWasmTrainingKernels, whose
 * kernels become the fallbacks). Returns whether the native path is active. Idempotent.
 */
export function registerNativeKernels(): boolean {
  const addon = nativeAddon();
  if (addon === undefined) return false;
  for (const name of NATIVE_KERNELS) {
    const existing = tf.getKernel(name, 'wasm');
    if (!existing) throw new Error(`native kernels: wasm kernel '${name}' is missing; is @tensorflow/tfjs-backend-wasm loaded?`);
    if (nativeFuncs.has(existing.kernelFunc)) continue;
    const fallback = existing.kernelFunc;
    const compute = COMPUTE[name];
    const count = calls.get(name)!;
    const kernelFunc: tf.KernelFunc = (args) => {
      const out = compute(addon, args as unknown as KernelArgs);
      if (out !== null) {
        count.native++;
        return out;
      }
      count.fallback++;
      return fallback(args);
    };
    nativeFuncs.add(kernelFunc);
    adoptWasmKernel(kernelFunc);
    fallbacks.set(name, existing);
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...existing, kernelFunc });
  }
  registerGeluKernels(addon);
  registerPreluKernels(addon);
  registerLayerNormKernels(addon);
  registerAdamKernel(addon);
  registerWindowAttentionKernels(addon);
  registerChannelAttentionKernels(addon);
  registered = true;
  return true;
}

/** Whether registerNativeKernels() has put the native kernels in place. */
export function nativeKernelsRegistered(): boolean {
  return registered;
}

/** The kernel a native kernel falls back to (the stock or composed wasm kernel), for tests and benchmarks. */
export function nativeFallbackKernel(name: NativeKernelName): tf.KernelConfig | undefined {
  return fallbacks.get(name);
}

/** How often each native kernel computed natively or fell back, since the process started. */
export function nativeKernelCalls(): Record<NativeKernelName, { native: number; fallback: number }> {
  return Object.fromEntries([...calls].map(([k, v]) => [k, { ...v }])) as Record<NativeKernelName, { native: number; fallback: number }>;
}
