/**
 * EDT against PyTorch: parameter counts and state_dict keys of every preset, outputs of every task branch of
 * perturbed checkpoints written by test/fixtures/make_edt_fixtures.py (SR x2; SR x3 + DN + DR sharing one
 * body; gray / IMAGE_RANGE 255 / one-step upsampler / 3conv / DEPTH 1 / 4x8 windows), the official test-time
 * padding, task branches, hooks, memory and training steps on wasm.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { hookPoints, resolveHookNames } from '../../src/models/hooks';
import { withZeroInit } from '../../src/models/module';
import { createModel, resolveSpec } from '../../src/models/registry';
import type { EDT } from '../../src/models/edt';
import '../../src/models/edt';
import {
  absSum,
  expectCachedOutputEqualsForward,
  expectFamilyPresets,
  expectFixtureOutput,
  expectFlatTensorCount,
  expectPresetConformance,
  gradientStepCheck,
  loadFixtureModel,
  maxAbsDiff,
  readPresetKeys,
} from './harness';

const FIX = path.join(__dirname, '..', 'fixtures', 'edt');
const KEYS = readPresetKeys(FIX);

/** architectures.md (EDT table), measured on the official Network; edt-t-multi and tiny ones measured by us. */
const PUBLISHED: Record<string, number> = {
  'edt-t-sr-x2': 916_924,
  'edt-t-sr-x3': 919_099,
  'edt-t-sr-x4': 922_144,
  'edt-s-sr-x2': 4_230_323,
  'edt-b-sr-x2': 11_479_355,
  'edt-b-sr-x3': 11_663_995,
  'edt-b-sr-x4': 11_627_067,
  'edt-b-dn-g15': 11_503_163,
  'edt-b-dn-g25': 11_503_163,
  'edt-b-dn-g50': 11_503_163,
  'edt-b-dr-light': 11_503_163,
  'edt-b-dr-heavy': 11_503_163,
  'edt-l-sr-x2': 39_927_395,
  'edt-t-sr-x2x3x4': 1_137_537,
  'edt-t-multi': 1_612_132,
};

/** Fixture name -> [preset, config overrides] (mirrors FIXTURES in make_edt_fixtures.py). */
const FIXTURES: Record<string, [string, Record<string, unknown>]> = {
  tiny: ['edt-tiny', {}],
  tiny_multi: ['edt-tiny-multi', {}],
  tiny_gray_direct: [
    'edt-tiny',
    {
      IN_CHANNEL: 1,
      IMAGE_RANGE: 255,
      UPSAMPLER: 'pixelshuffledirect',
      RESI_CONNECTION: '3conv',
      DEPTH: 1,
      DEPTHS: [3],
      NUM_HEADS: [3],
      MLP_RATIO: 1.5,
      WINDOW_SIZE: [4, 8],
      IMAGE_SIZE: 16,
      SCALES: [4],
      NOISE_LEVELS: [15],
      RAIN_LEVELS: ['L'],
    },
  ],
};

beforeAll(async () => {
  await initBackend('wasm');
});

const isMask = (k: string) => /\.attn_mask_[hv]$/.test(k);

/** A zero-weight build (no random draws): for counts and key listings of the large presets. */
function zeroBuild(name: string, config: Record<string, unknown> = {}): EDT {
  const { family, config: resolved } = resolveSpec(name, config);
  return withZeroInit(() => family.build(resolved)) as EDT;
}

async function fixtureModel(name: string): Promise<EDT> {
  const [preset, config] = FIXTURES[name];
  const model = createModel(preset, { config }) as EDT;
  const report = await loadFixtureModel(model, path.join(FIX, `${name}.pth`));
  // The fixture keeps one attention-mask buffer: it is recognised and skipped, everything else loads.
  expect(report.skipped.length).toBe(1);
  expect(report.skipped.every(isMask)).toBe(true);
  return model;
}

