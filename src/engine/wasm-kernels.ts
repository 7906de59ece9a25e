/**
 * Training kernels for the TF.js wasm backend.
 *
 * Stock @tensorflow/tfjs-backend-wasm 4.22 cannot backpropagate through conv nets: it has no
 * Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropInput/Filter or UnsortedSegmentSum (gradient of gather).
 * Two stock kernels that gradients lean on are also very slow there (measured, 64x64x32, 3x3): its
 * Conv2DBackpropInput is a plain C++ loop ~10x slower than the XNNPACK forward conv, and BatchMatMul with
 * transposeA/transposeB leaves XNNPACK for a naive loop (5-20x slower); every matMul gradient transposes.
 *
 * Forward passes hit two more slow stock kernels (measured on SwinIR/EDT window attention): BatchMatMul with a
 * batch > 1 (many small products) runs a plain loop at 1-3 GFLOP/s, and Slice/SplitV/Unpack copy their whole
 * input out of the wasm heap into a fresh JS array for every slice (readSync), so splitting q/k/v costs more
 * than the matMul that made them. Batched products become one grouped XNNPACK convolution (see
 * groupedMatMul); slices copy rows inside the heap (copyBox).
 *
 * Every kernel here is written in tf ops that the wasm backend runs fast (XNNPACK conv2d, depthwise conv,
 * batch-1 matMul, transposes of rank <= 4), so the heavy arithmetic stays in SIMD code. No npm package provides
 * these kernels, hence the hand-written compositions. Ops called inside a kernel function are not recorded on
 * the gradient tape (the engine raises kernelDepth while a kernel runs); each kernel returns a Tensor made in
 * a tf.tidy, which the engine accepts as the kernel output.
 *
 * The gradients of conv2d / depthwiseConv2d with dilation > 1 are refused by tfjs-core on every backend; the
 * gradient overrides below compute them exactly by expanding the filter with zeros (a dilated conv is the plain
 * conv with the zero-expanded filter), so dilated convs train too.
 *
 * All numbers are checked against the cpu backend in test/engine/wasm-kernels.test.ts.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];
type ConvPad = 'same' | 'valid' | number | ExplicitPadding;
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;
type Attrs = Record<string, unknown>;
type Shape4 = [number, number, number, number];

const WASM = 'wasm';

/** Kernels the stock wasm backend lacks; registered new. */
const ADDED = [
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'UnsortedSegmentSum',
] as const;
/** Stock wasm kernels replaced by faster compositions (the stock function stays the fallback). */
const REPLACED = ['Conv2DBackpropInput', 'BatchMatMul', 'Slice', 'SplitV', 'Unpack'] as const;
type ReplacedName = (typeof REPLACED)[number];
/**
 * Resize gradients replaced because the stock ones are wrong: the wasm and cpu kernels ignore
 * halfPixelCenters (PyTorch's align_corners=False), and the cpu ResizeBilinearGrad returns a [n, w, h, c]
 * shape, so non-square images fail.
 */
const RESIZE_GRADS = ['ResizeBilinearGrad', 'ResizeNearestNeighborGrad'] as const;

/** Names of every wasm kernel that registerWasmTrainingKernels() registers (added and replaced). */
export const WASM_TRAINING_KERNELS: readonly string[] = [...ADDED, ...REPLACED, ...RESIZE_GRADS];
/** The subset of WASM_TRAINING_KERNELS that replaces a stock wasm kernel. */
export const WASM_REPLACED_KERNELS: readonly string[] = [...REPLACED, ...RESIZE_GRADS];
/** Kernels registerResizeGradFixes(backend) replaces on a backend. */
export const RESIZE_GRAD_KERNELS: readonly string[] = RESIZE_GRADS;
/** Kernels whose gradient registerDilatedConvGradients() extends to dilation > 1 (all backends). */
export const DILATED_GRADIENT_KERNELS: readonly string[] = ['Conv2D', 'DepthwiseConv2dNative'];

// ---------------------------------------------------------------------------------------------- helpers

/** A kernel input as a Tensor: inputs are Tensors when they come through the engine; bare TensorInfos get
 * wrapped (call inside tf.tidy). */
function input<T extends tf.Tensor = tf.Tensor4D>(inputs: tf.NamedTensorInfoMap, name: string): T {
  const t = inputs[name];
  if (t === undefined) throw new Error(`wasm-kernels: kernel input '${name}' is missing`);
  return (t instanceof tf.Tensor ? t : tf.engine().makeTensorFromTensorInfo(t)) as T;
}

function pair(v: unknown, name: string): [number, number] {
  if (v == null) return [1, 1];
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2) return [v[0] as number, v[1] as number];
  throw new Error(`wasm-kernels: attribute '${name}' must be a number or a pair, got ${JSON.stringify(v)}`);
}

function isNCHW(attrs: Attrs): boolean {
  return attrs.dataFormat === 'NCHW' || attrs.dataFormat === 'channelsFirst';
}

function convInfo(
  inShape: Shape4,
  filterShape: Shape4,
  attrs: Attrs,
  depthwise: boolean,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inShape,
    filterShape,
    pair(attrs.strides, 'strides'),
    depthwise ? pair(attrs.dilations, 'dilations') : 1,
    attrs.pad as ConvPad,
    attrs.dimRoundingMode as RoundingMode,
    depthwise,
    'channelsLast',
  );
}

