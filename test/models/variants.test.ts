/**
 * Ablation variants of the family descriptors: every variant applies on top of the tiny preset, builds, runs
 * forward and backward without leaking tensors; the switches at their defaults leave the official configs (and
 * so every parity test) untouched; variants that are official switches have the parameter counts of our own
 * PyTorch models of the official code (test/fixtures/make_variant_params.py -> variants/params.json).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import '../../src/models';
import { getFamily, listFamilies, variantDelta, type Config } from '../../src/models/family';
import { countParameters, createModel, resolveSpec } from '../../src/models/registry';
import type { MPRNet } from '../../src/models/mprnet';

beforeAll(async () => {
  await initBackend('wasm');
});

const PARAMS = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/variants/params.json'), 'utf8')) as {
  model: string;
  variant: string;
  config: Config;
  params: number;
}[];

const families = listFamilies().filter((f) => f.variants && Object.keys(f.variants).length > 0);

/** The delta of a variant on top of a preset and the resulting config overrides. */
function variantConfig(family: string, preset: string, variant: string, extra: Config = {}): Config {
  const { config } = resolveSpec(preset, extra);
  return { ...extra, ...variantDelta(getFamily(family), variant, config) };
}

/** A deterministic input whose size fits the model (multiple of its padding rule, at least 16). */
function inputFor(multiple: number): tf.Tensor4D {
  const side = Math.ceil(16 / multiple) * multiple;
  return tf.tidy(() => tf.sin(tf.reshape(tf.range(0, side * side * 3), [1, side, side, 3]).mul(0.37)).mul(0.5).add(0.5) as tf.Tensor4D);
}

