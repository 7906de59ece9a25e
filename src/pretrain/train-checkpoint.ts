/**
 * Run directories and training checkpoints.
 *
 *   RUN/run.json                               what was asked for (RunSpec): written once, before step 1
 *   RUN/train.jsonl                            one JSON object per line: train steps and evaluations
 *   RUN/checkpoints/step-00000100/model.safetensors       weights (irlens checkpoint, saveModel)
 *   RUN/checkpoints/step-00000100/optimizer.safetensors   Adam moments (exp_avg.<param>, exp_avg_sq.<param>)
 *                                                         + per-parameter step counts in the metadata
 *   RUN/checkpoints/step-00000100/state.json  the trainer state of this checkpoint: each checkpoint directory
 *                                              is resumable on its own (--resume falls back to the newest intact one)
 *   RUN/state.json                             trainer state of the last COMPLETE checkpoint (step, sampler
 *                                              counters = the data Rng state, log length, ...), naming its
 *                                              checkpoint directory
 *   RUN/model.safetensors                      final weights, written when the run finishes
 *
 * Every file is written atomically (temp + rename) and state.json is written last: a crash at any point leaves
 * state.json naming a checkpoint whose files are complete. Older checkpoint directories are deleted only after
 * the new state.json is in place.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../models/checkpoint';
import { saveModel } from '../weights/spec';
import type { RestorationModel } from '../models/model';
import { writeFileAtomic } from '../util/fs';
import type { SamplerState } from './data';
import type { AdamOptimizer, OptimizerState } from './optim';

export const RUN_FILE = 'run.json';
export const STATE_FILE = 'state.json';
export const LOG_FILE = 'train.jsonl';
export const FINAL_MODEL = 'model.safetensors';
const CKPT_DIR = 'checkpoints';

export interface TrainerState {
  format: 'irlens-train-state/1';
  /** Completed optimisation steps. */
  step: number;
  /** Checkpoint directory relative to the run directory. */
  checkpoint: string;
  sampler: SamplerState;
  /** Byte length of train.jsonl at this checkpoint (a resumed run truncates the log to it). */
  logBytes: number;
  /** Wall-clock seconds of training so far (informative only). */
  elapsedSec: number;
  /** The run finished (final model written). */
  done: boolean;
  lastEval?: Record<string, { psnr: number; ssim: number }>;
}

export function checkpointDirName(step: number): string {
  return `${CKPT_DIR}/step-${String(step).padStart(8, '0')}`;
}