/**
 * Slices off the negative parts of per-side pads of axes 1 and 2, returns the tensor and the remaining
 * (non-negative) pads as an explicit padding for a conv op. Returns null when nothing of the input is left.
 */
function cropForPads(
  t: tf.Tensor4D,
  rows: [number, number],
  cols: [number, number],
): { input: tf.Tensor4D; pad: ExplicitPadding } | null {
  const [n, h, w, c] = t.shape;
  const top = Math.max(0, -rows[0]);
  const left = Math.max(0, -cols[0]);
  const hh = h - top - Math.max(0, -rows[1]);
  const ww = w - left - Math.max(0, -cols[1]);
  if (hh <= 0 || ww <= 0) return null;
  const input = top || left || hh !== h || ww !== w ? tf.slice(t, [0, top, left, 0], [n, hh, ww, c]) : t;
  return {
    input,
    pad: [
      [0, 0],
      [Math.max(0, rows[0]), Math.max(0, rows[1])],
      [Math.max(0, cols[0]), Math.max(0, cols[1])],
      [0, 0],
    ],
  };
}

// ------------------------------------------------------------------ input gradients (transposed convs)

/**
 * One output phase of a transposed convolution along one axis. With stride s, output positions p = s*q + a
 * receive only the filter taps i = tapStart + s*m, so each phase a is a stride-1 correlation of dy (padded by
 * padBefore/padAfter, negative = crop) with those taps in reverse order; `length` output positions.
 */
interface AxisPhase {
  tapStart: number;
  taps: number;
  padBefore: number;
  padAfter: number;
  length: number;
}

/**
 * Phases of the input gradient of a conv along one axis: filter size k, stride s, dilation d (s or d is 1),
 * leading pad `padBefore` of the forward conv, input length `inLen`, forward output length `outLen`.
 */
function backpropPhases(k: number, s: number, d: number, padBefore: number, inLen: number, outLen: number): AxisPhase[] {
  if (s === 1) {
    return [{ tapStart: 0, taps: k, padBefore: (k - 1) * d - padBefore, padAfter: inLen - outLen + padBefore, length: inLen }];
  }
  if (d !== 1) throw new Error('wasm-kernels: conv gradient needs stride 1 or dilation 1');
  const phases: AxisPhase[] = [];
  for (let a = 0; a < s; a++) {
    const c = a + padBefore;
    const tapStart = c % s;
    const taps = tapStart < k ? Math.ceil((k - tapStart) / s) : 0;
    const length = a < inLen ? Math.ceil((inLen - a) / s) : 0;
    const lead = taps - 1 - Math.floor(c / s);
    phases.push({ tapStart, taps, padBefore: lead, padAfter: length - outLen - lead + taps - 1, length });
  }
  return phases;
}

/** Taps [tapStart :: stride] of a [kh,kw,a,b] filter along both spatial axes, spatially reversed. */
function phaseFilter(f: tf.Tensor4D, ph: AxisPhase, pw: AxisPhase, sh: number, sw: number): tf.Tensor4D {
  const [kh, kw, a, b] = f.shape;
  const sub =
    ph.tapStart === 0 && pw.tapStart === 0 && sh === 1 && sw === 1
      ? f
      : (tf.stridedSlice(f, [ph.tapStart, pw.tapStart, 0, 0], [kh, kw, a, b], [sh, sw, 1, 1]) as tf.Tensor4D);
  return tf.reverse(sub, [0, 1]);
}

type Correlate = (input: tf.Tensor4D, filter: tf.Tensor4D, pad: ExplicitPadding) => tf.Tensor4D;

/**
 * Shared body of Conv2DBackpropInput and DepthwiseConv2dNativeBackpropInput: one stride-1 correlation per
 * (row phase, column phase), interleaved into the [n, inH, inW, channels] gradient.
 */
function transposedConv(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  info: tf.backend_util.Conv2DInfo,
  channels: number,
  correlate: Correlate,
): tf.Tensor4D {
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const rowPhases = backpropPhases(info.filterHeight, sh, dh, info.padInfo.top, info.inHeight, info.outHeight);
  const colPhases = backpropPhases(info.filterWidth, sw, dw, info.padInfo.left, info.inWidth, info.outWidth);
  const n = dy.shape[0];
  const qh = Math.ceil(info.inHeight / sh);
  const qw = Math.ceil(info.inWidth / sw);
  const phase = (ph: AxisPhase, pw: AxisPhase): tf.Tensor4D => {
    const cropped =
      ph.taps > 0 && pw.taps > 0 ? cropForPads(dy, [ph.padBefore, ph.padAfter], [pw.padBefore, pw.padAfter]) : null;
    if (cropped === null || ph.length === 0 || pw.length === 0) return tf.zeros([n, qh, qw, channels]);
    const out = correlate(cropped.input, phaseFilter(filter, ph, pw, sh, sw), cropped.pad);
    return ph.length === qh && pw.length === qw ? out : tf.pad(out, [[0, 0], [0, qh - ph.length], [0, qw - pw.length], [0, 0]]);
  };
  if (sh === 1 && sw === 1) return phase(rowPhases[0], colPhases[0]);
  // Interleave: out[s*q + a, s*r + b] = phase(a, b)[q, r]; stacking at the right axes makes reshape do it.
  const rows = rowPhases.map((ph) => tf.stack(colPhases.map((pw) => phase(ph, pw)), 3).reshape([n, qh, qw * sw, channels]));
  const full = tf.stack(rows, 2).reshape([n, qh * sh, qw * sw, channels]) as tf.Tensor4D;
  return full.shape[1] === info.inHeight && full.shape[2] === info.inWidth
    ? full
    : tf.slice(full, [0, 0, 0, 0], [n, info.inHeight, info.inWidth, channels]);
}

