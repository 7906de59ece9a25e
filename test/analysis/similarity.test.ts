import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import '../../src/models/reference';
import '../../src/models/restormer';
import '../../src/models/swinir';
import '../../src/models/edt';
import '../../src/models/mprnet';
import { createModel } from '../../src/models/registry';
import type { ImageF32 } from '../../src/io/types';
import { bestMatches, checkStudySize, defaultStudySize, layerSimilarity, type NamedImage } from '../../src/analysis/similarity';
import { Rng } from '../../src/util/rng';

beforeAll(async () => {
  await initBackend('wasm');
});

function randomImage(rng: Rng, h: number, w: number, c = 3): ImageF32 {
  const data = new Float32Array(h * w * c);
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform();
  return { data, height: h, width: w, channels: c };
}

function images(n: number, h = 16, w = 16, seed = 'imgs'): NamedImage[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => ({ name: `img${i}`, image: randomImage(rng, h, w) }));
}

describe('layerSimilarity on refnet-tiny', () => {
  it('a model against itself: exact diagonal of 1, exactly symmetric, one forward per batch', async () => {
    const model = createModel('refnet-tiny');
    const r = await layerSimilarity({ modelA: model, images: images(8), batch: 4 });
    expect(r.layersA).toEqual(['conv_first', 'body.0', 'body.1', 'conv_last']);
    expect(r.layersB).toEqual(r.layersA);
    for (let i = 0; i < r.layersA.length; i++) {
      expect(r.matrix[i][i]).toBe(1);
      for (let j = 0; j < r.layersB.length; j++) {
        expect(r.matrix[i][j]).toBe(r.matrix[j][i]);
        expect(r.flags[i][j]).toBeNull();
      }
    }
    expect(r.settings.sameModel).toBe(true);
    expect(r.provenance.timings.forwardB).toBe(0);
    expect(r.settings.batchSizes).toEqual([4, 4]);
    expect(r.provenance.images).toEqual(images(8).map((x) => x.name));
    expect(r.models.a.degradation).toBe('dn-25');
    const t = r.provenance.timings;
    expect(t.forwardA + t.forwardB + t.gram + t.other).toBeCloseTo(t.total, 6);
    // The same spec given twice as one object is the same study.
    const again = await layerSimilarity({ modelA: model, modelB: model, images: images(8), batch: 4 });
    expect(again.matrix).toEqual(r.matrix);
    model.dispose();
  });

  it('two random initialisations: every value in (-1, 1], none undefined; best matches read the matrix', async () => {
    const a = createModel('refnet-tiny', { seed: 0 });
    const b = createModel('refnet-tiny', { seed: 1 });
    const r = await layerSimilarity({ modelA: a, modelB: b, images: images(8), batch: 4, bootstrap: 5, permutation: true, seed: 3 });
    expect(r.settings.sameModel).toBe(false);
    for (const v of r.matrix.flat()) {
      expect(v).not.toBeNull();
      expect(v!).toBeGreaterThan(-1);
      expect(v!).toBeLessThanOrEqual(1);
    }
    expect(r.matrix[0][0]).not.toBe(1);
    expect(r.ci).toHaveLength(4);
    expect(r.ci![0]).toHaveLength(4);
    expect(r.permutation).toHaveLength(4);
    const best = bestMatches(r);
    best.forEach((m, i) => expect(m.value).toBe(Math.max(...(r.matrix[i] as number[]))));
    expect(best[0].sameName).toBe(r.matrix[0][0]);
    a.dispose();
    b.dispose();
  });

  it('orders layers by execution, whatever the glob order; crops to size', async () => {
    const model = createModel('refnet-tiny');
    const r = await layerSimilarity({
      modelA: model,
      layersA: ['conv_last', 'body.*'],
      layersB: ['conv_first'],
      images: images(4, 20, 24),
      size: [16, 12],
      batch: 4,
    });
    expect(r.layersA).toEqual(['body.0', 'body.1', 'conv_last']);
    expect(r.layersB).toEqual(['conv_first']);
    expect(r.models.a.inputSize).toEqual([16, 12]);
    expect(r.settings.cropRule).toContain('16x12');
    model.dispose();
  });

  it('merges a last batch too small for the unbiased estimator into the one before, and says so', async () => {
    const model = createModel('refnet-tiny');
    const r = await layerSimilarity({ modelA: model, images: images(10), batch: 4 });
    expect(r.settings.batchSizes).toEqual([4, 6]);
    expect(r.examples).toBe(10);
    expect(r.settings.lastBatch).toMatch(/merged/);
    const biased = await layerSimilarity({ modelA: model, images: images(10), batch: 4, estimator: 'biased' });
    expect(biased.settings.batchSizes).toEqual([4, 4, 2]);
    await expect(layerSimilarity({ modelA: model, images: images(3), batch: 4 })).rejects.toThrow(/at least 4 images/);
    await expect(layerSimilarity({ modelA: model, images: images(8), batch: 3 })).rejects.toThrow(/batch must be an integer >= 4/);
    await expect(layerSimilarity({ modelA: model, images: images(4, 8, 8), size: [16, 16] })).rejects.toThrow(/smaller than the crop size/);
    await expect(layerSimilarity({ modelA: model, layersA: ['bdy.*'], images: images(4) })).rejects.toThrow(/unknown hook point 'bdy\.\*'/);
    model.dispose();
  });

  it('refuses a crop size a model cannot take without padding, naming the option; finds one every model takes', () => {
    const restormer = createModel('restormer-tiny');
    expect(() => checkStudySize(restormer, undefined, [60, 64], '--size')).toThrow(/^--size: 60x64 .* multiples of 8/);
    expect(() => checkStudySize(restormer, undefined, [64, 64], '--size')).not.toThrow();
    const swinir = createModel('swinir-tiny'); // x2 SR, window 8: crops in multiples of 16
    const edt = createModel('edt-tiny');
    expect(defaultStudySize([{ model: restormer }, { model: swinir }])).toEqual([128, 128]);
    const [side] = defaultStudySize([{ model: edt }, { model: swinir }]);
    expect(side).toBeLessThanOrEqual(128);
    expect(() => checkStudySize(edt, undefined, [side, side])).not.toThrow();
    expect(() => checkStudySize(swinir, undefined, [side, side])).not.toThrow();
    expect(() => checkStudySize(swinir, undefined, [72, 72], '--size')).toThrow(/^--size: 72x72 gives swinir-tiny \[sr-x2\] a 36x36 input/);
    for (const m of [restormer, swinir, edt]) m.dispose();
  });

  it('NaN activations give flagged null cells, never NaN', async () => {
    const a = createModel('refnet-tiny', { seed: 0 });
    const b = createModel('refnet-tiny', { seed: 1 });
    const r = await layerSimilarity({
      modelA: a,
      modelB: b,
      images: images(8),
      batch: 4,
      hooksA: { 'body.0': (t) => tf.mul(t, NaN) },
    });
    expect(r.layersA).toEqual(['conv_first', 'body.0', 'body.1', 'conv_last']);
    expect(r.matrix[0].every((v) => v !== null)).toBe(true);
    for (let i = 1; i < 4; i++) {
      expect(r.matrix[i]).toEqual([null, null, null, null]);
      expect(r.flags[i]).toEqual(['non-finite', 'non-finite', 'non-finite', 'non-finite']);
    }
    expect(JSON.stringify(r)).not.toMatch(/NaN/);
    a.dispose();
    b.dispose();
  });

  it('streams: tensors, tensor bytes and JS heap stay flat over many batches', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const model = createModel('refnet-tiny');
    const other = createModel('refnet-tiny', { seed: 2 });
    const rng = new Rng('stream');
    async function* stream(n: number): AsyncGenerator<ImageF32> {
      for (let i = 0; i < n; i++) yield randomImage(rng, 64, 64); // 48 KiB each: keeping them would show in the heap
    }
    const before = tf.memory().numTensors;
    const samples: { tensors: number; bytes: number; heap: number }[] = [];
    const r = await layerSimilarity({
      modelA: model,
      modelB: other,
      images: stream(96),
      batch: 4,
      onProgress: () => {
        gc();
        samples.push({ tensors: tf.memory().numTensors, bytes: tf.memory().numBytes, heap: process.memoryUsage().heapUsed });
      },
    });
    expect(r.settings.batchSizes).toHaveLength(24);
    expect(r.provenance.images[95]).toBe('image-95');
    expect(samples.every((s) => s.tensors === before)).toBe(true);
    expect(new Set(samples.map((s) => s.bytes)).size).toBe(1);
    // 96 images are 4.5 MiB of pixels: streaming keeps about two batches of them, whatever the count.
    const heapGrowth = samples[samples.length - 1].heap - samples[2].heap;
    console.log(`heap growth over 21 batches: ${(heapGrowth / 1024).toFixed(0)} KiB`);
    expect(heapGrowth).toBeLessThan(1.5 * 2 ** 20);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
    other.dispose();
  });

  it("'pixels' mode compares positions of layers of one spatial size", async () => {
    const model = createModel('refnet-tiny');
    const r = await layerSimilarity({ modelA: model, images: images(4), batch: 4, mode: 'pixels', maxPixels: 16 });
    expect(r.settings.features.mode).toBe('pixels');
    expect(r.matrix[1][1]).toBe(1);
    model.dispose();
  });
});

describe('layers that fire more than once per forward', () => {
  it('refuses a per-patch MPRNet module instead of keeping one patch', async () => {
    await initBackend('wasm');
    const model = createModel('mprnet-tiny');
    const images = Array.from({ length: 4 }, (_, i) => ({
      name: `img${i}`,
      image: { data: new Float32Array(32 * 32 * 3).map((_, j) => ((j * (i + 3)) % 97) / 97), height: 32, width: 32, channels: 3 },
    }));
    await expect(
      layerSimilarity({ modelA: model, images, layersA: ['stage1_encoder.encoder_level1'], batch: 4, size: [32, 32] }),
    ).rejects.toThrow(/stage1_encoder\.encoder_level1' of .* runs more than once per forward/);
    model.dispose();
  });
});
