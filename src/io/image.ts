/**
 * Image files <-> ImageF32 (HWC float32 in [0,1]) <-> NHWC tensors, on top of sharp (libvips).
 *
 * Reading returns the pixel values as stored, like OpenCV's IMREAD_UNCHANGED / PIL (the conventions of BasicSR
 * and the restoration papers): embedded ICC profiles are ignored (sharp would otherwise convert to sRGB, or to
 * Display P3 for 16-bit input, and change the values a PSNR is computed on), EXIF orientation is NOT applied,
 * alpha is dropped, multi-page TIFFs give their first page. CMYK JPEG/TIFF are converted to sRGB by libvips.
 * 8-bit samples are divided by 255 and 16-bit samples by 65535, so 16-bit PNG/TIFF keep their precision.
 */
import * as fs from 'node:fs';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import type { ImageF32 } from './types';
import { writeFileAtomicAsync } from '../util/fs';
import { imageDecodeBytes, requireMemory } from '../util/memory';

export type Channels = 1 | 3;

/** Resampling kernels of sharp's resize; see resizeImage. */
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';

export interface ReadImageOptions {
  /**
   * Force the channel count. Default: 1 for gray files, 3 otherwise. 3 on a gray file repeats the gray plane;
   * 1 on a colour file gives the ITU-R BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B of the stored (gamma-encoded)
   * values, the weights of PIL's convert('L') and OpenCV's RGB2GRAY, kept in float (not rounded to 8 bits).
   */
  channels?: Channels;
}

export interface WritePngOptions {
  /** 8 (default) or 16 bits per sample. */
  bitDepth?: 8 | 16;
}

const SUPPORTED_FORMATS = new Set(['png', 'jpeg', 'tiff', 'webp']);
const EXPECTED = '(expected PNG, JPEG, TIFF or WebP)';

// failOn 'warning' (sharp's default, stated here on purpose): truncated or damaged files raise instead of decoding
// to a partly grey image that would silently poison a dataset.
const SHARP_INPUT: sharp.SharpOptions = { ignoreIcc: true, failOn: 'warning', autoOrient: false };

function imageError(file: string, reason: string): Error {
  return new Error(`image '${file}': ${reason} ${EXPECTED}`);
}

function firstLine(message: string): string {
  return message.split('\n')[0].trim();
}

async function readFileForImage(file: string): Promise<Buffer> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw imageError(file, err.code === 'ENOENT' ? 'file does not exist' : firstLine(err.message));
  }
  if (!st.isFile()) throw imageError(file, 'not a regular file');
  try {
    return await fs.promises.readFile(file);
  } catch (e) {
    throw imageError(file, firstLine((e as Error).message));
  }
}

