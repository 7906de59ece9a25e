import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import '../../src/models';
import { loadSavedModel, saveModel } from '../../src/weights/spec';
import { createModel } from '../../src/models/registry';
import { builtinSource } from '../../src/pretrain/data';
import { createMultiTaskModel, describeTask, headKeysOf } from '../../src/pretrain/multitask';
import { DEFAULT_OPTIMIZER } from '../../src/pretrain/optim';
import { buildFinetuneModel, runTraining, scaleProgressive, stageAt, Trainer, type RunSpec, type TrainOptions } from '../../src/pretrain/trainer';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-train-'));

beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const options = (o: Partial<TrainOptions> = {}): TrainOptions => ({
  steps: 60,
  batch: 4,
  patch: 32,
  loss: 'l1',
  optimizer: { ...DEFAULT_OPTIMIZER },
  schedule: { kind: 'cosine', lr: 3e-3, minLr: 1e-4, total: o.steps ?? 60, warmup: 0 },
  clipNorm: 0,
  evalEvery: 30,
  ckptEvery: 30,
  logEvery: 1,
  seed: 0,
  taskOrder: 'round-robin',
  freeze: 'none',
  keepCheckpoints: 1,
  ...o,
});

const spec = (o: Omit<Partial<RunSpec>, 'train'> & { train?: Partial<TrainOptions> } = {}): RunSpec => ({
  format: 'irlens-run/1',
  command: 'train',
  model: 'refnet-tiny',
  tasks: ['dn-25'],
  data: { kind: 'builtin' },
  evalSize: 48,
  ...o,
  train: options(o.train),
});