describe('variants of every family', () => {
  it('declares the papers\' ablations', () => {
    expect(families.map((f) => f.name).sort()).toEqual(['edt', 'mprnet', 'restormer', 'swinir']);
    const names = (f: string) => Object.keys(getFamily(f).variants!);
    expect(names('restormer')).toEqual(expect.arrayContaining(['mdta', 'mta', 'gdfn', 'fn', 'dfn', 'gfn', 'refine-4', 'refine-0', 'progressive', 'fixed-patch']));
    expect(names('mprnet')).toEqual(expect.arrayContaining(['stages-1', 'stages-2', 'stages-3', 'sam-on', 'sam-off', 'csff-on', 'csff-off', 'orsnet', 'encdec-stage3']));
    expect(names('swinir')).toEqual(expect.arrayContaining(['resi-none', 'resi-1conv', 'resi-3conv', 'rstb-4', 'layers-4', 'window-7', 'window-8']));
    expect(names('edt')).toEqual(expect.arrayContaining(['window-6x24', 'window-12x12', 'window-8x16', 'window-4x16', 'shifted', 'unshifted', 'size-t', 'size-s', 'size-b']));
    expect(() => variantDelta(getFamily('swinir'), 'resi-2conv', {})).toThrow(/swinir has no variant 'resi-2conv' \(variants: resi-none/);
  });

  for (const f of families) {
    const tiny = f.study!.tiny;
    const tinyConfig = f.study!.tinyConfig;
    it.each(Object.keys(f.variants!))(`${f.name}: %s on ${tiny} builds, runs forward and backward, leaks nothing`, (variant) => {
      const config = variantConfig(f.name, tiny, variant, tinyConfig);
      const model = createModel(tiny, { config, seed: 1 });
      const before = tf.memory().numTensors;
      try {
        expect(model.numParameters()).toBe(countParameters(tiny, config));
        const x = inputFor(model.paddingRule().multiple);
        const step = () => {
          // MPRNet's stage images other than the last are trained by the multi-stage loss: take every output.
          const staged = (model as unknown as Partial<MPRNet>).forwardStages;
          const outputs = () => (staged ? staged.call(model, x) : [model.forward(x)]);
          const { value, grads } = tf.variableGrads(() => tf.addN(outputs().map((y) => tf.mean(tf.abs(y)))) as tf.Scalar, model.variables());
          const norms = Object.values(grads).map((g) => tf.tidy(() => g.abs().sum().dataSync()[0]));
          expect(Number.isFinite(value.dataSync()[0])).toBe(true);
          expect(norms.every(Number.isFinite)).toBe(true);
          expect(Object.keys(grads).length).toBe(model.variables().length);
          tf.dispose([value, ...Object.values(grads)]);
        };
        // The first call may fill per-model caches (shift masks, one-hot tables); after it the count is flat.
        step();
        const mid = tf.memory().numTensors;
        step();
        expect(tf.memory().numTensors).toBe(mid);
        x.dispose();
        expect(tf.memory().numTensors).toBeLessThanOrEqual(before + (mid - before));
      } finally {
        model.dispose();
      }
    }, 60_000);
  }
});

describe('switches at their defaults', () => {
  it('keep the official configs (no non-official key in model.config) and the official counts', () => {
    for (const [preset, variant] of [
      ['restormer', 'mdta'],
      ['restormer', 'gdfn'],
      ['mprnet-deblur', 'stages-3'],
      ['mprnet-deblur', 'sam-on'],
      ['mprnet-deblur', 'csff-on'],
      ['mprnet-deblur', 'orsnet'],
      ['swinir-sr-x2', 'resi-1conv'],
      ['edt-b-sr-x2', 'shifted'],
    ]) {
      const { family, preset: p } = resolveSpec(preset);
      const config = variantConfig(family.name, preset, variant);
      expect(countParameters(preset, config)).toBe(p!.officialParams);
    }
    const m = createModel('mprnet-tiny');
    const r = createModel('restormer-tiny');
    try {
      expect(Object.keys(m.config)).not.toContain('num_stages');
      expect(Object.keys(r.config)).not.toContain('ffn_type');
    } finally {
      m.dispose();
      r.dispose();
    }
    const turned = createModel('restormer-tiny', { config: { ffn_type: 'FN' } });
    expect(turned.config).toMatchObject({ ffn_type: 'FN' });
    turned.dispose();
  });
});

describe('parameter counts of official switches equal our PyTorch models of the official code', () => {
  it.each(PARAMS.map((p) => [p.model, p.variant, p] as const))('%s %s', (model, variant, want) => {
    const family = resolveSpec(model).family.name;
    const delta = variantConfig(family, model, variant);
    const resolved = resolveSpec(model, delta).config;
    for (const [k, v] of Object.entries(want.config)) if (k in delta) expect(resolved[k]).toEqual(v);
    expect(countParameters(model, delta)).toBe(want.params);
  });

  it('EDT sizes equal the published T/S/B counts', () => {
    const edt = (v: string) => countParameters('edt-b-sr-x2', variantConfig('edt', 'edt-b-sr-x2', v));
    expect(edt('size-t')).toBe(resolveSpec('edt-t-sr-x2').preset!.officialParams);
    expect(edt('size-s')).toBe(resolveSpec('edt-s-sr-x2').preset!.officialParams);
    expect(edt('size-b')).toBe(resolveSpec('edt-b-sr-x2').preset!.officialParams);
  });
});

describe('non-official switches', () => {
  it('MPRNet returns one image per kept stage and loses the modules it drops', () => {
    const x = inputFor(8);
    for (const [n, absent] of [
      [1, ['stage1_encoder', 'stage2_encoder', 'sam23']],
      [2, ['stage1_encoder', 'sam12', 'concat12']],
      [3, []],
    ] as const) {
      const m = createModel('mprnet-tiny', { config: { num_stages: n } }) as MPRNet;
      try {
        const outs = tf.tidy(() => m.forwardStages(x));
        expect(outs.length).toBe(n);
        tf.dispose(outs);
        const keys = m.stateEntries().map(([k]) => k);
        for (const a of absent) expect(keys.some((k) => k.startsWith(`${a}.`))).toBe(false);
      } finally {
        m.dispose();
      }
    }
    const noSam = createModel('mprnet-tiny', { config: { sam: false } });
    const keys = noSam.stateEntries().map(([k]) => k);
    expect(keys.some((k) => k.startsWith('sam12.conv1'))).toBe(false);
    expect(keys.some((k) => k.startsWith('sam12.conv2'))).toBe(true);
    noSam.dispose();
    x.dispose();
  });

  it('Restormer FN/DFN/GFN/MTA change exactly the modules they name', () => {
    const count = (c: Config) => countParameters('restormer-tiny', c);
    const base = count({});
    // Level-1 widths 8 (encoder) and 16 (decoder, refinement), 2x at level 2 etc.: every block loses its q/k/v dwconv.
    const blocks: [number, number][] = [
      [8, 1], [16, 1], [32, 1], [64, 1], [32, 1], [16, 1], [16, 1], [16, 1],
    ];
    const dw = blocks.reduce((s, [d, n]) => s + n * 3 * d * 9, 0);
    expect(count({ attn_dwconv: false })).toBe(base - dw);
    const hidden = (d: number) => Math.trunc(d * 2.66);
    const gdfn = (d: number) => d * 2 * hidden(d) + 2 * hidden(d) * 9 + hidden(d) * d;
    const fn = (d: number) => d * hidden(d) + hidden(d) * d;
    const dfn = (d: number) => fn(d) + hidden(d) * 9;
    const gfn = (d: number) => d * 2 * hidden(d) + hidden(d) * d;
    const total = (ffn: (d: number) => number) => blocks.reduce((s, [d, n]) => s + n * ffn(d), 0);
    expect(count({ ffn_type: 'FN' })).toBe(base - total(gdfn) + total(fn));
    expect(count({ ffn_type: 'DFN' })).toBe(base - total(gdfn) + total(dfn));
    expect(count({ ffn_type: 'GFN' })).toBe(base - total(gdfn) + total(gfn));
    expect(() => count({ ffn_type: 'XFN' })).toThrow(/ffn_type must be 'GDFN', 'FN', 'DFN' or 'GFN'/);
  });

  it('SwinIR without the RSTB residual and EDT without shifts keep the parameters', () => {
    expect(countParameters('swinir-tiny', { rstb_residual: false })).toBe(countParameters('swinir-tiny'));
    expect(countParameters('edt-tiny', { SHIFT: false })).toBe(countParameters('edt-tiny'));
    const a = createModel('edt-tiny', { config: { SHIFT: false }, seed: 3 });
    const b = createModel('edt-tiny', { seed: 3 });
    const x = inputFor(24);
    try {
      const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a.forward(x), b.forward(x)))).dataSync()[0]);
      expect(d).toBeGreaterThan(1e-6); // the shifted blocks of b see other windows
    } finally {
      a.dispose();
      b.dispose();
      x.dispose();
    }
  });
});