/** Reads a PNG, JPEG, TIFF or WebP file (8- or 16-bit) into an ImageF32. */
export async function readImage(file: string, options: ReadImageOptions = {}): Promise<ImageF32> {
  const { channels } = options;
  if (channels !== undefined && channels !== 1 && channels !== 3) {
    throw new Error(`readImage: option channels must be 1 or 3, got ${String(channels)}`);
  }
  const bytes = await readFileForImage(file);
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, SHARP_INPUT).metadata();
  } catch (e) {
    throw imageError(file, firstLine((e as Error).message));
  }
  if (!meta.format || !SUPPORTED_FORMATS.has(meta.format)) {
    throw imageError(file, `unsupported format '${meta.format ?? 'unknown'}'`);
  }
  if (meta.depth !== 'uchar' && meta.depth !== 'ushort') {
    throw imageError(file, `unsupported sample format '${meta.depth ?? 'unknown'}' (8- or 16-bit unsigned only)`);
  }
  const is16 = meta.depth === 'ushort';
  // The header decides the decode size: check it before libvips allocates (sharp's own pixel limit is far larger).
  if (!(meta.width && meta.height)) throw imageError(file, 'header has no image size');
  requireMemory(
    imageDecodeBytes(meta.width, meta.height, meta.channels ?? 3),
    `image '${file}' (${meta.width}x${meta.height}, ${meta.channels ?? 3} channels, decoded to float32)`,
    'crop or downscale it, or raise the limit with IRLENS_MAX_MEMORY (e.g. 16G)',
  );
  const colourBands = (meta.channels ?? 3) - (meta.hasAlpha ? 1 : 0);
  const isGray = colourBands === 1;
  const colourspace = isGray ? (is16 ? 'grey16' : 'b-w') : is16 ? 'rgb16' : 'srgb';

  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    raw = await sharp(bytes, SHARP_INPUT)
      .removeAlpha()
      .toColourspace(colourspace)
      .raw({ depth: is16 ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw imageError(file, firstLine((e as Error).message));
  }
  const { width, height, channels: decodedChannels } = raw.info;
  if (decodedChannels !== 1 && decodedChannels !== 3) {
    throw imageError(file, `decoded to ${decodedChannels} channels`);
  }
  const samples = is16
    ? new Uint16Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength / 2)
    : new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength);
  const scale = is16 ? 65535 : 255;
  const data = new Float32Array(samples.length);
  // Division (not multiplication by 1/scale) gives the correctly rounded float32, identical to NumPy's x / 255.
  for (let i = 0; i < samples.length; i++) data[i] = samples[i] / scale;
  return convertChannels({ data, height, width, channels: decodedChannels }, channels ?? decodedChannels);
}

/** Throws unless `img` is a well-formed ImageF32; `what` names the argument in the message. */
export function assertImage(img: ImageF32, what = 'image'): void {
  const { data, height, width, channels } = img;
  if (!(data instanceof Float32Array)) throw new Error(`${what}: data must be a Float32Array`);
  if (channels !== 1 && channels !== 3) throw new Error(`${what}: channels must be 1 or 3, got ${channels}`);
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) {
    throw new Error(`${what}: height and width must be positive integers, got ${height}x${width}`);
  }
  if (data.length !== height * width * channels) {
    throw new Error(`${what}: data has ${data.length} values, expected ${height}x${width}x${channels}`);
  }
}

/** Returns `img` with 1 or 3 channels: gray -> RGB repeats the plane, RGB -> gray uses BT.601 luma weights. */
export function convertChannels(img: ImageF32, channels: Channels): ImageF32 {
  if (img.channels === channels) return img;
  const n = img.height * img.width;
  const src = img.data;
  const data = new Float32Array(n * channels);
  if (channels === 3) {
    for (let p = 0; p < n; p++) data[3 * p] = data[3 * p + 1] = data[3 * p + 2] = src[p];
  } else {
    for (let p = 0; p < n; p++) data[p] = 0.299 * src[3 * p] + 0.587 * src[3 * p + 1] + 0.114 * src[3 * p + 2];
  }
  return { data, height: img.height, width: img.width, channels };
}

/** numpy.round: ties go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Clips to [0,1], scales and rounds exactly like BasicSR's tensor2img, (img * 255.0).round() on float32 NumPy
 * arrays: the product is rounded to float32 (Math.fround) before rounding half to even, so ties such as
 * 2.5/255 -> 2 agree with PyTorch-side outputs. NaN is an error (it would otherwise become 0 silently).
 */
function quantize(img: ImageF32, bits: 8 | 16, what: string): Uint8Array | Uint16Array {
  const max = bits === 16 ? 65535 : 255;
  const out = bits === 16 ? new Uint16Array(img.data.length) : new Uint8Array(img.data.length);
  const src = img.data;
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    if (Number.isNaN(v)) throw new Error(`${what}: image contains NaN at index ${i}`);
    out[i] = roundHalfEven(Math.fround((v < 0 ? 0 : v > 1 ? 1 : v) * max));
  }
  return out;
}

