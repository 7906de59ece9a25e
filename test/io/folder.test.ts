import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listImages, loadImages } from '../../src/io/folder';
import { encodePng, cropImage } from '../../src/io/image';
import type { ImageF32 } from '../../src/io/types';

let root: string;

function tinyImage(value: number): ImageF32 {
  return { data: new Float32Array(2 * 3 * 3).fill(value / 255), height: 2, width: 3, channels: 3 };
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-folder-'));
  // Nested dirs, mixed-case extensions, names whose byte order differs from locale order, non-images, hidden files.
  const files: [string, number][] = [
    ['b.png', 1],
    ['a.PNG', 2],
    ['a/z.jpg', 3],
    ['a/B.Tif', 4],
    ['A.jpeg', 5],
    ['_x.webp', 6],
    ['a/deep/er/c.TIFF', 7],
    ['ä.png', 8],
    ['10.png', 9],
    ['9.png', 10],
  ];
  for (const [rel, value] of files) {
    const file = path.join(root, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, await encodePng(tinyImage(value))); // content is PNG whatever the extension: sharp sniffs
  }
  fs.writeFileSync(path.join(root, 'notes.txt'), 'not an image');
  fs.writeFileSync(path.join(root, 'a', 'data.npy'), 'x');
  fs.writeFileSync(path.join(root, '._hidden.png'), 'AppleDouble junk');
  fs.mkdirSync(path.join(root, '.cache'));
  fs.writeFileSync(path.join(root, '.cache', 'x.png'), 'junk');
  fs.mkdirSync(path.join(root, 'empty'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('listImages', () => {
  it('lists recursively in byte order of the relative path, extensions case-insensitive', () => {
    const rel = listImages(root).map((f) => path.relative(root, f).split(path.sep).join('/'));
    // Byte order: digits < upper case < '_' < lower case < non-ASCII; 'a.PNG' < 'a/...' because '.' < '/'.
    expect(rel).toEqual([
      '10.png',
      '9.png',
      'A.jpeg',
      '_x.webp',
      'a.PNG',
      'a/B.Tif',
      'a/deep/er/c.TIFF',
      'a/z.jpg',
      'b.png',
      'ä.png',
    ]);
  });

  it('non-recursive mode stays at the top level', () => {
    const rel = listImages(root, { recursive: false }).map((f) => path.basename(f));
    expect(rel).toEqual(['10.png', '9.png', 'A.jpeg', '_x.webp', 'a.PNG', 'b.png', 'ä.png']);
  });

  it('is deterministic and returns paths under dir', () => {
    expect(listImages(root)).toEqual(listImages(root));
    for (const f of listImages(root)) expect(f.startsWith(root)).toBe(true);
  });

  it('fails with one line when the folder is missing, a file, or holds no images', () => {
    expect(() => listImages(path.join(root, 'missing'))).toThrow(/^image folder '.*missing': does not exist$/);
    expect(() => listImages(path.join(root, 'b.png'))).toThrow(/not a directory/);
    expect(() => listImages(path.join(root, 'empty'))).toThrow(/^image folder '.*empty': no images found.*\.png .*\.webp files\)$/);
  });
});

describe('loadImages', () => {
  it('yields batches in file order with a remainder batch', async () => {
    const files = listImages(root);
    const seen: string[] = [];
    const sizes: number[] = [];
    for await (const batch of loadImages(files, { batchSize: 4 })) {
      expect(batch.start).toBe(seen.length);
      sizes.push(batch.images.length);
      seen.push(...batch.files);
      for (const img of batch.images) expect([img.height, img.width, img.channels]).toEqual([2, 3, 3]);
    }
    expect(seen).toEqual(files);
    expect(sizes).toEqual([4, 4, 2]);
  });

  it('applies channels and transform, and decodes the right content per file', async () => {
    const files = ['b.png', 'a.PNG'].map((f) => path.join(root, f));
    const out: ImageF32[] = [];
    for await (const batch of loadImages(files, { channels: 1, transform: (img) => cropImage(img, 0, 0, 1, 2) })) {
      out.push(...batch.images);
    }
    expect(out.map((img) => [img.height, img.width, img.channels])).toEqual([[1, 2, 1], [1, 2, 1]]);
    expect(Math.round(out[0].data[0] * 255)).toBe(1);
    expect(Math.round(out[1].data[0] * 255)).toBe(2);
  });

  it('reports a bad file with its name, and stopping early leaves no unhandled rejection', async () => {
    const bad = path.join(root, 'notes.txt');
    const files = [path.join(root, 'b.png'), bad];
    const it1 = loadImages(files, { batchSize: 1 });
    const first = await it1.next(); // the batch holding `bad` is being prefetched now
    expect(first.done).toBe(false);
    await expect(it1.next()).rejects.toThrow(/^image '.*notes\.txt': /);
    // stop right after the first batch while the second (failing) one is in flight
    for await (const batch of loadImages(files, { batchSize: 1 })) {
      expect(batch.files).toEqual([files[0]]);
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  });

  it('rejects a bad batch size', async () => {
    await expect(loadImages([], { batchSize: 0 }).next()).rejects.toThrow(/batchSize/);
    expect((await loadImages([]).next()).done).toBe(true);
  });
});
