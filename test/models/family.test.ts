/**
 * Family descriptors: a fifth family defined only here, registered by one call, works everywhere a shipped
 * family does (createModel, inspectModel, countParameters, the multi-task adapter, training defaults); the
 * shipped descriptors carry their facts; registries refuse duplicates; the size limit refuses before allocating.
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import '../../src/models';
import { getFamily, listFamilies, listPresets, registerFamily, registerPreset, type Config, type FamilyDescriptor } from '../../src/models/family';
import { Conv2d } from '../../src/models/layers';
import { PaddingRule, RestorationModel, TaskSpec } from '../../src/models/model';
import { withShapeOnly } from '../../src/models/module';
import {
  countParameters,
  createModel,
  defaultLoss,
  formatParamCount,
  inspectModel,
  parseParamCount,
  trainingDefaults,
} from '../../src/models/registry';
import { createMultiTaskModel, createTrainModel, describeTask, getTaskAdapter, headKeysOf } from '../../src/pretrain/multitask';

beforeAll(async () => {
  await initBackend('wasm');
});

/** A toy same-size family: head conv -> `depth` body convs (ReLU) -> tail conv, + input; inputs multiple of 12. */
class ToyNet extends RestorationModel {
  readonly family = 'toynet';
  readonly inChannels: number;
  readonly outChannels: number;
  readonly head: Conv2d;
  readonly body: Conv2d[];
  readonly tail: Conv2d;
  constructor(readonly config: Readonly<Config>) {
    super();
    const c = config as { chans: number; width: number; depth: number };
    this.inChannels = this.outChannels = c.chans;
    this.head = this.child('head', new Conv2d(c.chans, c.width, 3));
    this.body = Array.from({ length: c.depth }, (_, i) => this.child(`body${i}`, new Conv2d(c.width, c.width, 3)));
    this.tail = this.child('tail', new Conv2d(c.width, c.chans, 3));
  }
  tasks(): TaskSpec[] {
    return [{ name: 'dn-25', kind: 'dn', scale: 1, degradation: 'dn-25' }];
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let f = this.head.call<tf.Tensor4D>(x);
      for (const b of this.body) f = tf.relu(b.call<tf.Tensor4D>(f));
      return tf.add(x, this.tail.call<tf.Tensor4D>(f));
    });
  }
  paddingRule(): PaddingRule {
    return { multiple: 12, mode: 'reflect' };
  }
  defaultLayers(): string[] {
    return ['head', 'body*', 'tail'];
  }
}

const TOY: FamilyDescriptor = {
  name: 'toynet',
  defaults: { chans: 3, width: 8, depth: 2 },
  validate(c) {
    for (const k of ['chans', 'width', 'depth']) if (!Number.isInteger(c[k]) || (c[k] as number) < 1) throw new Error(`config: toynet ${k} must be a positive integer`);
  },
  build: (c) => new ToyNet(c),
  presets: [{ name: 'toynet-tiny', description: 'toy family of the descriptor test', config: { width: 4, depth: 1 }, officialParams: 3 * 4 * 9 + 4 + 4 * 4 * 9 + 4 + 4 * 3 * 9 + 3 }],
  tasks: {
    headPrefixes: () => ['head', 'tail'],
    configFor: (_c, task) => {
      if (task.scale !== 1) throw new Error(`toynet cannot train '${task.name}'`);
      return {};
    },
  },
  training: { loss: 'charbonnier' },
  study: { tiny: 'toynet-tiny', tinyConfig: {}, paper: 'toynet', paperConfig: {}, sr: (s) => `sr-up-x${s}` },
};

// The one registration call a new family needs.
registerFamily(TOY);

const input = () => tf.randomUniform([1, 12, 12, 3], 0, 1, 'float32', 5) as tf.Tensor4D;

