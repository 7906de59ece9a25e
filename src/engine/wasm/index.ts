/**
 * Training kernels for the TF.js wasm backend: registration (the kernels live in the sibling modules).
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
 * groupedMatMul); slices copy rows inside the heap (copyBox). Identity (tfjs clones every tensor it saves for
 * backprop through it) shares the data instead of copying it.
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
import { Attrs, KernelArgs, WasmHeapBackend, input, isNCHW, nchwUnsupported, tidyKernel } from './common';
import { conv2DBackpropFilter, conv2DBackpropInput, depthwiseBackpropFilter, depthwiseBackpropInput } from './conv-grads';
import { registerDilatedConvGradients } from './dilated-grads';
import { SliceKernelArgs, sliceKernel, splitVKernel, unpackKernel } from './heap-copy';
import { resizeGrad } from './resize-grad';
import { unsortedSegmentSum } from './segment-sum';
import { fastBatchMatMul, matMulRoute, setStockBatchMatMul } from './matmul';

const WASM = 'wasm';

/** Kernels the stock wasm backend lacks; registered new. */
const ADDED = [
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'UnsortedSegmentSum',
] as const;
/** Stock wasm kernels replaced by faster compositions (the stock function stays the fallback). */
const REPLACED = ['Conv2DBackpropInput', 'BatchMatMul', 'Slice', 'SplitV', 'Unpack', 'Identity'] as const;
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

const stockKernels = new Map<ReplacedName, tf.KernelConfig>();

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

export function replacedKernel(name: ReplacedName, stock: tf.KernelConfig): tf.KernelFunc {
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
  if (name === 'Identity') {
    // The stock kernel copies the tensor; tfjs clones every tensor it saves for the backward pass through it
    // (2680 copies, 6% of a Restormer training step at 64x64). Sharing the data with a reference count is what
    // the wasm Reshape and the cpu Identity do: kernels never write into their inputs.
    return (args: KernelArgs) => {
      const x = args.inputs.x;
      if (x === undefined || x.dtype === 'string') return fallback(args);
      (args.backend as unknown as { incRef(dataId: tf.DataId): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
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
 * Marks a kernel registered on top of these (the native kernels) as irlens's own, so a repeated
 * registerWasmTrainingKernels() keeps it instead of wrapping it again.
 */
export function adoptWasmKernel(kernelFunc: tf.KernelFunc): void {
  ours.add(kernelFunc);
}

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
    if (name === 'BatchMatMul') setStockBatchMatMul(existing);
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


export { registerDilatedConvGradients } from './dilated-grads';
