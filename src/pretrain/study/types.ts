/**
 * What a study produces (StudyResult and its parts): the one type module that run.ts builds and report.ts renders,
 * so neither imports the other.
 */
import type { SimilarityResult } from '../../analysis/similarity';
import type { Invocation, RunEnvironment } from '../experiment';
import type { STUDY_FORMAT, StudyArm, StudyConfig } from './config';
import type { ComputeAccounting, PlannedStudyRun } from './plan';
import type { StudySplit } from './data';

export interface StudyRunRecord extends PlannedStudyRun {
  /** trained: started here; resumed: continued from a checkpoint; skipped: finished before this invocation. */
  status: 'trained' | 'resumed' | 'skipped';
  /** Training seconds (the trainer's count, evaluations and checkpoints excluded) and wall seconds of this invocation. */
  trainSeconds: number;
  wallSeconds: number;
  /** The trainer's last evaluation (held-out crops of evalSize) per task. */
  trainerEval?: Record<string, { psnr: number; ssim: number }>;
}

export interface StudyArmResult {
  target: string;
  arm: StudyArm;
  seed: number;
  psnr: number;
  ssim: number;
  /** Per held-out image. */
  perImage: { name: string; psnr: number; ssim: number }[];
}

export interface StudyStat {
  mean: number;
  std: number;
  n: number;
}

export interface StudyArmSummary {
  target: string;
  arm: StudyArm;
  psnr: StudyStat;
  ssim: StudyStat;
  /** Paired difference to scratch of the same seed (absent for scratch). */
  deltaPsnr?: StudyStat;
  deltaSsim?: StudyStat;
}

export interface StudyCurve {
  target: string;
  arm: StudyArm;
  seed: number;
  /** Step where fine-tuning starts (0 for scratch). */
  switchStep: number;
  /** [step, L1 loss] of the target task's batches, binned to at most ~300 points. */
  loss: [number, number][];
  /** [step, PSNR] of the target on the held-out crops (pre-training phase: only when the mix holds the target). */
  psnr: [number, number][];
}

export interface StudyLayerCurve {
  target: string;
  /** An arm, or 'scratch (other seed)' for the seed-to-seed baseline. */
  label: string;
  layers: string[];
  /** Per seed: CKA of each layer with the same layer of the scratch model. */
  perSeed: { seed: number; values: (number | null)[] }[];
  mean: (number | null)[];
  std: (number | null)[];
}

export interface StudyCkaMap {
  /** e.g. 'scratch', 'single' (fine-tuned models of that arm). */
  arm: StudyArm;
  srTarget: string;
  dnTarget: string;
  /** Seed-mean matrix in a full similarity result (the first seed's, with matrix = mean over seeds). */
  mean: SimilarityResult;
  perSeed: { seed: number; matrix: (number | null)[][] }[];
}

export interface StudySelfMap {
  target: string;
  /** Scratch model against itself, seed-mean matrix (the first seed's result with matrix = mean over seeds). */
  mean: SimilarityResult;
  perSeed: { seed: number; matrix: (number | null)[][] }[];
  /** CKA between the body's input (first layer) and its output (second to last layer): near 1 = the body barely transforms. */
  bodyMixing: number | null;
}

export interface StudyCka {
  settings: string;
  images: string[];
  examples: number;
  perLayer: StudyLayerCurve[];
  maps: StudyCkaMap[];
  selfMaps: StudySelfMap[];
  seconds: number;
  note?: string;
}

export interface StudyResult {
  format: typeof STUDY_FORMAT;
  config: StudyConfig;
  runDir: string;
  split: StudySplit;
  accounting: ComputeAccounting[];
  accountingRule: string;
  runs: StudyRunRecord[];
  results: StudyArmResult[];
  summary: StudyArmSummary[];
  /** No network: bicubic upscaling (SR) or the degraded input itself, on the same held-out inputs. */
  baselines: { target: string; method: string; psnr: number; ssim: number; perImage: { name: string; psnr: number; ssim: number }[] }[];
  evaluation: string;
  curves: StudyCurve[];
  cka?: StudyCka;
  notes: string[];
  provenance: RunEnvironment & {
    /** Wall seconds of this invocation, and the summed training seconds of every run. */
    wallSeconds: number;
    /** Every invocation on this run directory (a resumed study has several), oldest first. */
    invocations: StudyInvocation[];
    trainSeconds: number;
    ckaSeconds: number;
    evalSeconds: number;
  };
}

/** One invocation on a study's run directory. */
export type StudyInvocation = Invocation;
