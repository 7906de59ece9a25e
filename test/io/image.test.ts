import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  centerCrop,
  convertChannels,
  cropToMultiple,
  encodePng,
  imageToTensor,
  readImage,
  resizeImage,
  tensorToImages,
  writePng,
} from '../../src/io/image';
import { readNpy } from '../../src/io/npy';
import type { ImageF32 } from '../../src/io/types';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'io');
let tmp: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-image-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Image whose samples are exact multiples of 1/levels, so an exact round trip is possible. */
function gridImage(height: number, width: number, channels: 1 | 3, levels: number): ImageF32 {
  const data = new Float32Array(height * width * channels);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 7919) % (levels + 1)) / levels;
  return { data, height, width, channels };
}

function expectedSamples(npyName: string, scale: number): Float32Array {
  const arr = readNpy(path.join(FIXTURES, npyName));
  return Float32Array.from(arr.data as Int32Array, (v) => v / scale);
}

describe('readImage on fixtures written by an independent PNG encoder', () => {
  it('keeps 16-bit RGB precision (values / 65535)', async () => {
    const img = await readImage(path.join(FIXTURES, 'rgb16.png'));
    expect([img.height, img.width, img.channels]).toEqual([7, 5, 3]);
    expect(img.data).toEqual(expectedSamples('rgb16_values.npy', 65535));
  });

  it('keeps 16-bit gray as one channel', async () => {
    const img = await readImage(path.join(FIXTURES, 'gray16.png'));
    expect([img.height, img.width, img.channels]).toEqual([7, 5, 1]);
    expect(img.data).toEqual(expectedSamples('gray16_values.npy', 65535));
  });

  it('drops alpha from RGBA and reads 8-bit gray', async () => {
    const rgba = await readImage(path.join(FIXTURES, 'rgba8.png'));
    expect(rgba.channels).toBe(3);
    expect(rgba.data).toEqual(expectedSamples('rgba8_values.npy', 255));
    const gray = await readImage(path.join(FIXTURES, 'gray8.png'));
    expect(gray.channels).toBe(1);
    expect(gray.data).toEqual(expectedSamples('gray8_values.npy', 255));
  });

  it('converts gray -> RGB by repetition and RGB -> gray with BT.601 weights', async () => {
    const gray = await readImage(path.join(FIXTURES, 'gray8.png'));
    const asRgb = await readImage(path.join(FIXTURES, 'gray8.png'), { channels: 3 });
    expect(asRgb.channels).toBe(3);
    for (let p = 0; p < gray.data.length; p++) {
      expect([asRgb.data[3 * p], asRgb.data[3 * p + 1], asRgb.data[3 * p + 2]]).toEqual(Array(3).fill(gray.data[p]));
    }
    const rgb = await readImage(path.join(FIXTURES, 'rgba8.png'));
    const luma = await readImage(path.join(FIXTURES, 'rgba8.png'), { channels: 1 });
    expect(luma.channels).toBe(1);
    for (let p = 0; p < luma.data.length; p++) {
      const y = 0.299 * rgb.data[3 * p] + 0.587 * rgb.data[3 * p + 1] + 0.114 * rgb.data[3 * p + 2];
      expect(luma.data[p]).toBeCloseTo(y, 6);
    }
  });
});

