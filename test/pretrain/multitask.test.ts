import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import '../../src/models';
import { createModel } from '../../src/models/registry';
import { hookPoints, disposeCache } from '../../src/models/hooks';
import { loadSavedModel, saveModel } from '../../src/weights/spec';
import {
  createMultiTaskModel,
  createTaskModel,
  createTrainModel,
  describeTask,
  headKeysOf,
  MultiTaskModel,
  resolveBranch,
} from '../../src/pretrain/multitask';
import { SyntheticSource } from '../../src/pretrain/data';
import { Trainer, type TrainOptions } from '../../src/pretrain/trainer';
import { DEFAULT_OPTIMIZER } from '../../src/pretrain/optim';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-mt-'));

beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const input = (h = 16, w = 16) => tf.randomUniform([1, h, w, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

describe('MultiTaskModel (tied body, one head per task)', () => {
  it('refnet: parameters = body + heads, state_dict names, really shared variables', () => {
    const mt = createMultiTaskModel('refnet-tiny', ['dn-25', 'dr-light'], { seed: 1 });
    const single = createModel('refnet-tiny');
    const headParams = single.namedParameters().filter(([k]) => k.startsWith('conv_')).reduce((s, [, p]) => s + p.size, 0);
    expect(mt.numParameters()).toBe(single.numParameters() + headParams);
    const keys = mt.stateEntries().map(([k]) => k);
    expect(keys).toContain('body.0.pw1.weight');
    expect(keys).toContain('heads.dn-25.conv_first.weight');
    expect(keys).toContain('heads.dr-light.conv_last.bias');
    expect(keys.some((k) => k.startsWith('conv_first'))).toBe(false);

    const a = mt.taskNetwork('dn-25') as unknown as { body: { items: { pw1: { weight: tf.Variable } }[] }; conv_last: { weight: tf.Variable } };
    const b = mt.taskNetwork('dr-light') as unknown as typeof a;
    expect(a.body.items[0].pw1.weight).toBe(b.body.items[0].pw1.weight);
    expect(a.conv_last.weight).not.toBe(b.conv_last.weight);

    // One update of a body variable is seen by both branches.
    const x = input();
    const before = ['dn-25', 'dr-light'].map((t) => mt.forward(x, t));
    tf.tidy(() => a.body.items[0].pw1.weight.assign(tf.mul(a.body.items[0].pw1.weight, 1.5)));
    const after = ['dn-25', 'dr-light'].map((t) => mt.forward(x, t));
    expect(maxDiff(before[0], after[0])).toBeGreaterThan(1e-4);
    expect(maxDiff(before[1], after[1])).toBeGreaterThan(1e-4);
    tf.dispose([x, ...before, ...after]);
    mt.dispose();
    single.dispose();
  });

  it('routes each task to its own head: zeroing one head changes only that task', () => {
    const mt = createMultiTaskModel('refnet-tiny', ['dn-25', 'dr-light'], { seed: 2 });
    const x = input();
    const before = ['dn-25', 'dr-light'].map((t) => mt.forward(x, t));
    expect(maxDiff(before[0], before[1])).toBeGreaterThan(1e-4);
    const head = new Map(mt.stateEntries());
    tf.tidy(() => {
      for (const k of ['heads.dr-light.conv_last.weight', 'heads.dr-light.conv_last.bias']) head.get(k)!.variable.assign(tf.zerosLike(head.get(k)!.variable));
    });
    const after = ['dn-25', 'dr-light'].map((t) => mt.forward(x, t));
    expect(maxDiff(before[0], after[0])).toBe(0);
    expect(maxDiff(after[1], x)).toBe(0); // refnet: x + conv_last(...) with a zero tail
    expect(() => mt.forward(x, 'sr-x2')).toThrow(/no task 'sr-x2'/);
    tf.dispose([x, ...before, ...after]);
    mt.dispose();
  });

  it("a training step on task A changes the body and A's head, never B's head", async () => {
    const mt = createMultiTaskModel('refnet-tiny', ['dn-25', 'dr-light'], { seed: 3 });
    const img = () => {
      const data = new Float32Array(32 * 32 * 3).map((_, i) => (Math.sin(i * 0.37) + 1) / 2);
      return { data, height: 32, width: 32, channels: 3 };
    };
    const src = new SyntheticSource(
      ['a', 'b', 'c'].map((name) => ({ name, load: async () => img() })),
      'test',
      { evalCount: 1 },
    );
    const opts: TrainOptions = {
      steps: 2, batch: 2, patch: 16, loss: 'l1', optimizer: { ...DEFAULT_OPTIMIZER, weightDecay: 0.1 },
      schedule: { kind: 'constant', lr: 1e-2 }, clipNorm: 0, evalEvery: 0, ckptEvery: 0, logEvery: 1, seed: 0,
      taskOrder: 'round-robin', freeze: 'none', keepCheckpoints: 1,
    };
    const trainer = new Trainer(mt, src, mt.tasks(), opts);
    const snap = () => Object.fromEntries(mt.stateEntries().map(([k, p]) => [k, Array.from(p.variable.dataSync())]));
    const s0 = snap();
    const { batch } = await trainer.nextBatch(0); // step 0 is dn-25
    expect(batch.task).toBe('dn-25');
    trainer.trainStep(mt.task('dn-25'), batch.lq, batch.gt, 1e-2);
    tf.dispose([batch.lq, batch.gt]);
    const s1 = snap();
    const changed = (k: string) => s0[k].some((v, i) => v !== s1[k][i]);
    expect(changed('body.0.pw1.weight')).toBe(true);
    expect(changed('heads.dn-25.conv_first.weight')).toBe(true);
    expect(changed('heads.dr-light.conv_first.weight')).toBe(false);
    expect(changed('heads.dr-light.conv_last.bias')).toBe(false);
    trainer.dispose();
    mt.dispose();
  });

  it('hook points of each branch are the single-task paths', () => {
    const mt = createMultiTaskModel('refnet-tiny', ['dn-25', 'dr-light'], { seed: 4 });
    const single = createModel('refnet-tiny');
    expect(hookPoints(mt.taskNetwork('dr-light'))).toEqual(hookPoints(single));
    expect(hookPoints(mt)).toEqual(hookPoints(single)); // globs validate against single-task names
    const x = input();
    const { output, cache } = mt.runWithCache(x, ['body.*', 'conv_first'], 'dr-light');
    expect([...cache.keys()]).toEqual(['conv_first', 'body.0', 'body.1']);
    const direct = mt.forward(x, 'dr-light');
    expect(maxDiff(output, direct)).toBe(0);
    expect(mt.defaultLayers('dn-25')).toEqual(single.defaultLayers());
    disposeCache(cache);
    tf.dispose([x, output, direct]);
    mt.dispose();
    single.dispose();
  });

  it('saves and loads as an irlens checkpoint (family multitask)', async () => {
    const mt = createMultiTaskModel('refnet-tiny', ['dn-25', 'dr-light'], { seed: 5 });
    const file = path.join(tmp, 'mt.safetensors');
    saveModel(mt, file);
    const { model } = await loadSavedModel(file);
    expect(model).toBeInstanceOf(MultiTaskModel);
    const x = input();
    for (const t of ['dn-25', 'dr-light']) {
      const a = mt.forward(x, t);
      const b = model.forward(x, t);
      expect(maxDiff(a, b)).toBe(0);
      tf.dispose([a, b]);
    }
    x.dispose();
    mt.dispose();
    model.dispose();
  });

  it('swinir: per-task upscale; restormer and mprnet: the documented heads', () => {
    const sw = createMultiTaskModel('swinir-tiny', ['sr-x2', 'dn-25'], { seed: 6 });
    const x = input(16, 16);
    const y2 = sw.forward(x, 'sr-x2');
    const y1 = sw.forward(x, 'dn-25');
    expect(y2.shape).toEqual([1, 32, 32, 3]);
    expect(y1.shape).toEqual([1, 16, 16, 3]);
    const swKeys = sw.stateEntries().map(([k]) => k);
    expect(swKeys).toContain('heads.sr-x2.upsample.0.weight');
    expect(swKeys).toContain('heads.dn-25.conv_last.weight');
    expect(swKeys).toContain('layers.0.residual_group.blocks.0.attn.qkv.weight');
    tf.dispose([y2, y1]);
    sw.dispose();

    const rs = createMultiTaskModel('restormer-tiny', ['dn-25', 'dr-light'], { seed: 7 });
    const single = createModel('restormer-tiny');
    const head = single.namedParameters().filter(([k]) => /^(patch_embed|output)\./.test(k)).reduce((s, [, p]) => s + p.size, 0);
    expect(rs.numParameters()).toBe(single.numParameters() + head);
    rs.dispose();
    single.dispose();

    const mp = createMultiTaskModel('mprnet-tiny', ['dn-25', 'blur-motion'], { seed: 8 });
    const one = createModel('mprnet-tiny');
    const net = createTaskModel('mprnet-tiny', describeTask('dn-25'));
    const heads = headKeysOf(net);
    net.dispose();
    expect(heads.some((k) => k.startsWith('sam12.conv2'))).toBe(true);
    expect(heads.some((k) => k.startsWith('sam12.conv1'))).toBe(false);
    // The one PReLU stays shared; counted once.
    const prelu = new Map(one.stateEntries()).get('shallow_feat1.1.body.1.weight')!;
    const mpHead = one.namedParameters().filter(([k, p]) => heads.includes(k) && p !== prelu).reduce((s, [, p]) => s + p.size, 0);
    expect(mp.numParameters()).toBe(one.numParameters() + mpHead);
    const stages = mp.forwardStages(input(16, 16), 'blur-motion');
    expect(stages).toHaveLength(3);
    tf.dispose(stages);
    mp.dispose();
    one.dispose();
    x.dispose();
  });

  it('EDT keeps its native branches: a network with exactly the requested tasks', () => {
    const m = createTrainModel('edt-tiny', ['sr-x2', 'dn-25'].map((t) => describeTask(t)), { seed: 1 });
    expect(m.family).toBe('edt');
    expect(m.tasks().map((t) => t.name)).toEqual(['sr-x2', 'dn-25']);
    expect(resolveBranch(m, describeTask('dn-25'))).toBe('dn-25');
    expect(headKeysOf(m).some((k) => k.startsWith('head_dn_g25.'))).toBe(true);
    m.dispose();
    expect(() => createTrainModel('edt-tiny', ['sr-x2', 'blur-motion'].map((t) => describeTask(t)))).toThrow(/edt has branches for/);
    expect(() => createTaskModel('restormer-tiny', describeTask('sr-x2'))).toThrow(/same-size images/);
  });
});
