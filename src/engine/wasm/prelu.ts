/**
 * nn.PReLU for every backend, and its fused kernel names (the native kernels live in native/irlens_native.cc
 * and src/engine/native/kernels.ts).
 */
import * as tf from '@tensorflow/tfjs';

/** The native fused PReLU (one parameter) and its gradient kernel (registered by registerNativeKernels). */
export const PRELU_KERNEL = 'IrlensPrelu';
export const PRELU_GRAD_KERNEL = 'IrlensPreluGrad';

/**
 * PReLU, y = x > 0 ? x : a x, with `alpha` of shape [1] (nn.PReLU(num_parameters=1)) or broadcasting against x.
 *
 * With the native addon and one parameter: one kernel each way (MPRNet applies its PReLU 91 times per forward;
 * the composition below is 5 tfjs ops forward and 10 backward). It gives the same bits as the composition up to
 * the sign of a zero, and its gradient is torch's (x > 0 ? dy : a dy, so a dy at x = 0 where the composition
 * gives 0). Elsewhere relu(x) - a relu(-x), which has gradients on every backend.
 */
export function prelu(x: tf.Tensor, alpha: tf.Tensor): tf.Tensor {
  if (tf.getBackend() === 'wasm' && x.dtype === 'float32' && alpha.dtype === 'float32' && alpha.size === 1 && tf.getKernel(PRELU_KERNEL, 'wasm')) {
    return tf.engine().runKernel(PRELU_KERNEL, { x, alpha }) as tf.Tensor;
  }
  return tf.tidy(() => tf.sub(tf.relu(x), tf.mul(alpha, tf.relu(tf.neg(x)))));
}
