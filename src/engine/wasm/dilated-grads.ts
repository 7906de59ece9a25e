/** Gradients of dilated conv2d / depthwiseConv2d (refused by tfjs-core on every backend). */
import * as tf from '@tensorflow/tfjs';
import { Attrs, Shape4, isNCHW, nchwUnsupported, pair } from './common';

/** [kh,kw,a,b] -> [(kh-1)d+1, (kw-1)d+1, a, b] with d-1 zeros between taps. */
export function dilateFilter(f: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  const [kh, kw, a, b] = f.shape;
  const spread = tf.pad(f.reshape([kh, 1, kw, 1, a, b]), [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]]);
  return tf.slice(spread.reshape([kh * dh, kw * dw, a, b]) as tf.Tensor4D, [0, 0, 0, 0], dilatedShape(f, [dh, dw]));
}

export function dilatedShape(f: tf.Tensor4D, [dh, dw]: [number, number]): Shape4 {
  const [kh, kw, a, b] = f.shape;
  return [(kh - 1) * dh + 1, (kw - 1) * dw + 1, a, b];
}

export function undilateFilter(g: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  const [h, w, a, b] = g.shape;
  return tf.stridedSlice(g, [0, 0, 0, 0], [h, w, a, b], [dh, dw, 1, 1]) as tf.Tensor4D;
}

let dilatedGradientsRegistered = false;

/**
 * Wraps the registered gradient of `kernelName`: dilation 1 goes to it unchanged; dilation > 1 runs the
 * backprop kernels on the zero-expanded filter (dilation 1) and takes every d-th tap of the filter gradient.
 */
export function extendToDilation(kernelName: string, backprop: { input: string; filter: string }, extraAttrs: Attrs): void {
  const stock = tf.getGradient(kernelName);
  tf.registerGradient({
    ...stock,
    gradFunc: (dy, saved, attrs) => {
      const dil = pair(attrs.dilations, 'dilations');
      if (dil[0] === 1 && dil[1] === 1) return stock.gradFunc(dy, saved, attrs);
      if (isNCHW(attrs as Attrs)) nchwUnsupported(`dilated ${kernelName} gradient`);
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const g = dy as tf.Tensor4D;
      const run = (name: string, inputs: tf.NamedTensorMap, more: Attrs) =>
        tf.engine().runKernel(name, inputs, {
          strides: attrs.strides,
          pad: attrs.pad,
          dimRoundingMode: attrs.dimRoundingMode,
          ...extraAttrs,
          ...more,
        } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
      return {
        x: () => run(backprop.input, { dy: g, filter: dilateFilter(filter, dil) }, { inputShape: x.shape }),
        filter: () => undilateFilter(run(backprop.filter, { x, dy: g }, { filterShape: dilatedShape(filter, dil) }), dil),
      };
    },
  });
}

/**
 * Extends the Conv2D and DepthwiseConv2dNative gradients to dilation > 1 (tfjs-core refuses them on every
 * backend). Gradients are backend-independent, so this applies to all backends. Idempotent.
 */
export function registerDilatedConvGradients(): void {
  if (dilatedGradientsRegistered) return;
  dilatedGradientsRegistered = true;
  extendToDilation('Conv2D', { input: 'Conv2DBackpropInput', filter: 'Conv2DBackpropFilter' }, { dataFormat: 'NHWC' });
  extendToDilation(
    'DepthwiseConv2dNative',
    { input: 'DepthwiseConv2dNativeBackpropInput', filter: 'DepthwiseConv2dNativeBackpropFilter' },
    { dilations: [1, 1] },
  );
}
