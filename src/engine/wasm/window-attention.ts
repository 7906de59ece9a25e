/**
 * Fused windowed multi-head attention, softmax((q * scale) k^T + bias + mask) v per window and head, and its
 * kernel names (the native kernels live in native/irlens_native.cc and src/engine/native/kernels.ts).
 *
 * Composed of tf ops (src/models/blocks/window-attention.ts) the tape keeps the logits, the biased and masked
 * logits and the probabilities of every block, [B', heads, N, N] each: 14 MB per SwinIR-M block at a 48x48
 * patch, more than the 4 GB wasm heap holds over 36 blocks with everything else. The fused gradient keeps only
 * q, k, v and recomputes the probabilities, as FlashAttention-style kernels do.
 *
 * The fused kernels read q, k, v and write the output in token layout, [B', N, C] with the heads side by side
 * in the channels (channel j belongs to head floor(j / d)), which is what the qkv projection writes and the
 * output projection reads: the head split and merge transposes of the composition (a fifth of SwinIR's
 * forward) are not needed. The probabilities kernel, for hooked runs, works on [B'*heads, N, d] per head.
 */
import * as tf from '@tensorflow/tfjs';

/** q, k, v: [B', N, C] each. */
export const WINDOW_ATTENTION_KERNEL = 'IrlensWindowAttention';
export const WINDOW_ATTENTION_GRAD_KERNEL = 'IrlensWindowAttentionGrad';
/** qkv: [B', N, 3C], q, k, v side by side as one projection writes them (the official reshape(B', N, 3, heads, d)). */
export const PACKED_WINDOW_ATTENTION_KERNEL = 'IrlensPackedWindowAttention';
export const PACKED_WINDOW_ATTENTION_GRAD_KERNEL = 'IrlensPackedWindowAttentionGrad';
/** The probabilities alone, bit-identical to those inside the fused kernels (for runs whose hooks see them). */
export const ATTENTION_PROBS_KERNEL = 'IrlensAttentionProbs';
export const ATTENTION_PROBS_GRAD_KERNEL = 'IrlensAttentionProbsGrad';

export interface WindowAttentionAttrs {
  heads: number;
  scale: number;
  hasBias: boolean;
  hasMask: boolean;
}

/** Whether the fused kernels can run here (wasm backend with the native kernels). */
export function fusedWindowAttentionAvailable(): boolean {
  return tf.getBackend() === 'wasm' && tf.getKernel(WINDOW_ATTENTION_KERNEL, 'wasm') !== undefined;
}

/**
 * q, k, v: [B', N, C] in token layout; bias: [heads or 1, N, N]; mask: [nW, N, N] applied to window b as
 * mask[b % nW]. Returns P v merged over heads, [B', N, C]. Call only where fusedWindowAttentionAvailable().
 */
export function fusedWindowAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number, scale: number, bias?: tf.Tensor3D, mask?: tf.Tensor3D): tf.Tensor3D {
  return runAttentionKernel(WINDOW_ATTENTION_KERNEL, { q, k, v }, q.shape[1], heads, scale, bias, mask);
}

/** fusedWindowAttention of q, k, v packed side by side in qkv, [B', N, 3C] (same bits). Returns [B', N, C]. */
export function fusedPackedWindowAttention(qkv: tf.Tensor3D, heads: number, scale: number, bias?: tf.Tensor3D, mask?: tf.Tensor3D): tf.Tensor3D {
  return runAttentionKernel(PACKED_WINDOW_ATTENTION_KERNEL, { qkv }, qkv.shape[1], heads, scale, bias, mask);
}

/**
 * softmax((q * scale) k^T + bias + mask), [B'*heads, N, N], for q, k per head [B'*heads, N, d]: the
 * probabilities the fused kernels use, with the same bits, so that matMul(P, v) on the native path equals
 * their output exactly. Same preconditions.
 */
export function attentionProbs(q: tf.Tensor3D, k: tf.Tensor3D, heads: number, scale: number, bias?: tf.Tensor3D, mask?: tf.Tensor3D): tf.Tensor3D {
  return runAttentionKernel(ATTENTION_PROBS_KERNEL, { q, k }, q.shape[1], heads, scale, bias, mask);
}

function runAttentionKernel(name: string, inputs: Record<string, tf.Tensor3D>, n: number, heads: number, scale: number, bias?: tf.Tensor3D, mask?: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    // Absent bias / mask travel as one zero [1, N, N] each, so the kernels' inputs (and saved tensors) are fixed.
    const none = () => tf.zeros([1, n, n]) as tf.Tensor3D;
    const attrs: WindowAttentionAttrs = { heads, scale, hasBias: bias !== undefined, hasMask: mask !== undefined };
    return tf.engine().runKernel(name, { ...inputs, bias: bias ?? none(), mask: mask ?? none() }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor3D;
  });
}
