/**
 * Orchestration: runs (or resumes) every planned run through runTraining (one run directory per seed, arm and
 * phase, so --resume skips finished runs and continues an interrupted one from its checkpoint), then the final
 * evaluation, the curves and the CKA, and returns the StudyResult.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { backendInfo } from '../../engine/backend';
import { writeFileAtomic } from '../../util/fs';
import { mean } from '../../util/stats';
import { IRLENS_VERSION } from '../../version';
import { namedSchedule } from '../optim';
import { FINAL_MODEL, readJsonFile, readTrainerState, RUN_FILE } from '../train-checkpoint';
import { runTraining, type RunSpec, type TrainOptions } from '../trainer';
import { STUDY_CONFIG_FORMAT, STUDY_FILE, STUDY_FORMAT, validateStudyConfig, type StudyArch, type StudyConfig } from './config';
import { studyCka } from './cka';
import { studyCurves } from './curves';
import { loadHeldOut, poolFiles, studySplit, type StudySplit } from './data';
import { evaluateStudy, summariseStudy } from './evaluate';
import { ACCOUNTING_RULE, evaluationRule, studyNotes } from './notes';
import { checkPlanFits, computeAccounting, planStudy, type PlannedStudyRun } from './plan';
import type { StudyInvocation, StudyResult, StudyRunRecord } from './types';

/** The trainer's spec of one planned run: its pool's training files, the held-out files, the study's settings. */
function runSpec(c: StudyConfig, r: PlannedStudyRun, split: StudySplit, runDir: string): RunSpec {
  const lr = r.kind === 'pretrain' ? c.lr.pretrain : r.kind === 'finetune' ? c.lr.finetune : c.lr.scratch;
  const kind = r.kind === 'finetune' ? c.lr.finetuneSchedule : c.lr.schedule;
  const train: TrainOptions = {
    steps: r.steps,
    batch: c.batch,
    patch: r.patch,
    loss: 'l1',
    optimizer: { kind: c.optimizer.kind, beta1: c.optimizer.beta1, beta2: c.optimizer.beta2, eps: 1e-8, weightDecay: c.optimizer.weightDecay },
    schedule: namedSchedule(kind, { lr, minLr: lr * c.lr.minFactor, steps: r.steps }),
    clipNorm: 0,
    evalEvery: c.evalEvery,
    ckptEvery: c.ckptEvery,
    logEvery: c.logEvery,
    seed: r.trainSeed,
    taskOrder: 'round-robin',
    freeze: 'none',
    keepCheckpoints: 1,
  };
  const common = { format: 'irlens-run/1' as const, tasks: r.tasks, data: poolFiles(c, split, r.pool), evalSize: c.evalSize, train };
  if (r.kind === 'finetune') return { ...common, command: 'finetune', from: path.resolve(runDir, r.from!, FINAL_MODEL) };
  return { ...common, command: 'train', model: c.model, modelConfig: c.modelConfig };
}

export interface StudyOptions {
  resume?: boolean;
  /** One-line progress notices (runs, ETA, CKA). */
  notify?: (line: string) => void;
  /** Progress bar of each training run (TTY only). */
  progress?: boolean;
  /** The command line, for the report's provenance. */
  command?: string;
  /** Called after each run (tests). */
  onRun?: (r: StudyRunRecord) => void;
}

export function defaultStudyRunDir(arch: StudyArch): string {
  return path.join('runs', `pretrain-study-${arch}`);
}



const INVOCATIONS_FILE = 'invocations.json';

/** Appends this invocation to RUN/invocations.json (rewritten atomically) and returns the whole list. */
function recordInvocation(runDir: string, inv: StudyInvocation): StudyInvocation[] {
  const file = path.join(runDir, INVOCATIONS_FILE);
  const list = fs.existsSync(file) ? readJsonFile<StudyInvocation[]>(file, 'study') : [];
  list.push(inv);
  writeFileAtomic(file, `${JSON.stringify(list, null, 2)}\n`);
  return list;
}

function runStatus(dir: string): 'done' | 'partial' | 'new' {
  if (!fs.existsSync(path.join(dir, RUN_FILE))) return 'new';
  const st = readTrainerState(dir);
  if (st?.done && fs.existsSync(path.join(dir, FINAL_MODEL))) return 'done';
  return 'partial';
}

