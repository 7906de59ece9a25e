/**
 * Orchestration: runs (or resumes) every planned run through runTraining (one run directory per seed, arm and
 * phase, so --resume skips finished runs and continues an interrupted one from its checkpoint), then the final
 * evaluation, the curves and the CKA, and returns the StudyResult.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../util/fs';
import { mean } from '../../util/stats';
import { checkRunDir, experimentTrainOptions, invocation, readStoredConfig, recordInvocation, runEnvironment, runStatus, type ExperimentOptions } from '../experiment';
import { namedSchedule } from '../optim';
import { FINAL_MODEL, readTrainerState } from '../train-checkpoint';
import { runTraining, type RunSpec } from '../trainer';
import { STUDY_CONFIG_FORMAT, STUDY_FILE, STUDY_FORMAT, validateStudyConfig, type StudyArch, type StudyConfig } from './config';
import { studyCka } from './cka';
import { studyCurves } from './curves';
import { loadHeldOut, poolFiles, studySplit, type StudySplit } from './data';
import { evaluateStudy, summariseStudy } from './evaluate';
import { ACCOUNTING_RULE, evaluationRule, studyNotes } from './notes';
import { checkPlanFits, computeAccounting, planStudy, type PlannedStudyRun } from './plan';
import type { StudyResult, StudyRunRecord } from './types';

/** The trainer's spec of one planned run: its pool's training files, the held-out files, the study's settings. */
function runSpec(c: StudyConfig, r: PlannedStudyRun, split: StudySplit, runDir: string): RunSpec {
  const lr = r.kind === 'pretrain' ? c.lr.pretrain : r.kind === 'finetune' ? c.lr.finetune : c.lr.scratch;
  const kind = r.kind === 'finetune' ? c.lr.finetuneSchedule : c.lr.schedule;
  const train = experimentTrainOptions({
    steps: r.steps,
    batch: c.batch,
    patch: r.patch,
    loss: 'l1',
    optimizer: c.optimizer,
    schedule: namedSchedule(kind, { lr, minLr: lr * c.lr.minFactor, steps: r.steps }),
    evalEvery: c.evalEvery,
    ckptEvery: c.ckptEvery,
    logEvery: c.logEvery,
    seed: r.trainSeed,
  });
  const common = { format: 'irlens-run/1' as const, tasks: r.tasks, data: poolFiles(c, split, r.pool), evalSize: c.evalSize, train };
  if (r.kind === 'finetune') return { ...common, command: 'finetune', from: path.resolve(runDir, r.from!, FINAL_MODEL) };
  return { ...common, command: 'train', model: c.model, modelConfig: c.modelConfig };
}

export type StudyOptions = ExperimentOptions<StudyRunRecord>;

export function defaultStudyRunDir(arch: StudyArch): string {
  return path.join('runs', `pretrain-study-${arch}`);
}

/** Reads the configuration stored by a study run directory (for --resume). */
export function readStudyConfig(runDir: string): StudyConfig {
  return readStoredConfig<StudyConfig>(runDir, STUDY_FILE, STUDY_CONFIG_FORMAT, 'study');
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

/**
 * Runs (or resumes) the whole study in `runDir` and returns its result (writeStudyReport in report.ts renders and
 * writes it). Everything checkable is checked before anything is written.
 */
export async function runStudy(config: StudyConfig, runDir: string, opts: StudyOptions = {}): Promise<StudyResult> {
  const tStart = performance.now();
  const notify = opts.notify ?? (() => {});
  validateStudyConfig(config);
  const studyFile = path.join(runDir, STUDY_FILE);
  checkRunDir(runDir, STUDY_FILE, config, { resume: opts.resume, what: 'study', readStored: readStudyConfig });
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
  const invocations = recordInvocation(runDir, invocation(tStart, records, opts.command), 'study');
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
      ...runEnvironment(opts.command),
      wallSeconds: (performance.now() - tStart) / 1000,
      invocations,
      trainSeconds: records.reduce((s, r) => s + r.trainSeconds, 0),
      ckaSeconds: cka?.seconds ?? 0,
      evalSeconds,
    },
  };
}
