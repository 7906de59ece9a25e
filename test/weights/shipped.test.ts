/**
 * The trained tiny weights shipped in weights/: tiny presets load them by default (with their provenance),
 * `@random` / randomInit / a --config override give an untrained model with a loud warning, every file matches its
 * MANIFEST.json sha256, and the manifest's held-out numbers reproduce (model beats the degraded input).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { imageToTensor, tensorToImages } from '../../src/io/image';
import '../../src/models';
import { loadModelSpec } from '../../src/weights/spec';
import { metricOptionsFor, psnr } from '../../src/analysis/metrics';
import { imresize } from '../../src/degradations/imresize';
import { folderSource } from '../../src/pretrain/data';
import { describeTask, resolveBranch } from '../../src/pretrain/multitask';
import { describeWeights, readWeightsManifest, RANDOM_INIT_WARNING, sha256File, shippedWeightsDir, weightsLine } from '../../src/weights';

const manifest = readWeightsManifest();
const ROOT = path.resolve(__dirname, '..', '..');

beforeAll(async () => {
  await initBackend('wasm');
});

describe('shipped weights', () => {
  it('ship one default per tiny preset, each file matching its MANIFEST.json entry', async () => {
    const defaults = manifest.weights.filter((w) => w.default).map((w) => w.preset).sort();
    expect(defaults).toEqual(['edt-tiny', 'mprnet-tiny', 'restormer-tiny', 'swinir-tiny']);
    for (const w of manifest.weights) {
      const file = path.join(shippedWeightsDir(), w.file);
      expect(fs.statSync(file).size).toBe(w.bytes);
      expect(await sha256File(file)).toBe(w.sha256);
      // Defaults must beat their degraded input; other entries ship with their measured (possibly negative) gain.
      if (w.default) for (const [task, s] of Object.entries(w.heldOut)) expect(s.psnrGain, `${w.name} ${task}`).toBeGreaterThan(0);
    }
  });

  it('load by default for the tiny presets, with irlens-trained provenance', async () => {
    const before = tf.memory().numTensors;
    for (const w of manifest.weights.filter((x) => x.default)) {
      const loaded = await loadModelSpec(w.preset);
      expect(loaded.provenance).toMatchObject({ source: 'irlens-trained', name: w.name, sha256: w.sha256, trainedBy: w.trainedBy, recipe: w.recipe });
      const d = describeWeights(loaded);
      expect(d).toEqual({ source: 'irlens-trained', file: path.join(shippedWeightsDir(), w.file), sha256: w.sha256, trainedBy: w.trainedBy });
      expect(weightsLine(loaded)).toContain(`irlens-trained ${w.name}`);
      expect(loaded.model.preset).toBe(w.preset);
      loaded.model.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('load by name as PRESET@NAME or PRESET@SUFFIX', async () => {
    const w = manifest.weights.find((x) => !x.default && x.preset === 'restormer-tiny');
    expect(w).toBeDefined();
    for (const spec of [`restormer-tiny@${w!.name}`, `restormer-tiny@${w!.name.slice('restormer-tiny-'.length)}`]) {
      const loaded = await loadModelSpec(spec);
      expect(loaded.provenance).toMatchObject({ source: 'irlens-trained', name: w!.name });
      loaded.model.dispose();
    }
  });

  it('give way to seeded random init on request, which warns loudly', async () => {
    const variants = [
      await loadModelSpec('restormer-tiny@random', { seed: 3 }),
      await loadModelSpec('restormer-tiny', { seed: 3, randomInit: true }),
      await loadModelSpec('restormer-tiny', { seed: 3, config: { dim: 4 } }), // the shipped weights fit dim 8 only
    ];
    for (const loaded of variants) {
      expect(loaded.provenance).toMatchObject({ source: 'random-init', seed: 3 });
      const d = describeWeights(loaded);
      expect(d.source).toBe('random-init');
      expect(d.warning).toBe(`${RANDOM_INIT_WARNING} (seed 3)`);
      expect(weightsLine(loaded)).toMatch(/RANDOM INIT/);
    }
    // Seeded: @random and randomInit build the same network.
    const [a, b] = variants.map((v) => v.model.stateEntries().map(([, p]) => p.variable.dataSync()[0]));
    expect(a).toEqual(b);
    for (const v of variants) v.model.dispose();
  });

  it('reproduce the manifest held-out PSNR of the default weights', async () => {
    // The trainer seeds each held-out degradation by the image's path: rebuild the recipe's folder at its path.
    const dir = '/tmp/irlens-tiny-weights/data';
    fs.mkdirSync(dir, { recursive: true });
    const first = manifest.weights[0];
    const link = (f: string, as: string) => {
      fs.rmSync(path.join(dir, as), { force: true });
      fs.symlinkSync(path.join(ROOT, f), path.join(dir, as));
    };
    for (const f of first.trainImages) link(f, `train-${path.basename(f)}`);
    for (const f of first.evalImages) link(f, `zeval-${path.basename(f)}`);
    const source = folderSource(dir, 3, { evalCount: first.evalImages.length, seed: 0 });
    for (const w of manifest.weights.filter((x) => x.default)) {
      const loaded = await loadModelSpec(w.preset);
      for (const [taskName, score] of Object.entries(w.heldOut)) {
        const task = describeTask(taskName);
        const opts = metricOptionsFor(task);
        let model = 0;
        let degraded = 0;
        const pairs = await source.evalPairs(task);
        for (const pair of pairs) {
          const x = imageToTensor(pair.lq);
          const y = loaded.model.restore(x, resolveBranch(loaded.model, task));
          model += psnr(tensorToImages(y)[0], pair.gt, opts);
          tf.dispose([x, y]);
          degraded += psnr(task.scale > 1 ? imresize(pair.lq, { height: pair.gt.height, width: pair.gt.width }) : pair.lq, pair.gt, opts);
        }
        expect(model / pairs.length).toBeCloseTo(score.model.psnr, 2);
        expect(degraded / pairs.length).toBeCloseTo(score.degraded.psnr, 2);
        expect(model).toBeGreaterThan(degraded);
      }
      loaded.model.dispose();
    }
  }, 240_000);
});
