/**
 * Loading the optional native addon (native/irlens_native.cc, built by node-gyp at `npm install`) and the
 * compute-thread setting.
 *
 * The addon is optional: when build/Release/irlens_native.node is missing (no compiler or no OpenBLAS at
 * install time) irlens runs on the plain wasm kernels, silently. IRLENS_NATIVE=0 forces that fallback (tests
 * use it to cover both paths). IRLENS_THREADS (or --threads) sets the native kernels' thread count; default:
 * every core.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openblasCoreType } from './openblas-core';

/** The functions the addon exports; every tensor is a byte offset into `heap` (the wasm Memory's buffer). */
export interface NativeAddon {
  matMul(heap: ArrayBuffer, params: Float64Array, aBatchIndex: Int32Array, bBatchIndex: Int32Array): void;
  conv2d(heap: ArrayBuffer, params: Float64Array): void;
  depthwise(heap: ArrayBuffer, params: Float64Array): void;
  /** Conv2D / depthwise input or filter gradient on oneDNN; false when it did not compute (then the composition runs). */
  convBackward(heap: ArrayBuffer, params: Float64Array): boolean;
  /** Strided copy inside the heap (transpose, slice, split): [inOff, outOff, bytes, rank, shape, inStrides, outStrides]. */
  copy(heap: ArrayBuffer, params: Float64Array): void;
  layerNorm(heap: ArrayBuffer, params: Float64Array): void;
  layerNormGrad(heap: ArrayBuffer, params: Float64Array): void;
  adamStep(heap: ArrayBuffer, params: Float64Array): void;
  /** out = a op b (0 add, 1 sub, 2 mul, 3 div): [aOff, bOff, outOff, op, rank, shape, aStrides, bStrides]. */
  binary(heap: ArrayBuffer, params: Float64Array): void;
  /** Sum or mean over the middle axis of [outer, reduce, inner]: [xOff, outOff, outer, reduce, inner, mean]. */
  reduce(heap: ArrayBuffer, params: Float64Array): void;
  windowAttention(heap: ArrayBuffer, params: Float64Array): void;
  windowAttentionGrad(heap: ArrayBuffer, params: Float64Array): void;
  attentionProbs(heap: ArrayBuffer, params: Float64Array): void;
  attentionProbsGrad(heap: ArrayBuffer, params: Float64Array): void;
  channelAttention(heap: ArrayBuffer, params: Float64Array): void;
  channelAttentionGrad(heap: ArrayBuffer, params: Float64Array): void;
  channelAttentionProbs(heap: ArrayBuffer, params: Float64Array): void;
  channelAttentionProbsGrad(heap: ArrayBuffer, params: Float64Array): void;
  channelAttentionApply(heap: ArrayBuffer, params: Float64Array): void;
  channelAttentionApplyGrad(heap: ArrayBuffer, params: Float64Array): void;
  gelu(heap: ArrayBuffer, params: Float64Array): void;
  geluGrad(heap: ArrayBuffer, params: Float64Array): void;
  gatedGelu(heap: ArrayBuffer, params: Float64Array): void;
  gatedGeluGrad(heap: ArrayBuffer, params: Float64Array): void;
  prelu(heap: ArrayBuffer, params: Float64Array): void;
  preluGrad(heap: ArrayBuffer, params: Float64Array): void;
  setThreads(n: number): void;
  /**
   * conv: oneDNN, when the addon was built with it and IRLENS_ONEDNN is not 0 (then it runs every GEMM and the
   * KxK convolutions; else OpenBLAS and im2col do);
   * winograd: whether wide 3x3 stride-1 'same' convs and their gradients run as Winograd F(2x2, 3x3)
   * (IRLENS_WINOGRAD=0 turns it off); winogradCalls: how many convs did since load.
   */
  describe(): { threads: number; library: string; core: string; maxThreads: number; conv?: string; winograd: boolean; winogradCalls: number };
}

export type ComputeKind = 'native-openblas' | 'wasm' | 'cpu' | 'tfjs-node' | 'tfjs-node-gpu';

export interface ComputePath {
  /** Which kernels run the heavy ops (matMul, conv, depthwise conv). */
  kind: ComputeKind;
  /** Threads the native kernels use (1 for the single-threaded wasm/cpu kernels). */
  threads: number;
  /** One line for CLI outputs and reports. */
  description: string;
  /** Why the native path is not active, when it is not. */
  reason?: string;
}

