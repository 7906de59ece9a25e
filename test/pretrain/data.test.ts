import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import type { ImageF32 } from '../../src/io/types';
import { cropImage, writePng } from '../../src/io/image';
import { Rng } from '../../src/util/rng';
import { imresize } from '../../src/degradations';
import { describeTask } from '../../src/pretrain/multitask';
import {
  builtinSource,
  fileListSource,
  flipRotate,
  ImageCache,
  PairedFolderSource,
  PatchSampler,
  SyntheticSource,
  taskForStep,
  type CleanImage,
} from '../../src/pretrain/data';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-data-'));

beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function randomImage(h: number, w: number, seed: string, c = 3): ImageF32 {
  const rng = new Rng(seed);
  const data = new Float32Array(h * w * c);
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform();
  return { data, height: h, width: w, channels: c };
}

function constantImage(h: number, w: number, value: number, c = 3): ImageF32 {
  return { data: new Float32Array(h * w * c).fill(value), height: h, width: w, channels: c };
}

const clean = (images: ImageF32[]): CleanImage[] => images.map((img, i) => ({ name: `img${i}`, load: async () => img }));

describe('augmentation', () => {
  it('flips and transposes like BasicSR augment (hflip, vflip, then transpose)', () => {
    // 2x3 one-channel image [[0,1,2],[3,4,5]]
    const img: ImageF32 = { data: Float32Array.from([0, 1, 2, 3, 4, 5]), height: 2, width: 3, channels: 1 };
    expect(Array.from(flipRotate(img, true, false, false).data)).toEqual([2, 1, 0, 5, 4, 3]);
    expect(Array.from(flipRotate(img, false, true, false).data)).toEqual([3, 4, 5, 0, 1, 2]);
    const t = flipRotate(img, false, false, true);
    expect([t.height, t.width]).toEqual([3, 2]);
    expect(Array.from(t.data)).toEqual([0, 3, 1, 4, 2, 5]);
    const all = flipRotate(img, true, true, true); // rot: [[5,4,3],[2,1,0]] transposed
    expect(Array.from(all.data)).toEqual([5, 2, 4, 1, 3, 0]);
  });
});

