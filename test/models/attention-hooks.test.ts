/**
 * Per-head hook points (`<attn>.heads`, `<attn>.attn_map`) of SwinIR, EDT and Restormer, and replayed runs.
 *
 * Head ablation: replacing head h at `.heads` with zeros must equal a reference computed without the hook
 * point at all, by zeroing that head's channel slice of the projection input by hand (the projection's
 * forward wrapped for the test). Replay: reusing every module that completed before the intervened point must
 * give the full intervened run's output.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import '../../src/models';
import { disposeCache, hookPoints, replayablePaths, replayFromCache, resolveHookNames } from '../../src/models/hooks';
import type { RestorationModel } from '../../src/models/model';
import type { Module } from '../../src/models/module';
import { createModel } from '../../src/models/registry';

beforeAll(async () => {
  await initBackend('wasm');
});

const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
const image = (h: number, w: number, seed = 11) => tf.randomUniform([1, h, w, 3], 0, 1, 'float32', seed) as tf.Tensor4D;

function moduleAt(model: RestorationModel, path: string): Module {
  const m = model.namedModules().find(([p]) => p === path);
  if (!m) throw new Error(`no module ${path}`);
  return m[1];
}

/** Zeroes head `h` of a [.., heads, .., ..] tensor (axis 1). */
const zeroHead = (h: number) => (t: tf.Tensor) =>
  tf.tidy(() => {
    const mask = tf.oneHot(h, t.shape[1]!).reshape([1, t.shape[1]!, 1, 1]);
    return tf.mul(t, tf.sub(1, mask));
  });

/** Runs `model` with the forward of module `path` seeing channels [from, to) of its (channels-last) input zeroed. */
function withInputChannelsZeroed(model: RestorationModel, path: string, from: number, to: number, run: () => tf.Tensor): tf.Tensor {
  const m = moduleAt(model, path) as Module & { forward: (x: tf.Tensor, ...rest: unknown[]) => tf.Tensor };
  const original = m.forward;
  m.forward = (x: tf.Tensor, ...rest: unknown[]) =>
    tf.tidy(() => {
      const c = x.shape[x.shape.length - 1];
      const keep = tf.tensor1d(Array.from({ length: c }, (_, i) => (i >= from && i < to ? 0 : 1)));
      return original.call(m, tf.mul(x, keep), ...rest);
    });
  try {
    return run();
  } finally {
    m.forward = original;
  }
}

interface Case {
  preset: string;
  size: [number, number];
  /** The attention module, its head count and head width, the projection that reads it and the slice offset there. */
  attn: string;
  heads: number;
  headDim: number;
  proj: string;
  offset: number;
  /** Expected shapes of the hook points for the input size. */
  headsShape: number[];
  mapShape: number[];
  /** The .heads tensor merged back into the projection input's layout (checked against the real input). */
  merge?: (t: tf.Tensor) => tf.Tensor;
}

/** Captures the first input of module `path`'s forward during `run`. */
function inputOf(model: RestorationModel, path: string, run: () => tf.Tensor): [tf.Tensor, tf.Tensor] {
  const m = moduleAt(model, path) as Module & { forward: (x: tf.Tensor, ...rest: unknown[]) => tf.Tensor };
  const original = m.forward;
  let seen: tf.Tensor | undefined;
  m.forward = (x: tf.Tensor, ...rest: unknown[]) => {
    seen ??= tf.keep(x.clone());
    return original.call(m, x, ...rest);
  };
  try {
    return [run(), seen!];
  } finally {
    m.forward = original;
  }
}

const CASES: Case[] = [
  // swinir-tiny: embed 12, 2 heads of 6, window 8: a 16x16 input has 4 windows of 64 tokens.
  { preset: 'swinir-tiny', size: [16, 16], attn: 'layers.1.residual_group.blocks.1.attn', heads: 2, headDim: 6, proj: 'layers.1.residual_group.blocks.1.attn.proj', offset: 0, headsShape: [4, 2, 64, 6], mapShape: [4, 2, 64, 64], merge: (t) => tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [4, 64, 12]) },
  // edt-tiny: EMBED_DIM 12, halves of 6 with 2 heads of 3; the vertical half attns.1 is channels 6..11 of proj's input.
  { preset: 'edt-tiny', size: [24, 24], attn: 'body.layers.0.residual_group.blocks.1.attns.1', heads: 2, headDim: 3, proj: 'body.layers.0.residual_group.blocks.1.proj', offset: 6, headsShape: [4, 2, 144, 3], mapShape: [4, 2, 144, 144] },
  { preset: 'edt-tiny', size: [24, 24], attn: 'body.layers.1.residual_group.blocks.0.attns.0', heads: 2, headDim: 3, proj: 'body.layers.1.residual_group.blocks.0.proj', offset: 0, headsShape: [4, 2, 144, 3], mapShape: [4, 2, 144, 144] },
  // restormer-tiny: level 2 has dim 16 and 2 heads of 8 channels; a 16x16 input is 8x8 there.
  { preset: 'restormer-tiny', size: [16, 16], attn: 'encoder_level2.0.attn', heads: 2, headDim: 8, proj: 'encoder_level2.0.attn.project_out', offset: 0, headsShape: [1, 2, 8, 64], mapShape: [1, 2, 8, 8], merge: (t) => tf.reshape(tf.transpose(t, [0, 3, 1, 2]), [1, 8, 8, 16]) },
];