function rawInput(samples: Uint8Array | Uint16Array, img: ImageF32): sharp.Sharp {
  return sharp(samples, { raw: { width: img.width, height: img.height, channels: img.channels as 1 | 3 } });
}

function colourspaceFor(channels: number, bits: 8 | 16): string {
  if (channels === 1) return bits === 16 ? 'grey16' : 'b-w';
  return bits === 16 ? 'rgb16' : 'srgb';
}

/** Encodes `img` as PNG (values clipped to [0,1], rounded as NumPy does) without writing it. */
export async function encodePng(img: ImageF32, options: WritePngOptions = {}): Promise<Buffer> {
  const bits = options.bitDepth ?? 8;
  if (bits !== 8 && bits !== 16) throw new Error(`encodePng: option bitDepth must be 8 or 16, got ${String(bits)}`);
  assertImage(img, 'encodePng');
  const samples = quantize(img, bits, 'encodePng');
  return rawInput(samples, img).toColourspace(colourspaceFor(img.channels, bits)).png().toBuffer();
}

/** Writes `img` to `file` as an 8- or 16-bit PNG, atomically (temp file + rename). */
export async function writePng(file: string, img: ImageF32, options: WritePngOptions = {}): Promise<void> {
  let png: Buffer;
  try {
    png = await encodePng(img, options);
  } catch (e) {
    throw new Error(`writePng '${file}': ${(e as Error).message}`);
  }
  await writeFileAtomicAsync(file, png);
}

/** Stacks images of one size and channel count into an NHWC float32 tensor (the caller disposes it). */
export function imageToTensor(images: ImageF32 | ImageF32[]): tf.Tensor4D {
  const list = Array.isArray(images) ? images : [images];
  if (list.length === 0) throw new Error('imageToTensor: got an empty list of images');
  const { height, width, channels } = list[0];
  list.forEach((img, i) => {
    assertImage(img, `imageToTensor: image ${i}`);
    if (img.height !== height || img.width !== width || img.channels !== channels) {
      throw new Error(
        `imageToTensor: image ${i} is ${img.height}x${img.width}x${img.channels}, ` +
          `expected ${height}x${width}x${channels} like image 0`,
      );
    }
  });
  const size = height * width * channels;
  // Always a fresh buffer: some backends keep the array they are given, which must not alias the caller's image.
  const data = new Float32Array(size * list.length);
  list.forEach((img, i) => data.set(img.data, i * size));
  return tf.tensor4d(data, [list.length, height, width, channels], 'float32');
}

/** Splits an NHWC (or HWC) tensor with 1 or 3 channels into images; the tensor is not disposed. */
export function tensorToImages(t: tf.Tensor4D | tf.Tensor3D): ImageF32[] {
  if (t.rank !== 3 && t.rank !== 4) throw new Error(`tensorToImages: expected a rank 3 or 4 tensor, got rank ${t.rank}`);
  const shape = t.shape as number[];
  const [n, height, width, channels] = t.rank === 4 ? shape : [1, ...shape];
  if (channels !== 1 && channels !== 3) {
    throw new Error(`tensorToImages: expected 1 or 3 channels (NHWC), got shape [${t.shape.join(', ')}]`);
  }
  const values = t.dtype === 'float32' ? (t.dataSync() as Float32Array) : tf.tidy(() => tf.cast(t, 'float32').dataSync() as Float32Array);
  const size = height * width * channels;
  const images: ImageF32[] = [];
  // slice() copies: the backend may hand out its own storage.
  for (let i = 0; i < n; i++) images.push({ data: values.slice(i * size, (i + 1) * size), height, width, channels });
  return images;
}

