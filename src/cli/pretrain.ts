/**
 * `irlens pretrain train` and `irlens pretrain finetune`: (multi-task) training and fine-tuning runs with
 * checkpoints, exact --resume, evaluation and a JSONL log (see src/pretrain/trainer.ts).

 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import '../models';
import { parseConfigJson } from '../weights/spec';
import { defaultLoss, resolveSpec, trainingDefaults } from '../models/registry';
import { choiceOption, flagName, givenOptions, parseList, parseNonNegativeInt, parseNumber, parsePositiveInt, startBackend } from './common';
import { studyCommand } from './pretrain-study';
import { parseDegradation } from '../degradations';
import {
  DEFAULT_OPTIMIZER,
  LOSS_NAMES,
  OPTIMIZER_KINDS,
  parseLossName,
  checkpointFamily,
  namedSchedule,
  readJsonFile,
  RUN_FILE,
  SCHEDULE_NAMES,
  runTraining,
  scaleProgressive,
  parseStages,
  describeTask,
  readSafetensorsMetadata,
  type LossName,
  type OptimizerKind,
  type RunSpec,
  type ScheduleName,
  type Stage,
  type TaskOrder,
} from '../pretrain';

interface CommonOptions {
  steps: number;
  batch: number;
  /** Unset: the model's valid default (trainingDefaults(model, config, tasks).patch). */
  patch?: number;
  lr: number;
  minLr: number;
  schedule: ScheduleName;
  warmup: number;
  optimizer: OptimizerKind;
  weightDecay?: number;
  betas: [number, number];
  clipNorm: number;
  loss?: LossName;
  evalEvery: number;
  ckptEvery: number;
  logEvery: number;
  runDir: string;
  resume?: boolean;
  data?: string;
  lqDir?: string;
  gtDir?: string;
  scale?: number;
  evalCount?: number;
  evalSize: number;
  seed: number;
  progressive?: string | boolean;
  taskOrder: TaskOrder;
  taskWeights?: number[];
  freeze: 'none' | 'body';
  keepCheckpoints: number;
  progress: boolean;
}

interface TrainCliOptions extends CommonOptions {
  model?: string;
  config?: string;
  tasks?: string[];
}

interface FinetuneCliOptions extends CommonOptions {
  from?: string;
  task?: string;
}

function parseBetas(text: string): [number, number] {
  const parts = text.split(',').map(Number);
  if (parts.length !== 2 || !parts.every((b) => Number.isFinite(b) && b >= 0 && b < 1)) throw new Error(`--betas: expected B1,B2 in [0,1), got '${text}'`);
  return [parts[0], parts[1]];
}

function parseWeights(text: string): number[] {
  const w = text.split(',').map(Number);
  if (!w.every((x) => Number.isFinite(x) && x >= 0)) throw new Error(`--task-weights: expected non-negative numbers, got '${text}'`);
  return w;
}