function conv2DBackpropInput(dy: tf.Tensor4D, filter: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
  const info = convInfo(attrs.inputShape as Shape4, filter.shape, attrs, false);
  const filterT = tf.transpose(filter, [0, 1, 3, 2]); // [kh, kw, outC, inC]: dy's channels are the conv inputs
  return transposedConv(dy, filterT, info, info.inChannels, (input, g, pad) => tf.conv2d(input, g, 1, pad));
}

function depthwiseBackpropInput(dy: tf.Tensor4D, filter: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
  const info = convInfo(attrs.inputShape as Shape4, filter.shape, attrs, true);
  const [, , c, mult] = filter.shape;
  const dil: [number, number] = [info.dilationHeight, info.dilationWidth];
  return transposedConv(dy, filter, info, c, (input, g, pad) => {
    // Channel multiplier m: dx[c] = sum_k corr(dy[c*m + k], w[c, k]), a depthwise conv over c*m channels.
    const out = tf.depthwiseConv2d(input, g.reshape([g.shape[0], g.shape[1], c * mult, 1]) as tf.Tensor4D, 1, pad, 'NHWC', dil);
    if (mult === 1) return out;
    const [n, h, w] = out.shape;
    return tf.sum(out.reshape([n, h, w, c, mult]), 4) as tf.Tensor4D;
  });
}

// ----------------------------------------------------------------------------------- filter gradients

/**
 * Rows/cols of x that the filter gradient reads, as (before, after) pads of x, possibly negative (= crop):
 * the correlation of padded x with dy (dilated by the stride) must give exactly k outputs.
 */
function filterGradPads(k: number, d: number, s: number, padBefore: number, inLen: number, outLen: number): [number, number] {
  const needed = (k - 1) * d + (outLen - 1) * s + 1;
  return [padBefore, needed - padBefore - inLen];
}

/**
 * Conv2DBackpropFilter: dW[i,j,ci,co] = sum_{n,ho,wo} x[n, ho*sh+i-top, wo*sw+j-left, ci] dy[n,ho,wo,co].
 * Stride 1: tapMatMuls; larger strides: dyAsFilter (measured: equal at stride 1 for 3x3, tapMatMuls faster for
 * 1x1 and batches > 1; dyAsFilter 10-30x faster at stride 2, where tapMatMuls would need strided slices).
 */
function conv2DBackpropFilter(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
  const filterShape = attrs.filterShape as Shape4;
  const info = convInfo(x.shape, filterShape, attrs, false);
  return info.strideHeight === 1 && info.strideWidth === 1 ? tapMatMuls(x, dy, info) : dyAsFilter(x, dy, info);
}

/**
 * Stride 1: in a row-flattened, padded x (row width wp) tap (i,j) is the contiguous offset i*wp + j, and dy
 * zero-padded to the same row width lines up with it (wrapped-around products meet zeros). So each tap is one
 * XNNPACK matMul [ci, n*L] x [n*L, co] on a contiguous slice of the channel-first x.
 */
function tapMatMuls(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { filterHeight: kh, filterWidth: kw, outHeight: ho, outWidth: wo, outChannels: co } = info;
  const [n, h, w, ci] = x.shape;
  const { top, left } = info.padInfo;
  const wp = Math.max(left + w, wo - 1 + kw);
  const len = ho * wp; // K per batch item
  const hp = Math.ceil((len + (kh - 1) * wp + kw - 1) / wp);
  const cropped = cropForPads(x, [top, hp - top - h], [left, wp - left - w]);
  if (cropped === null) return tf.zeros(info.filterShape);
  const xp = tf.pad(cropped.input, cropped.pad); // [n, hp, wp, ci]
  const xFlat = tf.transpose(xp.reshape([n, hp * wp, ci]), [2, 0, 1]); // [ci, n, hp*wp]
  const dyFlat = (wp === wo ? dy : tf.pad(dy, [[0, 0], [0, 0], [0, wp - wo], [0, 0]])).reshape([n * len, co]);
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const off = i * wp + j;
      taps.push(tf.tidy(() => tf.matMul(tf.slice(xFlat, [0, 0, off], [ci, n, len]).reshape([ci, n * len]), dyFlat)));
    }
  }
  return tf.stack(taps).reshape(info.filterShape) as tf.Tensor4D;
}

