/** Small helpers shared by the degradations: input checks, allocation, clipping, 8-bit quantisation. */
import type { ImageF32 } from '../io/types';

/** Throws a one-line error unless `img` is a well-formed HWC float32 image with 1 or 3 channels. */
export function checkImage(img: ImageF32, where: string): void {
  const { data, height, width, channels } = img;
  if (!(data instanceof Float32Array)) throw new Error(`${where}: image.data must be a Float32Array`);
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new Error(`${where}: image height/width must be positive integers, got ${height}x${width}`);
  }
  if (channels !== 1 && channels !== 3) throw new Error(`${where}: image channels must be 1 or 3, got ${channels}`);
  if (data.length !== height * width * channels) {
    throw new Error(`${where}: image.data has ${data.length} values, expected ${height}x${width}x${channels}`);
  }
}

export function emptyLike(img: ImageF32, height = img.height, width = img.width): ImageF32 {
  return { data: new Float32Array(height * width * img.channels), height, width, channels: img.channels };
}

/** Clips every value to [0,1] in place and returns the image. */
export function clip01InPlace(img: ImageF32): ImageF32 {
  const d = img.data;
  for (let i = 0; i < d.length; i++) d[i] = d[i] < 0 ? 0 : d[i] > 1 ? 1 : d[i];
  return img;
}

/**
 * Rounds to the 256 levels of an 8-bit PNG in place (clip to [0,1], round(x*255)/255), i.e. what saving and
 * re-reading the image would do. Math.round rounds .5 up, like MATLAB's uint8 cast of non-negative values.
 */
export function quantize8InPlace(img: ImageF32): ImageF32 {
  const d = img.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i] < 0 ? 0 : d[i] > 1 ? 1 : d[i];
    d[i] = Math.round(v * 255) / 255;
  }
  return img;
}

/** Converts to 8-bit bytes (clip, round) for codecs. */
export function toUint8(img: ImageF32): Uint8Array {
  const d = img.data;
  const out = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i++) {
    const v = d[i] < 0 ? 0 : d[i] > 1 ? 1 : d[i];
    out[i] = Math.round(v * 255);
  }
  return out;
}

export function checkPositiveInt(value: number, name: string, where: string): void {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${where}: ${name} must be a positive integer, got ${value}`);
}