describe('synthetic source', () => {
  const images = [0, 1, 2, 3, 4].map((i) => randomImage(64, 64, `img${i}`));

  it('holds out the last images by name and never trains on them', async () => {
    const consts = clean([0.1, 0.2, 0.3, 0.4, 0.5].map((v) => constantImage(40, 40, v)));
    const src = new SyntheticSource(consts, 'test', { evalCount: 2 });
    expect(src.trainSize).toBe(3);
    expect(src.evalNames).toEqual(['img3', 'img4']);
    const sampler = new PatchSampler(src, 1);
    const seen = new Set<number>();
    for (let i = 0; i < 12; i++) {
      for (const p of await sampler.nextPairs(describeTask('sr-x2'), 1, 16)) seen.add(Math.round(p.gt.data[0] * 10));
    }
    expect([...seen].sort()).toEqual([1, 2, 3]);
    expect(sampler.currentEpoch).toBe(4);
    const ev = await src.evalPairs(describeTask('dn-25'));
    expect(ev.map((e) => e.name)).toEqual(['img3', 'img4']);
    expect(() => new SyntheticSource(consts, 'test', { evalCount: 5 })).toThrow(/none for training/);
  });

  it('trains on every listed training file and evaluates exactly the listed held-out files', async () => {
    const files = [0.1, 0.2, 0.3, 0.4].map((v, i) => {
      const file = path.join(tmp, `list-${i}.png`);
      return { name: `z${3 - i}`, file, v };
    });
    for (const f of files) await writePng(f.file, constantImage(40, 40, f.v));
    // Names that sort the held-out images first: the lists decide, not the order of names.
    const src = fileListSource(files.slice(1), files.slice(0, 1), 3);
    expect(src.trainSize).toBe(3);
    expect(src.evalNames).toEqual(['z3']);
    const sampler = new PatchSampler(src, 2);
    const seen = new Set<number>();
    for (let i = 0; i < 9; i++) for (const p of await sampler.nextPairs(describeTask('dn-25'), 1, 16)) seen.add(Math.round(p.gt.data[0] * 10));
    expect([...seen].sort()).toEqual([2, 3, 4]);
    expect((await src.evalPairs(describeTask('sr-x2'))).map((e) => Math.round(e.gt.data[0] * 10))).toEqual([1]);
    expect(() => fileListSource(files.slice(1), files.slice(1, 2), 3)).toThrow(/both a training and a held-out image/);
    expect(() => fileListSource(files, [], 3)).toThrow(/no held-out images/);
  });

  it('SR patches are aligned: lq equals the bicubic downscale of the whole image at (y/s, x/s)', async () => {
    const one = [randomImage(64, 64, 'sr')];
    const src = new SyntheticSource([...clean(one), { name: 'zz', load: async () => one[0] }], 'test', { evalCount: 1, margin: 16 });
    const full = imresize(one[0], 1 / 2);
    const sampler = new PatchSampler(src, 3, undefined, false);
    for (let trial = 0; trial < 4; trial++) {
      const [pair] = await sampler.nextPairs(describeTask('sr-x2'), 1, 16);
      expect([pair.gt.height, pair.lq.height]).toEqual([16, 8]);
      // Locate the GT patch in the clean image (random content: a unique position).
      let found: [number, number] | undefined;
      for (let y = 0; y <= 48 && !found; y += 2)
        for (let x = 0; x <= 48 && !found; x += 2)
          if (cropImage(one[0], y, x, 16, 16).data.every((v, i) => v === pair.gt.data[i])) found = [y, x];
      expect(found).toBeDefined();
      const want = cropImage(full, found![0] / 2, found![1] / 2, 8, 8);
      const diff = Math.max(...want.data.map((v, i) => Math.abs(v - pair.lq.data[i])));
      expect(diff).toBeLessThan(1e-5);
    }
  });

  it('is deterministic per seed and resumes exactly from its state', async () => {
    const src = new SyntheticSource(clean(images), 'test', { evalCount: 1 });
    const task = describeTask('dn-25');
    const a = new PatchSampler(src, 7);
    const b = new PatchSampler(src, 7);
    const c = new PatchSampler(src, 8);
    const pa = await a.nextPairs(task, 3, 16);
    const pb = await b.nextPairs(task, 3, 16);
    const pc = await c.nextPairs(task, 3, 16);
    expect(pa.map((p) => Array.from(p.lq.data))).toEqual(pb.map((p) => Array.from(p.lq.data)));
    expect(Array.from(pa[0].lq.data)).not.toEqual(Array.from(pc[0].lq.data));
    // Gaussian noise at sigma 25/255 on the patch.
    const d = pa[0].lq.data.map((v, i) => v - pa[0].gt.data[i]);
    const sd = Math.sqrt(d.reduce((s, v) => s + v * v, 0) / d.length);
    expect(sd).toBeGreaterThan(0.08);
    expect(sd).toBeLessThan(0.115);

    const state = JSON.parse(JSON.stringify(a.state()));
    expect(state).toEqual({ epoch: 1, pos: 3, drawn: 3 });
    const resumed = new PatchSampler(src, 7, state);
    const next = await a.nextBatch(task, 4, 16);
    const again = await resumed.nextBatch(task, 4, 16);
    expect(next.lq.shape).toEqual([4, 16, 16, 3]);
    expect(Array.from(next.lq.dataSync())).toEqual(Array.from(again.lq.dataSync()));
    expect(Array.from(next.gt.dataSync())).toEqual(Array.from(again.gt.dataSync()));
    // Reading the state does not perturb the stream (b never saved one).
    const fromB = await b.nextBatch(task, 4, 16);
    expect(Array.from(fromB.lq.dataSync())).toEqual(Array.from(next.lq.dataSync()));
    tf.dispose([next.lq, next.gt, again.lq, again.gt, fromB.lq, fromB.gt]);
  });

  it('refuses patches larger than the images and tasks without a degradation', async () => {
    const src = new SyntheticSource(clean(images), 'test', { evalCount: 1 });
    const sampler = new PatchSampler(src, 1);
    await expect(sampler.nextPairs(describeTask('dn-25'), 1, 80)).rejects.toThrow(/smaller than the 80x80/);
    await expect(sampler.nextPairs(describeTask('sr-x3'), 1, 16)).rejects.toThrow(/not a multiple of the scale 3/);
    expect(() => src.checkTask(describeTask('derain'))).toThrow(/no synthetic degradation/);
  });

  it('serves the built-in images with a deterministic held-out split', async () => {
    const src = await builtinSource(3, { evalSize: 32, seed: 5 });
    expect(src.trainSize).toBe(8);
    expect(src.evalNames).toEqual(['retina', 'rocket']);
    const a = await src.evalPairs(describeTask('sr-x2'));
    expect([a[0].gt.height, a[0].lq.height]).toEqual([32, 16]);
  });
});