describe('a fifth family registered by one call', () => {
  it('builds, runs, inspects and counts like the shipped families', () => {
    const before = tf.memory().numTensors;
    const m = createModel('toynet-tiny', { seed: 3 });
    expect(m.family).toBe('toynet');
    expect(m.preset).toBe('toynet-tiny');
    const x = input();
    const y = m.restore(x);
    expect(y.shape).toEqual([1, 12, 12, 3]);
    const { output, cache } = m.runWithCache(x, m.defaultLayers());
    expect([...cache.keys()]).toEqual(['head', 'body0', 'tail']);
    tf.dispose([x, y, output, ...cache.values()]);
    const info = inspectModel('toynet-tiny');
    expect(info.params).toBe(m.numParameters());
    expect(info.params).toBe(TOY.presets![0].officialParams);
    expect(countParameters('toynet', { width: 16, depth: 3 })).toBe(3 * 16 * 9 + 16 + 3 * (16 * 16 * 9 + 16) + 16 * 3 * 9 + 3);
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(listPresets().some((p) => p.name === 'toynet-tiny' && p.family === 'toynet')).toBe(true);
    expect(() => createModel('toynet', { config: { depth: 0 } })).toThrow('config: toynet depth must be a positive integer');
  });

  it("trains multi-task through the descriptor's task adapter (tied body, one head/tail per task)", () => {
    const before = tf.memory().numTensors;
    expect(getTaskAdapter('toynet')).toBe(TOY.tasks);
    const mt = createMultiTaskModel('toynet-tiny', ['dn-25', 'dr-light'], { seed: 1 });
    const keys = mt.stateEntries().map(([k]) => k);
    expect(keys).toEqual([
      'body0.weight', 'body0.bias',
      'heads.dn-25.head.weight', 'heads.dn-25.head.bias', 'heads.dn-25.tail.weight', 'heads.dn-25.tail.bias',
      'heads.dr-light.head.weight', 'heads.dr-light.head.bias', 'heads.dr-light.tail.weight', 'heads.dr-light.tail.bias',
    ]);
    const single = createModel('toynet-tiny');
    expect(headKeysOf(single)).toEqual(['head.weight', 'head.bias', 'tail.weight', 'tail.bias']);
    const x = input();
    const [a, b] = ['dn-25', 'dr-light'].map((t) => mt.forward(x, t));
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0])).toBeGreaterThan(1e-5);
    expect(() => createTrainModel('toynet-tiny', [describeTask('sr-x2'), describeTask('dn-25')])).toThrow("toynet cannot train 'sr-x2'");
    tf.dispose([x, a, b]);
    mt.dispose();
    single.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('has training defaults from its descriptor and its padding rule', () => {
    expect(trainingDefaults('toynet-tiny')).toEqual({ loss: 'charbonnier', patchMultiple: 12, patch: 72 });
    expect(defaultLoss('toynet')).toBe('charbonnier');
    expect(getFamily('toynet').study?.tiny).toBe('toynet-tiny');
  });

  it('refuses a second registration of a family or a preset name', () => {
    expect(() => registerFamily({ ...TOY, presets: [] })).toThrow(/^family 'toynet' is already registered$/);
    expect(() => registerFamily({ ...TOY, name: 'toynet2' })).toThrow(/^preset 'toynet-tiny' is already registered$/);
    expect(() => registerPreset({ name: 'refnet-tiny', family: 'refnet', description: '', config: {} })).toThrow(/^preset 'refnet-tiny' is already registered$/);
    expect(listFamilies().filter((f) => f.name === 'toynet')).toHaveLength(1);
  });
});

