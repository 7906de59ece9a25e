/**
 * A decoded image in irlens's internal layout: interleaved HWC float32, values nominally in [0,1],
 * channels 3 (RGB) or 1 (gray). Batched tensors in TF.js use the same order with a leading N (NHWC).
 */
export interface ImageF32 {
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
}