function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--steps <n>', 'optimisation steps', parsePositiveInt('--steps'), 1000)
    .option('--batch <n>', 'batch size', parsePositiveInt('--batch'), 4)
    .option('--patch <n>', "training patch size in target (GT) pixels (default: the model's, e.g. 64 for restormer-tiny, 96 for edt-tiny)", parsePositiveInt('--patch'))
    .option('--lr <x>', 'peak learning rate', parseNumber('--lr', 0, true), 2e-4)
    .option('--min-lr <x>', 'final learning rate of the cosine schedules', parseNumber('--min-lr'), 1e-6)
    .addOption(
      choiceOption(
        '--schedule <name>',
        'cosine (warm-up + one cosine), constant, restormer (BasicSR cyclic cosine: constant for 92/300 of the steps, then cosine), multistep (SwinIR: halve at 50/80/90/95%)',
        SCHEDULE_NAMES,
        'cosine',
      ),
    )
    .option('--warmup <n>', 'linear warm-up steps', parseNonNegativeInt('--warmup'), 0)
    .addOption(choiceOption('--optimizer <name>', 'adamw (decoupled weight decay) or adam', OPTIMIZER_KINDS, 'adamw'))
    .option('--weight-decay <x>', 'weight decay (default 1e-4 for adamw, 0 for adam)', parseNumber('--weight-decay'))
    .option('--betas <b1,b2>', 'Adam betas', parseBetas, [0.9, 0.999] as [number, number])
    .option('--clip-norm <x>', 'clip gradients by global norm (0 = off; Restormer uses 0.01)', parseNumber('--clip-norm'), 0)
    .addOption(choiceOption('--loss <name>', "training loss (default: the family's, mprnet for MPRNet, else l1)", LOSS_NAMES))
    .option('--eval-every <n>', 'evaluate on the held-out images every N steps (0 = at the end only)', parseNonNegativeInt('--eval-every'), 500)
    .option('--ckpt-every <n>', 'checkpoint every N steps (0 = at the end only)', parseNonNegativeInt('--ckpt-every'), 500)
    .option('--log-every <n>', 'write a train line to train.jsonl every N steps', parsePositiveInt('--log-every'), 1)
    .option('--run-dir <dir>', 'run directory (run.json, train.jsonl, checkpoints/, state.json, model.safetensors)')
    .option('--resume', 'continue the run in --run-dir from its last complete checkpoint')
    .option('--data <dir>', 'folder of clean images degraded on the fly (default: the built-in images)')
    .option('--lq-dir <dir>', 'folder of degraded inputs, paired by sorted name with --gt-dir')
    .option('--gt-dir <dir>', 'folder of targets, paired by sorted name with --lq-dir')
    .option('--scale <n>', 'output/input scale of a paired-folder task whose name does not say it', parsePositiveInt('--scale'))
    .option('--eval-count <n>', 'held-out evaluation images: the last N by sorted name (default 20%, 1..10)', parseNonNegativeInt('--eval-count'))
    .option('--eval-size <n>', 'centre-crop evaluation images to at most N pixels (0 = whole images)', parseNonNegativeInt('--eval-size'), 0)
    .option('--seed <n>', 'seed of initialisation, data sampling and task choice', parseNonNegativeInt('--seed'), 0)
    .option('--progressive [stages]', "progressive patch/batch: STEPS:PATCH:BATCH,... or, without a value, Restormer's schedule scaled to --steps/--patch/--batch")
    .addOption(choiceOption('--task-order <order>', 'which task each batch trains', ['round-robin', 'random'] as const, 'round-robin'))
    .option('--task-weights <w,...>', "task probabilities for --task-order random (default equal)", parseWeights)
    .addOption(choiceOption('--freeze <part>', 'none, or body (train the task heads/tails only)', ['none', 'body'] as const, 'none'))
    .option('--keep-checkpoints <n>', 'checkpoint directories to keep', parsePositiveInt('--keep-checkpoints'), 1)
    .option('--no-progress', 'no progress bar');
}


/** The multiple that patch sizes of a preset are rounded to for --progressive without stages (its family's training defaults). */
function patchMultiple(model: string | undefined, config: Record<string, unknown>): number {
  return model ? trainingDefaults(model, config).patchMultiple : 8;
}


/**
 * The patch a run trains with when --patch is not given: the model's valid default for these tasks
 * (trainingDefaults: 64 rounded up to what the network and the tasks' scales need, e.g. 96 for edt-tiny on sr-x2).
 * A fine-tune reads the model from its checkpoint's metadata; 64 when that names no known model.
 */
function defaultRunPatch(command: 'train' | 'finetune', o: TrainCliOptions & FinetuneCliOptions, modelConfig: Record<string, unknown> | undefined, tasks: string[]): number {
  const specs = tasks.map((t) => describeTask(t, o.scale));
  if (command === 'train') {
    try {
      return trainingDefaults(o.model!, modelConfig ?? {}, specs).patch;
    } catch (e) {
      // The tasks decide part of the config (EDT's branches, SwinIR's upscale): a refused config is a refused task.
      if (/ config: /.test((e as Error).message)) throw new Error(`--tasks: ${o.model} cannot train ${tasks.join(', ')} (${(e as Error).message})`);
      throw e;
    }
  }
  try {
    const meta = readSafetensorsMetadata(o.from!);
    const config = JSON.parse(meta['irlens.config'] ?? '{}') as Record<string, unknown> & { model?: string; config?: Record<string, unknown> };
    if (meta['irlens.family'] === 'multitask' && typeof config.model === 'string') return trainingDefaults(config.model, config.config ?? {}, specs).patch;
    const name = meta['irlens.preset'] || meta['irlens.family'];
    return name ? trainingDefaults(name, config, specs).patch : 64;
  } catch {
    return 64;
  }
}

