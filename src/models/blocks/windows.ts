/**
 * Window attention plumbing shared by SwinIR (square windows) and EDT (6x24 / 24x6 crossed windows), NHWC.
 * Window order matches the official window_partition: windows row-major over the (H/wh, W/ww) grid, pixels
 * row-major inside a window.
 */
import * as tf from '@tensorflow/tfjs';

/** [B,H,W,C] -> [B*nW, wh*ww, C]. */
export function windowPartition(x: tf.Tensor4D, wh: number, ww: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const t = tf.reshape(x, [b, h / wh, wh, w / ww, ww, c]);
    return tf.reshape(tf.transpose(t, [0, 1, 3, 2, 4, 5]), [-1, wh * ww, c]);
  });
}

/** [B*nW, wh*ww, C] -> [B,H,W,C]; the inverse of windowPartition. */
export function windowReverse(windows: tf.Tensor, wh: number, ww: number, h: number, w: number): tf.Tensor4D {
  return tf.tidy(() => {
    const c = windows.shape[windows.shape.length - 1];
    const t = tf.reshape(windows, [-1, h / wh, w / ww, wh, ww, c]);
    return tf.reshape(tf.transpose(t, [0, 1, 3, 2, 4, 5]), [-1, h, w, c]);
  });
}

/**
 * Masks of the most recent sizes only: one mask is nW*N*N floats (a 512x512 map in 8x8 windows: 64 MiB), so an
 * unbounded cache grows without limit over a dataset of varying image sizes.
 */
const MASK_CACHE_SIZE = 4;
const maskCache = new Map<string, Float32Array>();

/**
 * The shifted-window attention mask for an HxW map, windows wh x ww shifted by (sh, sw): region ids from the
 * slices [0:-w], [-w:-s], [-s:] on each axis; pairs of positions in one window with different ids get -100.
 * Returns [nW, N, N] with N = wh*ww. Recomputed for every input size (cached as plain numbers).
 */
export function shiftedWindowMask(h: number, w: number, wh: number, ww: number, sh: number, sw: number): tf.Tensor3D {
  const key = `${h},${w},${wh},${ww},${sh},${sw}`;
  let data = maskCache.get(key);
  const nWh = h / wh;
  const nWw = w / ww;
  const n = wh * ww;
  if (!data) {
    const regionOf = (i: number, size: number, win: number, shift: number) => (i < size - win ? 0 : i < size - shift ? 1 : 2);
    data = new Float32Array(nWh * nWw * n * n);
    const ids = new Int32Array(n);
    for (let a = 0; a < nWh; a++)
      for (let b = 0; b < nWw; b++) {
        for (let i = 0; i < wh; i++)
          for (let j = 0; j < ww; j++)
            ids[i * ww + j] = regionOf(a * wh + i, h, wh, sh) * 3 + regionOf(b * ww + j, w, ww, sw);
        const base = (a * nWw + b) * n * n;
        for (let p = 0; p < n; p++) for (let q = 0; q < n; q++) data[base + p * n + q] = ids[p] === ids[q] ? 0 : -100;
      }
    maskCache.set(key, data);
    if (maskCache.size > MASK_CACHE_SIZE) maskCache.delete(maskCache.keys().next().value as string);
  }
  return tf.tensor3d(data, [nWh * nWw, n, n]);
}
