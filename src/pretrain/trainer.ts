/**
 * The training loop: single- and multi-task training, progressive patch sizes, evaluation, JSONL logging,
 * checkpoints and exact resume.
 *
 * A run is described by a JSON-serialisable RunSpec (stored as run.json); runTraining() builds the model and
 * data from it and trains. Determinism: all randomness comes from seeded Rngs (model init from the seed; epoch
 * orders from (seed, epoch) and each sample from (seed, sample index), the counters checkpointed; the task of a
 * step from (seed, step); evaluation inputs from (seed, task, image)); tf's own random ops are never used,
 * learning rates are functions of the step, and the wasm backend runs single-threaded, so a run killed at any
 * point and resumed from its last checkpoint reaches bit-identical weights to an uninterrupted run
 * (test/pretrain/resume.test.ts kills the CLI with SIGKILL to check it). Other backends (tfjs-node, GPU) may
 * reorder float sums between runs: resume is then exact in state but not guaranteed bit-identical.
 *
 * Multi-task: a batch is all one task; tasks alternate round-robin or are drawn by a seeded sampler with given
 * weights. Only the variables of the batch's task get gradients (task network = shared body + its head), so
 * another task's head is untouched by the update, weight decay included.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import cliProgress from 'cli-progress';
import type { RestorationModel, TaskSpec } from '../models/model';
import { resolveSpec, type Config } from '../models/registry';
import { loadSavedModel, saveModel } from '../weights/spec';
import { imageToTensor, tensorToImages } from '../io/image';
import { metricOptionsFor, psnr, ssim } from '../analysis/metrics';
import { writeFileAtomic } from '../util/fs';
import { builtinSource, fileListSource, folderSource, PairedFolderSource, PatchSampler, taskForStep, type PairSource, type TaskOrder } from './data';
import { computeLoss, type LossInput, type LossName } from './losses';
import { AdamOptimizer, clipByGlobalNorm, learningRate, type OptimizerConfig, type ScheduleSpec } from './optim';
import {
  createTaskModel,
  createTrainModel,
  describeTask,
  getTaskAdapter,
  hasTaskAdapter,
  headKeysOf,
  isHeadKey,
  MultiTaskModel,
  resolveBranch,
} from './multitask';
import {
  appendLog,
  checkpointDirName,
  checkpointModelFile,
  FINAL_MODEL,
  logBytes,
  readJsonFile,
  readOptimizerState,
  readSafetensorsMetadata,
  resumeState,
  RUN_FILE,
  STATE_FILE,
  truncateLog,
  writeCheckpoint,
  type TrainerState,
} from './train-checkpoint';

// ------------------------------------------------------------------------------------ progressive stages

/** One stage of progressive learning: `steps` iterations at patch `patch` (GT pixels) and batch `batch`. */
export interface Stage {
  steps: number;
  patch: number;
  batch: number;
}

/** Restormer's official progressive schedule (train iterations, gt_size, mini_batch_size), 300k iterations. */
export const RESTORMER_PROGRESSIVE: readonly Stage[] = [
  { steps: 92_000, patch: 128, batch: 8 },
  { steps: 64_000, patch: 160, batch: 5 },
  { steps: 48_000, patch: 192, batch: 4 },
  { steps: 36_000, patch: 256, batch: 2 },
  { steps: 36_000, patch: 320, batch: 1 },
  { steps: 24_000, patch: 384, batch: 1 },
];

/**
 * Restormer's schedule scaled to a run: stage lengths in the official proportions of `total` (the last stage
 * takes the rounding remainder), patch sizes times patch/128 rounded to a multiple of `multiple` (at least one
 * multiple), batch sizes times batch/8 rounded (at least 1).
 */
export function scaleProgressive(total: number, patch: number, batch: number, multiple: number, base: readonly Stage[] = RESTORMER_PROGRESSIVE): Stage[] {
  const all = base.reduce((s, st) => s + st.steps, 0);
  let used = 0;
  return base.map((st, i) => {
    const steps = i === base.length - 1 ? total - used : Math.round((total * st.steps) / all);
    used += steps;
    return {
      steps,
      patch: Math.max(multiple, Math.round((patch * st.patch) / base[0].patch / multiple) * multiple),
      batch: Math.max(1, Math.round((batch * st.batch) / base[0].batch)),
    };
  }).filter((s) => s.steps > 0);
}

