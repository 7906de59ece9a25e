/** Input and filter gradients of Conv2D and DepthwiseConv2dNative, composed of forward convs and matMuls that
 * the wasm backend runs fast (see wasm/index.ts for why). */
import * as tf from '@tensorflow/tfjs';
import { Attrs, ExplicitPadding, Shape4, convInfo, cropForPads } from './common';

/**
 * One output phase of a transposed convolution along one axis. With stride s, output positions p = s*q + a
 * receive only the filter taps i = tapStart + s*m, so each phase a is a stride-1 correlation of dy (padded by
 * padBefore/padAfter, negative = crop) with those taps in reverse order; `length` output positions.
 */
export interface AxisPhase {
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
export function backpropPhases(k: number, s: number, d: number, padBefore: number, inLen: number, outLen: number): AxisPhase[] {
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
export function phaseFilter(f: tf.Tensor4D, ph: AxisPhase, pw: AxisPhase, sh: number, sw: number): tf.Tensor4D {
  const [kh, kw, a, b] = f.shape;
  const sub =
    ph.tapStart === 0 && pw.tapStart === 0 && sh === 1 && sw === 1
      ? f
      : (tf.stridedSlice(f, [ph.tapStart, pw.tapStart, 0, 0], [kh, kw, a, b], [sh, sw, 1, 1]) as tf.Tensor4D);
  return tf.reverse(sub, [0, 1]);
}

export type Correlate = (input: tf.Tensor4D, filter: tf.Tensor4D, pad: ExplicitPadding) => tf.Tensor4D;

/**
 * Shared body of Conv2DBackpropInput and DepthwiseConv2dNativeBackpropInput: one stride-1 correlation per
 * (row phase, column phase), interleaved into the [n, inH, inW, channels] gradient.
 */
export function transposedConv(
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

export function conv2DBackpropInput(dy: tf.Tensor4D, filter: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
  const info = convInfo(attrs.inputShape as Shape4, filter.shape, attrs, false);
  const filterT = tf.transpose(filter, [0, 1, 3, 2]); // [kh, kw, outC, inC]: dy's channels are the conv inputs
  return transposedConv(dy, filterT, info, info.inChannels, (input, g, pad) => tf.conv2d(input, g, 1, pad));
}

export function depthwiseBackpropInput(dy: tf.Tensor4D, filter: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
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

/**
 * Rows/cols of x that the filter gradient reads, as (before, after) pads of x, possibly negative (= crop):
 * the correlation of padded x with dy (dilated by the stride) must give exactly k outputs.
 */
export function filterGradPads(k: number, d: number, s: number, padBefore: number, inLen: number, outLen: number): [number, number] {
  const needed = (k - 1) * d + (outLen - 1) * s + 1;
  return [padBefore, needed - padBefore - inLen];
}

/**
 * Conv2DBackpropFilter: dW[i,j,ci,co] = sum_{n,ho,wo} x[n, ho*sh+i-top, wo*sw+j-left, ci] dy[n,ho,wo,co].
 * Stride 1: tapMatMuls; larger strides: dyAsFilter (measured: equal at stride 1 for 3x3, tapMatMuls faster for
 * 1x1 and batches > 1; dyAsFilter 10-30x faster at stride 2, where tapMatMuls would need strided slices).
 */
export function conv2DBackpropFilter(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
  const filterShape = attrs.filterShape as Shape4;
  const info = convInfo(x.shape, filterShape, attrs, false);
  return info.strideHeight === 1 && info.strideWidth === 1 ? tapMatMuls(x, dy, info) : dyAsFilter(x, dy, info);
}

/**
 * Stride 1: in a row-flattened, padded x (row width wp) tap (i,j) is the contiguous offset i*wp + j, and dy
 * zero-padded to the same row width lines up with it (wrapped-around products meet zeros). So each tap is one
 * XNNPACK matMul [ci, n*L] x [n*L, co] on a contiguous slice of the channel-first x.
 */
export function tapMatMuls(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
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
export function dyAsFilter(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
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
export function depthwiseBackpropFilter(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
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
