import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { createModel, disposeCache, layerInfo, resolveHookNames } from '../../src/models';
import { runCli } from './run-cli';

beforeAll(async () => {
  process.env.IRLENS_BACKEND = 'wasm';
  await initBackend('wasm');
});

describe('layerInfo', () => {
  it('gives every hook point the shape runWithCache captures, its layout, and marks exactly the default CKA layers', () => {
    const model = createModel('swinir-tiny');
    try {
      const before = tf.memory().numTensors;
      const info = layerInfo(model, { size: [16, 16] });
      layerInfo(model, { size: [16, 16] });
      expect(tf.memory().numTensors).toBe(before);
      expect(info.input).toEqual([16, 16, 3]);
      expect(info.output).toEqual([1, 32, 32, 3]);
      expect(info.task).toBe('sr-x2');

      // Independent of the observer: capture everything and compare shapes.
      const x = tf.zeros([1, 16, 16, 3]) as tf.Tensor4D;
      const { output, cache } = model.runWithCache(x, ['**']);
      expect(info.layers.filter((l) => l.shape).map((l) => l.name).sort()).toEqual([...cache.keys()].sort());
      // runWithCache keeps the last call of a module that runs more than once (dropouts reused); layerInfo the first.
      for (const l of info.layers) if (l.shape && l.calls === 1) expect(l.shape, l.name).toEqual(cache.get(l.name)!.shape);
      expect(info.layers.filter((l) => l.calls === 1).length).toBeGreaterThan(info.layers.length / 2);
      disposeCache(cache);
      tf.dispose([x, output]);

      const defaults = resolveHookNames(model, model.defaultLayers());
      // layerInfo lists in execution order, resolveHookNames in registration order.
      expect(info.layers.filter((l) => l.defaultLayer).map((l) => l.name).sort()).toEqual([...defaults].sort());
      expect(info.layers.filter((l) => l.defaultLayer).map((l) => l.name)[0]).toBe('layers.0.residual_group.blocks.0');
      const byName = new Map(info.layers.map((l) => [l.name, l]));
      expect(byName.get('conv_first')!.layout).toBe('image');
      expect(byName.get('layers.0')!.layout).toBe('tokens');
      expect(byName.get('layers.0')!.shape).toEqual([1, 256, 12]);
      // 16x16 input, 8x8 windows: 4 windows of 64 tokens, 2 heads.
      expect(byName.get('layers.0.residual_group.blocks.0.attn.qkv')).toMatchObject({ layout: 'window-tokens', shape: [4, 64, 36] });
      expect(byName.get('layers.0.residual_group.blocks.0.attn.softmax')).toMatchObject({ layout: 'heads', shape: [4, 2, 64, 64] });
    } finally {
      model.dispose();
    }
  });

  it('tells attention weights from images by the module when there is a single window (B*nW = B)', () => {
    const model = createModel('swinir-tiny');
    try {
      const info = layerInfo(model, { size: [8, 8] });
      const softmax = info.layers.find((l) => l.name === 'layers.0.residual_group.blocks.0.attn.softmax')!;
      expect(softmax).toMatchObject({ layout: 'heads', shape: [1, 2, 64, 64] });
      expect(info.layers.find((l) => l.name === 'conv_first')!.layout).toBe('image');
    } finally {
      model.dispose();
    }
  });

  it('lists the branches of other tasks as not run, and refuses sizes the padding rule does not accept', () => {
    const model = createModel('edt-tiny-multi');
    try {
      const info = layerInfo(model, { task: 'dn-25' });
      expect(info.tasks).toEqual(['sr-x3', 'dn-25', 'dr-heavy']);
      const srHead = info.layers.filter((l) => l.name.startsWith('head_sr_x3'));
      expect(srHead.length).toBeGreaterThan(0);
      for (const l of srHead) expect(l).toMatchObject({ shape: null, layout: null, calls: 0 });
      expect(info.layers.find((l) => l.name.startsWith('head_dn_g25'))!.shape).not.toBeNull();
      expect(() => layerInfo(model, { task: 'dn-25', size: [50, 50] })).toThrow(/^--size: edt-tiny-multi \[dn-25\] needs input sides that are multiples of 96, got 50x50 \(try 96x96\)$/);
      expect(() => layerInfo(model, { task: 'sr-x9' })).toThrow(/has no task 'sr-x9' \(tasks: sr-x3, dn-25, dr-heavy\)/);
    } finally {
      model.dispose();
    }
  });
});

