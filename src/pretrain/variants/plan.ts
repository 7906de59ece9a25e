/**
 * The plan of an architectural ablation: one training run per (seed, variant), all with the same steps, batch
 * and GT patch (a multiple of every variant's input unit), and with trainSeed = seed, so that within a seed
 * every variant is initialised from the same seed and sees the same crops in the same order. A training
 * variant (Restormer's progressive patches) keeps the steps and scales the official patch/batch stages.
 */
import { BUILTIN_IMAGE_SIZE } from '../../io/builtin';
import { lcm } from '../../util/stats';
import { createTaskModel, describeTask, resolveBranch } from '../multitask';
import { scaleProgressive, type Stage } from '../trainer';
import type { ResolvedVariant, VariantsConfig } from './config';

export interface PlannedVariantRun {
  /** Relative directory under the run directory, e.g. 'seed-0/resi-3conv'. */
  id: string;
  seed: number;
  variant: string;
  steps: number;
  batch: number;
  /** GT patch of the fixed-patch runs. */
  patch: number;
  /** Progressive stages of a training variant. */
  progressive?: Stage[];
  /** Seed of initialisation and data order: the same for every variant of a seed (paired comparison). */
  trainSeed: number;
}

export interface VariantAccounting {
  variant: string;
  steps: number;
  /** Training patches seen (sum of steps x batch) and GT pixels seen (sum of steps x batch x patch^2). */
  patches: number;
  pixels: number;
  patchSizes: string;
}

/** GT pixels a training patch of `task` must be a multiple of for this variant's network. */
function variantUnit(c: VariantsConfig, v: ResolvedVariant): number {
  const spec = describeTask(c.task);
  const m = createTaskModel(c.model, spec, { config: v.modelConfig, seed: 0 });
  try {
    return m.paddingRule(resolveBranch(m, spec)).multiple * spec.scale;
  } finally {
    m.dispose();
  }
}

/** The common GT patch: the smallest multiple of every variant's unit that is at least the preset's patch. */
export function commonPatch(c: VariantsConfig, variants: ResolvedVariant[]): { patch: number; unit: number } {
  const unit = lcm(...variants.map((v) => variantUnit(c, v)));
  const spec = describeTask(c.task);
  const want = spec.scale > 1 ? c.patch.lq * spec.scale : c.patch.same;
  return { patch: Math.ceil(want / unit) * unit, unit };
}

export function planVariants(c: VariantsConfig, variants: ResolvedVariant[]): PlannedVariantRun[] {
  const { patch, unit } = commonPatch(c, variants);
  const runs: PlannedVariantRun[] = [];
  for (const seed of c.seeds)
    for (const v of variants) {
      const r: PlannedVariantRun = { id: `seed-${seed}/${v.name}`, seed, variant: v.name, steps: c.steps, batch: c.batch, patch, trainSeed: seed };
      if (v.training.progressive) r.progressive = scaleProgressive(c.steps, patch, c.batch, unit);
      runs.push(r);
    }
  return runs;
}

/** Refuses patches larger than the built-in images (folder images are checked by the trainer). */
export function checkVariantPlanFits(c: VariantsConfig, runs: PlannedVariantRun[]): void {
  if (c.data.kind !== 'builtin') return;
  for (const r of runs) {
    const largest = Math.max(r.patch, ...(r.progressive ?? []).map((s) => s.patch));
    if (largest > BUILTIN_IMAGE_SIZE)
      throw new Error(`--preset ${c.preset}: run ${r.id} needs ${largest} px training patches, larger than the ${BUILTIN_IMAGE_SIZE} px built-in images; give --data with larger images`);
  }
}

/** Steps, patches and pixels per variant (from the first seed; every seed trains the same). */
export function accountVariants(c: VariantsConfig, runs: PlannedVariantRun[]): VariantAccounting[] {
  return runs
    .filter((r) => r.seed === c.seeds[0])
    .map((r) => {
      const stages = r.progressive ?? [{ steps: r.steps, patch: r.patch, batch: r.batch }];
      return {
        variant: r.variant,
        steps: stages.reduce((s, st) => s + st.steps, 0),
        patches: stages.reduce((s, st) => s + st.steps * st.batch, 0),
        pixels: stages.reduce((s, st) => s + st.steps * st.batch * st.patch ** 2, 0),
        patchSizes: stages.map((st) => (r.progressive ? `${st.steps}x(${st.batch}x${st.patch}px)` : `${st.batch}x${st.patch}px`)).join(', '),
      };
    });
}
