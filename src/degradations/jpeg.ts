/** JPEG compression artefacts: encode with sharp (libjpeg-turbo via libvips) and decode back. */
import sharp from 'sharp';
import type { ImageF32 } from '../io/types';
import { checkImage, emptyLike, toUint8 } from './common';

export interface JpegOptions {
  /**
   * Chroma subsampling of colour images; default '4:2:0' at every quality (sharp forces it even at q >= 90, where
   * libvips' automatic mode would switch it off), as in most JPEG data. Gray images are encoded as 1-channel JPEGs.
   */
  chromaSubsampling?: '4:2:0' | '4:4:4';
}

/**
 * Round trip through a baseline JPEG at `quality` (1..100). The input is first quantised to 8 bits (clip to [0,1],
 * round), as any saved image is; gray (1-channel) images stay gray. Deterministic, uses no randomness.
 */
export async function jpegRoundTrip(img: ImageF32, quality: number, opts: JpegOptions = {}): Promise<ImageF32> {
  checkImage(img, 'jpegRoundTrip');
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new Error(`jpegRoundTrip: quality must be an integer in 1..100, got ${quality}`);
  }
  const { height, width, channels } = img;
  let encoder = sharp(Buffer.from(toUint8(img).buffer), { raw: { width, height, channels: channels as 1 | 3 } });
  // sharp would otherwise write 1-band raw input as a 3-channel sRGB JPEG; 'b-w' makes a true grayscale JPEG.
  if (channels === 1) encoder = encoder.toColourspace('b-w');
  const encoded = await encoder
    .jpeg({ quality, chromaSubsampling: opts.chromaSubsampling ?? '4:2:0', mozjpeg: false })
    .toBuffer();
  let decoder = sharp(encoded);
  if (channels === 1) decoder = decoder.toColourspace('b-w'); // sharp decodes to sRGB unless told otherwise
  const { data, info } = await decoder.raw().toBuffer({ resolveWithObject: true });
  if (info.width !== width || info.height !== height || info.channels !== channels) {
    throw new Error(`jpegRoundTrip: decoded ${info.height}x${info.width}x${info.channels}, expected ${height}x${width}x${channels}`);
  }
  const out = emptyLike(img);
  for (let i = 0; i < data.length; i++) out.data[i] = data[i] / 255;
  return out;
}
