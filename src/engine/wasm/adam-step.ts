/**
 * One Adam / AdamW update of one parameter (torch.optim.Adam / AdamW, non-amsgrad; src/pretrain/optim.ts keeps
 * the slots and step counts), and its fused kernel name (the native kernel lives in native/irlens_native.cc).
 *
 * As tf ops an update is ~14 small kernels per parameter (a Restormer training step at 64x64 spent ~0.5 s of
 * 3.4 s in them, one call each for ~670 parameters); with the native addon it is one pass. The native kernel
 * evaluates the same float32 operations in the same order without FMA contraction, so both paths give the
 * same bits (test/engine/native-kernels.test.ts checks it against the cpu backend).
 */
import * as tf from '@tensorflow/tfjs';

export const ADAM_STEP_KERNEL = 'IrlensAdamStep';

export interface AdamStepAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** true: decoupled decay p *= 1 - lr*wd (AdamW); false: L2 penalty wd*p added to the gradient (Adam). */
  decoupled: boolean;
  /** Bias corrections 1 - beta1^t and sqrt(1 - beta2^t) for this parameter's step t. */
  bc1: number;
  bc2Sqrt: number;
}

/** The new parameter, first and second moments. */
export function adamStep(param: tf.Tensor, expAvg: tf.Tensor, expAvgSq: tf.Tensor, grad: tf.Tensor, a: AdamStepAttrs): [tf.Tensor, tf.Tensor, tf.Tensor] {
  if (tf.getBackend() === 'wasm' && tf.getKernel(ADAM_STEP_KERNEL, 'wasm') && [param, expAvg, expAvgSq, grad].every((t) => t.dtype === 'float32')) {
    return tf.engine().runKernel(ADAM_STEP_KERNEL, { param, expAvg, expAvgSq, grad }, a as unknown as tf.NamedAttrMap) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
  }
  return tf.tidy(() => {
    let p: tf.Tensor = param;
    let g = grad;
    if (a.weightDecay !== 0) {
      if (a.decoupled) p = tf.mul(p, 1 - a.lr * a.weightDecay);
      else g = tf.add(g, tf.mul(p, a.weightDecay));
    }
    const m = tf.add(tf.mul(expAvg, a.beta1), tf.mul(g, 1 - a.beta1));
    const v = tf.add(tf.mul(expAvgSq, a.beta2), tf.mul(tf.square(g), 1 - a.beta2));
    const denom = tf.add(tf.div(tf.sqrt(v), a.bc2Sqrt), a.eps);
    return [tf.sub(p, tf.mul(tf.div(m, denom), a.lr / a.bc1)), m, v] as [tf.Tensor, tf.Tensor, tf.Tensor];
  });
}