/** Parses '--progressive STEPS:PATCH:BATCH,...'. */
export function parseStages(text: string, option = '--progressive'): Stage[] {
  const stages = text.split(',').map((part) => {
    const m = /^\s*(\d+):(\d+):(\d+)\s*$/.exec(part);
    if (!m) throw new Error(`${option}: expected STEPS:PATCH:BATCH[,...], got '${part}'`);
    const [steps, patch, batch] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (steps < 1 || patch < 1 || batch < 1) throw new Error(`${option}: stage '${part}' needs positive numbers`);
    return { steps, patch, batch };
  });
  return stages;
}

/** The stage that step (0-based) falls in; steps past the schedule stay in the last stage. */
export function stageAt(stages: readonly Stage[], step: number): { index: number; stage: Stage } {
  let end = 0;
  for (let i = 0; i < stages.length; i++) {
    end += stages[i].steps;
    if (step < end) return { index: i, stage: stages[i] };
  }
  return { index: stages.length - 1, stage: stages[stages.length - 1] };
}

// ----------------------------------------------------------------------------------------------- specs

export interface TrainOptions {
  steps: number;
  batch: number;
  /** Training patch size in GT pixels. */
  patch: number;
  /** Progressive learning stages (patch/batch switch at stage boundaries); overrides batch/patch. */
  progressive?: Stage[];
  loss: LossName;
  optimizer: OptimizerConfig;
  schedule: ScheduleSpec;
  /** Gradient clipping by global norm (0 = off). */
  clipNorm: number;
  /** Evaluate every N steps (0 = only at the end). */
  evalEvery: number;
  /** Checkpoint every N steps (0 = only at the end). */
  ckptEvery: number;
  /** Write a train line to the log every N steps. */
  logEvery: number;
  seed: number;
  taskOrder: TaskOrder;
  /** Sampling weights of the tasks for taskOrder 'random' (default equal). */
  taskWeights?: number[];
  /** 'body' trains only the task-specific heads/tails. */
  freeze: 'none' | 'body';
  /** Checkpoint directories kept (the newest). */
  keepCheckpoints: number;
}

/** Explicit image lists: every `train` file trains, every `eval` file is held out (the pre-training study's pools). */
export interface FileListData {
  kind: 'files';
  train: { name: string; file: string }[];
  eval: { name: string; file: string }[];
}

export type DataSpec = { kind: 'builtin' } | { kind: 'folder'; dir: string } | { kind: 'paired'; lqDir: string; gtDir: string } | FileListData;

export interface RunSpec {
  format: 'irlens-run/1';
  command: 'train' | 'finetune';
  /** train: preset or family name; one network per task with tied bodies when several tasks need it. */
  model?: string;
  modelConfig?: Config;
  /** finetune: irlens checkpoint to start from. */
  from?: string;
  tasks: string[];
  /** Scale of tasks whose names do not say it (paired folders). */
  scale?: number;
  data: DataSpec;
  evalCount?: number;
  /** Centre-crop evaluation images to at most this size (0 = whole). */
  evalSize: number;
  train: TrainOptions;
  /** The CLI option values the run was started with (informative; --resume compares explicit options to them). */
  cli?: Record<string, unknown>;
}

export interface RunOptions {
  resume?: boolean;
  /** Progress bar on stderr (cli-progress; shown only on a TTY). Default false. */
  progress?: boolean;
  /** One-line notices (evaluations, checkpoints) for non-TTY output. */
  notify?: (line: string) => void;
  /** Called after every step (tests, notebooks). */
  onStep?: (info: StepInfo) => void;
}

export interface StepInfo {
  step: number;
  task: string;
  loss: number;
  lr: number;
}

export interface RunResult {
  runDir: string;
  steps: number;
  finalModel: string;
  finalLoss?: number;
  eval?: Record<string, { psnr: number; ssim: number }>;
  /** Steps per second over this process's steps (excluding evaluation and checkpoints). */
  stepsPerSec: number;
  resumedFrom?: number;
}

function positiveInt(v: number, option: string, min = 1): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`${option}: expected an integer >= ${min}, got ${v}`);
}

