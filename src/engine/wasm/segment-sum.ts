/** UnsortedSegmentSum (the gradient of gather). */
import * as tf from '@tensorflow/tfjs';

/**
 * UnsortedSegmentSum (gradient of gather): a JS loop over the rows with float64 accumulators. The segment ids
 * must be read on the host anyway, the tables it serves (relative position biases) are small, and summing in
 * float64 in index order reproduces the cpu kernel bit for bit.
 */
export function unsortedSegmentSum(x: tf.Tensor, segmentIds: tf.Tensor, numSegments: number): tf.Tensor {
  const ids = segmentIds.dataSync();
  const inner = segmentIds.size === 0 ? 0 : x.size / segmentIds.size;
  const values = x.dataSync();
  const acc = new Float64Array(numSegments * inner);
  for (let r = 0; r < ids.length; r++) {
    const s = ids[r];
    if (s < 0 || s >= numSegments) continue; // TF drops out-of-range ids
    const src = r * inner;
    const dst = s * inner;
    for (let k = 0; k < inner; k++) acc[dst + k] += values[src + k];
  }
  const shape = [numSegments, ...x.shape.slice(segmentIds.rank)];
  return x.dtype === 'int32'
    ? tf.tensor(Int32Array.from(acc), shape, 'int32')
    : tf.tensor(Float32Array.from(acc), shape, 'float32');
}
