/**
 * SwinIR against PyTorch: parameter counts and state_dict keys of every preset, outputs of perturbed checkpoints
 * written by test/fixtures/make_swinir_fixtures.py (every head, 1conv/3conv, gray/RGB, windows 4/7/8, img_range
 * 255, ape, the small-img_size window rule), the forward's own reflect padding, the test script's flip padding,
 * hooks, memory and a training step on wasm.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { hookPoints, resolveHookNames } from '../../src/models/hooks';
import type { RestorationModel } from '../../src/models/model';
import { createModel } from '../../src/models/registry';
import { relativePositionIndex } from '../../src/models/swinir';
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
  stateShapes,
  type KeyShapes,
  type PresetKeys,
} from './harness';

const FIX = path.join(__dirname, '..', 'fixtures', 'swinir');

interface KeyTable extends PresetKeys {
  fit?: [number, number];
  odd?: [number, number] | null;
}
/** keys.json holds the presets and, separately, the configs the fixture checkpoints were made with. */
const TABLE = readPresetKeys<{ presets: Record<string, KeyTable>; fixtures: Record<string, KeyTable> }>(FIX);

beforeAll(async () => {
  await initBackend('wasm');
});

/** The official state_dict entries that irlens loads (buffers it recomputes filtered out). */
function loadableKeys(model: RestorationModel, keys: KeyShapes): KeyShapes {
  const ignored = model.ignoredStateKeys();
  return keys.filter(([k]) => !ignored.some((re) => re.test(k)));
}