const readLog = (dir: string) =>
  fs
    .readFileSync(path.join(dir, 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('trainer', () => {
  it('a tiny refnet run on wasm lowers the loss, evaluates, logs and checkpoints', async () => {
    const dir = path.join(tmp, 'run');
    const result = await runTraining(spec(), dir);
    const log = readLog(dir);
    const losses = log.filter((l) => l.type === 'train').map((l) => l.loss as number);
    expect(losses).toHaveLength(60);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-10))).toBeLessThan(0.85 * mean(losses.slice(0, 10)));
    const evals = log.filter((l) => l.type === 'eval');
    expect(evals.map((e) => e.step)).toEqual([30, 60]);
    // Noisy sigma-25 inputs are ~20.2 dB; the trained model must do better on the held-out images.
    expect(result.eval!['dn-25'].psnr).toBeGreaterThan(20.5);
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'checkpoints'))).toEqual(['step-00000060']);
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
    expect(state).toMatchObject({ step: 60, done: true, checkpoint: 'checkpoints/step-00000060' });
    const { model } = await loadSavedModel(result.finalModel);
    expect(model.preset).toBe('refnet-tiny');
    model.dispose();
    // A second run into the same directory is refused before anything is written.
    await expect(runTraining(spec(), dir)).rejects.toThrow(/already holds a run/);
    // Options are checked before the run directory is created.
    const bad = path.join(tmp, 'bad');
    await expect(runTraining(spec({ train: { patch: 300 } }), bad)).rejects.toThrow(/larger than the training images/);
    await expect(runTraining(spec({ tasks: ['sr-x2'] }), bad)).rejects.toThrow(/same-size images/);
    expect(fs.existsSync(bad)).toBe(false);
  });

  it('keeps tf.memory().numTensors flat across steps and evaluations', async () => {
    const model = createMultiTaskModel('refnet-tiny', ['dn-25', 'dr-light'], { seed: 1 });
    const src = await builtinSource(3, { evalSize: 32 });
    const trainer = new Trainer(model, src, model.tasks(), options({ batch: 2, patch: 16 }));
    const step = async (i: number) => {
      const { task, batch } = await trainer.nextBatch(i);
      trainer.trainStep(task, batch.lq, batch.gt, 1e-3);
      tf.dispose([batch.lq, batch.gt]);
    };
    await step(0);
    await step(1);
    await trainer.evaluate();
    const n = tf.memory().numTensors;
    for (let i = 2; i < 6; i++) await step(i);
    await trainer.evaluate();
    expect(tf.memory().numTensors).toBe(n);
    trainer.dispose();
    model.dispose();
  });

  it('progressive learning switches patch and batch at stage boundaries', async () => {
    const stages = scaleProgressive(300, 64, 8, 8);
    expect(stages.map((s) => s.steps)).toEqual([92, 64, 48, 36, 36, 24]);
    expect(stages.map((s) => s.patch)).toEqual([64, 80, 96, 128, 160, 192]);
    expect(stages.map((s) => s.batch)).toEqual([8, 5, 4, 2, 1, 1]);
    expect(stageAt(stages, 91).index).toBe(0);
    expect(stageAt(stages, 92).index).toBe(1);
    expect(stageAt(stages, 1000).index).toBe(5);

    const dir = path.join(tmp, 'prog');
    const progressive = [
      { steps: 3, patch: 16, batch: 3 },
      { steps: 2, patch: 32, batch: 1 },
    ];
    await runTraining(spec({ tasks: ['dn-25', 'sr-x2'], model: 'swinir-tiny', train: { steps: 5, patch: 16, progressive, evalEvery: 0, ckptEvery: 0 } }), dir);
    const lines = readLog(dir).filter((l) => l.type === 'train');
    expect(lines.map((l) => [l.task, l.patch, l.batch])).toEqual([
      ['dn-25', 16, 3],
      ['sr-x2', 16, 3],
      ['dn-25', 16, 3],
      ['sr-x2', 32, 1],
      ['dn-25', 32, 1],
    ]);
  });

  it("MPRNet's multi-stage loss trains through forwardStages", async () => {
    const dir = path.join(tmp, 'mpr');
    const r = await runTraining(spec({ model: 'mprnet-tiny', train: { steps: 2, batch: 1, patch: 16, loss: 'mprnet', evalEvery: 0, ckptEvery: 0 }, evalSize: 16 }), dir);
    expect(r.steps).toBe(2);
    expect(Number.isFinite(r.finalLoss)).toBe(true);
    await expect(runTraining(spec({ train: { loss: 'mprnet' } }), path.join(tmp, 'mpr-bad'))).rejects.toThrow(/no stage outputs/);
  });

  it('fine-tunes from a multi-task checkpoint: body always, the head only when the task had one', async () => {
    const mt = createMultiTaskModel('refnet-tiny', ['dn-25', 'dr-light'], { seed: 9 });
    const file = path.join(tmp, 'pre.safetensors');
    saveModel(mt, file, { 'irlens.tasks': JSON.stringify(['dn-25', 'dr-light']) });
    const entries = new Map(mt.stateEntries());
    const val = (m: Map<string, { variable: tf.Variable }>, k: string) => Array.from(m.get(k)!.variable.dataSync());

    const same = await buildFinetuneModel(file, describeTask('dr-light'), 5);
    expect(same.reused).toBe('body+head');
    const sameEntries = new Map(same.model.stateEntries());
    expect(val(sameEntries, 'body.1.dw.weight')).toEqual(val(entries, 'body.1.dw.weight'));
    expect(val(sameEntries, 'conv_last.weight')).toEqual(val(entries, 'heads.dr-light.conv_last.weight'));

    const other = await buildFinetuneModel(file, describeTask('dn-50'), 5);
    expect(other.reused).toBe('body');
    const otherEntries = new Map(other.model.stateEntries());
    expect(val(otherEntries, 'body.1.dw.weight')).toEqual(val(entries, 'body.1.dw.weight'));
    expect(val(otherEntries, 'conv_last.weight')).not.toEqual(val(entries, 'heads.dn-25.conv_last.weight'));
    // The fine-tuned model is a plain single-task network with the single-task names.
    expect(other.model.stateEntries().map(([k]) => k)).toEqual(createModel('refnet-tiny').stateEntries().map(([k]) => k));

    // A fine-tuning run with a frozen body changes only the head.
    const dir = path.join(tmp, 'ft');
    await runTraining({ ...spec({ train: { steps: 3, batch: 2, patch: 16, freeze: 'body', evalEvery: 0, ckptEvery: 0 } }), command: 'finetune', model: undefined, from: file, tasks: ['dn-50'] }, dir);
    const { model: tuned } = await loadSavedModel(path.join(dir, 'model.safetensors'));
    const tunedEntries = new Map(tuned.stateEntries());
    expect(val(tunedEntries, 'body.0.pw1.weight')).toEqual(val(entries, 'body.0.pw1.weight'));
    const heads = headKeysOf(tuned);
    expect(heads).toEqual(['conv_first.weight', 'conv_first.bias', 'conv_last.weight', 'conv_last.bias']);
    for (const m of [mt, same.model, other.model, tuned]) m.dispose();
  });
});
