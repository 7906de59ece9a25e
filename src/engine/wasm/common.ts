/** Shared types and helpers of the wasm training kernels (kernel inputs, conv attributes and geometry). */
import * as tf from '@tensorflow/tfjs';

export type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];
export type ConvPad = 'same' | 'valid' | number | ExplicitPadding;
export type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;
export type Attrs = Record<string, unknown>;
export type Shape4 = [number, number, number, number];

/** A kernel input as a Tensor: inputs are Tensors when they come through the engine; bare TensorInfos get
 * wrapped (call inside tf.tidy). */
export function input<T extends tf.Tensor = tf.Tensor4D>(inputs: tf.NamedTensorInfoMap, name: string): T {
  const t = inputs[name];
  if (t === undefined) throw new Error(`wasm-kernels: kernel input '${name}' is missing`);
  return (t instanceof tf.Tensor ? t : tf.engine().makeTensorFromTensorInfo(t)) as T;
}

export function pair(v: unknown, name: string): [number, number] {
  if (v == null) return [1, 1];
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2) return [v[0] as number, v[1] as number];
  throw new Error(`wasm-kernels: attribute '${name}' must be a number or a pair, got ${JSON.stringify(v)}`);
}

export function isNCHW(attrs: Attrs): boolean {
  return attrs.dataFormat === 'NCHW' || attrs.dataFormat === 'channelsFirst';
}

export function convInfo(
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
export function cropForPads(
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

/** The parts of the wasm backend that the slice kernels use (BackendWasm is not exported by name). */
export interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } };
  wasm: { HEAPU8: Uint8Array };
}

export type KernelArgs = Parameters<tf.KernelFunc>[0];

export function tidyKernel(body: (inputs: tf.NamedTensorInfoMap, attrs: Attrs) => tf.Tensor): tf.KernelFunc {
  return ({ inputs, attrs }: KernelArgs) => tf.tidy(() => body(inputs, (attrs ?? {}) as Attrs)) as tf.Tensor;
}

export function nchwUnsupported(name: string): never {
  throw new Error(`wasm-kernels: ${name} supports dataFormat NHWC only (irlens keeps tensors NHWC)`);
}
