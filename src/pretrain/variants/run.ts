/**
 * Orchestration of an architectural ablation: the split into training and held-out images, every planned run
 * through runTraining (one run directory per seed and variant, so --resume skips finished runs and continues an
 * interrupted one from its checkpoint), the final held-out evaluation (PSNR/SSIM with the task's BasicSR
 * conventions), and the statistics: mean ± std over seeds per variant, paired differences against the baseline
 * (same seed = same init seed and data order) with a bootstrap interval, the paired t-test and, when there are
 * enough seeds for it to reach the level, the Wilcoxon signed-rank test.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { builtinImages, BUILTIN_IMAGES } from '../../io/builtin';
import { listImages } from '../../io/folder';
import { readImage } from '../../io/image';
import type { NamedImage } from '../../analysis/similarity';
import { pairedTest, type PairedTest } from '../../analysis/ablation/stats';
import { writeFileAtomic } from '../../util/fs';
import { Rng } from '../../util/rng';
import { meanStd } from '../../util/stats';
import { checkRunDir, experimentTrainOptions, invocation, readStoredConfig, recordInvocation, runEnvironment, runStatus, type ExperimentOptions, type Invocation, type RunEnvironment } from '../experiment';
import { describeTask } from '../multitask';
import { namedSchedule } from '../optim';
import { FINAL_MODEL, readTrainerState } from '../train-checkpoint';
import { runTraining, type FileListData, type RunSpec } from '../trainer';
import { evaluateInput, evaluateModel, loadStudyModel } from '../study/evaluate';
import { resolveVariants, validateVariantsConfig, VARIANTS_CONFIG_FORMAT, VARIANTS_FILE, VARIANTS_FORMAT, type ResolvedVariant, type VariantsConfig } from './config';
import { accountVariants, checkVariantPlanFits, planVariants, type PlannedVariantRun, type VariantAccounting } from './plan';

export interface VariantSplit {
  train: string[];
  eval: string[];
  rule: string;
  source: string;
}

export interface VariantRunRecord extends PlannedVariantRun {
  status: 'trained' | 'resumed' | 'skipped';
  trainSeconds: number;
  wallSeconds: number;
}

export interface VariantSeedResult {
  variant: string;
  seed: number;
  psnr: number;
  ssim: number;
  perImage: { name: string; psnr: number; ssim: number }[];
}

export interface MetricStat {
  mean: number;
  std: number;
  n: number;
}

/**
 * A paired comparison over seeds (variant - baseline): pairedTest's fields and the std of the differences;
 * `wilcoxon` is null when n < WILCOXON_MIN_N (its exact p cannot go below 0.05) or all differences are 0.
 */
export type PairedComparison = Omit<PairedTest, 'alpha'> & { stdDiff: number };

export interface VariantSummary {
  variant: string;
  description: string;
  params: number;
  psnr: MetricStat;
  ssim: MetricStat;
  /** Against the baseline (absent for the baseline itself). */
  vsBaseline?: { psnr: PairedComparison; ssim: PairedComparison };
}

export interface VariantsResult {
  format: typeof VARIANTS_FORMAT;
  config: VariantsConfig;
  runDir: string;
  split: VariantSplit;
  variants: ResolvedVariant[];
  accounting: VariantAccounting[];
  runs: VariantRunRecord[];
  results: VariantSeedResult[];
  summary: VariantSummary[];
  /** No network: bicubic upscaling (SR) or the degraded input, on the same held-out inputs. */
  inputBaseline: { method: string; psnr: number; ssim: number };
  evaluation: string;
  statistics: string;
  notes: string[];
  provenance: RunEnvironment & { wallSeconds: number; trainSeconds: number; evalSeconds: number; invocations: Invocation[] };
}

/** Smallest number of pairs for which the exact two-sided Wilcoxon p-value can be below 0.05 (2/2^n < 0.05). */
export const WILCOXON_MIN_N = 6;

// ---------------------------------------------------------------------------------------------- data

function sourceImages(c: VariantsConfig): { name: string; file: string }[] {
  if (c.data.kind === 'builtin') return builtinImages().map((b) => ({ name: b.name, file: b.path }));
  const dir = c.data.dir;
  return listImages(dir).map((file) => ({ name: path.relative(dir, file).split(path.sep).join('/'), file }));
}

