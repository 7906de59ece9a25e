/** The ablation runner: prefix reuse gives the same numbers as full forwards, memory stays flat, drops make sense. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { createModel } from '../../../src/models';
import { runAblation, type AblationBatch, type AblationEntrySpec } from '../../../src/analysis/ablation/runner';
import { Rng } from '../../../src/util/rng';
import type { ImageF32 } from '../../../src/io/types';

beforeAll(async () => {
  await initBackend('wasm');
});

function batch(n: number, h: number, w: number, scale: number, seed: number): AblationBatch {
  const rng = new Rng(seed);
  const rand = (len: number) => Float32Array.from({ length: len }, () => rng.uniform());
  const gt: ImageF32[] = Array.from({ length: n }, () => ({ data: rand(h * scale * w * scale * 3), height: h * scale, width: w * scale, channels: 3 }));
  return { lq: tf.tensor4d(rand(n * h * w * 3), [n, h, w, 3]), gt, names: gt.map((_, i) => `img${i}`) };
}

describe('runAblation', () => {
  it('prefix reuse equals full forwards, every mode; numTensors flat; stats and drops', async () => {
    const model = createModel('swinir-tiny');
    const b = [batch(3, 16, 16, 2, 1)];
    const entries: AblationEntrySpec[] = ['layers.0', 'layers.1', 'layers.1.residual_group.blocks.1', 'conv_after_body'].flatMap((point) =>
      (['zero', 'mean', 'resample', 'noise', 'identity'] as const).map((mode) => ({ point, mode })),
    );
    const opts = { model, batches: b, entries, metric: { cropBorder: 2, testYChannel: true }, bootstrap: 200 };
    await runAblation({ ...opts, reuse: true }); // warm-up
    const before = tf.memory().numTensors;
    const fast = await runAblation({ ...opts, reuse: true });
    const full = await runAblation({ ...opts, reuse: false });
    expect(tf.memory().numTensors).toBe(before);
    expect(fast.timings.replayedModules).toBeGreaterThan(0);
    expect(full.timings.replayedModules).toBe(0);
    for (let i = 0; i < entries.length; i++) {
      expect(fast.entries[i].perImage).toEqual(full.entries[i].perImage);
      expect(fast.entries[i].drop).toEqual(full.entries[i].drop);
    }
    // drops are baseline - ablated per image
    const e0 = fast.entries[0];
    const drops = e0.perImage.output.psnr.map((v, i) => fast.baseline.perImage.output.psnr[i] - v);
    expect(e0.drop.output.psnr).toBeCloseTo(drops.reduce((a, c) => a + c, 0) / drops.length, 12);
    expect(e0.drop.output.psnr).not.toBe(0); // zeroing the first RSTB changes the output
    expect(e0.drop.output.psnrCi).not.toBeNull();
    expect(fast.outputs).toEqual(['output']);
    tf.dispose(b.map((x) => x.lq));
    model.dispose();
  }, 120_000);

  it('MPRNet: the three stage outputs are scored', async () => {
    const model = createModel('mprnet-tiny');
    const b = [batch(2, 16, 16, 1, 2)];
    const r = await runAblation({ model, batches: b, entries: [{ point: 'stage3_orsnet.orb1', mode: 'zero' }], metric: {} });
    expect(r.outputs).toEqual(['stage3', 'stage2', 'stage1']);
    // stage 1 and 2 images come before ORSNet: the ablation cannot change them
    expect(r.entries[0].drop.stage1.psnr).toBe(0);
    expect(r.entries[0].drop.stage2.psnr).toBe(0);
    expect(r.entries[0].drop.stage3.psnr).not.toBe(0);
    tf.dispose(b.map((x) => x.lq));
    model.dispose();
  }, 60_000);

  it('one-line errors: unknown points, identity on a shape-changing module, resample with one image', async () => {
    const model = createModel('swinir-tiny');
    const one = [batch(1, 16, 16, 2, 3)];
    const two = [batch(2, 16, 16, 2, 3)];
    await expect(runAblation({ model, batches: two, entries: [{ point: 'nope', mode: 'zero' }], metric: {} })).rejects.toThrow(/unknown hook point 'nope'/);
    await expect(runAblation({ model, batches: two, entries: [{ point: 'conv_first', mode: 'identity' }], metric: {} })).rejects.toThrow(/identity: conv_first maps/);
    await expect(runAblation({ model, batches: one, entries: [{ point: 'layers.0', mode: 'resample' }], metric: {} })).rejects.toThrow(/resample: needs at least 2 images/);
    tf.dispose([...one, ...two].map((x) => x.lq));
    model.dispose();
  }, 60_000);
  it('skipInapplicable drops identity on shape-changing modules and keeps the rest', async () => {
    const model = createModel('swinir-tiny');
    const b = [batch(2, 16, 16, 2, 4)];
    const before = tf.memory().numTensors;
    const r = await runAblation({ model, batches: b, entries: [{ point: 'conv_first', mode: 'identity' }, { point: 'layers.0', mode: 'identity' }], metric: {}, skipInapplicable: true });
    expect(r.skipped.map((s) => s.key)).toEqual(['conv_first/identity']);
    expect(r.entries.map((e) => e.key)).toEqual(['layers.0/identity']);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(b.map((x) => x.lq));
    model.dispose();
  }, 60_000);
});
