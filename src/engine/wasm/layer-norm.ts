/**
 * LayerNorm over the last axis for every backend, and its fused kernel names (the native kernels live in
 * native/irlens_native.cc and src/engine/native/kernels.ts).
 *
 * Composed of tf ops, a LayerNorm is ~9 elementwise/reduction kernels forward and ~20 backward, each a
 * single-threaded pass over the tensor on wasm (measured: 14% of a Restormer forward at 128x128). With the
 * native addon it is one pass forward (IrlensLayerNorm) and one backward (IrlensLayerNormGrad).
 */
import * as tf from '@tensorflow/tfjs';

export const LAYER_NORM_KERNEL = 'IrlensLayerNorm';
export const LAYER_NORM_GRAD_KERNEL = 'IrlensLayerNormGrad';

/** Attributes of both kernels: centred = false is Restormer's BiasFree_LayerNorm (x, not x - mean, is scaled). */
export interface LayerNormAttrs {
  eps: number;
  centred: boolean;
}

/**
 * centred: (x - mean) / sqrt(var + eps) * weight (+ bias), nn.LayerNorm with biased variance.
 * not centred: x / sqrt(var + eps) * weight, Restormer's BiasFree_LayerNorm (the variance is still mean-centred).
 */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | undefined, attrs: LayerNormAttrs): tf.Tensor {
  if (tf.getBackend() === 'wasm' && x.dtype === 'float32' && tf.getKernel(LAYER_NORM_KERNEL, 'wasm')) {
    const inputs: tf.NamedTensorMap = bias ? { x, weight, bias } : { x, weight };
    // hasBias tells the gradient (which sees only the saved x and weight) whether to return a bias gradient.
    return tf.engine().runKernel(LAYER_NORM_KERNEL, inputs, { ...attrs, hasBias: bias !== undefined }) as tf.Tensor;
  }
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const scaled = tf.mul(tf.div(attrs.centred ? tf.sub(x, mean) : x, tf.sqrt(tf.add(variance, attrs.eps))), weight);
    return bias ? tf.add(scaled, bias) : scaled;
  });
}