/** Seeded split: `split.eval` held-out images (at most n - 1), the rest trains every variant. */
export function variantSplit(c: VariantsConfig): VariantSplit {
  const images = sourceImages(c);
  if (images.length < 2) throw new Error(`--data: ${images.length} image(s); the ablation needs at least 2 (training and held-out)`);
  const e = Math.max(1, Math.min(c.split.eval, images.length - 1));
  const order = new Rng(`variants-split:${c.split.seed}`).permutation(images.length);
  const names = Array.from(order, (i) => images[i].name);
  return {
    train: names.slice(e).sort(),
    eval: names.slice(0, e).sort(),
    rule: `seeded shuffle (Rng 'variants-split:${c.split.seed}') of the ${images.length} images; the first ${e} held out, ${images.length - e} train`,
    source: c.data.kind === 'builtin' ? `the ${BUILTIN_IMAGES.length} built-in 256x256 images (data/)` : `--data ${c.data.dir}`,
  };
}

function files(c: VariantsConfig, split: VariantSplit): FileListData {
  const byName = new Map(sourceImages(c).map((s) => [s.name, s.file]));
  const list = (names: string[]) => names.map((name) => ({ name, file: path.resolve(byName.get(name)!) }));
  return { kind: 'files', train: list(split.train), eval: list(split.eval) };
}

// --------------------------------------------------------------------------------------------- runs

function runSpec(c: VariantsConfig, r: PlannedVariantRun, v: ResolvedVariant, split: VariantSplit): RunSpec {
  const lr = c.lr.peak;
  const train = experimentTrainOptions({
    steps: r.steps,
    batch: r.batch,
    patch: r.patch,
    progressive: r.progressive,
    loss: c.loss,
    optimizer: c.optimizer,
    schedule: namedSchedule(c.lr.schedule, { lr, minLr: lr * c.lr.minFactor, steps: r.steps }),
    evalEvery: c.evalEvery,
    ckptEvery: c.ckptEvery,
    logEvery: c.logEvery,
    seed: r.trainSeed,
  });
  return { format: 'irlens-run/1', command: 'train', model: c.model, modelConfig: v.modelConfig, tasks: [c.task], data: files(c, split), evalSize: c.evalSize, train };
}

export type VariantsOptions = ExperimentOptions<VariantRunRecord>;

export function defaultVariantsRunDir(arch: string): string {
  return path.join('runs', `ablate-variants-${arch}`);
}

/** The settings stored by a run directory (for --resume). */
export function readVariantsConfig(runDir: string): VariantsConfig {
  return readStoredConfig<VariantsConfig>(runDir, VARIANTS_FILE, VARIANTS_CONFIG_FORMAT, 'variants ablation');
}

async function trainRuns(c: VariantsConfig, plan: PlannedVariantRun[], variants: ResolvedVariant[], split: VariantSplit, runDir: string, opts: VariantsOptions) {
  const notify = opts.notify ?? (() => {});
  const byName = new Map(variants.map((v) => [v.name, v]));
  const records: VariantRunRecord[] = [];
  let secPerStep = NaN;
  for (const [i, r] of plan.entries()) {
    const dir = path.join(runDir, r.id);
    // A run killed before its first checkpoint has nothing to resume: it starts again, cleared.
    const status = runStatus(dir, { clearUncheckpointed: true });
    const label = `[${i + 1}/${plan.length}] ${r.id} (${r.steps} steps, batch ${r.batch}, patch ${r.progressive ? 'progressive' : r.patch})`;
    let rec: VariantRunRecord;
    if (status === 'done') {
      rec = { ...r, status: 'skipped', trainSeconds: readTrainerState(dir)!.elapsedSec, wallSeconds: 0 };
      notify(`irlens: ${label}: finished before, skipped`);
    } else {
      notify(`irlens: ${label}: ${status === 'partial' ? 'resuming' : 'training'}`);
      const w0 = performance.now();
      const res = await runTraining(runSpec(c, r, byName.get(r.variant)!, split), dir, { resume: status === 'partial', progress: opts.progress });
      const wall = (performance.now() - w0) / 1000;
      rec = { ...r, status: status === 'partial' ? 'resumed' : 'trained', trainSeconds: readTrainerState(dir)?.elapsedSec ?? wall, wallSeconds: wall };
      secPerStep = wall / Math.max(1, r.steps - (res.resumedFrom ?? 0));
      const left = plan.slice(i + 1).reduce((s, x) => s + x.steps, 0) * secPerStep;
      notify(`irlens: ${label}: done in ${wall.toFixed(1)} s; ETA of the training ${Number.isFinite(left) ? `${Math.round(left)} s` : '?'}`);
    }
    records.push(rec);
    opts.onRun?.(rec);
  }
  return records;
}

// ------------------------------------------------------------------------------------------ statistics

