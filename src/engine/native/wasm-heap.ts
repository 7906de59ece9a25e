/**
 * What the native kernels see of tfjs-backend-wasm: its backend object (the class is not exported), kernel
 * arguments, and where a tensor's data lives in the wasm heap.
 */
import type * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-backend-wasm's BackendWasm that the native kernels use. */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
  wasm: { HEAPU8: Uint8Array };
}

export interface KernelArgs {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: WasmBackend;
  attrs?: Record<string, unknown>;
}

export const size = (shape: readonly number[]) => shape.reduce((p, q) => p * q, 1);

/** Byte offset of a tensor's data in the wasm heap. */
export function offset(backend: WasmBackend, t: tf.TensorInfo): number {
  const d = backend.dataIdMap.get(t.dataId);
  if (d === undefined) throw new Error('native kernels: tensor data is not in the wasm backend');
  return d.memoryOffset;
}

/** The wasm heap the addon reads and writes (read after makeOutput: growing the memory replaces the buffer). */
export const heapOf = (backend: WasmBackend) => backend.wasm.HEAPU8.buffer as ArrayBuffer;