describe('per-head hook points', () => {
  for (const c of CASES)
    it(`${c.preset} ${c.attn}: zeroing a head at .heads equals zeroing its channels of the projection input`, () => {
      const model = createModel(c.preset, { seed: 4 });
      const x = image(...c.size);
      const before = tf.memory().numTensors;
      const plain = model.forward(x);
      let cache = new Map<string, tf.Tensor>();
      const [output, projInput] = inputOf(model, c.proj, () => {
        const run = model.runWithCache(x, [`${c.attn}.heads`, `${c.attn}.attn_map`]);
        cache = run.cache;
        return run.output;
      });
      expect(maxDiff(output, plain)).toBe(0);
      const heads = cache.get(`${c.attn}.heads`)!;
      expect(heads.shape).toEqual(c.headsShape);
      if (c.merge) expect(tf.tidy(() => maxDiff(c.merge!(heads), projInput))).toBe(0);
      projInput.dispose();
      const map = cache.get(`${c.attn}.attn_map`)!;
      expect(map.shape).toEqual(c.mapShape);
      // Probabilities: rows sum to 1.
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(tf.sum(map, -1), 1))).dataSync()[0])).toBeLessThan(1e-5);
      tf.dispose([output]);
      disposeCache(cache);
      for (let h = 0; h < c.heads; h++) {
        const hooked = model.runWithHooks(x, { [`${c.attn}.heads`]: zeroHead(h) });
        const from = c.offset + h * c.headDim;
        const reference = withInputChannelsZeroed(model, c.proj, from, from + c.headDim, () => model.forward(x));
        expect(maxDiff(hooked, reference), `head ${h}`).toBeLessThanOrEqual(1e-6);
        expect(maxDiff(hooked, plain), `head ${h} changes the output`).toBeGreaterThan(1e-6);
        tf.dispose([hooked, reference]);
      }
      plain.dispose();
      expect(tf.memory().numTensors).toBe(before);
      // Not in the default CKA layers, and no state_dict keys of their own.
      const defaults = resolveHookNames(model, model.defaultLayers());
      expect(defaults.some((n) => /\.(heads|attn_map)$/.test(n))).toBe(false);
      expect(model.stateEntries().some(([k]) => /\.(heads|attn_map)\./.test(k))).toBe(false);
      expect(hookPoints(model)).toContain(`${c.attn}.heads`);
      x.dispose();
      model.dispose();
    });
});

describe('replayed runs', () => {
  const cases: [string, [number, number], string][] = [
    ['swinir-tiny', [16, 16], 'layers.1.residual_group.blocks.0.attn.heads'],
    ['restormer-tiny', [16, 16], 'decoder_level2.0.attn.heads'],
  ];
  for (const [preset, size, point] of cases)
    it(`${preset}: replaying every module that completes before ${point} gives the full intervened output`, () => {
      const model = createModel(preset, { seed: 6 });
      const x = image(...size, 2);
      const before = tf.memory().numTensors;
      const rec = model.runWithCache(x, '**');
      const paths = replayablePaths(rec.order, rec.calls, point);
      expect(paths.length).toBeGreaterThan(1);
      expect(paths.every((p) => !point.startsWith(`${p}.`))).toBe(true);
      const replay = replayFromCache(rec.cache, paths);
      const hooks = { [point]: zeroHead(1) };
      const full = model.runWithHooks(x, hooks);
      // The replayed modules do not run: count forwards of the first one.
      const first = moduleAt(model, paths[0]);
      let calls = 0;
      const original = first.forward;
      first.forward = (...a: unknown[]) => (calls++, original.apply(first, a));
      const fast = model.runWithHooks(x, hooks, undefined, { replay });
      first.forward = original;
      expect(calls).toBe(0);
      expect(maxDiff(full, fast)).toBeLessThanOrEqual(1e-6);
      expect(maxDiff(full, rec.output)).toBeGreaterThan(1e-6);
      tf.dispose([full, fast, rec.output]);
      disposeCache(rec.cache);
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
      model.dispose();
    });

  it('refuses to replay a module that fires several times per forward (MPRNet stage 1 runs per patch)', () => {
    const model = createModel('mprnet-tiny', { seed: 1 });
    const x = image(16, 16, 3);
    const before = tf.memory().numTensors;
    const rec = model.runWithCache(x, ['stage1_encoder', 'concat12']);
    expect(rec.calls.get('stage1_encoder')).toBe(4);
    expect(replayablePaths(rec.order, rec.calls, 'stage3_orsnet')).not.toContain('stage1_encoder');
    const replay = new Map([['stage1_encoder', [rec.cache.get('stage1_encoder:0')!, rec.cache.get('stage1_encoder:1')!, rec.cache.get('stage1_encoder:2')!]]]);
    expect(() => model.runWithHooks(x, {}, undefined, { replay })).toThrow(
      "replay: module 'stage1_encoder' runs more than once per forward (a per-patch or shared module); it cannot be replayed",
    );
    expect(() => model.runWithHooks(x, {}, undefined, { replay: { stage9: rec.output } })).toThrow(/^replay: unknown module path 'stage9'/);
    rec.output.dispose();
    disposeCache(rec.cache);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    model.dispose();
  });
});
