/**
 * Restormer against PyTorch: parameter counts and state_dict keys of every preset, outputs of perturbed
 * checkpoints written by test/fixtures/make_restormer_fixtures.py (WithBias RGB, BiasFree gray with conv
 * biases, dual pixel), the official test-time padding, hooks, memory and a training step on wasm.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { hookPoints, resolveHookNames } from '../../src/models/hooks';
import { createModel } from '../../src/models/registry';
import type { RestorationModel } from '../../src/models/model';
import '../../src/models/restormer';
import {
  absSum,
  expectCachedOutputEqualsForward,
  expectFamilyPresets,
  expectFixtureOutput,
  expectFlatTensorCount,
  expectPresetConformance,
  gradientStepCheck,
  loadFixtureModel,
  readFixtureJson,
  readPresetKeys,
  readNpyTensor,
} from './harness';

const FIX = path.join(__dirname, '..', 'fixtures', 'restormer');
const KEYS = readPresetKeys(FIX);

const PUBLISHED: Record<string, number> = {
  restormer: 26_126_644,
  'restormer-deblur': 26_126_644,
  'restormer-derain': 26_126_644,
  'restormer-denoise': 26_111_668,
  'restormer-denoise-gray': 26_109_076,
  'restormer-defocus-dp': 26_132_548,
};

/** Fixture name -> the config it was made with (keys.json holds the presets; these mirror FIXTURES there). */
const FIXTURE_CONFIGS: Record<string, Record<string, unknown>> = {
  tiny: {},
  tiny_biasfree_gray: {
    inp_channels: 1,
    out_channels: 1,
    num_blocks: [2, 1, 1, 1],
    num_refinement_blocks: 2,
    heads: [2, 2, 4, 4],
    bias: true,
    LayerNorm_type: 'BiasFree',
  },
  tiny_dual_pixel: { inp_channels: 6, bias: true, dual_pixel_task: true },
};

beforeAll(async () => {
  await initBackend('wasm');
});

const npy = (name: string) => readNpyTensor(FIX, name);

/** The fixture's checkpoint ({'params': state_dict}) loaded into a restormer-tiny of its config. */
async function fixtureModel(name: string): Promise<RestorationModel> {
  const model = createModel('restormer-tiny', { config: FIXTURE_CONFIGS[name] });
  const report = await loadFixtureModel(model, path.join(FIX, `${name}.pth`), 'params');
  expect(report.skipped).toEqual([]);
  return model;
}

describe('restormer presets', () => {
  it('registers every published configuration with its official parameter count', () => {
    expectFamilyPresets('restormer', Object.keys(KEYS), PUBLISHED);
  });

  it.each(Object.keys(KEYS))('%s: parameter count, state_dict keys and shapes equal PyTorch', (name) => {
    const model = createModel(name);
    try {
      expectPresetConformance(name, model, KEYS[name], { published: PUBLISHED[name], officialParams: true });
    } finally {
      model.dispose();
    }
  });

  it('exposes the tasks and padding of the official scripts', () => {
    const tasks = (name: string) => {
      const m = createModel(name, name === 'restormer-tiny' ? {} : { config: { dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 0 } });
      const t = m.tasks();
      m.dispose();
      return t;
    };
    expect(tasks('restormer-deblur')[0].name).toBe('deblur');
    expect(tasks('restormer-derain')[0].name).toBe('derain');
    expect(tasks('restormer').map((t) => t.name)).toEqual(['deblur', 'derain', 'defocus']);
    expect(tasks('restormer-denoise').map((t) => t.name)).toEqual(['dn-25', 'dn-15', 'dn-50', 'denoise']);
    expect(tasks('restormer-denoise')[0].degradation).toBe('dn-25');
    expect(tasks('restormer-denoise').find((t) => t.name === 'denoise')!.degradation).toBeUndefined();
    expect(tasks('restormer-denoise-gray').map((t) => t.name)).toEqual(['dn-25', 'dn-15', 'dn-50']);
    expect(tasks('restormer-defocus-dp').map((t) => t.name)).toEqual(['defocus']);
    const dp = createModel('restormer-tiny', { config: { inp_channels: 6, dual_pixel_task: true } });
    expect(dp.tasks().map((t) => t.name)).toEqual(['defocus']);
    dp.dispose();
    const m = createModel('restormer-tiny');
    expect(m.paddingRule('deblur')).toEqual({ multiple: 8, mode: 'reflect' });
    expect(() => m.task('sr-x2')).toThrow(/no task 'sr-x2'/);
    m.dispose();
  });

  it('rejects unknown keys and nonsense values with one-line errors', () => {
    const bad = (config: Record<string, unknown>) => () => createModel('restormer-tiny', { config });
    expect(bad({ embed_dim: 8 })).toThrow(/unknown key 'embed_dim'/);
    expect(bad({ dim: 7 })).toThrow(/dim must be an even integer/);
    expect(bad({ heads: [3, 2, 4, 8] })).toThrow(/heads\[0\]=3 does not divide the 8 channels/);
    expect(bad({ num_blocks: [1, 1, 1] })).toThrow(/num_blocks must be a list of 4 integers/);
    expect(bad({ LayerNorm_type: 'RMS' })).toThrow(/LayerNorm_type must be 'WithBias' or 'BiasFree'/);
    expect(bad({ out_channels: 1 })).toThrow(/out_channels \(1\) must equal inp_channels/);
    expect(bad({ ffn_expansion_factor: 0.01 })).toThrow(/ffn_expansion_factor/);
    for (const f of [bad({ dim: 7 }), bad({ heads: [3, 2, 4, 8] })]) expect(() => f()).toThrow(/^[^\n]+$/);
  });
});

