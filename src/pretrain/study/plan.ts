/**
 * The study's plan: every training run (seed by seed; pre-training before fine-tuning), its patch size, and the
 * equal-compute accounting per arm and target.
 */
import { BUILTIN_IMAGE_SIZE as BUILTIN_SIDE } from '../../io/builtin';
import { lcm } from '../../util/stats';
import { createTaskModel, describeTask } from '../multitask';
import { relatedMix, type StudyArm, type StudyConfig } from './config';

export type StudyRunKind = 'pretrain' | 'finetune' | 'scratch';

export interface PlannedStudyRun {
  /** Relative directory under the study's run directory, e.g. 'seed-0/finetune-single-sr-x2'. */
  id: string;
  seed: number;
  arm: StudyArm;
  kind: StudyRunKind;
  tasks: string[];
  /** Target of a fine-tuning or scratch run. */
  target?: string;
  /** Id of the pre-training run a fine-tuning run starts from. */
  from?: string;
  pool: 'pretrain' | 'finetune';
  steps: number;
  /** GT patch (one per run: the trainer draws every task's patches at one size). */
  patch: number;
  /** Seed of initialisation, data order and task choice of the run. */
  trainSeed: number;
}

export interface ComputeAccounting {
  arm: StudyArm;
  target: string;
  pretrainSteps: number;
  finetuneSteps: number;
  totalSteps: number;
  /** Training patches seen (steps x batch). */
  patches: number;
  /** GT patch sizes of the runs. */
  patchSizes: string;
}

/** Units (GT pixels) a training patch of `task` must be a multiple of for `model`. */
export function patchUnit(c: StudyConfig, task: string, cache: Map<string, number>): number {
  let u = cache.get(task);
  if (u === undefined) {
    const spec = describeTask(task);
    const m = createTaskModel(c.model, spec, { config: c.modelConfig, seed: 0 });
    try {
      const branch = m.tasks().some((b) => b.name === task) ? task : undefined;
      u = m.paddingRule(branch).multiple * spec.scale;
    } finally {
      m.dispose();
    }
    cache.set(task, u);
  }
  return u;
}

/** Smallest GT patch that is a multiple of every task's unit and at least each task's preferred patch. */
export function runPatch(c: StudyConfig, tasks: string[], cache = new Map<string, number>()): number {
  const unit = lcm(...tasks.map((t) => patchUnit(c, t, cache)));
  const want = Math.max(...tasks.map((t) => (describeTask(t).scale > 1 ? c.patch.lq * describeTask(t).scale : c.patch.same)));
  return Math.ceil(want / unit) * unit;
}

const ARM_SEED: Record<StudyArm, number> = { scratch: 0, single: 1, related: 2, unrelated: 3 };

/** Every training run of the study, in execution order (seed by seed; pre-training before fine-tuning). */
export function planStudy(c: StudyConfig): PlannedStudyRun[] {
  const cache = new Map<string, number>();
  const runs: PlannedStudyRun[] = [];
  for (const seed of c.seeds) {
    const dir = `seed-${seed}`;
    const pre = new Map<string, PlannedStudyRun>();
    const pretrainFor = (arm: StudyArm, target: string): PlannedStudyRun => {
      const tasks = arm === 'single' ? [target] : arm === 'related' ? c.mixes.related[target] ?? relatedMix(target) : c.mixes.unrelated;
      const key = `${arm}:${tasks.join('+')}`;
      let r = pre.get(key);
      if (!r) {
        r = {
          id: `${dir}/pretrain-${arm}-${tasks.join('+')}`,
          seed,
          arm,
          kind: 'pretrain',
          tasks,
          pool: 'pretrain',
          steps: c.stepsPretrain,
          patch: runPatch(c, tasks, cache),
          trainSeed: 1000 * seed + ARM_SEED[arm],
        };
        pre.set(key, r);
        runs.push(r);
      }
      return r;
    };
    const finetunes: PlannedStudyRun[] = [];
    for (const arm of c.arms) {
      if (arm === 'scratch') continue;
      for (const target of c.targets) {
        const from = pretrainFor(arm, target);
        finetunes.push({
          id: `${dir}/finetune-${arm}-${target}`,
          seed,
          arm,
          kind: 'finetune',
          tasks: [target],
          target,
          from: from.id,
          pool: 'finetune',
          steps: c.stepsFinetune,
          patch: runPatch(c, [target], cache),
          trainSeed: from.trainSeed,
        });
      }
    }
    runs.push(...finetunes);
    for (const target of c.targets)
      runs.push({
        id: `${dir}/scratch-${target}`,
        seed,
        arm: 'scratch',
        kind: 'scratch',
        tasks: [target],
        target,
        pool: 'finetune',
        steps: c.stepsPretrain + c.stepsFinetune,
        patch: runPatch(c, [target], cache),
        trainSeed: 1000 * seed + ARM_SEED.scratch,
      });
  }
  return runs;
}

/** Throws when a run's patch cannot fit the built-in 256 px images (folder images are checked by the trainer). */
export function checkPlanFits(c: StudyConfig, runs: PlannedStudyRun[]): void {
  if (c.data.kind !== 'builtin') return;
  const big = runs.find((r) => r.patch > BUILTIN_SIDE);
  if (big)
    throw new Error(
      `--preset ${c.preset}: run ${big.id} (${big.tasks.join('+')}) needs ${big.patch} px training patches, larger than the ${BUILTIN_SIDE} px built-in images; give --data with larger images`,
    );
}

/** Steps per arm and target: scratch gets pre-train + fine-tune steps on the target alone. */
export function computeAccounting(c: StudyConfig, runs: PlannedStudyRun[]): ComputeAccounting[] {
  const seed = c.seeds[0];
  const byId = new Map(runs.map((r) => [r.id, r]));
  const out: ComputeAccounting[] = [];
  for (const target of c.targets)
    for (const arm of c.arms) {
      if (arm === 'scratch') {
        const r = runs.find((x) => x.seed === seed && x.kind === 'scratch' && x.target === target)!;
        out.push({ arm, target, pretrainSteps: 0, finetuneSteps: r.steps, totalSteps: r.steps, patches: r.steps * c.batch, patchSizes: `${r.patch}` });
      } else {
        const ft = runs.find((x) => x.seed === seed && x.kind === 'finetune' && x.arm === arm && x.target === target)!;
        const pre = byId.get(ft.from!)!;
        out.push({
          arm,
          target,
          pretrainSteps: pre.steps,
          finetuneSteps: ft.steps,
          totalSteps: pre.steps + ft.steps,
          patches: (pre.steps + ft.steps) * c.batch,
          patchSizes: `${pre.patch} (pre-training ${pre.tasks.join('+')}), ${ft.patch} (fine-tuning)`,
        });
      }
    }
  return out;
}