export function readJsonFile<T>(file: string, what: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new Error(`${what}: cannot read '${file}'`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${what}: '${file}' is not valid JSON (${(e as Error).message})`);
  }
}

export function readTrainerState(runDir: string): TrainerState | undefined {
  const file = path.join(runDir, STATE_FILE);
  if (!fs.existsSync(file)) return undefined;
  const s = readJsonFile<TrainerState>(file, '--resume');
  if (s.format !== 'irlens-train-state/1') throw new Error(`--resume: '${file}' is not an irlens trainer state`);
  return s;
}

/**
 * Why a checkpoint's safetensors file cannot be used (missing, truncated, header not parseable), or undefined when
 * it is whole: its size must equal 8 + header + the end of the last tensor. Reads the header only.
 */
export function safetensorsDamage(file: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return `'${file}' is missing`;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(8);
    if (fs.readSync(fd, head, 0, 8, 0) !== 8) return `'${file}' is truncated (${size} bytes)`;
    const n = Number(head.readBigUInt64LE(0));
    if (!(n > 1 && 8 + n <= size && n < 100 * 2 ** 20)) return `'${file}' is truncated or not a safetensors file`;
    const json = Buffer.alloc(n);
    fs.readSync(fd, json, 0, n, 8);
    const header = JSON.parse(json.toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
    let end = 0;
    for (const [k, v] of Object.entries(header)) if (k !== '__metadata__') end = Math.max(end, v?.data_offsets?.[1] ?? 0);
    return 8 + n + end === size ? undefined : `'${file}' is truncated (${size} bytes, its header needs ${8 + n + end})`;
  } catch {
    return `'${file}' has an unreadable header`;
  } finally {
    fs.closeSync(fd);
  }
}

/** Why `state` cannot be resumed from in `runDir` (its checkpoint files damaged, the log too short), or undefined. */
function checkpointDamage(runDir: string, state: TrainerState): string | undefined {
  if (state.format !== 'irlens-train-state/1' || typeof state.checkpoint !== 'string' || !Number.isSafeInteger(state.step)) {
    return 'not an irlens trainer state';
  }
  const dir = path.join(runDir, state.checkpoint);
  for (const f of ['model.safetensors', 'optimizer.safetensors']) {
    const damage = safetensorsDamage(path.join(dir, f));
    if (damage) return damage;
  }
  const log = path.join(runDir, LOG_FILE);
  const size = fs.existsSync(log) ? fs.statSync(log).size : 0;
  if (size < state.logBytes) return `'${log}' is shorter (${size} bytes) than at step ${state.step} (${state.logBytes})`;
  return undefined;
}

/**
 * The state --resume continues from: state.json's checkpoint when intact, else the newest checkpoint directory
 * whose own state.json and files are intact. Reads only; when nothing is resumable it throws a one-line error
 * that lists why, before anything in the run directory has been touched.
 */
export function resumeState(runDir: string, notify?: (line: string) => void): TrainerState {
  const candidates: { where: string; state?: TrainerState; problem?: string }[] = [];
  const tryRead = (file: string) => {
    if (!fs.existsSync(file)) return;
    try {
      candidates.push({ where: file, state: JSON.parse(fs.readFileSync(file, 'utf8')) as TrainerState });
    } catch {
      candidates.push({ where: file, problem: `'${file}' is not valid JSON` });
    }
  };
  tryRead(path.join(runDir, STATE_FILE));
  const root = path.join(runDir, CKPT_DIR);
  const dirs = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => /^step-\d+$/.test(d)).sort().reverse() : [];
  for (const d of dirs) tryRead(path.join(root, d, STATE_FILE));
  const problems: string[] = [];
  const usable = candidates
    .filter((c) => {
      const problem = c.problem ?? checkpointDamage(runDir, c.state!);
      if (problem) problems.push(problem);
      return !problem;
    })
    .sort((a, b) => b.state!.step - a.state!.step);
  if (usable.length === 0) {
    const why = candidates.length === 0 ? `no ${STATE_FILE} and no checkpoint directories with one` : problems.join('; ');
    throw new Error(`--resume: '${runDir}' has no intact checkpoint to resume from (${why}); nothing was changed`);
  }
  const best = usable[0];
  if (problems.length) notify?.(`irlens: warning: --resume: skipped damaged checkpoints (${problems.join('; ')}); resuming from step ${best.state!.step}`);
  return best.state!;
}

/** Writes model + optimizer files of `state.checkpoint`, then state.json, then prunes older checkpoints. */
export function writeCheckpoint(
  runDir: string,
  model: RestorationModel,
  optimizer: AdamOptimizer,
  state: TrainerState,
  modelMetadata: Record<string, string>,
  keep = 1,
): void {
  const dir = path.join(runDir, state.checkpoint);
  fs.mkdirSync(dir, { recursive: true });
  saveModel(model, path.join(dir, 'model.safetensors'), modelMetadata);
  const opt = optimizer.state();
  writeSafetensors(path.join(dir, 'optimizer.safetensors'), opt.tensors, { 'irlens.optimizer': JSON.stringify(opt.meta) });
  const text = `${JSON.stringify(state, null, 1)}\n`;
  writeFileAtomic(path.join(dir, STATE_FILE), text);
  writeFileAtomic(path.join(runDir, STATE_FILE), text);
  pruneCheckpoints(runDir, state.checkpoint, keep);
}

/** Deletes checkpoint directories other than the `keep` newest, never the one state.json names. */
function pruneCheckpoints(runDir: string, current: string, keep: number): void {
  const root = path.join(runDir, CKPT_DIR);
  if (!fs.existsSync(root)) return;
  const dirs = fs
    .readdirSync(root)
    .filter((d) => /^step-\d+$/.test(d))
    .sort()
    .reverse();
  const currentName = path.basename(current);
  const kept = new Set([currentName, ...dirs.filter((d) => d <= currentName).slice(0, Math.max(1, keep))]);
  for (const d of dirs) if (!kept.has(d)) fs.rmSync(path.join(root, d), { recursive: true, force: true });
}

export function checkpointModelFile(runDir: string, state: TrainerState): string {
  return path.join(runDir, state.checkpoint, 'model.safetensors');
}

/** Reads the optimizer file of a checkpoint (one-line error when missing or not ours). */
export function readOptimizerState(runDir: string, state: TrainerState) {
  const file = path.join(runDir, state.checkpoint, 'optimizer.safetensors');
  if (!fs.existsSync(file)) throw new Error(`--resume: checkpoint file '${file}' is missing`);
  const { tensors, metadata } = readSafetensors(file);
  const meta = metadata['irlens.optimizer'];
  if (!meta) throw new Error(`--resume: '${file}' has no irlens.optimizer metadata`);
  return {
    tensors: new Map([...tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }])),
    meta: JSON.parse(meta) as OptimizerState['meta'],
    file,
  };
}

/** Cuts train.jsonl back to `bytes` (lines logged after the checkpoint a run resumes from). */
export function truncateLog(runDir: string, bytes: number): void {
  const file = path.join(runDir, LOG_FILE);
  if (!fs.existsSync(file)) {
    if (bytes > 0) throw new Error(`--resume: '${file}' is missing but the checkpoint expects ${bytes} bytes of log`);
    return;
  }
  const size = fs.statSync(file).size;
  if (size < bytes) throw new Error(`--resume: '${file}' is shorter (${size} bytes) than at the checkpoint (${bytes})`);
  if (size > bytes) fs.truncateSync(file, bytes);
}

/** Appends one JSON line to the run log (line by line, so a crash loses at most the line being written). */
export function appendLog(runDir: string, record: Record<string, unknown>): void {
  fs.appendFileSync(path.join(runDir, LOG_FILE), `${JSON.stringify(record)}\n`);
}

export function logBytes(runDir: string): number {
  const file = path.join(runDir, LOG_FILE);
  return fs.existsSync(file) ? fs.statSync(file).size : 0;
}

/** The irlens metadata (`__metadata__`) of a safetensors file, reading only its header. */
export function readSafetensorsMetadata(file: string): Record<string, string> {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(8);
    if (fs.readSync(fd, head, 0, 8, 0) !== 8) throw new Error(`'${file}': not a safetensors file`);
    const n = Number(head.readBigUInt64LE(0));
    if (!(n > 1 && n < 100 * 2 ** 20)) throw new Error(`'${file}': not a safetensors file`);
    const json = Buffer.alloc(n);
    fs.readSync(fd, json, 0, n, 8);
    const header = JSON.parse(json.toString('utf8')) as { __metadata__?: Record<string, string> };
    return header.__metadata__ ?? {};
  } catch (e) {
    throw new Error(`'${file}': cannot read the safetensors header (${(e as Error).message.split('\n')[0]})`);
  } finally {
    fs.closeSync(fd);
  }
}