function firstDifference(a: unknown, b: unknown, at = ''): string | undefined {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
      if (d) return d;
    }
  }
  return `${at || 'config'} (${JSON.stringify(b)} in the study, ${JSON.stringify(a)} now)`;
}

/** Reads the configuration stored by a study run directory (for --resume). */
export function readStudyConfig(runDir: string): StudyConfig {
  const file = path.join(runDir, STUDY_FILE);
  if (!fs.existsSync(file)) throw new Error(`--resume: '${runDir}' holds no study (${STUDY_FILE} missing)`);
  const c = readJsonFile<{ config: StudyConfig }>(file, '--resume').config;
  if (c?.format !== STUDY_CONFIG_FORMAT) throw new Error(`--resume: '${file}' is not an irlens study`);
  return c;
}

function fmtDuration(sec: number): string {
  if (!Number.isFinite(sec)) return '?';
  const m = Math.floor(sec / 60);
  const s = Math.round(sec % 60);
  return m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

/** Seconds per step by run signature (tasks and patch), learnt from the runs done so far, for the ETA. */
class Eta {
  private readonly rate = new Map<string, number>();
  private all: number[] = [];
  private key(r: PlannedStudyRun) {
    return `${r.tasks.join('+')}@${r.patch}`;
  }
  record(r: PlannedStudyRun, secPerStep: number) {
    if (!(secPerStep > 0)) return;
    this.rate.set(this.key(r), secPerStep);
    this.all.push(secPerStep);
  }
  estimate(rest: PlannedStudyRun[]): number {
    if (this.all.length === 0) return NaN;
    const fallback = mean(this.all);
    // 10% on top for evaluations and checkpoints.
    return 1.1 * rest.reduce((s, r) => s + r.steps * (this.rate.get(this.key(r)) ?? fallback), 0);
  }
}

/**
 * Runs (or resumes) the whole study in `runDir` and returns its result (writeStudyReport in report.ts renders and
 * writes it). Everything checkable is checked before anything is written.
 */
/** Trains (or resumes, or skips when finished) every planned run, in order, with an ETA after each. */
async function trainRuns(config: StudyConfig, plan: PlannedStudyRun[], split: StudySplit, runDir: string, opts: StudyOptions, notify: (l: string) => void): Promise<StudyRunRecord[]> {
  const eta = new Eta();
  const records: StudyRunRecord[] = [];
  for (const [i, r] of plan.entries()) {
    const dir = path.join(runDir, r.id);
    const status = runStatus(dir);
    const label = `[${i + 1}/${plan.length}] ${r.id} (${r.tasks.join('+')}, ${r.steps} steps, patch ${r.patch})`;
    let record: StudyRunRecord;
    if (status === 'done') {
      const st = readTrainerState(dir)!;
      record = { ...r, status: 'skipped', trainSeconds: st.elapsedSec, wallSeconds: 0, trainerEval: st.lastEval };
      notify(`irlens: ${label}: finished before, skipped`);
    } else {
      notify(`irlens: ${label}: ${status === 'partial' ? 'resuming' : 'training'}`);
      const w0 = performance.now();
      const spec = runSpec(config, r, split, runDir);
      const res = await runTraining(spec, dir, { resume: status === 'partial', progress: opts.progress });
      const wall = (performance.now() - w0) / 1000;
      const st = readTrainerState(dir);
      record = { ...r, status: status === 'partial' ? 'resumed' : 'trained', trainSeconds: st?.elapsedSec ?? wall, wallSeconds: wall, trainerEval: res.eval };
      if (res.stepsPerSec > 0) eta.record(r, wall / Math.max(1, r.steps - (res.resumedFrom ?? 0)));
      const ev = res.eval ? Object.entries(res.eval).map(([t, m]) => `${t} ${m.psnr.toFixed(2)} dB`).join(', ') : '';
      const left = eta.estimate(plan.slice(i + 1));
      notify(`irlens: ${label}: done in ${fmtDuration(wall)} (${res.stepsPerSec.toFixed(2)} steps/s; ${ev}); ETA of the training ${fmtDuration(left)}`);
    }
    records.push(record);
    opts.onRun?.(record);
  }
  return records;
}

export async function runStudy(config: StudyConfig, runDir: string, opts: StudyOptions = {}): Promise<StudyResult> {
  const tStart = performance.now();
  const notify = opts.notify ?? (() => {});
  validateStudyConfig(config);
  const studyFile = path.join(runDir, STUDY_FILE);
  if (opts.resume) {
    const stored = readStudyConfig(runDir);
    const diff = firstDifference(config, stored);
    if (diff) throw new Error(`--resume: settings differ from the study in '${runDir}': ${diff}; a resumed study keeps its settings`);
  } else if (fs.existsSync(studyFile)) {
    throw new Error(`--run-dir '${runDir}' already holds a study; pass --resume to continue it or choose another directory`);
  }
  const split = studySplit(config);
  const plan = planStudy(config);
  checkPlanFits(config, plan);
  const accounting = computeAccounting(config, plan);

  fs.mkdirSync(runDir, { recursive: true });
  if (!opts.resume) writeFileAtomic(studyFile, `${JSON.stringify({ config, split, plan, createdAt: new Date().toISOString() }, null, 2)}\n`);
  const totalSteps = plan.reduce((s, r) => s + r.steps, 0);
  notify(
    `irlens: study ${config.arch} (${config.model}, preset ${config.preset}): ${plan.length} runs, ${totalSteps.toLocaleString('en-US')} steps; ` +
      `split ${split.pretrain.length}/${split.finetune.length}/${split.eval.length} images (pre-training/fine-tuning/held-out)`,
  );

  const records = await trainRuns(config, plan, split, runDir, opts, notify);

  // Final evaluation of every finished target model on the whole held-out images.
  const e0 = performance.now();
  const heldOut = await loadHeldOut(config, split, 3);
  const { results, baselines } = await evaluateStudy(config, plan, runDir, heldOut);
  const evalSeconds = (performance.now() - e0) / 1000;
  const summary = summariseStudy(config, results);
  for (const s of summary)
    notify(
      `irlens: study ${s.target} ${s.arm}: PSNR ${s.psnr.mean.toFixed(2)} ± ${s.psnr.std.toFixed(2)} dB, SSIM ${s.ssim.mean.toFixed(4)}` +
        (s.deltaPsnr ? ` (vs scratch ${s.deltaPsnr.mean >= 0 ? '+' : ''}${s.deltaPsnr.mean.toFixed(2)} ± ${s.deltaPsnr.std.toFixed(2)} dB)` : ''),
    );
  for (const b of baselines) notify(`irlens: study ${b.target} input baseline (${b.method}): PSNR ${b.psnr.toFixed(2)} dB, SSIM ${b.ssim.toFixed(4)}`);
  const cka = config.cka.enabled ? await studyCka(config, plan, runDir, heldOut, notify) : undefined;
  const invocations = recordInvocation(runDir, {
    startedAt: new Date(Date.now() - (performance.now() - tStart)).toISOString(),
    wallSeconds: (performance.now() - tStart) / 1000,
    trained: records.filter((r) => r.status === 'trained').length,
    resumed: records.filter((r) => r.status === 'resumed').length,
    skipped: records.filter((r) => r.status === 'skipped').length,
    ...(opts.command ? { command: opts.command } : {}),
  });
  return {
    format: STUDY_FORMAT,
    config,
    runDir: path.resolve(runDir),
    split,
    accounting,
    accountingRule: ACCOUNTING_RULE,
    runs: records,
    results,
    summary,
    baselines,
    evaluation: evaluationRule(config, heldOut.length),
    curves: studyCurves(config, plan, runDir),
    ...(cka ? { cka } : {}),
    notes: studyNotes(config),
    provenance: {
      ...provenance(opts.command),
      wallSeconds: (performance.now() - tStart) / 1000,
      invocations,
      trainSeconds: records.reduce((s, r) => s + r.trainSeconds, 0),
      ckaSeconds: cka?.seconds ?? 0,
      evalSeconds,
    },
  };
}

/** Where and with what the study ran (the parts of StudyResult.provenance that do not count time). */
function provenance(command: string | undefined) {
  const backend = backendInfo();
  return {
    createdAt: new Date().toISOString(),
    ...(command ? { command } : {}),
    backend: { name: backend?.name ?? tf.getBackend(), description: backend?.description },
    versions: { irlens: IRLENS_VERSION, node: process.version, ...Object.fromEntries(Object.entries(tf.version).map(([k, v]) => [k, String(v)])) },
    host: { cpus: os.cpus().length, platform: `${os.platform()} ${os.arch()}`, totalMemGiB: Math.round(os.totalmem() / 2 ** 30) },
  };
}
