/**
 * MPRNet against PyTorch: parameter counts and state_dict keys of every preset (the one shared PReLU under
 * every CAB path), all three stage outputs of perturbed checkpoints written by
 * test/fixtures/make_mprnet_fixtures.py ({'epoch','state_dict','optimizer'} with 'module.' keys), the official
 * test-time padding, hooks, memory and a training step on wasm.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { loadStateDict } from '../../src/models/checkpoint';
import { hookPoints, resolveHookNames } from '../../src/models/hooks';
import { createModel } from '../../src/models/registry';
import type { MPRNet } from '../../src/models/mprnet';
import '../../src/models/mprnet';
import {
  expectCachedOutputEqualsForward,
  expectFamilyPresets,
  expectFixtureOutput,
  expectFlatTensorCount,
  expectPresetConformance,
  gradientStepCheck,
  loadFixtureModel,
  maxAbsDiff,
  readNpyTensor,
  readPresetKeys,
} from './harness';

const FIX = path.join(__dirname, '..', 'fixtures', 'mprnet');
const KEYS = readPresetKeys(FIX);

const PUBLISHED: Record<string, number> = {
  'mprnet-deblur': 20_127_073,
  'mprnet-denoise': 15_741_025,
  'mprnet-derain': 3_637_249,
};

/** Fixture name -> config (mirrors FIXTURES in make_mprnet_fixtures.py). */
const FIXTURE_CONFIGS: Record<string, Record<string, unknown>> = {
  tiny: {},
  gray_bias_k5: { in_c: 1, out_c: 1, n_feat: 6, scale_unetfeats: 2, scale_orsnetfeats: 3, num_cab: 2, kernel_size: 5, reduction: 2, bias: true },
};

beforeAll(async () => {
  await initBackend('wasm');
});

const npy = (name: string) => readNpyTensor(FIX, name);

function tiny(config: Record<string, unknown> = {}): MPRNet {
  return createModel('mprnet-tiny', { config }) as MPRNet;
}

/** state_dict keys under which the shared PReLU appears. */
function preluKeys(model: MPRNet): string[] {
  return model.stateEntries().filter(([, p]) => p.variable === model.act.weight).map(([k]) => k);
}

/** The fixture's checkpoint ({'epoch', 'state_dict', 'optimizer'}) loaded into an mprnet-tiny of its config. */
async function fixtureModel(name: string): Promise<MPRNet> {
  const model = tiny(FIXTURE_CONFIGS[name]);
  const report = await loadFixtureModel(model, path.join(FIX, `${name}.pth`), 'state_dict');
  expect(report.skipped).toEqual([]);
  return model;
}