export function validateTrainOptions(o: TrainOptions, tasks: string[]): void {
  positiveInt(o.steps, '--steps');
  positiveInt(o.batch, '--batch');
  positiveInt(o.patch, '--patch');
  positiveInt(o.evalEvery, '--eval-every', 0);
  positiveInt(o.ckptEvery, '--ckpt-every', 0);
  positiveInt(o.logEvery, '--log-every');
  positiveInt(o.keepCheckpoints, '--keep-checkpoints');
  if (!(o.clipNorm >= 0)) throw new Error(`--clip-norm: expected a number >= 0, got ${o.clipNorm}`);
  if (!(o.schedule.lr > 0)) throw new Error(`--lr: expected a positive number, got ${o.schedule.lr}`);
  if (o.taskWeights) {
    if (o.taskWeights.length !== tasks.length) throw new Error(`--task-weights: ${o.taskWeights.length} weights for ${tasks.length} tasks`);
    if (!o.taskWeights.every((w) => w >= 0) || !o.taskWeights.some((w) => w > 0)) throw new Error('--task-weights: expected non-negative weights, not all 0');
  }
  if (o.progressive && o.progressive.length === 0) throw new Error('--progressive: no stages');
}

// ----------------------------------------------------------------------------------------- model setup

export interface FinetuneModel {
  model: RestorationModel;
  /** What came from the checkpoint: the body and the task's head, or the body only (new seeded head). */
  reused: 'body+head' | 'body';
  description: string;
}

/**
 * The model fine-tuned on `task` from an irlens checkpoint: a single-task network for task whose body comes
 * from the checkpoint and whose head is the checkpoint's head for `task` when it has one (a MultiTaskModel's
 * heads.<task>, a single-task checkpoint trained on that task, a native EDT branch), else a new seeded one.
 */
export async function buildFinetuneModel(file: string, task: TaskSpec, seed: number): Promise<FinetuneModel> {
  const meta = readSafetensorsMetadata(file);
  const { model: loaded } = await loadSavedModel(file);
  let keepLoaded = false;
  try {
    const trained: string[] = meta['irlens.tasks'] ? (JSON.parse(meta['irlens.tasks']) as string[]) : loaded.tasks().map((t) => t.name);
    if (loaded instanceof MultiTaskModel) {
      const base = loaded.config;
      const target = createTaskModel(base.model, task, { config: base.config, seed });
      const hasHead = loaded.tasks().some((t) => t.name === task.name);
      copyParameters(loaded.taskNetwork(hasHead ? task.name : undefined), target, hasHead ? [] : headKeysOf(target));
      const from = `multi-task ${base.model} [${loaded.tasks().map((t) => t.name).join(', ')}]`;
      return { model: target, reused: hasHead ? 'body+head' : 'body', description: `${file}: ${from} -> ${task.name} (${hasHead ? 'its head reused' : 'new head'})` };
    }
    const label = loaded.preset || loaded.family;
    if (!hasTaskAdapter(loaded.family)) {
      if (!loaded.tasks().some((b) => b.name === task.name))
        throw new Error(`--task ${task.name}: checkpoint ${file} (${label}) has no branch for it (branches: ${loaded.tasks().map((t) => t.name).join(', ')})`);
      keepLoaded = true;
      return { model: loaded, reused: 'body+head', description: `${file}: ${label}, branch ${task.name}` };
    }
    const target = createTaskModel(label, task, { config: loaded.config as Config, seed });
    const hasHead = trained.includes(task.name);
    copyParameters(loaded, target, hasHead ? [] : headKeysOf(target));
    return {
      model: target,
      reused: hasHead ? 'body+head' : 'body',
      description: `${file}: ${label} trained on ${trained.join(', ')} -> ${task.name} (${hasHead ? 'its head reused' : 'body reused, new head'})`,
    };
  } finally {
    if (!keepLoaded) loaded.dispose();
  }
}

/** Copies every parameter of `to` from `from` by name, except `skip` keys; shapes must match. */
function copyParameters(from: RestorationModel, to: RestorationModel, skip: string[] = []): void {
  const src = new Map(from.stateEntries());
  const skipSet = new Set(skip);
  for (const [k, p] of to.stateEntries()) {
    if (skipSet.has(k)) continue;
    const s = src.get(k);
    if (!s) throw new Error(`fine-tuning: the checkpoint has no parameter '${k}'`);
    if (s.torchShape.join(',') !== p.torchShape.join(',')) throw new Error(`fine-tuning: '${k}' is [${s.torchShape}] in the checkpoint, [${p.torchShape}] in the model`);
    tf.tidy(() => p.variable.assign(s.variable));
  }
}