describe('swinir presets', () => {
  it('registers every configuration of the table (plus swinir-tiny)', () => {
    expectFamilyPresets('swinir', Object.keys(TABLE.presets));
  });

  it.each(Object.keys(TABLE.presets))('%s: parameter count, state_dict keys and shapes equal PyTorch', (name) => {
    const model = createModel(name);
    try {
      const want = TABLE.presets[name];
      // keys.json's configs leave norm_layer out (always nn.LayerNorm here): checked on its own.
      const { norm_layer, ...official } = model.config as unknown as Record<string, unknown>;
      expect(norm_layer).toBe('LayerNorm');
      expectPresetConformance(name, model, want, {
        officialParams: name !== 'swinir-tiny',
        keys: loadableKeys(model, want.keys),
        config: official,
      });
    } finally {
      model.dispose();
    }
  });

  it('has the official relative position index (ws 8: index[0][0] = 112, max 224)', () => {
    const idx = relativePositionIndex(8);
    expect(idx[0]).toBe(112);
    expect(Math.max(...idx)).toBe(224);
    expect(idx[63 * 64]).toBe(224); // i = (7,7), j = (0,0)
  });

  it('exposes the tasks and padding of the official test script', () => {
    const spec = (name: string, config: Record<string, unknown> = {}) => {
      const m = createModel(name, { config: { embed_dim: 6, depths: [1], num_heads: [1], ...config } });
      const out = { tasks: m.tasks(), padding: m.paddingRule(), scale: m.task().scale };
      m.dispose();
      return out;
    };
    expect(spec('swinir-sr-x3').tasks).toEqual([{ name: 'sr-x3', kind: 'sr', scale: 3, degradation: 'sr-x3' }]);
    expect(spec('swinir-light-sr-x4').tasks.map((t) => t.name)).toEqual(['sr-x4']);
    expect(spec('swinir-real-sr-x4').tasks).toEqual([{ name: 'real-sr-x4', kind: 'real-sr', scale: 4 }]);
    expect(spec('swinir-real-sr-x4-l').tasks[0].name).toBe('real-sr-x4');
    const dn = spec('swinir-dn');
    expect(dn.tasks.map((t) => t.name)).toEqual(['dn-25', 'dn-15', 'dn-50']);
    expect(dn.tasks[0]).toEqual({ name: 'dn-25', kind: 'dn', scale: 1, degradation: 'dn-25' });
    expect(dn.padding).toEqual({ multiple: 8, mode: 'symmetric' });
    expect(spec('swinir-dn-gray').tasks[0].name).toBe('dn-25');
    const jpeg = spec('swinir-jpeg-gray');
    expect(jpeg.tasks.map((t) => t.name)).toEqual(['jpeg-q40', 'jpeg-q10', 'jpeg-q20', 'jpeg-q30']);
    expect(jpeg.tasks[0].degradation).toBe('jpeg-q40');
    expect(jpeg.padding).toEqual({ multiple: 7, mode: 'symmetric' });
    expect(spec('swinir-jpeg').scale).toBe(1);
    const m = createModel('swinir-tiny');
    expect(() => m.task('dn-25')).toThrow(/no task 'dn-25'/);
    expect(m.ignoredStateKeys().some((re) => re.test('layers.0.residual_group.blocks.1.attn_mask'))).toBe(true);
    expect(m.ignoredStateKeys().some((re) => re.test('layers.0.residual_group.blocks.0.attn.relative_position_index'))).toBe(true);
    m.dispose();
  });

  it('rejects unknown keys and nonsense values with one-line errors', () => {
    const bad = (config: Record<string, unknown>) => () => createModel('swinir-tiny', { config });
    expect(bad({ dim: 8 })).toThrow(/unknown key 'dim'/);
    expect(bad({ use_checkpoint: true })).toThrow(/unknown key 'use_checkpoint'/);
    expect(bad({ num_heads: [5, 2] })).toThrow(/num_heads=.*divisors of embed_dim=12/);
    expect(bad({ num_heads: [2] })).toThrow(/num_heads=.*one per entry of depths \(2\)/);
    expect(bad({ depths: [] })).toThrow(/depths=\[\] is invalid/);
    expect(bad({ upsampler: 'bicubic' })).toThrow(/upsampler="bicubic" is invalid/);
    expect(bad({ upscale: 5 })).toThrow(/upscale=5 is invalid \(expected 2\^n or 3/);
    expect(bad({ upsampler: 'nearest+conv', upscale: 2 })).toThrow(/upscale=2 is invalid \(expected 4/);
    expect(bad({ resi_connection: '2conv' })).toThrow(/resi_connection/);
    expect(bad({ norm_layer: 'BatchNorm' })).toThrow(/norm_layer/);
    expect(bad({ img_size: [64] })).toThrow(/img_size/);
    expect(bad({ window_size: 0 })).toThrow(/window_size=0/);
    expect(bad({ drop_path_rate: 1.5 })).toThrow(/drop_path_rate/);
    for (const f of [bad({ num_heads: [5, 2] }), bad({ upscale: 5 })]) expect(f).toThrow(/^[^\n]+$/);
  });
});

async function fixtureModel(name: string): Promise<RestorationModel> {
  const entry = TABLE.fixtures[name];
  const model = createModel('swinir', { config: entry.config });
  expect(model.numParameters()).toBe(entry.params);
  expect(stateShapes(model)).toEqual(loadableKeys(model, entry.keys));
  const source = entry.config.upsampler === 'nearest+conv' ? 'params_ema' : 'params';
  const report = await loadFixtureModel(model, path.join(FIX, `${name}.pth`), source);
  expect(report.skipped.some((k) => k.endsWith('relative_position_index'))).toBe(true);
  return model;
}

describe('swinir equals PyTorch', () => {
  it.each(Object.keys(TABLE.fixtures))('%s: forward, forward with its own padding, and restore match', async (name) => {
    const model = await fixtureModel(name);
    const before = tf.memory().numTensors;
    try {
      const check = (input: string, expected: string, run: (x: tf.Tensor4D) => tf.Tensor4D, clampExpected = false) =>
        expectFixtureOutput(FIX, input, expected, run, 1e-4, { clampExpected, label: `${name} ${expected}` });
      check(`${name}_in.npy`, `${name}_out.npy`, (x) => model.forward(x));
      // An input that fits runs through restore() exactly like the official forward (then clamped).
      check(`${name}_in.npy`, `${name}_out.npy`, (x) => model.restore(x), true);
      if (TABLE.fixtures[name].odd) {
        check(`${name}_odd_in.npy`, `${name}_odd_fwd.npy`, (x) => model.forward(x));
        check(`${name}_odd_in.npy`, `${name}_odd_restore.npy`, (x) => model.restore(x));
      }
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });
});

describe('swinir hooks, memory and training', () => {
  it('names hook points by official module path', () => {
    for (const name of ['swinir', 'swinir-sr-x2']) {
      const model = createModel(name);
      try {
        const names = new Set(hookPoints(model));
        for (const n of [
          'conv_first',
          'patch_embed',
          'patch_embed.norm',
          'layers.2',
          'layers.2.residual_group.blocks.5',
          'layers.2.residual_group.blocks.5.attn',
          'layers.2.residual_group.blocks.5.attn.softmax',
          'layers.2.residual_group.blocks.5.mlp.fc2',
          'layers.3.conv',
          'layers.3.patch_unembed',
          'norm',
          'conv_after_body',
          'conv_last',
        ])
          expect(names.has(n), `${name}: ${n}`).toBe(true);
        const layers = resolveHookNames(model, model.defaultLayers());
        const rstbs = (model.config as unknown as { depths: number[] }).depths.length;
        expect(layers.length).toBe(rstbs * 7);
        expect(layers.slice(0, 3)).toEqual(['layers.0', 'layers.0.residual_group.blocks.0', 'layers.0.residual_group.blocks.1']);
        expect(layers.at(-1)).toBe(`layers.${rstbs - 1}.residual_group.blocks.5`);
      } finally {
        model.dispose();
      }
    }
    const sr = createModel('swinir-sr-x4');
    expect(hookPoints(sr)).toEqual(expect.arrayContaining(['conv_before_upsample.1', 'upsample.0', 'upsample.3']));
    sr.dispose();
  });

  it('captures hook points with runWithCache, intervenes with runWithHooks, and keeps tensor counts flat', () => {
    const model = createModel('swinir-tiny');
    const x = tf.randomUniform([1, 32, 24, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    try {
      const run = () => {
        const names = [...model.defaultLayers(), 'layers.0.residual_group.blocks.1.attn.softmax', 'conv_first', 'upsample'];
        const { output, cache } = model.runWithCache(x, names);
        expect(output.shape).toEqual([1, 64, 48, 3]);
        expect(cache.get('layers.1')!.shape).toEqual([1, 32 * 24, 12]);
        expect(cache.get('layers.1.residual_group.blocks.1')!.shape).toEqual([1, 32 * 24, 12]);
        // 4 x 3 windows of 8 x 8, 2 heads.
        expect(cache.get('layers.0.residual_group.blocks.1.attn.softmax')!.shape).toEqual([12, 2, 64, 64]);
        expect(cache.get('conv_first')!.shape).toEqual([1, 32, 24, 12]);
        expect(cache.get('upsample')!.shape).toEqual([1, 64, 48, 64]);
        expect(cache.size).toBe(2 + 4 + 3);
        expectCachedOutputEqualsForward({ output, cache }, model.forward(x));
      };
      const before = expectFlatTensorCount(run, 2);
      const ablated = model.runWithHooks(x, { 'layers.1.residual_group.blocks.0.attn': (t) => tf.zerosLike(t) });
      const plain = model.forward(x);
      expect(maxAbsDiff(ablated, plain)).toBeGreaterThan(1e-6);
      const odd = tf.slice(x, [0, 0, 0, 0], [1, 29, 21, 3]) as tf.Tensor4D;
      const y = model.restore(odd);
      expect(y.shape).toEqual([1, 58, 42, 3]);
      tf.dispose([ablated, plain, odd, y]);
      expect(tf.memory().numTensors).toBe(before);
      const wrongChannels = tf.zeros([1, 32, 32, 1]) as tf.Tensor4D;
      expect(() => model.forward(wrongChannels)).toThrow(/in_chans=3/);
      wrongChannels.dispose();
    } finally {
      x.dispose();
      model.dispose();
    }
  });

  it('takes a gradient step on wasm (L1 loss, every variable gets a finite gradient)', () => {
    // 3conv + nearest+conv + a shifted block: the other head and residual kinds than swinir-tiny's forward tests.
    const model = createModel('swinir-tiny', { config: { upscale: 4, upsampler: 'nearest+conv', resi_connection: '3conv', window_size: 4 } });
    const x = tf.randomUniform([1, 8, 8, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const target = tf.randomUniform([1, 32, 32, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    try {
      const loss = () => tf.mean(tf.abs(tf.sub(model.forward(x), target))) as tf.Scalar;
      const table = model.namedParameters().find(([k]) => k === 'layers.0.residual_group.blocks.1.attn.relative_position_bias_table')![1];
      gradientStepCheck(loss, model.variables(), (grads) => expect(absSum(grads[table.variable.name])).toBeGreaterThan(0));
    } finally {
      tf.dispose([x, target]);
      model.dispose();
    }
  });
});
