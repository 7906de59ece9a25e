/**
 * GELU for every backend, and its fused kernel names (the native kernels live in native/irlens_native.cc and
 * src/engine/native/kernels.ts; they use the same h(x) as geluByLogit, GELU_LOGIT below).
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Exact (erf) GELU, as torch.nn.GELU() defaults to: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
 *
 * On the wasm backend tf.erf is a scalar loop (~10 ns per element, as much as ten multiplies), so there
 * Phi(x) is evaluated as sigmoid(h(x)): with the native addon as one fused kernel (IrlensGelu, forward and
 * gradient in one pass each, native/irlens_native.cc), else as 17 vectorised tfjs ops (geluByLogit). Other
 * backends use tf.erf.
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (tf.getBackend() === 'wasm' && x.dtype === 'float32') {
    return tf.getKernel(GELU_KERNEL, 'wasm') ? (tf.engine().runKernel(GELU_KERNEL, { x }) as tf.Tensor) : geluByLogit(x);
  }
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)));
}

/** The native fused GELU kernel and its gradient kernel (registered by registerNativeKernels). */
export const GELU_KERNEL = 'IrlensGelu';
export const GELU_GRAD_KERNEL = 'IrlensGeluGrad';
/** The native gated GELU, gelu(x[..., :h]) * x[..., h:], and its gradient kernel. */
export const GATED_GELU_KERNEL = 'IrlensGatedGelu';
export const GATED_GELU_GRAD_KERNEL = 'IrlensGatedGeluGrad';

/**
 * Restormer's gate (GDFN: x1, x2 = x.chunk(2, dim=1); F.gelu(x1) * x2) over the last axis: gelu(x[..., :h]) *
 * x[..., h:], [..., h]. With the native addon one kernel reads both halves in place (the same bits as gelu then
 * a multiply, without the split's copies or the multiply's saved operands); elsewhere that composition.
 */
export function gatedGelu(x: tf.Tensor): tf.Tensor {
  const channels = x.shape[x.rank - 1];
  if (channels % 2 !== 0) throw new Error(`gatedGelu: the last axis must split into two halves, got [${x.shape}]`);
  if (tf.getBackend() === 'wasm' && x.dtype === 'float32' && tf.getKernel(GATED_GELU_KERNEL, 'wasm')) {
    return tf.engine().runKernel(GATED_GELU_KERNEL, { x }) as tf.Tensor;
  }
  return tf.tidy(() => {
    const [gate, value] = tf.split(x, 2, -1);
    return tf.mul(gelu(gate), value);
  });
}

/**
 * h(x) = x * sum_k GELU_LOGIT[k] x^(2k) approximates logit(Phi(x)) (odd, like the logit of Phi), so that
 * Phi(x) = sigmoid(h(x)). Fitted by Lawson-weighted least squares on |x| <= 5.5 (errors weighted by
 * Phi (1 - Phi), the slope of sigmoid): max |sigmoid(h) - Phi| = 2.9e-8 in float64, 1.3e-7 evaluated in float32
 * on wasm (an erf error of 2.6e-7; tf.erf on the cpu backend is Abramowitz-Stegun 7.1.26, error 1.5e-7); the
 * derivative is within 6e-7 of Phi + x phi in float64, 1.1e-6 in float32 (test/models/gelu.test.ts). Past
 * the fitted range h keeps growing (h(5.5) = 18.2, h(7) = 81, h(10) = 1.6e4: sigmoid(-h) underflows to 0, so
 * gelu(-large) = -0), and x is clipped to +-10 only so that the powers of x stay finite. The tanh-form GELU
 * approximation is the cubic version of the same idea (h = 1.5958 x + 0.0713 x^3, ~1e-3 off); seven terms bring
 * it to float32 rounding. No npm package offers a vectorised erf for tfjs, hence the hand-fitted polynomial.
 */
export const GELU_LOGIT = [
  1.5957698829818832, 0.07266616880608151, -6.518947465825357e-5, -1.1061264036250809e-4, 7.92954768338806e-6,
  -2.645326771816975e-7, 3.5125584663120435e-9,
];
/** d h / d x = sum_k (2k+1) GELU_LOGIT[k] x^(2k). */
const GELU_LOGIT_SLOPE = GELU_LOGIT.map((c, k) => (2 * k + 1) * c);
const GELU_CLIP = 10;

/** c[0] + c[1] u + ... by Horner, disposing each partial sum (only called where no tape records). */
function polynomial(u: tf.Tensor, c: number[]): tf.Tensor {
  let r = tf.mul(u, c[c.length - 1]);
  for (let k = c.length - 2; k >= 0; k--) {
    const sum = tf.add(r, c[k]);
    r.dispose();
    if (k === 0) return sum;
    r = tf.mul(sum, u);
    sum.dispose();
  }
  return r;
}

/**
 * GELU as x * sigmoid(h(x)): 17 vectorised elementwise ops, ~1.5x faster than the erf form on wasm (measured,
 * [1, 128, 128, 360]: 54 -> 39 ms). A custom gradient (d/dx = s + x s (1 - s) h'(x), s = sigmoid(h)) lets
 * the forward free its temporaries at once instead of keeping 17 full-size tensors for the tape.
 */
const geluByLogit = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  const save = args[1] as tf.GradSaveFunc;
  const xc = tf.clipByValue(x, -GELU_CLIP, GELU_CLIP);
  const u = tf.square(xc);
  const s = polynomial(u, GELU_LOGIT);
  const h = tf.mul(xc, s);
  const sig = tf.sigmoid(h);
  const value = tf.mul(x, sig);
  save([x]);
  tf.dispose([xc, u, s, h, sig]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, [saved]: tf.Tensor[]) =>
      tf.tidy(() => {
        const c = tf.clipByValue(saved, -GELU_CLIP, GELU_CLIP);
        const u2 = tf.square(c);
        const sig = tf.sigmoid(tf.mul(c, polynomial(u2, GELU_LOGIT)));
        // |x| >= 10: s (1 - s) is 0 in float32, so the clipped x leaves the slope exact (1 or 0).
        const slope = tf.add(sig, tf.mul(tf.mul(c, tf.mul(sig, tf.sub(1, sig))), polynomial(u2, GELU_LOGIT_SLOPE)));
        return tf.mul(dy, slope);
      }),
  };
}) as (x: tf.Tensor) => tf.Tensor;
