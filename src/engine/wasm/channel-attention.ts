/**
 * Restormer's channel attention (MDTA) as native kernels: per image and head, with Q, K, V the head's token x
 * channel blocks of the packed qkv [B, H, W, 3C],
 *   P = softmax(normalize(Q)^T normalize(K) * temperature)  [c, c],   O = V P^T  [H*W, c],
 * O written at the head's channels of [B, H, W, C], which is what project_out reads. The native kernels live in
 * native/irlens_native.cc and src/engine/native/channel-attention.ts.
 *
 * The tf-op composition (src/models/restormer.ts) runs about 25 kernels per attention forward and 50 backward:
 * the split, head transposes, norms, products and softmax. The fused kernel reads q, k, v where the depthwise
 * conv wrote them and keeps only qkv for its gradient, which recomputes P. Hooked runs that read or change the
 * probabilities use the probabilities kernel and the output kernel, which give the fused kernel's bits.
 */
import * as tf from '@tensorflow/tfjs';

/** qkv [B, H, W, 3C], temperature [heads] values -> O [B, H, W, C]. */
export const CHANNEL_ATTENTION_KERNEL = 'IrlensChannelAttention';
export const CHANNEL_ATTENTION_GRAD_KERNEL = 'IrlensChannelAttentionGrad';
/** qkv, temperature -> P [B, heads, c, c]. */
export const CHANNEL_ATTENTION_PROBS_KERNEL = 'IrlensChannelAttentionProbs';
export const CHANNEL_ATTENTION_PROBS_GRAD_KERNEL = 'IrlensChannelAttentionProbsGrad';
/** qkv, P -> O [B, H, W, C]. */
export const CHANNEL_ATTENTION_APPLY_KERNEL = 'IrlensChannelAttentionApply';
export const CHANNEL_ATTENTION_APPLY_GRAD_KERNEL = 'IrlensChannelAttentionApplyGrad';

export interface ChannelAttentionAttrs {
  heads: number;
}

/** Whether the channel attention kernels can run here (wasm backend with the native kernels). */
export function channelAttentionAvailable(): boolean {
  return tf.getBackend() === 'wasm' && tf.getKernel(CHANNEL_ATTENTION_KERNEL, 'wasm') !== undefined;
}

const run = (name: string, inputs: tf.NamedTensorMap, heads: number) =>
  tf.engine().runKernel(name, inputs, { heads } as unknown as tf.NamedAttrMap) as tf.Tensor4D;

/** O from the packed qkv [B, H, W, 3C] and the per-head temperatures (heads values, e.g. [heads, 1, 1]). */
export function channelAttention(qkv: tf.Tensor4D, temperature: tf.Tensor, heads: number): tf.Tensor4D {
  return run(CHANNEL_ATTENTION_KERNEL, { qkv, temperature }, heads);
}

/** P [B, heads, c, c], the fused kernel's probabilities bit for bit. */
export function channelAttentionProbs(qkv: tf.Tensor4D, temperature: tf.Tensor, heads: number): tf.Tensor4D {
  return run(CHANNEL_ATTENTION_PROBS_KERNEL, { qkv, temperature }, heads);
}

/** O = V P^T for given P [B, heads, c, c]; with channelAttentionProbs's P, the fused kernel's output bit for bit. */
export function channelAttentionApply(qkv: tf.Tensor4D, probs: tf.Tensor4D, heads: number): tf.Tensor4D {
  return run(CHANNEL_ATTENTION_APPLY_KERNEL, { qkv, probs }, heads);
}