describe('mprnet presets', () => {
  it('registers every published configuration with its official parameter count', () => {
    expectFamilyPresets('mprnet', Object.keys(KEYS), PUBLISHED);
  });

  it.each(Object.keys(KEYS))('%s: parameter count, state_dict keys and shapes equal PyTorch', (name) => {
    const model = createModel(name) as MPRNet;
    try {
      expectPresetConformance(name, model, KEYS[name], { published: PUBLISHED[name] });
      // One PReLU parameter, listed under every CAB's body.1 (55 CABs at num_cab 8), counted once.
      const prelu = preluKeys(model);
      const cabs = 3 + 2 * 6 + 2 * 8 + 3 * (model.config.num_cab as number);
      expect(prelu.length).toBe(cabs);
      expect(prelu[0]).toBe('shallow_feat1.1.body.1.weight');
      expect(prelu.every((k) => k.endsWith('.body.1.weight'))).toBe(true);
      expect(model.namedParameters().filter(([, p]) => p.variable === model.act.weight).length).toBe(1);
    } finally {
      model.dispose();
    }
  });

  it('exposes the tasks and padding of the official scripts', () => {
    const firstTask = (name: string) => {
      const m = createModel(name, name === 'mprnet-tiny' ? {} : { config: { n_feat: 4, scale_unetfeats: 1, scale_orsnetfeats: 1, num_cab: 0 } });
      const t = m.tasks();
      m.dispose();
      return t;
    };
    expect(firstTask('mprnet-deblur').map((t) => t.name)).toEqual(['deblur', 'denoise', 'derain']);
    expect(firstTask('mprnet-denoise')[0].name).toBe('denoise');
    expect(firstTask('mprnet-derain')[0].name).toBe('derain');
    expect(firstTask('mprnet-tiny')[0].name).toBe('deblur');
    expect(firstTask('mprnet-denoise').every((t) => t.degradation === undefined)).toBe(true);
    const m = tiny();
    expect(m.paddingRule()).toEqual({ multiple: 8, mode: 'reflect' });
    expect(() => m.task('dn-25')).toThrow(/no task 'dn-25'/);
    m.dispose();
  });

  it('rejects unknown keys and nonsense values with one-line errors', () => {
    const bad = (config: Record<string, unknown>) => () => createModel('mprnet-tiny', { config });
    expect(bad({ dim: 8 })).toThrow(/unknown key 'dim'/);
    expect(bad({ n_feat: 0 })).toThrow(/n_feat must be an integer >= 1/);
    expect(bad({ num_cab: -1 })).toThrow(/num_cab must be an integer >= 0/);
    expect(bad({ kernel_size: 4 })).toThrow(/kernel_size must be odd/);
    expect(bad({ reduction: 16 })).toThrow(/reduction 16 exceeds n_feat 8/);
    expect(bad({ in_c: 4 })).toThrow(/in_c must be 1 or 3/);
    expect(bad({ bias: 1 })).toThrow(/bias must be true or false/);
    for (const f of [bad({ kernel_size: 4 }), bad({ in_c: 4 })]) expect(() => f()).toThrow(/^[^\n]+$/);
  });
});

