import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_IMAGE_SIZE, BUILTIN_IMAGES, builtinImages, loadBuiltinImages, packageDataDir } from '../../src/io/builtin';
import { imageToTensor } from '../../src/io/image';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('built-in image set', () => {
  it('lists 8-12 images, sorted, resolved in the package data/ folder, all documented', () => {
    const list = builtinImages();
    expect(list.length).toBeGreaterThanOrEqual(8);
    expect(list.length).toBeLessThanOrEqual(12);
    const names = list.map((e) => e.name);
    expect(names).toEqual([...names].sort());
    expect(packageDataDir()).toBe(path.resolve(__dirname, '..', '..', 'data'));
    const sources = fs.readFileSync(path.join(packageDataDir(), 'SOURCES.md'), 'utf8');
    let total = 0;
    for (const { name, path: file } of list) {
      expect(fs.existsSync(file)).toBe(true);
      expect(sources).toContain(`\`${name}.png\``);
      total += fs.statSync(file).size;
    }
    expect(total).toBeLessThan(2 * 1024 * 1024);
  });

  it('loads every image at the documented 256x256 size and channel count', async () => {
    const loaded = await loadBuiltinImages();
    expect(loaded.map((e) => e.name)).toEqual(BUILTIN_IMAGES.map((e) => e.name));
    loaded.forEach(({ name, image }, i) => {
      expect([image.height, image.width], name).toEqual([BUILTIN_IMAGE_SIZE, BUILTIN_IMAGE_SIZE]);
      expect(image.channels, name).toBe(BUILTIN_IMAGES[i].channels);
      let min = Infinity;
      let max = -Infinity;
      for (const v of image.data) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      expect(min).toBeGreaterThanOrEqual(0);
      expect(max).toBeLessThanOrEqual(1);
      expect(max - min, `${name} is not blank`).toBeGreaterThan(0.2);
    });
  });

  it('channels: 3 and size give one stackable batch; names select a subset', async () => {
    const loaded = await loadBuiltinImages({ channels: 3, size: 64 });
    for (const { image } of loaded) expect([image.height, image.width, image.channels]).toEqual([64, 64, 3]);
    const before = tf.memory().numTensors;
    const batch = imageToTensor(loaded.map((e) => e.image));
    expect(batch.shape).toEqual([loaded.length, 64, 64, 3]);
    batch.dispose();
    expect(tf.memory().numTensors).toBe(before);
    const two = await loadBuiltinImages({ names: ['rocket', 'camera'], channels: 1 });
    expect(two.map((e) => [e.name, e.image.channels])).toEqual([['rocket', 1], ['camera', 1]]);
    await expect(loadBuiltinImages({ names: ['lena'] })).rejects.toThrow(/unknown image 'lena'/);
  });
});
