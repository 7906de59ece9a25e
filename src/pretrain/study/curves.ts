/** Training curves of the study's target models from the runs' train.jsonl logs (pre-training then fine-tuning). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LOG_FILE } from '../train-checkpoint';
import type { StudyConfig } from './config';
import type { PlannedStudyRun } from './plan';
import type { StudyCurve } from './types';

interface LogLine {
  type: 'train' | 'eval';
  step: number;
  task?: string;
  loss?: number;
  eval?: Record<string, { psnr: number }>;
}

function readLog(dir: string): LogLine[] {
  const file = path.join(dir, LOG_FILE);
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogLine);
}

/** Mean loss per bin of `width` steps (bins by step), as [mean step, mean loss]. */
function binLoss(points: [number, number][], width: number): [number, number][] {
  const bins = new Map<number, [number, number, number]>();
  for (const [s, v] of points) {
    const k = Math.floor((s - 1) / width);
    const b = bins.get(k) ?? [0, 0, 0];
    bins.set(k, [b[0] + s, b[1] + v, b[2] + 1]);
  }
  return [...bins.values()].map(([s, v, n]) => [s / n, v / n] as [number, number]).sort((a, b) => a[0] - b[0]);
}

function runCurve(dir: string, target: string, offset: number): { loss: [number, number][]; psnr: [number, number][] } {
  const log = readLog(dir);
  return {
    loss: log.filter((l) => l.type === 'train' && l.task === target && Number.isFinite(l.loss)).map((l) => [l.step + offset, l.loss!] as [number, number]),
    psnr: log.filter((l) => l.type === 'eval' && l.eval?.[target]).map((l) => [l.step + offset, l.eval![target].psnr] as [number, number]),
  };
}

export function studyCurves(c: StudyConfig, runs: PlannedStudyRun[], runDir: string): StudyCurve[] {
  const total = c.stepsPretrain + c.stepsFinetune;
  const width = Math.max(1, Math.ceil(total / 300));
  const out: StudyCurve[] = [];
  for (const r of runs) {
    if (r.kind === 'pretrain') continue;
    const target = r.target!;
    if (r.kind === 'scratch') {
      const cv = runCurve(path.join(runDir, r.id), target, 0);
      out.push({ target, arm: 'scratch', seed: r.seed, switchStep: 0, loss: binLoss(cv.loss, width), psnr: cv.psnr });
    } else {
      const pre = runCurve(path.join(runDir, r.from!), target, 0);
      const ft = runCurve(path.join(runDir, r.id), target, c.stepsPretrain);
      out.push({ target, arm: r.arm, seed: r.seed, switchStep: c.stepsPretrain, loss: binLoss([...pre.loss, ...ft.loss], width), psnr: [...pre.psnr, ...ft.psnr] });
    }
  }
  return out;
}