/**
 * Any stride: dW is a conv of x^T ([ci, h, w, n], batch ci, channels n) with dy^T ([ho, wo, n, co]) as the
 * filter at dilation = stride, giving [ci, kh, kw, co].
 */
function dyAsFilter(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
  const cropped = cropForPads(
    x,
    filterGradPads(kh, 1, sh, info.padInfo.top, x.shape[1], ho),
    filterGradPads(kw, 1, sw, info.padInfo.left, x.shape[2], wo),
  );
  if (cropped === null) return tf.zeros(info.filterShape);
  const xT = tf.transpose(cropped.input, [3, 1, 2, 0]);
  const dyT = tf.transpose(dy, [1, 2, 0, 3]);
  const r = tf.conv2d(xT, dyT, 1, cropped.pad, 'NHWC', [sh, sw]);
  return tf.transpose(r, [1, 2, 0, 3]);
}

/**
 * DepthwiseConv2dNativeBackpropFilter: dW[i,j,c,k] = sum_{n,o} x[n, o*s + i*d - pad, c] dy[n, o, c*m + k].
 * That is a depthwise correlation of x with dy as the (large) filter, stride d and dilation s; the batch is
 * folded into channels and summed afterwards. XNNPACK runs it as one grouped conv.
 */
function depthwiseBackpropFilter(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
  const filterShape = attrs.filterShape as Shape4;
  const info = convInfo(x.shape, filterShape, attrs, true);
  const [n, h, w, c] = x.shape;
  const [kh, kw, , mult] = filterShape;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, outHeight: ho, outWidth: wo } = info;
  const cm = c * mult;
  const xm = mult === 1 ? x : tf.tile(x.reshape([n, h, w, c, 1]), [1, 1, 1, 1, mult]).reshape([n, h, w, cm]);
  const cropped = cropForPads(
    xm as tf.Tensor4D,
    filterGradPads(kh, dh, sh, info.padInfo.top, h, ho),
    filterGradPads(kw, dw, sw, info.padInfo.left, w, wo),
  );
  if (cropped === null) return tf.zeros(filterShape);
  const [, hc, wc] = cropped.input.shape;
  const xFold = n === 1 ? cropped.input : tf.transpose(cropped.input, [1, 2, 0, 3]).reshape([1, hc, wc, n * cm]);
  const dyFold = (n === 1 ? dy : tf.transpose(dy, [1, 2, 0, 3])).reshape([ho, wo, n * cm, 1]);
  const r = tf.depthwiseConv2d(xFold as tf.Tensor4D, dyFold as tf.Tensor4D, [dh, dw], cropped.pad, 'NHWC', [sh, sw]);
  const folded = r.reshape([kh, kw, n, cm]);
  return (n === 1 ? folded : tf.sum(folded, 2)).reshape(filterShape) as tf.Tensor4D;
}

// ---------------------------------------------------------------------------------- other kernels

/**
 * UnsortedSegmentSum (gradient of gather): a JS loop over the rows with float64 accumulators. The segment ids
 * must be read on the host anyway, the tables it serves (relative position biases) are small, and summing in
 * float64 in index order reproduces the cpu kernel bit for bit.
 */
function unsortedSegmentSum(x: tf.Tensor, segmentIds: tf.Tensor, numSegments: number): tf.Tensor {
  const ids = segmentIds.dataSync();
  const inner = segmentIds.size === 0 ? 0 : x.size / segmentIds.size;
  const values = x.dataSync();
  const acc = new Float64Array(numSegments * inner);
  for (let r = 0; r < ids.length; r++) {
    const s = ids[r];
    if (s < 0 || s >= numSegments) continue; // TF drops out-of-range ids
    const src = r * inner;
    const dst = s * inner;
    for (let k = 0; k < inner; k++) acc[dst + k] += values[src + k];
  }
  const shape = [numSegments, ...x.shape.slice(segmentIds.rank)];
  return x.dtype === 'int32'
    ? tf.tensor(Int32Array.from(acc), shape, 'int32')
    : tf.tensor(Float32Array.from(acc), shape, 'float32');
}

type MatMulRoute = 'transposed-2d' | 'shared-right' | 'grouped' | 'stock';

/**
 * Below this many multiply-adds (batch * m * k * n) the stock loop beats the grouped convolution, whose
 * transposes and operator set-up cost ~0.05 ms (measured: 64 x 4x4x4 stock 0.02 ms, grouped 0.05 ms).
 */
const GROUPED_MIN_MACS = 1 << 17;

/**
 * BatchMatMul when every batch dim is 1 and an operand is transposed: transpose it explicitly (a cheap copy)
 * and use the stock XNNPACK path. Batched products with a shared right operand fold into one 2-D product.
 * True batches (same batch dims on both sides) of enough work run as one grouped convolution; broadcast
 * batches and tiny products stay on the stock kernel.
 */
