/**
 * Data-parallel extraction (layerSimilarity's `workers`): worker threads with copies of the models compute whole
 * batches, merged in batch order, so the study equals a one-thread in-process run bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { computeThreads, setComputeThreads } from '../../src/engine/compute';
import '../../src/models';
import { createModel } from '../../src/models/registry';
import { rebuildModel, transferModel } from '../../src/models/transfer';
import { layerSimilarity, type NamedImage, type SimilarityProgress } from '../../src/analysis/similarity';
import { Rng } from '../../src/util/rng';

let savedThreads = 1;
beforeAll(async () => {
  await initBackend('wasm');
  savedThreads = computeThreads();
  setComputeThreads(1); // the in-process reference runs on one kernel thread, as each worker does
});
afterAll(() => setComputeThreads(savedThreads));

function images(n: number, size: number, seed = 'workers'): NamedImage[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const data = new Float32Array(size * size * 3);
    for (let k = 0; k < data.length; k++) data[k] = rng.uniform();
    return { name: `img${i}`, image: { data, height: size, width: size, channels: 3 } };
  });
}

describe('layerSimilarity with worker threads', () => {
  it('a transferred model rebuilds with the same parameter bits', () => {
    const m = createModel('swinir-tiny', { seed: 4 });
    const copy = rebuildModel(transferModel(m));
    const a = m.namedParameters();
    const b = copy.namedParameters();
    expect(b.map(([n]) => n)).toEqual(a.map(([n]) => n));
    a.forEach(([, p], i) => expect(b[i][1].variable.dataSync()).toEqual(p.variable.dataSync()));
    expect(copy.preset).toBe('swinir-tiny');
    m.dispose();
    copy.dispose();
  });

  it('two models, 2 workers: the same matrix, intervals, baseline and progress as one in-process thread', async () => {
    const a = createModel('restormer-tiny', { seed: 1 });
    const b = createModel('swinir-tiny', { seed: 2 });
    const opts = { modelA: a, modelB: b, images: images(12, 32), batch: 4, bootstrap: 4, permutation: true, seed: 5, size: [32, 32] as [number, number] };
    const seen = (log: SimilarityProgress[]) => log.map((p) => [p.side, p.batches, p.images, p.forwardImages]);
    const serialLog: SimilarityProgress[] = [];
    const serial = await layerSimilarity({ ...opts, onProgress: (p) => serialLog.push(p) });
    const before = tf.memory().numTensors;
    const parallelLog: SimilarityProgress[] = [];
    const parallel = await layerSimilarity({ ...opts, workers: 2, onProgress: (p) => parallelLog.push(p) });
    expect(tf.memory().numTensors).toBe(before);
    expect(parallel.layersA).toEqual(serial.layersA);
    expect(parallel.layersB).toEqual(serial.layersB);
    expect(parallel.matrix).toEqual(serial.matrix);
    expect(parallel.ci).toEqual(serial.ci);
    expect(parallel.ciRaw).toEqual(serial.ciRaw);
    expect(parallel.permutation).toEqual(serial.permutation);
    expect(parallel.settings.batchSizes).toEqual([4, 4, 4]);
    expect(parallel.models).toEqual(serial.models);
    expect(seen(parallelLog)).toEqual(seen(serialLog));
    expect(parallel.provenance.timings.workers).toBe(2);
    expect(serial.provenance.timings.workers).toBe(1);
    expect(parallel.matrix.flat().every((v) => v !== null && v > -1 && v <= 1)).toBe(true);
    a.dispose();
    b.dispose();
  });

  it('a model against itself on 3 workers: one shared forward, diagonal exactly 1, same bits as in-process', async () => {
    const m = createModel('edt-tiny', { seed: 3 });
    const opts = { modelA: m, images: images(12, 48, 'self'), batch: 4, size: [48, 48] as [number, number] };
    const serial = await layerSimilarity(opts);
    const parallel = await layerSimilarity({ ...opts, workers: 3 });
    expect(parallel.settings.sameModel).toBe(true);
    expect(parallel.provenance.timings.forwardB).toBe(0);
    expect(parallel.matrix).toEqual(serial.matrix);
    parallel.layersA.forEach((_, i) => expect(parallel.matrix[i][i]).toBe(1));
    m.dispose();
  });

  it('refuses hooks and a bad worker count; a batch that fails in a worker fails the study with its message', async () => {
    const m = createModel('restormer-tiny');
    const imgs = images(8, 32);
    await expect(layerSimilarity({ modelA: m, images: imgs, workers: 0 })).rejects.toThrow(/workers must be a positive integer, got 0/);
    await expect(layerSimilarity({ modelA: m, images: imgs, batch: 4, workers: 2, hooksA: { 'patch_embed': (t) => t } })).rejects.toThrow(
      /intervention hooks are functions and cannot be sent to worker threads/,
    );
    const mixed = [...imgs.slice(0, 6), ...images(2, 16, 'small').map((x, i) => ({ ...x, name: `small${i}` }))];
    await expect(layerSimilarity({ modelA: m, images: mixed, batch: 4, workers: 2 })).rejects.toThrow(/image 'small0' is 16x16 but others are not/);
    m.dispose();
  });

  it('starts no more workers than an array of images has batches', async () => {
    const m = createModel('restormer-tiny');
    const r = await layerSimilarity({ modelA: m, images: images(8, 32), batch: 4, workers: 6 });
    expect(r.provenance.timings.workers).toBe(2);
    m.dispose();
  });
});