/** src/engine/native/ and dist/engine/native/ are both three levels below the package root. */
const ADDON_PATH = path.resolve(__dirname, '..', '..', '..', 'build', 'Release', 'irlens_native.node');

let loaded: { addon?: NativeAddon; reason?: string } | undefined;
let threads: number | undefined;

function cores(): number {
  return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}

/** Parses a thread count (IRLENS_THREADS, --threads); throws a one-line error naming the source. */
export function parseThreads(value: string, source = 'IRLENS_THREADS'): number {
  const v = Number(value.trim());
  if (!Number.isInteger(v) || v < 1) throw new Error(`${source}: expected a positive integer thread count, got '${value}'`);
  return v;
}

/** The thread count in effect: setComputeThreads(), else IRLENS_THREADS, else every core. */
export function computeThreads(): number {
  if (threads !== undefined) return threads;
  const env = process.env.IRLENS_THREADS;
  return env !== undefined && env.trim() !== '' ? parseThreads(env) : cores();
}

/** Sets the native kernels' thread count (the `--threads` option). */
export function setComputeThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`--threads: expected a positive integer, got '${n}'`);
  threads = n;
  loaded?.addon?.setThreads(n);
}

/** The addon, or undefined (with the reason in nativeUnavailableReason()) when it is absent or disabled. */
export function nativeAddon(): NativeAddon | undefined {
  if (loaded === undefined) {
    const flag = process.env.IRLENS_NATIVE;
    if (flag === '0' || flag?.toLowerCase() === 'false') loaded = { reason: 'disabled by IRLENS_NATIVE=0' };
    else if (!fs.existsSync(ADDON_PATH)) {
      loaded = { reason: `native addon not built (${path.relative(process.cwd(), ADDON_PATH)} missing; see README: native kernels)` };
    } else {
      const n = computeThreads(); // a bad IRLENS_THREADS is the user's error, not a reason to fall back
      try {
        // Idle kernel threads spin a bounded while (100k pause loops, of the order of a millisecond) before they
        // sleep: the next kernel usually starts within that gap, and waking a sleeping thread costs more than the
        // short kernels between the products (OMP_WAIT_POLICY=PASSIVE: 2-thread Restormer training step 1243-1288 ms,
        // this: 1073-1093 ms, interleaved runs). libgomp's default spins 3x longer, which takes a shared core
        // from other processes for longer. Read once, when libgomp loads; either variable set by the user wins.
        if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) process.env.GOMP_SPINCOUNT = '100000';
        // OpenBLAS's kernels by the CPU's flags, not by a model list older than the CPU (openblas-core.ts); read
        // when libopenblas loads with the addon. A value the user set wins.
        const core = openblasCoreType();
        if (core !== undefined) process.env.OPENBLAS_CORETYPE = core;
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const addon = require(ADDON_PATH) as NativeAddon;
        addon.setThreads(n);
        loaded = { addon };
      } catch (e) {
        loaded = { reason: `native addon failed to load: ${(e as Error).message.split('\n')[0]}` };
      }
    }
  }
  return loaded.addon;
}

/** Why the native addon is not in use ('' when it is). */
export function nativeUnavailableReason(): string {
  nativeAddon();
  return loaded?.reason ?? '';
}

/**
 * The addon's library, e.g. 'OpenBLAS 0.3.21 (Cooperlake kernels)', or undefined without the addon. OpenBLAS
 * picks its kernels for the CPU at load time unless OPENBLAS_CORETYPE says otherwise (measured here, 4096x180x540
 * sgemm on one thread: AVX-512 Cooperlake/SkylakeX ~190 GFLOP/s, AVX2 Haswell ~105), so reports name them, and
 * oneDNN when the addon was built with it (its sgemm then runs the GEMMs, and its convs the KxK convolutions), and
 * the Winograd 3x3 convs when they are on.
 */
export function nativeLibrary(): string | undefined {
  const d = nativeAddon()?.describe();
  return d && `${d.library.split(' ').slice(0, 2).join(' ')} (${d.core} kernels)${d.conv ? `, ${d.conv} GEMMs and KxK convs` : ''}${d.winograd ? ', Winograd 3x3' : ''}`;
}