/** Copies the `height` x `width` window whose top-left corner is (top, left). */
export function cropImage(img: ImageF32, top: number, left: number, height: number, width: number): ImageF32 {
  assertImage(img, 'cropImage');
  if (
    ![top, left, height, width].every(Number.isInteger) ||
    top < 0 || left < 0 || height <= 0 || width <= 0 ||
    top + height > img.height || left + width > img.width
  ) {
    throw new Error(
      `cropImage: window ${height}x${width} at (${top}, ${left}) does not fit in a ${img.height}x${img.width} image`,
    );
  }
  const c = img.channels;
  const data = new Float32Array(height * width * c);
  for (let y = 0; y < height; y++) {
    const start = ((top + y) * img.width + left) * c;
    data.set(img.data.subarray(start, start + width * c), y * width * c);
  }
  return { data, height, width, channels: c };
}

/** Central `height` x `width` window; odd margins put the extra pixel at the bottom/right (offset = floor). */
export function centerCrop(img: ImageF32, height: number, width: number = height): ImageF32 {
  if (height > img.height || width > img.width) {
    throw new Error(`centerCrop: ${height}x${width} is larger than the ${img.height}x${img.width} image`);
  }
  return cropImage(img, Math.floor((img.height - height) / 2), Math.floor((img.width - width) / 2), height, width);
}

/** Largest centred square. */
export function centerCropSquare(img: ImageF32): ImageF32 {
  const side = Math.min(img.height, img.width);
  return centerCrop(img, side, side);
}

/**
 * Crops height and width down to multiples of `multiple` (window sizes, downsampling depth, SR scale).
 * anchor 'top-left' (default) keeps the top-left corner, like BasicSR's mod_crop used for SR evaluation;
 * 'center' removes the remainder evenly (extra pixel bottom/right).
 */
export function cropToMultiple(img: ImageF32, multiple: number, anchor: 'top-left' | 'center' = 'top-left'): ImageF32 {
  if (!Number.isInteger(multiple) || multiple < 1) {
    throw new Error(`cropToMultiple: multiple must be a positive integer, got ${multiple}`);
  }
  const height = img.height - (img.height % multiple);
  const width = img.width - (img.width % multiple);
  if (height === 0 || width === 0) {
    throw new Error(`cropToMultiple: a ${img.height}x${img.width} image has no ${multiple}-multiple crop`);
  }
  if (height === img.height && width === img.width) return img;
  return anchor === 'center' ? centerCrop(img, height, width) : cropImage(img, 0, 0, height, width);
}

export interface ResizeOptions {
  height: number;
  width: number;
  /** sharp/libvips kernel, default 'lanczos3' (sharp's default). Not MATLAB's imresize bicubic. */
  kernel?: ResizeKernel;
}

/**
 * Resizes to exactly height x width (aspect ratio not kept) with libvips' resize (antialiased when shrinking).
 * sharp casts float input/output to the integer format of its colour interpretation, so the image goes through
 * 16-bit samples: values are clipped to [0,1]. libvips resamples 16-bit data with 12-bit fixed-point coefficients,
 * so the result is not bit-exact: measured on constant images, integer shrink factors are exact, while
 * non-integer factors drift by up to 3e-3 with lanczos3 (0.75 of an 8-bit level; 2e-3 linear, 1e-3 cubic),
 * growing with the number of taps. Fine for preparing 8-bit data; do not use it where float precision matters
 * (e.g. resampling network outputs or feature maps).
 */
export async function resizeImage(img: ImageF32, options: ResizeOptions): Promise<ImageF32> {
  const { height, width, kernel = 'lanczos3' } = options;
  assertImage(img, 'resizeImage');
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) {
    throw new Error(`resizeImage: height and width must be positive integers, got ${height}x${width}`);
  }
  const samples = quantize(img, 16, 'resizeImage');
  const { data } = await rawInput(samples, img)
    .resize(width, height, { fit: 'fill', kernel })
    .toColourspace(colourspaceFor(img.channels, 16))
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true });
  const u16 = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
  const out = new Float32Array(u16.length);
  for (let i = 0; i < u16.length; i++) out[i] = u16[i] / 65535;
  return { data: out, height, width, channels: img.channels };
}