describe('shipped family descriptors', () => {
  it('each carries its task adapter, study settings and training defaults', () => {
    for (const name of ['refnet', 'restormer', 'mprnet', 'swinir', 'edt']) {
      const f = getFamily(name);
      expect(f.tasks, name).toBeDefined();
      expect(f.study, name).toBeDefined();
      expect(getFamily(f.study!.tiny === 'refnet-tiny' ? 'refnet' : name).presets?.some((p) => p.name === f.study!.tiny), name).toBe(true);
      expect(f.officialWeights ?? [], name).toEqual([]);
    }
    expect(getFamily('edt').tasks?.nativeConfigFor).toBeDefined();
    expect(defaultLoss('mprnet')).toBe('mprnet');
    for (const f of ['refnet', 'restormer', 'swinir', 'edt', undefined]) expect(defaultLoss(f)).toBe('l1');
    // edt-tiny: 6x24 windows -> inputs multiple of 24, SR x2 -> GT patches multiple of 48 (64 is not valid).
    expect(trainingDefaults('edt-tiny')).toEqual({ loss: 'l1', patchMultiple: 48, patch: 96 });
    expect(trainingDefaults('swinir-tiny').patchMultiple).toBe(16);
    expect(trainingDefaults('restormer-tiny')).toEqual({ loss: 'l1', patchMultiple: 8, patch: 64 });
    expect(trainingDefaults('refnet-tiny').patch).toBe(64);
    expect(trainingDefaults('mprnet-tiny')).toEqual({ loss: 'mprnet', patchMultiple: 8, patch: 64 });
    // For the tasks of a run: EDT's DN branch works at 1/2^DEPTH (24 * 4 = 96); swinir-tiny trains dn-25 with upscale 1.
    const tasks = [describeTask('sr-x2'), describeTask('dn-25')];
    expect(trainingDefaults('edt-tiny', {}, tasks)).toEqual({ loss: 'l1', patchMultiple: 96, patch: 96 });
    expect(trainingDefaults('edt-tiny', { WINDOW_SIZE: [4, 8] }, [describeTask('sr-x3')]).patchMultiple).toBe(24);
    expect(trainingDefaults('swinir-tiny', {}, tasks).patchMultiple).toBe(16);
    expect(trainingDefaults('swinir-tiny', {}, [describeTask('dn-25')]).patchMultiple).toBe(8);
  });
});

describe('parameter counts without allocating, and the size limit', () => {
  afterEach(() => {
    delete process.env.IRLENS_MAX_PARAMS;
  });

  it("shape-only counts equal every preset's official count and allocate nothing", () => {
    const before = tf.memory().numTensors;
    const withCounts = listPresets().filter((p) => p.officialParams !== undefined);
    expect(withCounts.length).toBeGreaterThan(30);
    for (const p of withCounts) expect(countParameters(p.name), p.name).toBe(p.officialParams);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('counts a 6G-parameter restormer in milliseconds and refuses to build it', () => {
    const before = tf.memory().numTensors;
    const config = { dim: 768 };
    const t0 = performance.now();
    const n = countParameters('restormer', config);
    expect(performance.now() - t0).toBeLessThan(2000);
    // Restormer's parameters grow with dim^2: 26,126,644 at dim 48, so ~16^2 times that at dim 768.
    expect(n / 26_126_644).toBeGreaterThan(250);
    expect(formatParamCount(n)).toMatch(/^6\.\dG$/);
    expect(inspectModel('restormer', config).params).toBe(n);
    expect(() => createModel('restormer', { config })).toThrow(
      new RegExp(`^model restormer with config \\{"dim":768\\} has 6\\.\\dG parameters \\(~2\\d\\.\\d GB\\); the limit is 100M \\(raise it with --max-params or IRLENS_MAX_PARAMS\\)$`),
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('takes the limit from maxParams, then IRLENS_MAX_PARAMS', () => {
    expect(() => createModel('restormer-tiny', { maxParams: 1000 })).toThrow(/has 208.2k parameters .*the limit is 1k/);
    process.env.IRLENS_MAX_PARAMS = '100k';
    expect(() => createModel('restormer-tiny')).toThrow(/the limit is 100k/);
    const m = createModel('restormer-tiny', { maxParams: 1e6 });
    m.dispose();
    process.env.IRLENS_MAX_PARAMS = 'lots';
    expect(() => createModel('refnet-tiny')).toThrow("IRLENS_MAX_PARAMS: expected a positive parameter count such as 250M or 2e8, got 'lots'");
    expect(parseParamCount('2.5e8')).toBe(250_000_000);
    expect(parseParamCount('250M')).toBe(250_000_000);
    expect(parseParamCount('6.2G')).toBe(6_200_000_000);
  });

  it('a shape-only model cannot run', () => {
    const m = withShapeOnly(() => createModelShapeOnly());
    const x = input();
    expect(() => m.forward(x)).toThrow(/^shape-only model: parameters have no values/);
    x.dispose();
  });
});

function createModelShapeOnly(): RestorationModel {
  return getFamily('refnet').build({ ...getFamily('refnet').defaults });
}