function matMulRoute(aShape: number[], bShape: number[], attrs: Attrs): MatMulRoute {
  const batch = (s: number[]) => s.slice(0, -2).reduce((p, q) => p * q, 1);
  const transposed = attrs.transposeA === true || attrs.transposeB === true;
  if (batch(aShape) === 1 && batch(bShape) === 1) return transposed ? 'transposed-2d' : 'stock';
  if (batch(bShape) === 1 && attrs.transposeA !== true) return 'shared-right';
  const sameBatch = aShape.length === bShape.length && aShape.slice(0, -2).every((d, i) => d === bShape[i]);
  const [m, k] = attrs.transposeA === true ? [aShape.at(-1)!, aShape.at(-2)!] : [aShape.at(-2)!, aShape.at(-1)!];
  const n = attrs.transposeB === true ? bShape.at(-2)! : bShape.at(-1)!;
  if (sameBatch && batch(aShape) * m * k * n >= GROUPED_MIN_MACS) return 'grouped';
  return 'stock';
}

function swapLast(t: tf.Tensor): tf.Tensor {
  const perm = t.shape.map((_, i) => i);
  [perm[t.rank - 2], perm[t.rank - 1]] = [perm[t.rank - 1], perm[t.rank - 2]];
  return tf.transpose(t, perm);
}

function fastBatchMatMul(a: tf.Tensor, b: tf.Tensor, attrs: Attrs, route: MatMulRoute): tf.Tensor {
  if (route === 'grouped') return groupedMatMul(a, b, attrs.transposeA === true, attrs.transposeB === true);
  const a2 = attrs.transposeA === true ? swapLast(a) : a;
  const b2 = attrs.transposeB === true ? swapLast(b) : b;
  if (route === 'transposed-2d') return stockMatMul(a2, b2);
  const aShape = a.shape as number[];
  const [m, k] = aShape.slice(-2);
  const n = (b2.shape as number[])[b2.rank - 1];
  const out = stockMatMul(a.reshape([1, a.size / k, k]), b2.reshape([1, k, n]));
  return out.reshape([...aShape.slice(0, -2), m, n]);
}

/**
 * C[g] = A[g] B[g] for g < G as ONE depthwise convolution, which XNNPACK runs as a grouped GEMM (3-4x the
 * stock loop on window-attention shapes; measured 384 x 64x30x64: 51 ms -> 15 ms). With the G products in the
 * channels, input X[0, r, l, g] = A[g][r, l] ([1, m, k, G]) and filter F[0, l, g, c] = B[g][l, c]
 * ([1, k, G, n], channel multiplier n): a 1 x k 'valid' depthwise conv gives out[0, r, 0, g*n + c] =
 * sum_l A[g][r, l] B[g][l, c], i.e. [m, G, n]. The operands and the result take one transpose each
 * (rank 3); transposeA/transposeB fold into those transposes.
 */
function groupedMatMul(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): tf.Tensor {
  const batchDims = a.shape.slice(0, -2);
  const g = batchDims.reduce((p, q) => p * q, 1);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, k] = transposeA ? [ac, ar] : [ar, ac];
  const n = transposeB ? br : bc;
  const a3 = a.reshape([g, ar, ac]);
  const b3 = b.reshape([g, br, bc]);
  const aT = tf.transpose(a3, transposeA ? [2, 1, 0] : [1, 2, 0]);
  const bT = tf.transpose(b3, transposeB ? [2, 0, 1] : [1, 0, 2]);
  const x = aT.reshape([1, m, k, g]) as tf.Tensor4D;
  const filter = bT.reshape([1, k, g, n]) as tf.Tensor4D;
  const y = tf.depthwiseConv2d(x, filter, 1, 'valid'); // [1, m, 1, G*n]
  // Free each copy as soon as it is used (attention maps are the largest tensors of a block; a reshape shares
  // its source's data, so both go). No tape records inside a kernel, so nothing else holds them.
  tf.dispose([aT, bT, x, filter]);
  const yMGN = y.reshape([m, g, n]);
  const out = tf.transpose(yMGN, [1, 0, 2]);
  tf.dispose([y, yMGN]);
  return out.reshape([...batchDims, m, n]);
}

// ------------------------------------------------------------------------------- slices in the heap

/** The parts of the wasm backend that the slice kernels use (BackendWasm is not exported by name). */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } };
  wasm: { HEAPU8: Uint8Array };
}

/**
 * Copies the box [begin, begin + size) of x into `out` (a fresh output of that many elements), inside the
 * wasm heap: one copyWithin per contiguous run (the trailing axes the box spans fully are one run). The
 * stock kernels first copy ALL of x into a new JS array (readSync) for every slice.
 */
function copyBox(backend: WasmHeapBackend, x: tf.TensorInfo, begin: number[], size: number[], out: tf.TensorInfo): void {
  const rank = x.shape.length;
  if (size.some((s) => s === 0)) return;
  const bytes = tf.util.bytesPerElement(x.dtype);
  const strides = [...tf.util.computeStrides(x.shape), 1];
  let j = rank - 1; // axes after j are spanned fully: one run covers size[j] rows of them
  while (j > 0 && size[j] === x.shape[j]) j--;
  const run = rank === 0 ? bytes : size[j] * strides[j] * bytes;
  // Read the heap after makeOutput: growing the wasm memory replaces the buffer.
  const heap = backend.wasm.HEAPU8;
  const xBase = backend.dataIdMap.get(x.dataId).memoryOffset;
  let dst = backend.dataIdMap.get(out.dataId).memoryOffset;
  const idx = new Array<number>(Math.max(j, 0)).fill(0);
  for (;;) {
    let src = 0;
    for (let i = 0; i < rank; i++) src += (begin[i] + (i < j ? idx[i] : 0)) * strides[i];
    heap.copyWithin(dst, xBase + src * bytes, xBase + src * bytes + run);
    dst += run;
    let i = j - 1; // odometer over the axes before j
    while (i >= 0 && ++idx[i] === size[i]) idx[i--] = 0;
    if (i < 0) return;
  }
}

type SliceKernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: WasmHeapBackend; attrs: Attrs };

function sliceKernel({ inputs, backend, attrs }: SliceKernelArgs): tf.TensorInfo {
  const x = inputs.x;
  const [begin, size] = tf.slice_util.parseSliceParams(x, attrs.begin as number[], attrs.size as number[]);
  const out = backend.makeOutput(size, x.dtype);
  copyBox(backend, x, begin, size, out);
  return out;
}

function splitVKernel({ inputs, backend, attrs }: SliceKernelArgs): tf.TensorInfo[] {
  const x = inputs.x;
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits as number | number[], axis);
  const begin = x.shape.map(() => 0);
  return sizes.map((s) => {
    const size = x.shape.slice();
    size[axis] = s;
    const out = backend.makeOutput(size, x.dtype);
    copyBox(backend, x, begin, size, out);
    begin[axis] += s;
    return out;
  });
}

function unpackKernel({ inputs, backend, attrs }: SliceKernelArgs): tf.TensorInfo[] {
  const x = inputs.value;
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const outShape = x.shape.filter((_, i) => i !== axis);
  const size = x.shape.slice();
  size[axis] = 1;
  const begin = x.shape.map(() => 0);
  return Array.from({ length: x.shape[axis] }, (_, i) => {
    begin[axis] = i;
    const out = backend.makeOutput(outShape, x.dtype);
    copyBox(backend, x, begin, size, out);
    return out;
  });
}

/** Per output row (or column) of a resize: the two source indices and the weight of the second. */
interface ResizeTaps {
  lo: Int32Array;
  hi: Int32Array;
  wHi: Float64Array;
}

/** The source taps of tfjs' ResizeBilinear / ResizeNearestNeighbor forward kernels, along one axis. */
function resizeTaps(inLen: number, outLen: number, alignCorners: boolean, halfPixel: boolean, bilinear: boolean): ResizeTaps {
  const corners = alignCorners && outLen > 1;
  const ratio = (corners ? inLen - 1 : inLen) / (corners ? outLen - 1 : outLen);
  const taps: ResizeTaps = { lo: new Int32Array(outLen), hi: new Int32Array(outLen), wHi: new Float64Array(outLen) };
  for (let r = 0; r < outLen; r++) {
    if (bilinear) {
      const src = halfPixel ? ratio * (r + 0.5) - 0.5 : ratio * r;
      const lo = Math.max(0, Math.floor(src));
      taps.lo[r] = lo;
      taps.hi[r] = Math.min(inLen - 1, Math.ceil(src));
      taps.wHi[r] = src - lo; // where lo == hi (clamped edges) the two weights still sum to 1
    } else {
      const src = halfPixel ? ratio * (r + 0.5) : ratio * r;
      let near = Math.min(inLen - 1, alignCorners ? Math.round(src) : Math.floor(src));
      if (halfPixel) near = Math.max(0, near);
      taps.lo[r] = near;
      taps.hi[r] = near;
    }
  }
  return taps;
}

/**
 * Gradient of a resize: scatters dy back onto the source pixels with the forward's weights. A JS loop over
 * host copies (float64 accumulators): 4 multiply-adds per dy element, a few ms for 128x128x48, and it follows
 * the forward kernels exactly, halfPixelCenters included.
 */
function resizeGrad(images: tf.Tensor4D, dy: tf.Tensor4D, attrs: Attrs, bilinear: boolean): tf.Tensor4D {
  const [n, h, w, c] = images.shape;
  const [, oh, ow] = dy.shape;
  const alignCorners = attrs.alignCorners === true;
  const halfPixel = attrs.halfPixelCenters === true;
  const rows = resizeTaps(h, oh, alignCorners, halfPixel, bilinear);
  const cols = resizeTaps(w, ow, alignCorners, halfPixel, bilinear);
  const g = dy.dataSync();
  const acc = new Float64Array(n * h * w * c);
  let src = 0;
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < oh; r++) {
      const top = (b * h + rows.lo[r]) * w;
      const bottom = (b * h + rows.hi[r]) * w;
      const v = rows.wHi[r];
      for (let q = 0; q < ow; q++) {
        const u = cols.wHi[q];
        const tl = (top + cols.lo[q]) * c;
        const tr = (top + cols.hi[q]) * c;
        const bl = (bottom + cols.lo[q]) * c;
        const br = (bottom + cols.hi[q]) * c;
        const wtl = (1 - v) * (1 - u);
        const wtr = (1 - v) * u;
        const wbl = v * (1 - u);
        const wbr = v * u;
        for (let k = 0; k < c; k++) {
          const gk = g[src + k];
          acc[tl + k] += wtl * gk;
          acc[tr + k] += wtr * gk;
          acc[bl + k] += wbl * gk;
          acc[br + k] += wbr * gk;
        }
        src += c;
      }
    }
  }
  return tf.tensor4d(Float32Array.from(acc), [n, h, w, c]);
}

