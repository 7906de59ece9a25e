/**
 * Non-finite values in a forward pass. The wasm backend's clipByValue turns NaN into 0, so a restore() whose
 * forward overflowed would silently give a plausible image; restoreFinite runs it with a cheap check on every
 * hook point and names the first one (in forward completion order) whose output holds NaN or Infinity.
 */
import * as tf from '@tensorflow/tfjs';
import type { RestorationModel } from '../models/model';
import { runWithHooks } from '../models/hooks';

/** Thrown when a forward produced NaN/Infinity; `point` is the first hook point that did. */
export class NonFiniteForwardError extends Error {
  constructor(
    message: string,
    readonly point: string,
  ) {
    super(message);
    this.name = 'NonFiniteForwardError';
  }
}

/**
 * model.restore(x, task), refusing a non-finite forward: throws NonFiniteForwardError naming the first hook point
 * whose output was not finite (`label` starts the message). Costs one multiply-and-sum per hook point output:
 * sum(t * 0) is NaN exactly when t holds a NaN or an Infinity (no overflow from large finite values).
 */
export function restoreFinite(model: RestorationModel, x: tf.Tensor4D, task?: string, label = 'forward'): tf.Tensor4D {
  const flags: { name: string; flag: tf.Scalar }[] = [];
  const check = (t: tf.Tensor, info: { name: string }) => {
    if (t.dtype === 'float32') flags.push({ name: info.name, flag: tf.keep(tf.sum(tf.mul(t, 0))) });
  };
  const y = runWithHooks(model, { '**': check }, () => model.restore(x, task));
  try {
    const values = flags.length ? tf.tidy(() => tf.stack(flags.map((f) => f.flag)).dataSync() as Float32Array) : new Float32Array(0);
    const first = values.findIndex((v) => Number.isNaN(v));
    if (first >= 0) {
      y.dispose();
      const point = flags[first].name;
      throw new NonFiniteForwardError(
        `${label}: the forward produced NaN/Infinity, first at hook point '${point}' (the input and weights were finite: ` +
          'check the input value range and the weights)',
        point,
      );
    }
    return y;
  } finally {
    tf.dispose(flags.map((f) => f.flag));
  }
}
