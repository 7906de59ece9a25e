/**
 * What the multi-run experiments (the pre-training study, src/pretrain/study/, and the architectural ablation,
 * src/pretrain/variants/) share: option checks, the trainer options of one run, a run directory's state for
 * --resume, the stored settings, the invocation log and the provenance of a result.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { backendInfo } from '../engine/backend';
import type { OptimizerSettings } from '../models/family';
import { writeFileAtomic } from '../util/fs';
import { IRLENS_VERSION } from '../version';
import type { LossName } from './losses';
import type { ScheduleSpec } from './optim';
import { FINAL_MODEL, readJsonFile, readTrainerState, RUN_FILE, STATE_FILE } from './train-checkpoint';
import type { TrainOptions } from './trainer';

/** One-line error unless `v` (when given) is an integer >= min. */
export function checkInt(v: number | undefined, option: string, min: number): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= min)) throw new Error(`${option}: expected an integer >= ${min}, got ${v}`);
}

/** Adam (0.9, 0.99) without weight decay: EDT's and SwinIR's optimiser, and the small presets' one. */
export const ADAM_099: Readonly<OptimizerSettings> = { kind: 'adam', beta1: 0.9, beta2: 0.99, weightDecay: 0 };

/** Options of an experiment run (runStudy, runVariants); R is its record of one training run. */
export interface ExperimentOptions<R> {
  resume?: boolean;
  /** One-line progress notices (runs, ETA). */
  notify?: (line: string) => void;
  /** Progress bar of each training run (TTY only). */
  progress?: boolean;
  /** The command line, for the report's provenance. */
  command?: string;
  /** Called after each run (tests: a kill after the first run). */
  onRun?: (r: R) => void;
}

/** The experiment settings of one run that differ between runs and experiments. */
export interface RunTraining {
  steps: number;
  batch: number;
  patch: number;
  progressive?: TrainOptions['progressive'];
  loss: LossName;
  optimizer: OptimizerSettings;
  schedule: ScheduleSpec;
  evalEvery: number;
  ckptEvery: number;
  logEvery: number;
  seed: number;
}

/** Trainer options of one experiment run: no clipping, round-robin tasks, nothing frozen, one checkpoint kept. */
export function experimentTrainOptions(t: RunTraining): TrainOptions {
  return {
    steps: t.steps,
    batch: t.batch,
    patch: t.patch,
    ...(t.progressive ? { progressive: t.progressive } : {}),
    loss: t.loss,
    optimizer: { kind: t.optimizer.kind, beta1: t.optimizer.beta1, beta2: t.optimizer.beta2, eps: 1e-8, weightDecay: t.optimizer.weightDecay },
    schedule: t.schedule,
    clipNorm: 0,
    evalEvery: t.evalEvery,
    ckptEvery: t.ckptEvery,
    logEvery: t.logEvery,
    seed: t.seed,
    taskOrder: 'round-robin',
    freeze: 'none',
    keepCheckpoints: 1,
  };
}

/**
 * done: finished; partial: resumes (from its checkpoint); new: nothing there. With `clearUncheckpointed`, a run
 * killed before its first checkpoint (only run.json and log lines: nothing to resume) is cleared and counts as new.
 */
export function runStatus(dir: string, opts: { clearUncheckpointed?: boolean } = {}): 'done' | 'partial' | 'new' {
  if (!fs.existsSync(path.join(dir, RUN_FILE))) return 'new';
  const st = readTrainerState(dir);
  if (st?.done && fs.existsSync(path.join(dir, FINAL_MODEL))) return 'done';
  if (!opts.clearUncheckpointed) return 'partial';
  const ckpts = path.join(dir, 'checkpoints');
  const hasCheckpoint = fs.existsSync(path.join(dir, STATE_FILE)) || (fs.existsSync(ckpts) && fs.readdirSync(ckpts).length > 0);
  if (hasCheckpoint) return 'partial';
  fs.rmSync(dir, { recursive: true, force: true });
  return 'new';
}