const stockKernels = new Map<ReplacedName, tf.KernelConfig>();

function stockMatMul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const out = stockKernels.get('BatchMatMul')!.kernelFunc({
    inputs: { a, b },
    backend: tf.engine().backend,
    attrs: { transposeA: false, transposeB: false },
  }) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(out);
}

// ----------------------------------------------------------------------------------- registration

type KernelArgs = Parameters<tf.KernelFunc>[0];

function tidyKernel(body: (inputs: tf.NamedTensorInfoMap, attrs: Attrs) => tf.Tensor): tf.KernelFunc {
  return ({ inputs, attrs }: KernelArgs) => tf.tidy(() => body(inputs, (attrs ?? {}) as Attrs)) as tf.Tensor;
}

function nchwUnsupported(name: string): never {
  throw new Error(`wasm-kernels: ${name} supports dataFormat NHWC only (irlens keeps tensors NHWC)`);
}

const addedKernels: Record<(typeof ADDED)[number], tf.KernelFunc> = {
  Conv2DBackpropFilter: tidyKernel((inputs, attrs) => {
    if (isNCHW(attrs)) nchwUnsupported('Conv2DBackpropFilter');
    return conv2DBackpropFilter(input(inputs, 'x'), input(inputs, 'dy'), attrs);
  }),
  DepthwiseConv2dNativeBackpropInput: tidyKernel((inputs, attrs) =>
    depthwiseBackpropInput(input(inputs, 'dy'), input(inputs, 'filter'), attrs),
  ),
  DepthwiseConv2dNativeBackpropFilter: tidyKernel((inputs, attrs) =>
    depthwiseBackpropFilter(input(inputs, 'x'), input(inputs, 'dy'), attrs),
  ),
  UnsortedSegmentSum: tidyKernel((inputs, attrs) =>
    unsortedSegmentSum(input(inputs, 'x'), input(inputs, 'segmentIds'), attrs.numSegments as number),
  ),
};

/** Kernels that work on the wasm heap directly; strings (kept outside the heap) go to the stock kernel. */
const heapKernels: Record<'Slice' | 'SplitV' | 'Unpack', (args: SliceKernelArgs) => tf.TensorInfo | tf.TensorInfo[]> = {
  Slice: sliceKernel,
  SplitV: splitVKernel,
  Unpack: unpackKernel,
};

function replacedKernel(name: ReplacedName, stock: tf.KernelConfig): tf.KernelFunc {
  const fallback = stock.kernelFunc;
  if (name === 'BatchMatMul') {
    return (args: KernelArgs) => {
      const { a, b } = args.inputs;
      if (a?.dtype !== 'float32' || b?.dtype !== 'float32') return fallback(args);
      const attrs = (args.attrs ?? {}) as Attrs;
      const route = matMulRoute(a.shape, b.shape, attrs);
      if (route === 'stock') return fallback(args);
      return tf.tidy(() => fastBatchMatMul(input(args.inputs, 'a'), input(args.inputs, 'b'), attrs, route));
    };
  }
  if (name === 'Conv2DBackpropInput') {
    return (args: KernelArgs) => {
      const attrs = (args.attrs ?? {}) as Attrs;
      if (isNCHW(attrs)) return fallback(args);
      return tf.tidy(() => conv2DBackpropInput(input(args.inputs, 'dy'), input(args.inputs, 'filter'), attrs));
    };
  }
  const heapKernel = heapKernels[name];
  return (args: KernelArgs) => {
    const x = args.inputs.x ?? args.inputs.value;
    if (x === undefined || x.dtype === 'string' || x.dtype === 'complex64') return fallback(args);
    const inputs = args.inputs as Record<string, tf.TensorInfo>;
    return heapKernel({ inputs, backend: args.backend as unknown as WasmHeapBackend, attrs: (args.attrs ?? {}) as Attrs });
  };
}

const ours = new Set<tf.KernelFunc>();

/**
 * Registers the training kernels for the wasm backend (and the dilated-conv gradients, see
 * registerDilatedConvGradients). Idempotent; works before or after tf.setBackend('wasm'): the engine looks
 * kernels up per call, and replaced kernels keep the stock setupFunc for a backend that starts later.
 */
export function registerWasmTrainingKernels(): void {
  for (const name of ADDED) {
    const existing = tf.getKernel(name, WASM);
    if (existing && ours.has(existing.kernelFunc)) continue;
    if (existing) tf.unregisterKernel(name, WASM); // a later tfjs that ships its own: ours are the tested ones
    const kernelFunc = addedKernels[name];
    ours.add(kernelFunc);
    tf.registerKernel({ kernelName: name, backendName: WASM, kernelFunc });
  }
  for (const name of REPLACED) {
    const existing = tf.getKernel(name, WASM);
    if (!existing) {
      throw new Error(`wasm-kernels: stock wasm kernel '${name}' is missing; is @tensorflow/tfjs-backend-wasm loaded?`);
    }
    if (ours.has(existing.kernelFunc)) continue;
    stockKernels.set(name, existing);
    const kernelFunc = replacedKernel(name, existing);
    ours.add(kernelFunc);
    tf.unregisterKernel(name, WASM);
    tf.registerKernel({ ...existing, kernelFunc });
  }
  registerResizeGradFixes(WASM);
  registerDilatedConvGradients();
}