function pairedOverSeeds(a: number[], b: number[], c: VariantsConfig, key: string): PairedComparison {
  const t = pairedTest(a, b, { alpha: c.alpha, replicates: c.bootstrap, seed: `variants:${key}` });
  const wilcoxon = t.n >= WILCOXON_MIN_N ? t.wilcoxon : null;
  const rejects = (t.tTest !== null && t.tTest.pValue < c.alpha) || (wilcoxon !== null && wilcoxon.pValue < c.alpha);
  const d = a.map((v, i) => v - b[i]);
  return { meanDiff: t.meanDiff, stdDiff: meanStd(d).std, ci: t.ci, tTest: t.tTest, wilcoxon, notSignificant: !rejects, n: t.n };
}

/** Mean ± std over seeds per variant, and paired differences to the baseline over the seeds both finished. */
export function summariseVariants(c: VariantsConfig, variants: ResolvedVariant[], results: VariantSeedResult[]): VariantSummary[] {
  const base = new Map(results.filter((r) => r.variant === c.baseline).map((r) => [r.seed, r]));
  return variants.map((v) => {
    const rows = results.filter((r) => r.variant === v.name);
    const s: VariantSummary = {
      variant: v.name,
      description: v.description,
      params: v.params,
      psnr: meanStd(rows.map((r) => r.psnr)),
      ssim: meanStd(rows.map((r) => r.ssim)),
    };
    if (v.name !== c.baseline) {
      const paired = rows.filter((r) => base.has(r.seed));
      s.vsBaseline = {
        psnr: pairedOverSeeds(paired.map((r) => r.psnr), paired.map((r) => base.get(r.seed)!.psnr), c, `${v.name}:psnr`),
        ssim: pairedOverSeeds(paired.map((r) => r.ssim), paired.map((r) => base.get(r.seed)!.ssim), c, `${v.name}:ssim`),
      };
    }
    return s;
  });
}

// ---------------------------------------------------------------------------------------------- notes

export function variantsNotes(c: VariantsConfig, heldOut: number): string[] {
  const notes: string[] = [];
  if (c.preset !== 'paper')
    notes.push(
      `Scale: ${c.model} (a tiny network), ${c.steps} step${c.steps === 1 ? '' : 's'} of batch ${c.batch} per variant and seed, ${c.seeds.length} seeds, ${heldOut} held-out image(s). ` +
        'The papers train their ablations for 100k-300k+ iterations on thousands of images at full width.',
      'What it can show: that each variant builds and trains, its parameter count, and differences that are large against the seed-to-seed spread at this ' +
        'budget (e.g. removing a residual path that the tiny network needs early in training). The paired test uses seeds as the units: with 2-3 seeds only ' +
        'large, consistent differences reach p < 0.05, and the Wilcoxon test needs at least 6 seeds to be able to.',
      'What it cannot show: the papers\' numbers or rankings. Tiny networks far from convergence rank designs by how fast they start learning, not by what ' +
        'they reach; differences of a few hundredths of a dB are noise here; the held-out set is a handful of crops, so the per-seed PSNR itself is noisy.',
    );
  else
    notes.push(
      'Paper scale: each variant trains with the family\'s paper schedule (see settings). Give --data with a large training set (the papers use DIV2K/Flickr2K, ' +
        'GoPro, SIDD or Rain13K); the built-in ten images only make the pipeline run.',
    );
  if (c.variants.some((v) => /progressive/.test(v)))
    notes.push('The progressive variant keeps the steps but not the pixels: its later stages use larger patches and smaller batches (see the accounting table).');
  return notes;
}

/** A note when variants do not beat the no-network baseline: then the comparison is about how fast they start learning. */
export function belowInputNote(summary: VariantSummary[], inputPsnr: number, task: string): string[] {
  const below = summary.filter((s) => s.psnr.mean < inputPsnr).map((s) => s.variant);
  if (below.length === 0) return [];
  const what = describeTask(task).scale > 1 ? 'bicubic upscaling' : 'the degraded input';
  return [
    `${below.length === summary.length ? 'Every variant' : `${below.join(', ')}`} is below ${what} (${inputPsnr.toFixed(2)} dB) on the held-out images: at this budget ` +
      'the networks have not yet learnt even the no-network mapping, so the differences measure how fast each design starts learning, not what it reaches.',
  ];
}

