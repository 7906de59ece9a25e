/** Resize gradients that honour halfPixelCenters. */
import * as tf from '@tensorflow/tfjs';
import { Attrs } from './common';

/** Per output row (or column) of a resize: the two source indices and the weight of the second. */
export interface ResizeTaps {
  lo: Int32Array;
  hi: Int32Array;
  wHi: Float64Array;
}

/** The source taps of tfjs' ResizeBilinear / ResizeNearestNeighbor forward kernels, along one axis. */
export function resizeTaps(inLen: number, outLen: number, alignCorners: boolean, halfPixel: boolean, bilinear: boolean): ResizeTaps {
  const corners = alignCorners && outLen > 1;
  const ratio = (corners ? inLen - 1 : inLen) / (corners ? outLen - 1 : outLen);
  const taps: ResizeTaps = { lo: new Int32Array(outLen), hi: new Int32Array(outLen), wHi: new Float64Array(outLen) };
  for (let r = 0; r < outLen; r++) {
    if (bilinear) {
      const src = halfPixel ? ratio * (r + 0.5) - 0.5 : ratio * r;
      const lo = Math.max(0, Math.floor(src));
      taps.lo[r] = lo;
      taps.hi[r] = Math.min(inLen - 1, Math.ceil(src));
      taps.wHi[r] = src - lo; // where lo == hi (clamped edges) the two weights still sum to 1
    } else {
      const src = halfPixel ? ratio * (r + 0.5) : ratio * r;
      let near = Math.min(inLen - 1, alignCorners ? Math.round(src) : Math.floor(src));
      if (halfPixel) near = Math.max(0, near);
      taps.lo[r] = near;
      taps.hi[r] = near;
    }
  }
  return taps;
}

/**
 * Gradient of a resize: scatters dy back onto the source pixels with the forward's weights. A JS loop over
 * host copies (float64 accumulators): 4 multiply-adds per dy element, a few ms for 128x128x48, and it follows
 * the forward kernels exactly, halfPixelCenters included.
 */
export function resizeGrad(images: tf.Tensor4D, dy: tf.Tensor4D, attrs: Attrs, bilinear: boolean): tf.Tensor4D {
  const [n, h, w, c] = images.shape;
  const [, oh, ow] = dy.shape;
  const alignCorners = attrs.alignCorners === true;
  const halfPixel = attrs.halfPixelCenters === true;
  const rows = resizeTaps(h, oh, alignCorners, halfPixel, bilinear);
  const cols = resizeTaps(w, ow, alignCorners, halfPixel, bilinear);
  const g = dy.dataSync();
  const acc = new Float64Array(n * h * w * c);
  let src = 0;
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < oh; r++) {
      const top = (b * h + rows.lo[r]) * w;
      const bottom = (b * h + rows.hi[r]) * w;
      const v = rows.wHi[r];
      for (let q = 0; q < ow; q++) {
        const u = cols.wHi[q];
        const tl = (top + cols.lo[q]) * c;
        const tr = (top + cols.hi[q]) * c;
        const bl = (bottom + cols.lo[q]) * c;
        const br = (bottom + cols.hi[q]) * c;
        const wtl = (1 - v) * (1 - u);
        const wtr = (1 - v) * u;
        const wbl = v * (1 - u);
        const wbr = v * u;
        for (let k = 0; k < c; k++) {
          const gk = g[src + k];
          acc[tl + k] += wtl * gk;
          acc[tr + k] += wtr * gk;
          acc[bl + k] += wbl * gk;
          acc[br + k] += wbr * gk;
        }
        src += c;
      }
    }
  }
  return tf.tensor4d(Float32Array.from(acc), [n, h, w, c]);
}