const resizeGradKernels: Record<(typeof RESIZE_GRADS)[number], tf.KernelFunc> = {
  ResizeBilinearGrad: tidyKernel((inputs, attrs) => resizeGrad(input(inputs, 'images'), input(inputs, 'dy'), attrs, true)),
  ResizeNearestNeighborGrad: tidyKernel((inputs, attrs) =>
    resizeGrad(input(inputs, 'images'), input(inputs, 'dy'), attrs, false),
  ),
};

/**
 * Replaces ResizeBilinearGrad and ResizeNearestNeighborGrad on `backendName` ('wasm', 'cpu') with kernels
 * that honour halfPixelCenters and keep the image shape (see RESIZE_GRADS). Idempotent. The kernels read dy on
 * the host, so they suit host backends (wasm, cpu), not GPU ones.
 */
export function registerResizeGradFixes(backendName: string): void {
  for (const name of RESIZE_GRADS) {
    const existing = tf.getKernel(name, backendName);
    const kernelFunc = resizeGradKernels[name];
    if (existing?.kernelFunc === kernelFunc) continue;
    ours.add(kernelFunc);
    if (existing) tf.unregisterKernel(name, backendName);
    tf.registerKernel({ ...(existing ?? {}), kernelName: name, backendName, kernelFunc });
  }
}

/** The stock wasm kernel that a replaced kernel falls back to (for tests and benchmarks). */
export function stockWasmKernel(name: ReplacedName): tf.KernelConfig | undefined {
  return stockKernels.get(name);
}

// ----------------------------------------------------------------------- dilated conv gradients

/** [kh,kw,a,b] -> [(kh-1)d+1, (kw-1)d+1, a, b] with d-1 zeros between taps. */
function dilateFilter(f: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  const [kh, kw, a, b] = f.shape;
  const spread = tf.pad(f.reshape([kh, 1, kw, 1, a, b]), [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]]);
  return tf.slice(spread.reshape([kh * dh, kw * dw, a, b]) as tf.Tensor4D, [0, 0, 0, 0], dilatedShape(f, [dh, dw]));
}

function dilatedShape(f: tf.Tensor4D, [dh, dw]: [number, number]): Shape4 {
  const [kh, kw, a, b] = f.shape;
  return [(kh - 1) * dh + 1, (kw - 1) * dw + 1, a, b];
}

function undilateFilter(g: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  const [h, w, a, b] = g.shape;
  return tf.stridedSlice(g, [0, 0, 0, 0], [h, w, a, b], [dh, dw, 1, 1]) as tf.Tensor4D;
}

let dilatedGradientsRegistered = false;

/**
 * Wraps the registered gradient of `kernelName`: dilation 1 goes to it unchanged; dilation > 1 runs the
 * backprop kernels on the zero-expanded filter (dilation 1) and takes every d-th tap of the filter gradient.
 */
function extendToDilation(kernelName: string, backprop: { input: string; filter: string }, extraAttrs: Attrs): void {
  const stock = tf.getGradient(kernelName);
  tf.registerGradient({
    ...stock,
    gradFunc: (dy, saved, attrs) => {
      const dil = pair(attrs.dilations, 'dilations');
      if (dil[0] === 1 && dil[1] === 1) return stock.gradFunc(dy, saved, attrs);
      if (isNCHW(attrs as Attrs)) nchwUnsupported(`dilated ${kernelName} gradient`);
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const g = dy as tf.Tensor4D;
      const run = (name: string, inputs: tf.NamedTensorMap, more: Attrs) =>
        tf.engine().runKernel(name, inputs, {
          strides: attrs.strides,
          pad: attrs.pad,
          dimRoundingMode: attrs.dimRoundingMode,
          ...extraAttrs,
          ...more,
        } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
      return {
        x: () => run(backprop.input, { dy: g, filter: dilateFilter(filter, dil) }, { inputShape: x.shape }),
        filter: () => undilateFilter(run(backprop.filter, { x, dy: g }, { filterShape: dilatedShape(filter, dil) }), dil),
      };
    },
  });
}

/**
 * Extends the Conv2D and DepthwiseConv2dNative gradients to dilation > 1 (tfjs-core refuses them on every
 * backend). Gradients are backend-independent, so this applies to all backends. Idempotent.
 */
export function registerDilatedConvGradients(): void {
  if (dilatedGradientsRegistered) return;
  dilatedGradientsRegistered = true;
  extendToDilation('Conv2D', { input: 'Conv2DBackpropInput', filter: 'Conv2DBackpropFilter' }, { dataFormat: 'NHWC' });
  extendToDilation(
    'DepthwiseConv2dNative',
    { input: 'DepthwiseConv2dNativeBackpropInput', filter: 'DepthwiseConv2dNativeBackpropFilter' },
    { dilations: [1, 1] },
  );
}