/** The settings stored in RUN/`file` under `config` (for --resume); `what` names the experiment in errors. */
export function readStoredConfig<C extends { format: string }>(runDir: string, file: string, format: C['format'], what: string): C {
  const f = path.join(runDir, file);
  if (!fs.existsSync(f)) throw new Error(`--resume: '${runDir}' holds no ${what} (${file} missing)`);
  const c = readJsonFile<{ config: C }>(f, '--resume').config;
  if (c?.format !== format) throw new Error(`--resume: '${f}' is not an irlens ${what}`);
  return c;
}

/** The first setting where `now` and `stored` differ, as `path (<stored> in the <what>, <now> now)`. */
export function firstDifference(now: unknown, stored: unknown, what: string, at = ''): string | undefined {
  if (JSON.stringify(now) === JSON.stringify(stored)) return undefined;
  if (now && stored && typeof now === 'object' && typeof stored === 'object' && !Array.isArray(now) && !Array.isArray(stored)) {
    for (const k of new Set([...Object.keys(now), ...Object.keys(stored)])) {
      const d = firstDifference((now as Record<string, unknown>)[k], (stored as Record<string, unknown>)[k], what, at ? `${at}.${k}` : k);
      if (d) return d;
    }
  }
  return `${at || 'config'} (${JSON.stringify(stored)} in the ${what}, ${JSON.stringify(now)} now)`;
}

/**
 * Before an experiment writes into `runDir`: a resumed one must find the same settings stored in RUN/`file`
 * (`readStored` reads them), a new one must find none. `what` names the experiment in the one-line errors.
 */
export function checkRunDir<C>(runDir: string, file: string, config: C, o: { resume?: boolean; what: string; readStored: (runDir: string) => C }): void {
  const what = o.what;
  if (o.resume) {
    const diff = firstDifference(config, o.readStored(runDir), what);
    if (diff) throw new Error(`--resume: settings differ from the ${what} in '${runDir}': ${diff}; a resumed ${what} keeps its settings (omit the options or use another --run-dir)`);
  } else if (fs.existsSync(path.join(runDir, file))) {
    throw new Error(`--run-dir '${runDir}' already holds a ${what}; pass --resume to continue it or choose another directory`);
  }
}

/** One invocation on a run directory (a resumed experiment has several). */
export interface Invocation {
  startedAt: string;
  wallSeconds: number;
  trained: number;
  resumed: number;
  skipped: number;
  command?: string;
}

const INVOCATIONS_FILE = 'invocations.json';

/** This invocation, from its start (performance.now()) and the statuses of its runs. */
export function invocation(t0: number, runs: { status: 'trained' | 'resumed' | 'skipped' }[], command: string | undefined): Invocation {
  return {
    startedAt: new Date(Date.now() - (performance.now() - t0)).toISOString(),
    wallSeconds: (performance.now() - t0) / 1000,
    trained: runs.filter((r) => r.status === 'trained').length,
    resumed: runs.filter((r) => r.status === 'resumed').length,
    skipped: runs.filter((r) => r.status === 'skipped').length,
    ...(command ? { command } : {}),
  };
}

/** Appends `inv` to RUN/invocations.json (rewritten atomically) and returns the whole list, oldest first. */
export function recordInvocation(runDir: string, inv: Invocation, what: string): Invocation[] {
  const file = path.join(runDir, INVOCATIONS_FILE);
  const list = fs.existsSync(file) ? readJsonFile<Invocation[]>(file, what) : [];
  list.push(inv);
  writeFileAtomic(file, `${JSON.stringify(list, null, 2)}\n`);
  return list;
}

/** Where and with what an experiment ran (the parts of a result's provenance that do not count time). */
export interface RunEnvironment {
  createdAt: string;
  command?: string;
  backend: { name: string; description?: string };
  versions: Record<string, string>;
  host: { cpus: number; platform: string; totalMemGiB: number };
}

export function runEnvironment(command: string | undefined): RunEnvironment {
  const backend = backendInfo();
  return {
    createdAt: new Date().toISOString(),
    ...(command ? { command } : {}),
    backend: { name: backend?.name ?? tf.getBackend(), description: backend?.description },
    versions: { irlens: IRLENS_VERSION, node: process.version, ...Object.fromEntries(Object.entries(tf.version).map(([k, v]) => [k, String(v)])) },
    host: { cpus: os.cpus().length, platform: `${os.platform()} ${os.arch()}`, totalMemGiB: Math.round(os.totalmem() / 2 ** 30) },
  };
}