describe('edt presets', () => {
  it('registers every configuration with its official parameter count', () => {
    expectFamilyPresets('edt', Object.keys(KEYS), PUBLISHED);
  });

  it.each(Object.keys(KEYS))('%s: parameter count, state_dict keys and shapes equal PyTorch', (name) => {
    const model = zeroBuild(name);
    try {
      // The official state_dict also holds attn_mask_h/_v of every shifted (odd) block; the model recomputes them.
      const official = KEYS[name].keys;
      const masks = official.filter(([k]) => isMask(k));
      const c = model.config;
      const shifted = c.DEPTHS.reduce((s, d) => s + Math.floor(d / 2), 0);
      expect(masks.length).toBe(2 * shifted);
      expect(masks.every(([k]) => model.ignoredStateKeys().some((re) => re.test(k)))).toBe(true);
      expectPresetConformance(name, model, KEYS[name], {
        published: PUBLISHED[name],
        officialParams: true,
        keys: official.filter(([k]) => !isMask(k)),
      });
    } finally {
      model.dispose();
    }
  });

  it('maps task names onto the official branches, with degradations and test-time padding', () => {
    const multi = zeroBuild('edt-t-multi');
    try {
      expect(multi.tasks().map((t) => t.name)).toEqual(['sr-x2', 'sr-x3', 'sr-x4', 'dn-15', 'dn-25', 'dn-50', 'dr-light', 'dr-heavy']);
      expect(multi.tasks().map((t) => t.degradation)).toEqual(multi.tasks().map((t) => t.name));
      expect(multi.tasks().map((t) => t.scale)).toEqual([2, 3, 4, 1, 1, 1, 1, 1]);
      expect(multi.tasks().map((t) => multi.branchName(t.name))).toEqual(['sr_x2', 'sr_x3', 'sr_x4', 'dn_g15', 'dn_g25', 'dn_g50', 'dr_L', 'dr_H']);
      expect(multi.task().name).toBe('sr-x2');
      expect(multi.paddingRule('sr-x4')).toEqual({ multiple: 24, mode: 'symmetric' });
      expect(multi.paddingRule('dr-heavy')).toEqual({ multiple: 96, mode: 'symmetric' });
      expect(() => multi.task('dn-75')).toThrow(/no task 'dn-75'/);
    } finally {
      multi.dispose();
    }
    const other = zeroBuild('edt-tiny', FIXTURES.tiny_gray_direct[1]);
    expect(other.paddingRule('sr-x4').multiple).toBe(8);
    expect(other.paddingRule('dn-15').multiple).toBe(16);
    other.dispose();
    const single = (name: string) => {
      const m = zeroBuild(name);
      const t = m.tasks();
      m.dispose();
      return t;
    };
    expect(single('edt-b-dn-g50')).toEqual([{ name: 'dn-50', kind: 'dn', scale: 1, degradation: 'dn-50' }]);
    expect(single('edt-b-dr-light')).toEqual([{ name: 'dr-light', kind: 'dr', scale: 1, degradation: 'dr-light' }]);
    expect(single('edt-l-sr-x2')).toEqual([{ name: 'sr-x2', kind: 'sr', scale: 2, degradation: 'sr-x2' }]);
  });

  it('rejects unknown keys and nonsense values with one-line errors', () => {
    const bad = (config: Record<string, unknown>) => () => createModel('edt-tiny', { config });
    expect(bad({ embed_dim: 8 })).toThrow(/unknown key 'embed_dim'/);
    expect(bad({ DOWNSAMPLE: 1 })).toThrow(/unknown key 'DOWNSAMPLE'/);
    expect(bad({ EMBED_DIM: 13 })).toThrow(/EMBED_DIM=13 is invalid \(expected an even number/);
    expect(bad({ NUM_HEADS: [4, 2] })).toThrow(/NUM_HEADS=\[4,2\] is invalid \(expected divisors of EMBED_DIM\/2 = 6\)/);
    expect(bad({ NUM_HEADS: [2] })).toThrow(/one per entry of DEPTHS/);
    expect(bad({ RAIN_LEVELS: ['M'] })).toThrow(/RAIN_LEVELS/);
    expect(bad({ SCALES: [5] })).toThrow(/2\^n or 3 with UPSAMPLER 'pixelshuffle'/);
    expect(bad({ SCALES: [2, 2] })).toThrow(/no repeated entries/);
    expect(bad({ SCALES: [] })).toThrow(/at least one task branch/);
    expect(bad({ WINDOW_SIZE: [6] })).toThrow(/WINDOW_SIZE/);
    expect(bad({ IMAGE_SIZE: 30 })).toThrow(/multiple of lcm\(WINDOW_SIZE\) = 24/);
    expect(bad({ UPSAMPLER: 'nearest+conv' })).toThrow(/UPSAMPLER/);
    expect(bad({ RESI_CONNECTION: '2conv' })).toThrow(/RESI_CONNECTION/);
    for (const f of [bad({ EMBED_DIM: 13 }), bad({ NUM_HEADS: [4, 2] })]) expect(() => f()).toThrow(/^[^\n]+$/);
  });
});

describe('edt equals PyTorch', () => {
  it.each(Object.keys(FIXTURES))('%s: forward and padded restore of every branch match the official outputs', async (name) => {
    const model = await fixtureModel(name);
    const before = tf.memory().numTensors;
    try {
      for (const task of model.tasks().map((t) => t.name)) {
        const [inp, padInp] = [`${name}_${task}_input.npy`, `${name}_${task}_pad_input.npy`];
        expectFixtureOutput(FIX, inp, `${name}_${task}_output.npy`, (x) => model.forward(x, task), 1e-4, { label: `${task} ${inp}` });
        expectFixtureOutput(FIX, padInp, `${name}_${task}_pad_output.npy`, (x) => model.restore(x, task), 1e-4, { label: `${task} ${padInp}` });
      }
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });
});

describe('edt hooks, memory and training', () => {
  it('names hook points by official module path', () => {
    const model = zeroBuild('edt-t-multi');
    try {
      const names = new Set(hookPoints(model));
      for (const n of [
        'head_sr_x2.0',
        'head_dn_g15.1',
        'head_dn_g15.1.conv_down',
        'head_dr_L.3',
        'body',
        'body.patch_embed.norm',
        'body.layers.0',
        'body.layers.3.residual_group.blocks.5.attns.1.lepe',
        'body.layers.0.residual_group.blocks.1.attns.0.softmax',
        'body.layers.0.residual_group.blocks.1.mlp.dwconv',
        'body.conv_after_body',
        'tail_sr_x4.2.3',
        'tail_sr_x3.3',
        'tail_dn_g50.0.up',
        'tail_dr_H.1.block.shortcut',
      ])
        expect(names.has(n), n).toBe(true);
      for (const n of ['criterion', 'body.layers.0.conv', 'body.layers.0.residual_group.blocks.0.proj_drop', 'head_sr_x2.1.conv_down'])
        expect(names.has(n), n).toBe(false);
      const layers = resolveHookNames(model, model.defaultLayers('dn-25'));
      expect(layers.length).toBe(1 + 24 + 4 + 1);
      expect(layers[0]).toBe('head_dn_g25.3');
      expect(layers.slice(1, 3)).toEqual(['body.layers.0', 'body.layers.0.residual_group.blocks.0']);
      expect(layers.at(-1)).toBe('tail_dn_g25.2');
      expect(resolveHookNames(model, model.defaultLayers()).at(-1)).toBe('tail_sr_x2.3');
    } finally {
      model.dispose();
    }
  });

  it('captures hook points of the chosen branch with runWithCache and keeps tensor counts flat', () => {
    const model = createModel('edt-tiny-multi') as EDT;
    const x = tf.randomUniform([1, 96, 96, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const blk = 'body.layers.0.residual_group.blocks.1';
    try {
      const run = () => {
        const { output, cache } = model.runWithCache(
          x,
          [...model.defaultLayers('dn-25'), 'head_dn_g25.1', 'head_sr_x3.0', 'body', `${blk}.attns.*`, `${blk}.attns.1.softmax`],
          'dn-25',
        );
        expect(cache.get('head_dn_g25.1:0')!.shape).toEqual([1, 48, 48, 8]);
        expect(cache.get('head_dn_g25.1:1')!.shape).toEqual([1, 96, 96, 8]);
        expect(cache.get('head_dn_g25.3')!.shape).toEqual([1, 24, 24, 12]);
        expect(cache.get('body.layers.1')!.shape).toEqual([1, 576, 12]);
        expect(cache.get('body')!.shape).toEqual([1, 24, 24, 12]);
        expect(cache.get(`${blk}.attns.0`)!.shape).toEqual([1, 24, 24, 6]);
        expect(cache.get(`${blk}.attns.1.softmax`)!.shape).toEqual([4, 2, 144, 144]);
        expect(cache.has('head_sr_x3.0')).toBe(false); // another branch: not run
        // The cached tail output is the residual that the model adds to its input.
        const tail = cache.get('tail_dn_g25.2')!;
        expect(tf.tidy(() => maxAbsDiff(tf.sub(output, x), tail))).toBeLessThan(1e-5);
        expectCachedOutputEqualsForward({ output, cache }, model.forward(x, 'dn-25'));
      };
      const before = expectFlatTensorCount(run, 2);
      const odd = tf.slice(x, [0, 0, 0, 0], [1, 29, 31, 3]) as tf.Tensor4D;
      const y = model.restore(odd, 'sr-x3');
      expect(y.shape).toEqual([1, 87, 93, 3]);
      tf.dispose([odd, y]);
      expect(tf.memory().numTensors).toBe(before);
      const [wrongSize, wrongChannels] = [tf.zeros([1, 48, 48, 3]) as tf.Tensor4D, tf.zeros([1, 96, 96, 1]) as tf.Tensor4D];
      expect(() => model.forward(wrongSize, 'dr-heavy')).toThrow(/dr-heavy input 48x48 is not a multiple of 96/);
      const fits = model.forward(wrongSize, 'sr-x3'); // 48 is a multiple of 24: fine for the SR branch
      expect(fits.shape).toEqual([1, 144, 144, 3]);
      fits.dispose();
      expect(() => model.forward(wrongChannels, 'dn-25')).toThrow(/model expects IN_CHANNEL=3/);
      expect(() => model.forward(wrongSize, 'dn-15')).toThrow(/no task 'dn-15'/);
      tf.dispose([wrongSize, wrongChannels]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      x.dispose();
      model.dispose();
    }
  });

  it.each([
    ['edt-tiny', 'sr-x2', 24],
    ['edt-tiny-multi', 'dr-heavy', 96],
  ])('%s %s: a gradient step on wasm (L1 loss, finite gradients, loss decreases)', (preset, task, size) => {
    const model = createModel(preset) as EDT;
    const spec = model.task(task);
    const x = tf.randomUniform([1, size, size, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const target = tf.randomUniform([1, size * spec.scale, size * spec.scale, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    try {
      const loss = () => tf.mean(tf.abs(tf.sub(model.forward(x, task), target))) as tf.Scalar;
      // Only the chosen branch's head/tail and the shared body take part in this task's loss.
      const branch = model.branchName(task);
      const used = model.namedParameters().filter(([k]) => k.startsWith('body.') || k.includes(`_${branch}.`));
      gradientStepCheck(loss, used.map(([, p]) => p.variable), (grads) => {
        for (const key of ['body.layers.1.residual_group.blocks.1.attns.1.lepe.weight', 'body.layers.0.residual_group.blocks.0.mlp.dwconv.weight']) {
          const v = used.find(([k]) => k === key)![1].variable;
          expect(absSum(grads[v.name]), key).toBeGreaterThan(0);
        }
      });
    } finally {
      tf.dispose([x, target]);
      model.dispose();
    }
  });
});