function buildSpec(command: 'train' | 'finetune', o: TrainCliOptions & FinetuneCliOptions, raw: Record<string, unknown>): RunSpec {
  if (o.data && (o.lqDir || o.gtDir)) throw new Error('--data and --lq-dir/--gt-dir are exclusive');
  if (!!o.lqDir !== !!o.gtDir) throw new Error('--lq-dir and --gt-dir go together');
  const tasks = command === 'train' ? o.tasks : o.task ? [o.task] : undefined;
  if (command === 'train' && !o.model) throw new Error('--model is required (or --resume with --run-dir)');
  if (command === 'finetune' && !o.from) throw new Error('--from is required (or --resume with --run-dir)');
  if (!tasks) throw new Error(command === 'train' ? '--tasks is required' : '--task is required');
  // Without paired folders every task is made by a synthetic degradation: say so before any model sees the name.
  if (!o.lqDir) for (const t of tasks) {
    try {
      parseDegradation(t);
    } catch (e) {
      throw new Error(`${command === 'train' ? '--tasks' : '--task'}: ${(e as Error).message.replace(/^parseDegradation: /, '')} (a named task needs --lq-dir/--gt-dir)`);
    }
  }
  const modelConfig = command === 'train' ? parseConfigJson(o.config) : undefined;
  if (command === 'train') resolveSpec(o.model!, modelConfig); // early one-line error for unknown models/keys
  if (o.from && !fs.existsSync(o.from)) throw new Error(`--from: file '${o.from}' does not exist`);
  const patch = o.patch ?? defaultRunPatch(command, o, modelConfig, tasks);
  let progressive: Stage[] | undefined;
  if (o.progressive === true) progressive = scaleProgressive(o.steps, patch, o.batch, patchMultiple(o.model, modelConfig ?? {}));
  else if (typeof o.progressive === 'string') {
    progressive = parseStages(o.progressive);
    const sum = progressive.reduce((s, st) => s + st.steps, 0);
    if (sum !== o.steps) throw new Error(`--progressive: the stages add up to ${sum} steps but --steps is ${o.steps}`);
  }
  const family = command === 'train' ? resolveSpec(o.model!, modelConfig).family.name : checkpointFamily(o.from!);
  const loss: LossName = o.loss ?? parseLossName(defaultLoss(family));
  return {
    format: 'irlens-run/1',
    command,
    ...(command === 'train' ? { model: o.model, modelConfig } : { from: o.from }),
    tasks,
    ...(o.scale !== undefined ? { scale: o.scale } : {}),
    data: o.lqDir ? { kind: 'paired', lqDir: o.lqDir, gtDir: o.gtDir! } : o.data ? { kind: 'folder', dir: o.data } : { kind: 'builtin' },
    ...(o.evalCount !== undefined ? { evalCount: o.evalCount } : {}),
    evalSize: o.evalSize,
    train: {
      steps: o.steps,
      batch: o.batch,
      patch,
      ...(progressive ? { progressive } : {}),
      loss: parseLossName(loss),
      optimizer: {
        ...DEFAULT_OPTIMIZER,
        kind: o.optimizer,
        beta1: o.betas[0],
        beta2: o.betas[1],
        weightDecay: o.weightDecay ?? (o.optimizer === 'adamw' ? 1e-4 : 0),
      },
      schedule: namedSchedule(o.schedule, { lr: o.lr, minLr: o.minLr, steps: o.steps, warmup: o.warmup }),
      clipNorm: o.clipNorm,
      evalEvery: o.evalEvery,
      ckptEvery: o.ckptEvery,
      logEvery: o.logEvery,
      seed: o.seed,
      taskOrder: o.taskOrder,
      ...(o.taskWeights ? { taskWeights: o.taskWeights } : {}),
      freeze: o.freeze,
      keepCheckpoints: o.keepCheckpoints,
    },
    cli: raw,
  } as RunSpec;
}