describe('irlens layers', () => {
  it('prints the listing as text and as JSON', async () => {
    const json = await runCli('layers', 'restormer-tiny', '--size', '16x16', '--json');
    expect(json.code).toBe(0);
    const info = JSON.parse(json.stdout) as { model: string; tasks: string[]; layers: { name: string; shape: number[]; layout: string; defaultLayer: boolean }[] };
    expect(info.model).toBe('restormer-tiny');
    expect(info.tasks[0]).toBe('deblur');
    expect(info.layers.find((l) => l.name === 'encoder_level2.0')).toMatchObject({ shape: [1, 8, 8, 16], layout: 'image', defaultLayer: true });

    const text = await runCli('layers', 'restormer-tiny', '--size', '16');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^restormer-tiny \(restormer\), task deblur; tasks: deblur \(this listing\), /);
    const marked = text.stdout.split('\n').filter((l) => l.startsWith('* '));
    expect(marked.length).toBe(info.layers.filter((l) => l.defaultLayer).length);
    expect(text.stdout).toMatch(/^\* encoder_level2\.0 +\[1, 8, 8, 16\] +NHWC image \(B,H,W,C\)$/m);
  });

  it('loads PRESET@weights (a checkpoint decides the config) and lists the same points', async () => {
    const weights = path.join(__dirname, '..', 'fixtures', 'swinir', 'tiny.pth');
    const r = await runCli('layers', `swinir-tiny@${weights}`, '--size', '8', '--json');
    expect(r.code).toBe(0);
    const bare = await runCli('layers', 'swinir-tiny', '--size', '8', '--json');
    const names = (out: string) => (JSON.parse(out) as { layers: { name: string; shape: number[] }[] }).layers.map((l) => `${l.name} ${l.shape}`);
    expect(JSON.parse(r.stdout).model).toBe('swinir-tiny@tiny');
    expect(names(r.stdout)).toEqual(names(bare.stdout));
  });

  it('fails with one line on a bad size, task or model', async () => {
    const cases: [string[], RegExp][] = [
      [['swinir-tiny', '--size', '12x12'], /--size: swinir-tiny \[sr-x2\] needs input sides that are multiples of 8, got 12x12/],
      [['swinir-tiny', '--size', 'big'], /--size: expected HxW or N/],
      [['swinir-tiny', '--task', 'dn-25'], /--task: model swinir-tiny has no task 'dn-25' \(tasks: sr-x2\)/],
      [['swinir-tinny'], /unknown model 'swinir-tinny' \(closest: swinir-tiny/],
    ];
    for (const [args, msg] of cases) {
      const r = await runCli('layers', ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout, args.join(' ')).toBe('');
      const errors = r.stderr.split('\n').filter((l) => l !== '');
      expect(errors, args.join(' ')).toHaveLength(1);
      expect(errors[0], args.join(' ')).toMatch(msg);
    }
  });
});

describe('irlens models', () => {
  it('prints JSON for `npm run models -- FILTER -- --json` (a literal -- before --json)', async () => {
    const r = await runCli('models', 'swinir-light', '--', '--json');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { name: string }[]).map((x) => x.name)).toEqual(['swinir-light-sr-x2', 'swinir-light-sr-x3', 'swinir-light-sr-x4']);
    const bare = await runCli('models', '--', '--json');
    expect(bare.code).toBe(0);
    expect((JSON.parse(bare.stdout) as unknown[]).length).toBeGreaterThan(10);
    const two = await runCli('models', 'swinir', 'edt');
    expect(two.code).toBe(1);
    expect(two.stderr).toMatch(/^irlens: error: models: expected at most one filter, got 'swinir' 'edt'\n$/);
  });

  it("shows every preset's tasks, default first, in the table and says so in --help", async () => {
    const r = await runCli('models', 'edt-tiny');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^preset +family +params +tasks +description$/m);
    expect(r.stdout).toMatch(/^edt-tiny-multi +edt +71,885 +sr-x3,dn-25,dr-heavy +tiny multi-task/m);
    const help = await runCli('models', '--help');
    expect(help.stdout).toMatch(/task branches, the default first/);
  });
});