/** Variables of the branch that trains `task`, optionally only its head. */
function trainableVariables(model: RestorationModel, task: string, freeze: 'none' | 'body'): tf.Variable[] {
  const net = model instanceof MultiTaskModel ? model.taskNetwork(task) : model;
  if (freeze === 'none') return model instanceof MultiTaskModel ? model.taskVariables(task) : model.variables();
  if (!hasTaskAdapter(net.family)) throw new Error(`--freeze body: ${net.family} has no head/body split`);
  const prefixes = getTaskAdapter(net.family).headPrefixes(net.config as Config);
  const seen = new Set<tf.Variable>();
  for (const [k, p] of net.stateEntries()) if (isHeadKey(k, prefixes)) seen.add(p.variable);
  return [...seen];
}

/** The architecture family of an irlens checkpoint (the base family of a multi-task one), if it says. */
export function checkpointFamily(file: string): string | undefined {
  const meta = readSafetensorsMetadata(file);
  if (meta['irlens.family'] !== 'multitask') return meta['irlens.family'];
  try {
    const c = JSON.parse(meta['irlens.config'] ?? '{}') as { model?: string; config?: Record<string, unknown> };
    return c.model ? resolveSpec(c.model, c.config ?? {}).family.name : undefined;
  } catch {
    return undefined;
  }
}

/** Short model name for messages. */
export function modelLabel(model: RestorationModel): string {
  return model instanceof MultiTaskModel ? `multi-task ${model.config.model}` : model.preset || model.family;
}

type StagesModel = RestorationModel & { forwardStages?: (x: tf.Tensor4D, task?: string) => tf.Tensor4D[] };

// --------------------------------------------------------------------------------------------- trainer

export class Trainer {
  readonly tasks: TaskSpec[];
  private readonly branches = new Map<string, string | undefined>();
  private readonly trainVars = new Map<string, tf.Variable[]>();
  readonly optimizer: AdamOptimizer;
  private sampler: PatchSampler;

  constructor(
    readonly model: RestorationModel,
    readonly source: PairSource,
    tasks: TaskSpec[],
    readonly options: TrainOptions,
  ) {
    validateTrainOptions(options, tasks.map((t) => t.name));
    this.tasks = tasks;
    const multiple = (t: TaskSpec) => model.paddingRule(resolveBranch(model, t)).multiple;
    for (const t of tasks) {
      this.branches.set(t.name, resolveBranch(model, t));
      source.checkTask(t);
      const stages = options.progressive ?? [{ steps: options.steps, patch: options.patch, batch: options.batch }];
      for (const st of stages) {
        if (st.patch % t.scale !== 0) throw new Error(`--patch ${st.patch} is not a multiple of the scale ${t.scale} of task '${t.name}'`);
        const m = multiple(t);
        if ((st.patch / t.scale) % m !== 0)
          throw new Error(`--patch ${st.patch}: ${modelLabel(model)} needs inputs that are multiples of ${m} (input patch ${st.patch / t.scale} for '${t.name}')`);
        if (source.minSide !== undefined && st.patch > source.minSide)
          throw new Error(`--patch ${st.patch} is larger than the training images (${source.minSide} px)`);
      }
      this.trainVars.set(t.name, trainableVariables(model, t.name, options.freeze));
    }
    if (options.loss === 'mprnet' && typeof (model as StagesModel).forwardStages !== 'function')
      throw new Error(`--loss mprnet: ${modelLabel(model)} has no stage outputs (MPRNet only)`);
    const trainable = new Set(tasks.flatMap((t) => this.trainVars.get(t.name)!));
    this.optimizer = new AdamOptimizer(
      model.namedParameters().filter(([, p]) => trainable.has(p.variable)).map(([k, p]) => [k, p.variable]),
      options.optimizer,
    );
    this.sampler = new PatchSampler(source, options.seed);
  }

  /** Restores sampler and optimizer state from a checkpoint (model weights are loaded by the caller). */
  restore(state: TrainerState, optimizerState: Parameters<AdamOptimizer['loadState']>[0], source: string): void {
    this.sampler = new PatchSampler(this.source, this.options.seed, state.sampler);
    this.optimizer.loadState(optimizerState, source);
  }