describe('mprnet equals PyTorch', () => {
  it.each(Object.keys(FIXTURE_CONFIGS))('%s: all three stages and the padded restore match the official outputs', async (name) => {
    const model = await fixtureModel(name);
    const before = tf.memory().numTensors;
    try {
      const x = npy(`${name}_input.npy`);
      const stages = model.forwardStages(x);
      ['stage3', 'stage2', 'stage1'].forEach((s, i) => {
        const want = npy(`${name}_${s}.npy`);
        expect(stages[i].shape, s).toEqual(want.shape);
        expect(maxAbsDiff(stages[i], want), s).toBeLessThan(1e-4);
        want.dispose();
      });
      const y = model.forward(x);
      expect(maxAbsDiff(y, stages[0])).toBe(0);
      tf.dispose([x, y, ...stages]);

      expectFixtureOutput(FIX, `${name}_pad_input.npy`, `${name}_pad_output.npy`, (xp) => model.restore(xp), 1e-4);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });

  it('loads the shared PReLU value from the checkpoint', async () => {
    const model = await fixtureModel('tiny');
    try {
      const { stateDict } = await loadStateDict(path.join(FIX, 'tiny.pth'));
      const want = stateDict.get('stage3_orsnet.orb3.body.0.body.1.weight')!.data[0] as number;
      expect(want).not.toBeCloseTo(0.25, 3);
      expect(model.act.weight.dataSync()[0]).toBeCloseTo(want, 6);
    } finally {
      model.dispose();
    }
  });
});

describe('mprnet hooks, memory and training', () => {
  it('names hook points by official module path', () => {
    const model = tiny();
    try {
      const names = new Set(hookPoints(model));
      for (const n of [
        'stage2_encoder.encoder_level3',
        'stage3_orsnet.orb2',
        'sam12',
        'sam23',
        'stage1_encoder.down12.down.1',
        'stage2_decoder.up21.up.0',
        'stage3_orsnet.up_enc2.1.up.1',
        'stage2_encoder.csff_dec3',
        'shallow_feat1.1.CA.avg_pool',
        'shallow_feat1.1.body.1', // the shared PReLU, named by its first path
        'concat23',
        'tail',
      ])
        expect(names.has(n), n).toBe(true);
      expect(names.has('stage1_encoder.csff_enc1')).toBe(false);
      expect(names.has('stage2_encoder.encoder_level1.0.body.1')).toBe(false);
      const layers = resolveHookNames(model, model.defaultLayers());
      // full-image points only (per-patch modules would show one patch)
      expect(layers.length).toBe(3 + 1 + 3);
      expect(layers[0]).toBe('stage2_decoder.decoder_level1');
      expect(layers).toEqual(expect.arrayContaining(['sam23', 'stage3_orsnet.orb1', 'stage3_orsnet.orb2', 'stage3_orsnet.orb3']));
    } finally {
      model.dispose();
    }
  });

  it('captures hook points with runWithCache and keeps tensor counts flat', () => {
    const model = tiny();
    const x = tf.randomUniform([1, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    try {
      const run = () => {
        const { output, cache } = model.runWithCache(x, [
          ...model.defaultLayers(),
          'stage1_encoder.encoder_level*',
          'stage1_decoder.decoder_level*',
          'stage2_encoder.encoder_level*',
          'sam12',
          'stage1_encoder',
          'shallow_feat1.1.body.1',
        ]);
        // Per-patch modules keep their last call: bottom-right quadrant (stage-1 encoder), bottom half (stage 2).
        expect(cache.get('stage1_encoder.encoder_level1')!.shape).toEqual([1, 16, 16, 8]);
        expect(cache.get('stage1_encoder:2')!.shape).toEqual([1, 4, 4, 16]);
        expect(cache.get('stage1_decoder.decoder_level1')!.shape).toEqual([1, 16, 32, 8]);
        expect(cache.get('stage2_encoder.encoder_level3')!.shape).toEqual([1, 4, 8, 16]);
        expect(cache.get('stage2_decoder.decoder_level2')!.shape).toEqual([1, 16, 16, 12]);
        expect(cache.get('stage3_orsnet.orb2')!.shape).toEqual([1, 32, 32, 12]);
        expect(cache.get('sam12:0')!.shape).toEqual([1, 16, 32, 8]);
        expect(cache.get('sam12:1')!.shape).toEqual([1, 16, 32, 3]);
        expect(cache.get('shallow_feat1.1.body.1')!.shape).toEqual([1, 32, 32, 12]); // last CAB: orb3
        expect(cache.size).toBe(3 + 2 /* sam23:0,1 */ + 3 + 9 + 2 + 3 + 1);
        expectCachedOutputEqualsForward({ output, cache }, model.forward(x));
      };
      const before = expectFlatTensorCount(run, 3);
      const odd = tf.slice(x, [0, 0, 0, 0], [1, 29, 31, 3]) as tf.Tensor4D;
      const y = model.restore(odd);
      expect(y.shape).toEqual([1, 29, 31, 3]);
      const stages = model.forwardStages(x);
      tf.dispose([odd, y, ...stages]);
      expect(tf.memory().numTensors).toBe(before);
      const [wrongSize, wrongChannels] = [tf.zeros([1, 28, 32, 3]) as tf.Tensor4D, tf.zeros([1, 32, 32, 1]) as tf.Tensor4D];
      expect(() => model.forward(wrongSize)).toThrow(/28x32 must be a multiple of 8/);
      expect(() => model.forward(wrongChannels)).toThrow(/expected 3 input channels/);
      tf.dispose([wrongSize, wrongChannels]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      x.dispose();
      model.dispose();
    }
  });

  it('takes a gradient step on wasm (multi-stage L1 loss, every variable gets a finite gradient)', () => {
    const model = tiny({ bias: true });
    const x = tf.randomUniform([1, 16, 16, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const target = tf.randomUniform([1, 16, 16, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    try {
      const loss = () => tf.addN(model.forwardStages(x).map((s) => tf.mean(tf.abs(tf.sub(s, target))))) as tf.Scalar;
      gradientStepCheck(loss, model.variables(), (grads) => {
        // The shared PReLU accumulates gradient from every CAB.
        expect(Math.abs(grads[model.act.weight.name].dataSync()[0])).toBeGreaterThan(0);
      });
    } finally {
      tf.dispose([x, target]);
      model.dispose();
    }
  });
});
