/**
 * Registration of the native channel attention kernels and their gradients (names and semantics in
 * src/engine/wasm/channel-attention.ts, the computation in native/irlens_native.cc).
 */
import * as tf from '@tensorflow/tfjs';
import {
  CHANNEL_ATTENTION_APPLY_GRAD_KERNEL,
  CHANNEL_ATTENTION_APPLY_KERNEL,
  CHANNEL_ATTENTION_GRAD_KERNEL,
  CHANNEL_ATTENTION_KERNEL,
  CHANNEL_ATTENTION_PROBS_GRAD_KERNEL,
  CHANNEL_ATTENTION_PROBS_KERNEL,
  type ChannelAttentionAttrs,
} from '../wasm/channel-attention';
import type { NativeAddon } from './addon';
import { heapOf, offset, size, type KernelArgs, type WasmBackend } from './wasm-heap';

type Inputs = Record<string, tf.TensorInfo>;
type AddonFunction = Extract<keyof NativeAddon, `channelAttention${string}`>;

/** [b, heads, tokens, c] of a packed qkv [B, H, W, 3C], after checking it and the other operands' shapes. */
function geometry(ins: Inputs, heads: number, kernel: string): number[] {
  const { qkv } = ins;
  const fail = (what: string): never => {
    const got = Object.entries(ins).map(([name, t]) => `${name} [${t.shape}] ${t.dtype}`).join(', ');
    throw new Error(`native kernels: ${kernel} expects ${what}; got ${got} for ${heads} heads`);
  };
  if (!Object.values(ins).every((t) => t.dtype === 'float32')) fail('float32 tensors');
  if (qkv.shape.length !== 4 || !Number.isInteger(heads) || heads < 1 || qkv.shape[3] % (3 * heads) !== 0) fail('qkv [B, H, W, 3C] with C a multiple of heads');
  const [b, h, w, c3] = qkv.shape;
  const c = c3 / (3 * heads);
  const probsShape = [b, heads, c, c].join();
  if (ins.temperature && size(ins.temperature.shape) !== heads) fail('one temperature per head');
  if (ins.probs && ins.probs.shape.join() !== probsShape) fail(`probs [${probsShape}]`);
  return [b, heads, h * w, c];
}

export function registerChannelAttentionKernels(addon: NativeAddon): void {
  if (tf.getKernel(CHANNEL_ATTENTION_KERNEL, 'wasm')) return;
  const register = (kernelName: string, compute: (ins: Inputs, heads: number, geo: number[], backend: WasmBackend) => tf.TensorInfo | tf.TensorInfo[]) =>
    tf.registerKernel({
      kernelName,
      backendName: 'wasm',
      kernelFunc: (raw) => {
        const { inputs, backend, attrs } = raw as unknown as KernelArgs;
        const heads = (attrs as unknown as ChannelAttentionAttrs).heads;
        const ins = inputs as Inputs;
        return compute(ins, heads, geometry(ins, heads, kernelName), backend);
      },
    });
  // Runs the addon function unless there is nothing to compute; tensors become their byte offsets.
  const call = (fn: AddonFunction, backend: WasmBackend, geo: number[], tensors: tf.TensorInfo[]) => {
    if (size(geo) === 0) return;
    addon[fn](heapOf(backend), new Float64Array([...tensors.map((t) => offset(backend, t)), ...geo]));
  };
  const outputShape = (qkv: tf.TensorInfo) => [...qkv.shape.slice(0, 3), qkv.shape[3] / 3];
  const checkDy = (dy: tf.TensorInfo, shape: number[], kernel: string) => {
    if (dy.dtype !== 'float32' || dy.shape.join() !== shape.join()) throw new Error(`native kernels: ${kernel} expects dy [${shape}] float32, got [${dy.shape}] ${dy.dtype}`);
  };

  register(CHANNEL_ATTENTION_KERNEL, (ins, _, geo, backend) => {
    const out = backend.makeOutput(outputShape(ins.qkv), 'float32');
    call('channelAttention', backend, geo, [ins.qkv, ins.temperature, out]);
    return out;
  });
  register(CHANNEL_ATTENTION_PROBS_KERNEL, (ins, heads, geo, backend) => {
    const p = backend.makeOutput([geo[0], heads, geo[3], geo[3]], 'float32');
    call('channelAttentionProbs', backend, geo, [ins.qkv, ins.temperature, p]);
    return p;
  });
  register(CHANNEL_ATTENTION_APPLY_KERNEL, (ins, _, geo, backend) => {
    const out = backend.makeOutput(outputShape(ins.qkv), 'float32');
    call('channelAttentionApply', backend, geo, [ins.qkv, ins.probs, out]);
    return out;
  });
  // The gradients through the probabilities (fused kernel: dy is dO; probabilities kernel: dy is dP): dqkv, dt.
  const throughProbs = (kernel: string, fn: AddonFunction, dyShape: (heads: number, geo: number[], qkv: tf.TensorInfo) => number[]) =>
    register(kernel, (ins, heads, geo, backend) => {
      checkDy(ins.dy, dyShape(heads, geo, ins.qkv), kernel);
      const dqkv = backend.makeOutput(ins.qkv.shape, 'float32');
      const dt = backend.makeOutput(ins.temperature.shape, 'float32');
      call(fn, backend, geo, [ins.dy, ins.qkv, ins.temperature, dqkv, dt]);
      return [dqkv, dt];
    });
  throughProbs(CHANNEL_ATTENTION_GRAD_KERNEL, 'channelAttentionGrad', (_, __, qkv) => outputShape(qkv));
  throughProbs(CHANNEL_ATTENTION_PROBS_GRAD_KERNEL, 'channelAttentionProbsGrad', (heads, geo) => [geo[0], heads, geo[3], geo[3]]);
  register(CHANNEL_ATTENTION_APPLY_GRAD_KERNEL, (ins, _, geo, backend) => {
    checkDy(ins.dy, outputShape(ins.qkv), CHANNEL_ATTENTION_APPLY_GRAD_KERNEL);
    const dqkv = backend.makeOutput(ins.qkv.shape, 'float32');
    const dp = backend.makeOutput(ins.probs.shape, 'float32');
    call('channelAttentionApplyGrad', backend, geo, [ins.dy, ins.qkv, ins.probs, dqkv, dp]);
    return [dqkv, dp];
  });

  // Gradients: one kernel each gives both inputs' gradients.
  const gradient = (kernelName: string, gradKernel: string, inputs: [string, string]) =>
    tf.registerGradient({
      kernelName,
      inputsToSave: inputs,
      gradFunc: (dy, saved, attrs) => {
        const [first, second] = tf.engine().runKernel(gradKernel, { dy: dy as tf.Tensor, [inputs[0]]: saved[0], [inputs[1]]: saved[1] }, attrs) as tf.Tensor[];
        return { [inputs[0]]: () => first, [inputs[1]]: () => second };
      },
    });
  gradient(CHANNEL_ATTENTION_KERNEL, CHANNEL_ATTENTION_GRAD_KERNEL, ['qkv', 'temperature']);
  gradient(CHANNEL_ATTENTION_PROBS_KERNEL, CHANNEL_ATTENTION_PROBS_GRAD_KERNEL, ['qkv', 'temperature']);
  gradient(CHANNEL_ATTENTION_APPLY_KERNEL, CHANNEL_ATTENTION_APPLY_GRAD_KERNEL, ['qkv', 'probs']);
}