  samplerState() {
    return this.sampler.state();
  }

  stageAt(step: number): Stage {
    const o = this.options;
    return o.progressive ? stageAt(o.progressive, step).stage : { steps: o.steps, patch: o.patch, batch: o.batch };
  }

  taskAt(step: number): TaskSpec {
    const name = taskForStep(this.tasks.map((t) => t.name), step, this.options.taskOrder, this.options.seed, this.options.taskWeights);
    return this.tasks.find((t) => t.name === name)!;
  }

  private output(x: tf.Tensor4D, task: TaskSpec): LossInput {
    const branch = this.branches.get(task.name);
    if (this.options.loss === 'mprnet') return (this.model as StagesModel).forwardStages!(x, branch);
    return this.model.forward(x, branch);
  }

  /** One optimisation step on a batch of `task`; returns the loss before the update and the gradient norm. */
  trainStep(task: TaskSpec, lq: tf.Tensor4D, gt: tf.Tensor4D, lr: number): { loss: number; gradNorm?: number } {
    const vars = this.trainVars.get(task.name)!;
    const { value, grads } = tf.variableGrads(() => computeLoss(this.options.loss, this.output(lq, task), gt), vars);
    const byName = new Map(vars.map((v) => [v.name, v]));
    const names = Object.keys(grads).filter((k) => grads[k] != null);
    let list = names.map((k) => grads[k]);
    let gradNorm: number | undefined;
    let clipped: tf.Tensor[] | undefined;
    if (this.options.clipNorm > 0) {
      const r = clipByGlobalNorm(list, this.options.clipNorm);
      gradNorm = r.norm;
      if (r.grads !== list) clipped = list = r.grads;
    }
    this.optimizer.step(new Map(names.map((k, i) => [byName.get(k)!, list[i]])), lr);
    const loss = value.dataSync()[0];
    value.dispose();
    for (const k of names) grads[k].dispose();
    clipped?.forEach((t) => t.dispose());
    return { loss, gradNorm };
  }

  /** PSNR/SSIM (BasicSR conventions, 8-bit quantised outputs) on the held-out images, per task. */
  async evaluate(): Promise<Record<string, { psnr: number; ssim: number }>> {
    const out: Record<string, { psnr: number; ssim: number }> = {};
    for (const task of this.tasks) {
      const pairs = await this.source.evalPairs(task);
      const opts = metricOptionsFor(task);
      let p = 0;
      let s = 0;
      for (const pair of pairs) {
        const x = imageToTensor(pair.lq);
        const y = this.model.restore(x, this.branches.get(task.name));
        const restored = tensorToImages(y)[0];
        x.dispose();
        y.dispose();
        p += psnr(restored, pair.gt, opts);
        s += ssim(restored, pair.gt, opts);
      }
      out[task.name] = { psnr: p / pairs.length, ssim: s / pairs.length };
    }
    return out;
  }

