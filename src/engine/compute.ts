/**
 * Which kernels run the heavy ops, for `info`, benchmarks and reports: computePath() says 'native-openblas'
 * when the wasm backend runs with the native addon's kernels, otherwise the backend's own kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { backendInfo } from './backend';
import { computeThreads, nativeAddon, nativeLibrary, nativeUnavailableReason, type ComputePath } from './native/addon';
import { nativeKernelsRegistered } from './native/kernels';

export { computeThreads, parseThreads, setComputeThreads, type ComputeKind, type ComputePath } from './native/addon';

/** The compute path of the current TF.js backend (call after initBackend). */
export function computePath(): ComputePath {
  const backend = tf.getBackend();
  if (backend === 'wasm' && nativeKernelsRegistered()) {
    const d = nativeAddon()!.describe();
    return {
      kind: 'native-openblas',
      threads: d.threads,
      description: `native kernels (${nativeLibrary()}; matMul, conv and its gradients, depthwise conv, copies, elementwise arithmetic, GELU, PReLU, LayerNorm, window and channel attention, Adam) on ${d.threads} thread${d.threads === 1 ? '' : 's'}, other ops on wasm SIMD`,
    };
  }
  if (backend === 'wasm') {
    const reason = nativeUnavailableReason();
    return { kind: 'wasm', threads: 1, description: `wasm SIMD, single thread (${reason})`, reason };
  }
  if (backend === 'tensorflow') {
    const gpu = backendInfo()?.name === 'node-gpu';
    return gpu
      ? { kind: 'tfjs-node-gpu', threads: 1, description: 'libtensorflow with CUDA (tfjs-node-gpu)' }
      : { kind: 'tfjs-node', threads: computeThreads(), description: 'libtensorflow, CPU (tfjs-node)' };
  }
  return { kind: 'cpu', threads: 1, description: 'pure-JS cpu kernels' };
}