describe('paired folders', () => {
  it('pairs by sorted name, checks counts and scales, and streams through a bounded cache', async () => {
    const lqDir = path.join(tmp, 'rain');
    const gtDir = path.join(tmp, 'norain');
    for (let i = 1; i <= 4; i++) {
      const v = i / 10;
      await writePng(path.join(lqDir, `rain-00${i}.png`), constantImage(12, 12, v + 0.4));
      await writePng(path.join(gtDir, `norain-00${i}.png`), constantImage(24, 24, v));
    }
    const cache = new ImageCache(2 * 24 * 24 * 3 * 4);
    const src = new PairedFolderSource(lqDir, gtDir, 3, { evalCount: 1, cache });
    expect(src.trainSize).toBe(3);
    expect(src.evalNames).toEqual([path.join(gtDir, 'norain-004.png')]);
    const sampler = new PatchSampler(src, 2);
    const task = describeTask('sr-x2');
    for (let i = 0; i < 6; i++) {
      const [p] = await sampler.nextPairs(task, 1, 8);
      expect([p.lq.height, p.gt.height]).toEqual([4, 8]);
      // lq and gt come from the same pair (lq = gt + 0.4), never from the held-out 4th.
      expect(p.lq.data[0] - p.gt.data[0]).toBeCloseTo(0.4, 2);
      expect(p.gt.data[0]).toBeLessThan(0.35);
    }
    expect(cache.usedBytes).toBeLessThanOrEqual(cache.maxBytes);
    const ev = await src.evalPairs(task);
    expect(ev[0].gt.data[0]).toBeCloseTo(0.4, 2);

    // A scale that does not fit the files is refused by name.
    await expect(new PatchSampler(src, 2).nextPairs(describeTask('sr-x3'), 1, 6)).rejects.toThrow(/expected 36x36/);
    fs.rmSync(path.join(gtDir, 'norain-001.png'));
    expect(() => new PairedFolderSource(lqDir, gtDir, 3)).toThrow(/has 4 images but --gt-dir .* has 3/);
  });
});

describe('task choice', () => {
  it('round-robin and a seeded weighted draw', () => {
    const tasks = ['a', 'b', 'c'];
    expect([0, 1, 2, 3].map((s) => taskForStep(tasks, s, 'round-robin', 0))).toEqual(['a', 'b', 'c', 'a']);
    const draws = Array.from({ length: 600 }, (_, s) => taskForStep(tasks, s, 'random', 3, [1, 0, 2]));
    expect(draws).toEqual(Array.from({ length: 600 }, (_, s) => taskForStep(tasks, s, 'random', 3, [1, 0, 2])));
    expect(draws.includes('b')).toBe(false);
    const fracC = draws.filter((t) => t === 'c').length / draws.length;
    expect(fracC).toBeGreaterThan(0.58);
    expect(fracC).toBeLessThan(0.75);
  });
});