describe('restormer equals PyTorch', () => {
  it.each(Object.keys(FIXTURE_CONFIGS))('%s: forward and padded restore match the official outputs', async (name) => {
    const model = await fixtureModel(name);
    const before = tf.memory().numTensors;
    try {
      expectFixtureOutput(FIX, `${name}_input.npy`, `${name}_output.npy`, (x) => model.forward(x), 1e-4);
      expectFixtureOutput(FIX, `${name}_pad_input.npy`, `${name}_pad_output.npy`, (x) => model.restore(x), 1e-4);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });
});

describe('restormer gradients equal PyTorch', () => {
  // PyTorch-layout -> TF.js-layout permutation of a gradient, per TorchLayout.
  const TO_TF: Record<string, number[] | undefined> = { conv: [2, 3, 1, 0], depthwise: [2, 3, 0, 1] };

  it.each(['tiny', 'tiny_biasfree_gray'])('%s: d sum(forward(x) * r) / d params on wasm', async (name) => {
    const model = await fixtureModel(name);
    const want = readFixtureJson<Record<string, { shape: number[]; data: number[] }>>(FIX, `${name}_grads.json`);
    const x = npy(`${name}_input.npy`);
    const r = npy(`${name}_grad_r.npy`);
    try {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(model.forward(x), r)) as tf.Scalar, model.variables());
      const params = new Map(model.namedParameters());
      expect(Object.keys(want).length).toBeGreaterThan(20);
      for (const [key, g] of Object.entries(want)) {
        const p = params.get(key)!;
        const perm = TO_TF[p.layout];
        const diff = tf.tidy(() => {
          const ref = tf.tensor(g.data, g.shape);
          const refTf = perm ? tf.transpose(ref, perm) : ref;
          const scale = tf.max(tf.abs(refTf)).dataSync()[0];
          return tf.max(tf.abs(tf.sub(grads[p.variable.name], refTf))).dataSync()[0] / Math.max(scale, 1e-3);
        });
        expect(diff, key).toBeLessThan(1e-3);
      }
      tf.dispose([value, ...Object.values(grads)]);
    } finally {
      tf.dispose([x, r]);
      model.dispose();
    }
  });
});

describe('restormer hooks, memory and training', () => {
  it('names hook points by official module path (default config)', () => {
    const model = createModel('restormer');
    try {
      const names = new Set(hookPoints(model));
      for (const n of ['encoder_level2.3', 'latent', 'latent.7', 'refinement.0', 'encoder_level1.0.attn', 'encoder_level1.0.norm1.body', 'down1_2.body.1', 'output'])
        expect(names.has(n), n).toBe(true);
      expect(names.has('skip_conv')).toBe(false);
      const layers = resolveHookNames(model, model.defaultLayers());
      expect(layers.length).toBe(4 + 6 + 6 + 8 + 6 + 6 + 4 + 4 + 1);
      expect(layers.slice(0, 2)).toEqual(['encoder_level1.0', 'encoder_level1.1']);
      expect(layers.at(-2)).toBe('refinement.3');
    } finally {
      model.dispose();
    }
  });

  it('captures hook points with runWithCache and keeps tensor counts flat', () => {
    const model = createModel('restormer-tiny');
    const x = tf.randomUniform([1, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    try {
      const run = () => {
        const { output, cache } = model.runWithCache(x, [...model.defaultLayers(), 'encoder_level1.0.attn', 'latent', 'down1_2']);
        expect(cache.get('latent')!.shape).toEqual([1, 4, 4, 64]);
        expect(cache.get('encoder_level1.0.attn')!.shape).toEqual([1, 32, 32, 8]);
        expect(cache.get('down1_2')!.shape).toEqual([1, 16, 16, 16]);
        expect(cache.get('refinement.0')!.shape).toEqual([1, 32, 32, 16]);
        expect(cache.get('output')!.shape).toEqual([1, 32, 32, 3]);
        expect(cache.size).toBe(12);
        // The cached refinement output feeds the output conv; the model output adds the image back.
        expectCachedOutputEqualsForward({ output, cache }, model.forward(x));
      };
      const before = expectFlatTensorCount(run, 3);
      const odd = tf.slice(x, [0, 0, 0, 0], [1, 29, 31, 3]) as tf.Tensor4D;
      const y = model.restore(odd);
      expect(y.shape).toEqual([1, 29, 31, 3]);
      tf.dispose([odd, y]);
      expect(tf.memory().numTensors).toBe(before);
      const [wrongSize, wrongChannels] = [tf.zeros([1, 30, 32, 3]) as tf.Tensor4D, tf.zeros([1, 32, 32, 1]) as tf.Tensor4D];
      expect(() => model.forward(wrongSize)).toThrow(/not a multiple of 8/);
      expect(() => model.forward(wrongChannels)).toThrow(/expected 3 input channels/);
      tf.dispose([wrongSize, wrongChannels]);
    } finally {
      x.dispose();
      model.dispose();
    }
  });

  it('takes a gradient step on wasm (L1 loss, every variable gets a finite gradient)', () => {
    const model = createModel('restormer-tiny', { config: { LayerNorm_type: 'BiasFree', bias: true } });
    const x = tf.randomUniform([1, 16, 16, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const target = tf.randomUniform([1, 16, 16, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    try {
      const loss = () => tf.mean(tf.abs(tf.sub(model.forward(x), target))) as tf.Scalar;
      const temp = model.namedParameters().find(([k]) => k === 'encoder_level1.0.attn.temperature')![1].variable;
      gradientStepCheck(loss, model.variables(), (grads) => expect(absSum(grads[temp.name])).toBeGreaterThan(0));
    } finally {
      tf.dispose([x, target]);
      model.dispose();
    }
  });
});