export const STATISTICS_RULE =
  'Per seed, PSNR/SSIM is the mean over the held-out images. Mean ± sample std over seeds per variant. Paired differences variant - baseline over seeds ' +
  '(same seed = same initialisation seed and the same training crops in the same order): mean, 95% percentile bootstrap interval of the mean, paired t-test ' +
  `(@stdlib/stats-ttest, = scipy.stats.ttest_rel) and the exact Wilcoxon signed-rank test (@stdlib/stats-wilcoxon) when there are >= ${WILCOXON_MIN_N} seeds; ` +
  'flagged "n.s." when no test rejects equality at alpha.';

// ------------------------------------------------------------------------------------------------ run

export async function runVariants(config: VariantsConfig, runDir: string, opts: VariantsOptions = {}): Promise<VariantsResult> {
  const t0 = performance.now();
  const notify = opts.notify ?? (() => {});
  validateVariantsConfig(config);
  const file = path.join(runDir, VARIANTS_FILE);
  checkRunDir(runDir, VARIANTS_FILE, config, { resume: opts.resume, what: 'variants ablation', readStored: readVariantsConfig });
  const variants = resolveVariants(config);
  const split = variantSplit(config);
  const plan = planVariants(config, variants);
  checkVariantPlanFits(config, plan);
  const accounting = accountVariants(config, plan);
  fs.mkdirSync(runDir, { recursive: true });
  if (!opts.resume) writeFileAtomic(file, `${JSON.stringify({ config, split, plan, createdAt: new Date().toISOString() }, null, 2)}\n`);
  notify(`irlens: variants ${config.arch} (${config.model}, ${config.task}, preset ${config.preset}): ${variants.map((v) => v.name).join(', ')} x ${config.seeds.length} seeds = ${plan.length} runs`);

  const runs = await trainRuns(config, plan, variants, split, runDir, opts);

  const e0 = performance.now();
  const byName = new Map(sourceImages(config).map((s) => [s.name, s.file]));
  const heldOut: NamedImage[] = await Promise.all(split.eval.map(async (name) => ({ name, image: await readImage(byName.get(name)!, { channels: 3 }) })));
  const results: VariantSeedResult[] = [];
  for (const r of plan) {
    const model = await loadStudyModel(path.join(runDir, r.id, FINAL_MODEL), config.task);
    try {
      results.push({ variant: r.variant, seed: r.seed, ...(await evaluateModel(model, config.task, heldOut, config.finalEvalSize)) });
    } finally {
      model.dispose();
    }
  }
  const input = await evaluateInput(config.task, heldOut, config.finalEvalSize);
  const evalSeconds = (performance.now() - e0) / 1000;
  const summary = summariseVariants(config, variants, results);
  for (const s of summary) {
    const d = s.vsBaseline?.psnr;
    notify(
      `irlens: ${s.variant}: PSNR ${s.psnr.mean.toFixed(2)} ± ${s.psnr.std.toFixed(2)} dB, SSIM ${s.ssim.mean.toFixed(4)}, ${s.params.toLocaleString('en-US')} params` +
        (d ? `; vs ${config.baseline} ${d.meanDiff >= 0 ? '+' : ''}${d.meanDiff.toFixed(3)} dB [${d.ci ? `${d.ci.lo.toFixed(3)}, ${d.ci.hi.toFixed(3)}` : 'n/a'}], t-test p ${d.tTest ? d.tTest.pValue.toPrecision(3) : 'n/a'}${d.notSignificant ? ' (n.s.)' : ''}` : ' (baseline)'),
    );
  }
  const invocations = recordInvocation(runDir, invocation(t0, runs, opts.command), 'variants');
  return {
    format: VARIANTS_FORMAT,
    config,
    runDir: path.resolve(runDir),
    split,
    variants,
    accounting,
    runs,
    results,
    summary,
    inputBaseline: { method: describeTask(config.task).scale > 1 ? 'bicubic upscaling of the input' : 'the degraded input itself', psnr: input.psnr, ssim: input.ssim },
    evaluation:
      `${heldOut.length} held-out image(s) (${split.eval.join(', ')}), ${config.finalEvalSize > 0 ? `centre crops of at most ${config.finalEvalSize} px` : 'whole'}, ` +
      `degraded by '${config.task}' with inputs seeded by (task, image), PSNR/SSIM with the task's BasicSR conventions (metricOptionsFor)`,
    statistics: STATISTICS_RULE,
    notes: [...variantsNotes(config, heldOut.length), ...belowInputNote(summary, input.psnr, config.task)],
    provenance: {
      ...runEnvironment(opts.command),
      wallSeconds: (performance.now() - t0) / 1000,
      trainSeconds: runs.reduce((s, r) => s + r.trainSeconds, 0),
      evalSeconds,
      invocations,
    },
  };
}