/** Options that only steer this process, not the run (may differ on --resume). */
const PROCESS_OPTIONS = new Set(['runDir', 'resume', 'progress', 'backend']);

/** With --resume, options given explicitly must equal the stored run's (one-line error otherwise). */
function checkResumeOptions(cmd: Command, runDir: string): void {
  const stored = readJsonFile<RunSpec & { cli?: Record<string, unknown> }>(path.join(runDir, RUN_FILE), '--resume');
  for (const k of givenOptions(cmd, PROCESS_OPTIONS)) {
    const now = JSON.stringify(cmd.opts()[k]);
    const then = JSON.stringify(stored.cli?.[k]);
    if (now !== then) {
      throw new Error(`--resume: ${flagName(k)} ${now} differs from the run's ${then ?? '(not given)'}; a resumed run keeps its options`);
    }
  }
}

async function action(command: 'train' | 'finetune', cmd: Command): Promise<void> {
  const o = cmd.opts() as TrainCliOptions & FinetuneCliOptions;
  if (!o.runDir) throw new Error('--run-dir is required');
  const raw = Object.fromEntries(Object.entries(cmd.opts()).filter(([k]) => !PROCESS_OPTIONS.has(k)));
  let spec: RunSpec;
  if (o.resume) {
    if (!fs.existsSync(path.join(o.runDir, RUN_FILE))) throw new Error(`--resume: '${o.runDir}' holds no run (${RUN_FILE} missing)`);
    checkResumeOptions(cmd, o.runDir);
    spec = readJsonFile<RunSpec>(path.join(o.runDir, RUN_FILE), '--resume');
    if (spec.command !== command) throw new Error(`--resume: '${o.runDir}' is a '${spec.command}' run, not '${command}'`);
  } else {
    spec = buildSpec(command, o, raw);
  }
  await startBackend(cmd.optsWithGlobals().backend);
  const result = await runTraining(spec, o.runDir, {
    resume: o.resume,
    progress: o.progress,
    notify: (line) => process.stderr.write(`${line}\n`),
  });
  const ev = result.eval
    ? Object.entries(result.eval)
        .map(([t, m]) => `${t}: PSNR ${m.psnr.toFixed(2)} dB, SSIM ${m.ssim.toFixed(4)}`)
        .join('; ')
    : 'no evaluation';
  process.stdout.write(
    `${result.finalModel}: ${result.steps} steps${result.resumedFrom !== undefined ? ` (resumed at ${result.resumedFrom})` : ''}, ` +
      `${result.stepsPerSec.toFixed(2)} steps/s; ${ev}\n`,
  );
}

export function pretrainCommand(): Command {
  const cmd = new Command('pretrain').description('training and fine-tuning runs (single- and multi-task) with checkpoints and exact resume');
  const train = addCommonOptions(
    new Command('train')
      .description('train a model from scratch on one or more tasks (several tasks: shared body, one head per task)')
      .option('--model <spec>', 'preset or family name (e.g. refnet-tiny, restormer-tiny, swinir-tiny, edt-tiny-multi)')
      .option('--config <json>', 'official hyper-parameters overriding the preset, as JSON')
      .option('--tasks <list>', 'comma-separated tasks: degradations sr-x2, dn-25, dr-light, blur-motion, jpeg-q20, ... (or one named task with --lq-dir/--gt-dir)', parseList('--tasks')),
  ).action(async (_o: unknown, c: Command) => action('train', c));
  const finetune = addCommonOptions(
    new Command('finetune')
      .description("fine-tune an irlens checkpoint on one task (reuses the checkpoint's head for the task if it has one)")
      .option('--from <ckpt>', 'irlens checkpoint (.safetensors written by pretrain train / saveModel)')
      .option('--task <name>', 'target task'),
  ).action(async (_o: unknown, c: Command) => action('finetune', c));
  cmd.addCommand(train);
  cmd.addCommand(finetune);
  cmd.addCommand(studyCommand()); // `pretrain study` (src/cli/pretrain-study.ts)
  return cmd;
}