describe('writePng / readImage round trips', () => {
  it('8-bit RGB and gray are exact', async () => {
    for (const channels of [3, 1] as const) {
      const img = gridImage(9, 13, channels, 255);
      const file = path.join(tmp, `rt8_${channels}.png`);
      await writePng(file, img);
      const back = await readImage(file);
      expect(back.channels).toBe(channels);
      expect(back.data).toEqual(img.data);
    }
  });

  it('16-bit RGB and gray are exact', async () => {
    for (const channels of [3, 1] as const) {
      const img = gridImage(6, 11, channels, 65535);
      const file = path.join(tmp, `rt16_${channels}.png`);
      await writePng(file, img, { bitDepth: 16 });
      expect((await sharp(file).metadata()).depth).toBe('ushort');
      const back = await readImage(file);
      expect(back.data).toEqual(img.data);
    }
  });

  it('clips to [0,1], rounds like numpy float32 (ties to even), leaves no temp file and rejects NaN', async () => {
    const values = [-0.5, 1.5, 0.5 / 255, 1.5 / 255, 2.5 / 255, 3.5 / 255, 0.5];
    const img: ImageF32 = { data: Float32Array.from(values), height: 1, width: values.length, channels: 1 };
    const file = path.join(tmp, 'clip.png');
    await writePng(file, img);
    const back = await readImage(file);
    // numpy: (np.float32([...]) * 255.0).round() -> 0, 255(clipped), 0, 2, 2, 4, 128
    expect(Array.from(back.data, (v) => Math.round(v * 255))).toEqual([0, 255, 0, 2, 2, 4, 128]);
    expect(fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const nan: ImageF32 = { data: Float32Array.from([0, NaN]), height: 1, width: 2, channels: 1 };
    await expect(writePng(path.join(tmp, 'nan.png'), nan)).rejects.toThrow(/NaN/);
  });

  it('reads JPEG, TIFF (16-bit) and WebP', async () => {
    const img = gridImage(16, 16, 3, 255);
    const png = await encodePng(img);
    const jpg = path.join(tmp, 'a.jpg');
    await sharp(png).jpeg({ quality: 95 }).toFile(jpg);
    const fromJpg = await readImage(jpg);
    expect([fromJpg.height, fromJpg.width, fromJpg.channels]).toEqual([16, 16, 3]);
    const webp = path.join(tmp, 'a.webp');
    await sharp(png).webp({ lossless: true }).toFile(webp);
    expect((await readImage(webp)).data).toEqual(img.data);
    // sharp cannot write 16-bit TIFF: the fixtures come from tifffile (little- and big-endian).
    const rgb16 = expectedSamples('rgb16_values.npy', 65535);
    expect((await readImage(path.join(FIXTURES, 'rgb16.tif'))).data).toEqual(rgb16);
    const gray16 = await readImage(path.join(FIXTURES, 'gray16_be.tif'));
    expect(gray16.channels).toBe(1);
    expect(gray16.data).toEqual(expectedSamples('gray16_values.npy', 65535));
  });
});

describe('readImage errors are one line naming the file', () => {
  const pattern = (file: string) => new RegExp(`^image '${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}': .* \\(expected PNG, JPEG, TIFF or WebP\\)$`);

  it('missing file', async () => {
    const file = path.join(tmp, 'missing.png');
    await expect(readImage(file)).rejects.toThrow(pattern(file));
    await expect(readImage(file)).rejects.toThrow(/does not exist/);
  });

  it('garbage bytes in a .png', async () => {
    const file = path.join(tmp, 'garbage.png');
    fs.writeFileSync(file, Buffer.from('this is not an image at all, just bytes'));
    await expect(readImage(file)).rejects.toThrow(pattern(file));
  });

  it('truncated PNG', async () => {
    const file = path.join(tmp, 'truncated.png');
    const png = fs.readFileSync(path.join(FIXTURES, 'rgb16.png'));
    fs.writeFileSync(file, png.subarray(0, png.length - 30));
    await expect(readImage(file)).rejects.toThrow(pattern(file));
  });

  it('unsupported format (GIF) and directories', async () => {
    const file = path.join(tmp, 'x.gif');
    await sharp({ create: { width: 2, height: 2, channels: 3, background: '#808080' } }).gif().toFile(file);
    await expect(readImage(file)).rejects.toThrow(/unsupported format 'gif'/);
    await expect(readImage(tmp)).rejects.toThrow(/not a regular file/);
  });
});

describe('tensor conversion', () => {
  it('imageToTensor / tensorToImages round trip values and shapes', () => {
    const a = gridImage(4, 5, 3, 255);
    const b = gridImage(4, 5, 3, 17);
    const t = imageToTensor([a, b]);
    expect(t.shape).toEqual([2, 4, 5, 3]);
    const [a2, b2] = tensorToImages(t);
    expect(a2.data).toEqual(a.data);
    expect(b2.data).toEqual(b.data);
    t.dispose();
    const single = imageToTensor(a);
    expect(single.shape).toEqual([1, 4, 5, 3]);
    const hwc = single.squeeze([0]) as tf.Tensor3D;
    expect(tensorToImages(hwc)[0].data).toEqual(a.data);
    tf.dispose([single, hwc]);
  });

  it('does not alias the caller image and rejects mixed sizes', () => {
    const a = gridImage(2, 2, 1, 255);
    const t = imageToTensor(a);
    a.data[0] = 42;
    expect(t.dataSync()[0]).not.toBe(42);
    t.dispose();
    expect(() => imageToTensor([gridImage(2, 2, 1, 3), gridImage(2, 3, 1, 3)])).toThrow(/image 1 is 2x3x1/);
  });

  it('keeps tf.memory().numTensors flat', () => {
    const imgs = [gridImage(8, 8, 3, 255), gridImage(8, 8, 3, 255)];
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      const t = imageToTensor(imgs);
      tensorToImages(t);
      const i32 = tf.cast(t, 'int32') as tf.Tensor4D;
      tensorToImages(i32); // non-float input takes the cast path
      tf.dispose([t, i32]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('crop and resize helpers', () => {
  const ramp: ImageF32 = { data: Float32Array.from({ length: 5 * 7 }, (_, i) => i), height: 5, width: 7, channels: 1 };

  it('centerCrop takes the floor offset', () => {
    const c = centerCrop(ramp, 2, 4);
    // offsets floor(3/2)=1 row, floor(3/2)=1 column
    expect(Array.from(c.data)).toEqual([8, 9, 10, 11, 15, 16, 17, 18]);
    expect(() => centerCrop(ramp, 6, 2)).toThrow(/larger/);
  });

  it('cropToMultiple keeps the top-left corner by default', () => {
    const c = cropToMultiple(ramp, 4);
    expect([c.height, c.width]).toEqual([4, 4]);
    expect(Array.from(c.data.subarray(0, 4))).toEqual([0, 1, 2, 3]);
    const centred = cropToMultiple(ramp, 2, 'center');
    expect([centred.height, centred.width]).toEqual([4, 6]);
    expect(cropToMultiple(ramp, 1)).toBe(ramp);
  });

  it('resizeImage gives the requested size and keeps constants within its documented accuracy', async () => {
    const flat: ImageF32 = { data: new Float32Array(12 * 14 * 3).fill(0.25), height: 12, width: 14, channels: 3 };
    for (const kernel of ['lanczos3', 'cubic', 'linear', 'nearest'] as const) {
      const half = await resizeImage(flat, { height: 6, width: 7, kernel }); // integer factor: exact
      expect([half.height, half.width, half.channels]).toEqual([6, 7, 3]);
      for (const v of half.data) expect(Math.abs(v - 0.25)).toBeLessThan(1 / 65535);
      const odd = await resizeImage(flat, { height: 5, width: 9, kernel }); // non-integer factor
      for (const v of odd.data) expect(Math.abs(v - 0.25)).toBeLessThan(3e-3);
    }
    const gray = convertChannels(flat, 1);
    const up = await resizeImage(gray, { height: 24, width: 28 });
    expect([up.height, up.width, up.channels]).toEqual([24, 28, 1]);
  });
});