  async nextBatch(step: number) {
    const task = this.taskAt(step);
    const stage = this.stageAt(step);
    return { task, stage, batch: await this.sampler.nextBatch(task, stage.batch, stage.patch) };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

// ------------------------------------------------------------------------------------------- run level

function taskSpecs(spec: RunSpec): TaskSpec[] {
  if (spec.tasks.length === 0) throw new Error('--tasks: no task given');
  if (new Set(spec.tasks).size !== spec.tasks.length) throw new Error(`--tasks: repeated task in ${spec.tasks.join(',')}`);
  if (spec.command === 'finetune' && spec.tasks.length !== 1) throw new Error('--task: fine-tuning trains one task');
  if (spec.data.kind === 'paired' && spec.tasks.length !== 1) throw new Error('--lq-dir/--gt-dir: paired folders hold one task; give one --tasks name');
  return spec.tasks.map((t) => describeTask(t, spec.scale));
}

async function buildSource(spec: RunSpec, channels: 1 | 3): Promise<PairSource> {
  const common = { evalCount: spec.evalCount, evalSize: spec.evalSize };
  switch (spec.data.kind) {
    case 'builtin':
      return builtinSource(channels, { ...common, seed: spec.train.seed });
    case 'folder':
      return folderSource(spec.data.dir, channels, { ...common, seed: spec.train.seed });
    case 'paired':
      return new PairedFolderSource(spec.data.lqDir, spec.data.gtDir, channels, common);
    case 'files':
      if (spec.evalCount !== undefined) throw new Error('--eval-count: does not apply to explicit held-out file lists');
      return fileListSource(spec.data.train, spec.data.eval, channels, { evalSize: spec.evalSize, seed: spec.train.seed });
  }
}

function modelMetadata(spec: RunSpec, step: number): Record<string, string> {
  const meta: Record<string, string> = { 'irlens.tasks': JSON.stringify(spec.tasks), 'irlens.train.step': String(step) };
  if (spec.from) meta['irlens.finetuned-from'] = spec.from;
  return meta;
}

function channelsOf(model: RestorationModel): 1 | 3 {
  if (model.inChannels !== 1 && model.inChannels !== 3) throw new Error(`training: ${modelLabel(model)} takes ${model.inChannels}-channel inputs; only 1 or 3 are supported`);
  return model.inChannels;
}

/**
 * Trains the run described by `spec` in `runDir` (or resumes it from its last complete checkpoint). Everything
 * that can be checked (options, model, data, patch sizes) is checked before anything is written.
 */
export async function runTraining(specIn: RunSpec, runDir: string, opts: RunOptions = {}): Promise<RunResult> {
  const runFile = path.join(runDir, RUN_FILE);
  let spec = specIn;
  let state: TrainerState | undefined;
  if (opts.resume) {
    if (!fs.existsSync(runFile)) throw new Error(`--resume: '${runDir}' holds no run (${RUN_FILE} missing)`);
    spec = readJsonFile<RunSpec>(runFile, '--resume');
    state = resumeState(runDir, opts.notify);
  } else if (fs.existsSync(runFile) || fs.existsSync(path.join(runDir, STATE_FILE))) {
    throw new Error(`--run-dir '${runDir}' already holds a run; pass --resume to continue it or choose another directory`);
  }
  const tasks = taskSpecs(spec);
  validateTrainOptions(spec.train, spec.tasks);

  // Model: a resumed run reloads its checkpoint (family/config in the metadata); a new one builds it.
  let model: RestorationModel;
  let note: string;
  if (state) {
    const file = checkpointModelFile(runDir, state);
    model = (await loadSavedModel(file)).model;
    note = `resuming from step ${state.step} (${file})`;
  } else if (spec.command === 'finetune') {
    if (!spec.from) throw new Error('finetune: --from is required');
    const ft = await buildFinetuneModel(spec.from, tasks[0], spec.train.seed);
    model = ft.model;
    note = ft.description;
  } else {
    if (!spec.model) throw new Error('train: --model is required');
    model = createTrainModel(spec.model, tasks, { config: spec.modelConfig, seed: spec.train.seed });
    const kind = model instanceof MultiTaskModel ? ', tied body, one head per task' : model.tasks().length > 1 ? ', native task branches' : '';
    note = `${modelLabel(model)} [${model.tasks().map((t) => t.name).join(', ')}${kind}]: ${model.numParameters().toLocaleString('en-US')} parameters`;
  }

  let trainer: Trainer | undefined;
  try {
    const source = await buildSource(spec, channelsOf(model));
    trainer = new Trainer(model, source, tasks, spec.train);
    if (state) {
      const opt = readOptimizerState(runDir, state);
      trainer.restore(state, opt, opt.file);
      truncateLog(runDir, state.logBytes);
    } else {
      fs.mkdirSync(runDir, { recursive: true });
      if (opts.resume) truncateLog(runDir, 0);
      writeFileAtomic(runFile, `${JSON.stringify(spec, null, 2)}\n`);
    }
    opts.notify?.(`irlens: ${note}`);
    opts.notify?.(`irlens: data ${source.description}`);
    return await loop(trainer, spec, runDir, state, opts);
  } finally {
    trainer?.dispose();
    model.dispose();
  }
}

async function loop(trainer: Trainer, spec: RunSpec, runDir: string, resumed: TrainerState | undefined, opts: RunOptions): Promise<RunResult> {
  const o = spec.train;
  const model = trainer.model;
  const total = o.steps;
  let step = resumed?.step ?? 0;
  let elapsed = resumed?.elapsedSec ?? 0;
  let lastEval = resumed?.lastEval;
  let lastLoss: number | undefined;
  const finalFile = path.join(runDir, FINAL_MODEL);
  const bar =
    opts.progress && process.stderr.isTTY
      ? new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: 'train {bar} {value}/{total} | {task} loss {loss} | lr {lr} | {its} it/s | ETA {eta_formatted}{evalText}',
            hideCursor: true,
            etaBuffer: 50,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(total, step, { task: '', loss: '-', lr: '-', its: '-', evalText: '' });
  const times: number[] = [];
  let trainSec = 0;
  let trainSteps = 0;
  const checkpoint = (done: boolean) => {
    const st: TrainerState = {
      format: 'irlens-train-state/1',
      step,
      checkpoint: checkpointDirName(step),
      sampler: trainer.samplerState(),
      logBytes: logBytes(runDir),
      elapsedSec: elapsed,
      done,
      lastEval,
    };
    writeCheckpoint(runDir, model, trainer.optimizer, st, modelMetadata(spec, step), o.keepCheckpoints);
    return st;
  };
  try {
    if (resumed?.done && fs.existsSync(finalFile)) {
      opts.notify?.(`irlens: run already finished at step ${step}; final weights ${finalFile}`);
      return { runDir, steps: step, finalModel: finalFile, eval: lastEval, stepsPerSec: 0, resumedFrom: resumed.step };
    }
    while (step < total) {
      const t0 = performance.now();
      const { task, stage, batch } = await trainer.nextBatch(step);
      const lr = learningRate(o.schedule, step);
      let r: { loss: number; gradNorm?: number };
      try {
        r = trainer.trainStep(task, batch.lq, batch.gt, lr);
      } finally {
        batch.lq.dispose();
        batch.gt.dispose();
      }
      if (!Number.isFinite(r.loss)) throw new Error(`training diverged: loss ${r.loss} at step ${step + 1} (task ${task.name}); lower --lr or set --clip-norm`);
      step += 1;
      lastLoss = r.loss;
      const dt = (performance.now() - t0) / 1000;
      elapsed += dt;
      trainSec += dt;
      trainSteps += 1;
      times.push(dt);
      if (times.length > 20) times.shift();
      const its = times.length / times.reduce((a, b) => a + b, 0);
      opts.onStep?.({ step, task: task.name, loss: r.loss, lr });
      if (step % o.logEvery === 0 || step === total) {
        appendLog(runDir, {
          type: 'train',
          step,
          task: task.name,
          loss: r.loss,
          lr,
          patch: stage.patch,
          batch: stage.batch,
          ...(r.gradNorm !== undefined ? { gradNorm: r.gradNorm } : {}),
          its: Number(its.toFixed(3)),
        });
      }
      bar?.update(step, { task: task.name, loss: r.loss.toFixed(4), lr: lr.toExponential(2), its: its.toFixed(2), evalText: bar ? evalSummary(lastEval) : '' });
      if ((o.evalEvery > 0 && step % o.evalEvery === 0) || step === total) {
        const e0 = performance.now();
        lastEval = await trainer.evaluate();
        appendLog(runDir, { type: 'eval', step, eval: lastEval, sec: Number(((performance.now() - e0) / 1000).toFixed(3)) });
        if (bar) bar.update(step, { evalText: evalSummary(lastEval) });
        else opts.notify?.(`irlens: step ${step}/${total} eval${evalSummary(lastEval)}`);
      }
      // The last step's checkpoint is written after the final model (below).
      if (o.ckptEvery > 0 && step % o.ckptEvery === 0 && step < total) {
        checkpoint(false);
        if (!bar) opts.notify?.(`irlens: step ${step}/${total} checkpoint ${checkpointDirName(step)} (loss ${r.loss.toFixed(5)})`);
      }
    }
    bar?.stop();
    saveModel(model, finalFile, modelMetadata(spec, step));
    checkpoint(true);
    return {
      runDir,
      steps: step,
      finalModel: finalFile,
      finalLoss: lastLoss,
      eval: lastEval,
      stepsPerSec: trainSteps > 0 ? trainSteps / trainSec : 0,
      resumedFrom: resumed?.step,
    };
  } finally {
    bar?.stop();
  }
}

function evalSummary(e: Record<string, { psnr: number; ssim: number }> | undefined): string {
  if (!e) return '';
  return ` | ${Object.entries(e)
    .map(([t, m]) => `${t} ${m.psnr.toFixed(2)} dB/${m.ssim.toFixed(4)}`)
    .join(', ')}`;
}
