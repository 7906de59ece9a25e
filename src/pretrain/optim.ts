/**
 * Optimisation: Adam / AdamW with serialisable moment slots, gradient clipping by global norm, and
 * learning-rate schedules as pure functions of the step (so a resumed run needs no scheduler state).
 *
 * Hand-written because tf.train.adam has no decoupled weight decay, keeps one global step for bias correction
 * and names its slots after auto-generated variable names. This follows torch.optim.Adam/AdamW (non-amsgrad):
 * per-parameter step counts (a task head updated by every other batch keeps its own bias correction), and
 * parameters without a gradient in a step (another task's head) are skipped entirely, weight decay included,
 * like PyTorch does for params whose .grad is None.
 */
import * as tf from '@tensorflow/tfjs';
import { adamStep } from '../engine/wasm/adam-step';

export type OptimizerKind = 'adam' | 'adamw';
export const OPTIMIZER_KINDS: readonly OptimizerKind[] = ['adam', 'adamw'];

export interface OptimizerConfig {
  kind: OptimizerKind;
  beta1: number;
  beta2: number;
  eps: number;
  /** adam: L2 penalty added to the gradient (torch Adam weight_decay); adamw: decoupled decay p *= 1 - lr*wd. */
  weightDecay: number;
}

export const DEFAULT_OPTIMIZER: OptimizerConfig = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4 };

interface Slot {
  name: string;
  param: tf.Variable;
  expAvg: tf.Variable;
  expAvgSq: tf.Variable;
  step: number;
}

/** What a checkpoint stores: slot tensors (exp_avg.<param>, exp_avg_sq.<param>) and JSON metadata. */
export interface OptimizerState {
  tensors: Map<string, { shape: number[]; dtype: 'float32'; data: Float32Array }>;
  meta: { config: OptimizerConfig; steps: Record<string, number> };
}

export class AdamOptimizer {
  private readonly slots: Slot[];
  private readonly byVariable = new Map<tf.Variable, Slot>();

  /** `params`: unique (name, variable) pairs, e.g. model.namedParameters(); slots are created as zeros now. */
  constructor(
    params: [string, tf.Variable][],
    readonly config: OptimizerConfig,
  ) {
    this.slots = params.map(([name, param]) => ({
      name,
      param,
      // tidy: tf.variable keeps the zeros' data but not the tensor object, which would otherwise leak.
      expAvg: tf.tidy(() => tf.variable(tf.zerosLike(param), false)),
      expAvgSq: tf.tidy(() => tf.variable(tf.zerosLike(param), false)),
      step: 0,
    }));
    for (const s of this.slots) {
      if (this.byVariable.has(s.param)) throw new Error(`optimizer: parameter '${s.name}' listed twice`);
      this.byVariable.set(s.param, s);
    }
  }

  /** One update with learning rate `lr`; `grads` maps variables to gradients (absent = no update). */
  step(grads: Map<tf.Variable, tf.Tensor>, lr: number): void {
    const { beta1: b1, beta2: b2, eps, weightDecay: wd, kind } = this.config;
    for (const [v, g] of grads) {
      const s = this.byVariable.get(v);
      if (!s) throw new Error('optimizer: gradient for a variable the optimizer does not own');
      s.step += 1;
      // Bias corrections in float64, passed as scalars.
      const bc1 = 1 - b1 ** s.step;
      const bc2Sqrt = Math.sqrt(1 - b2 ** s.step);
      const [p, m, vv] = adamStep(s.param, s.expAvg, s.expAvgSq, g, {
        lr,
        beta1: b1,
        beta2: b2,
        eps,
        weightDecay: wd,
        decoupled: kind === 'adamw',
        bc1,
        bc2Sqrt,
      });
      s.param.assign(p);
      s.expAvg.assign(m);
      s.expAvgSq.assign(vv);
      tf.dispose([p, m, vv]);
    }
  }

  /** Per-parameter step counts (how many updates each parameter has had). */
  stepCounts(): Record<string, number> {
    return Object.fromEntries(this.slots.map((s) => [s.name, s.step]));
  }

  state(): OptimizerState {
    const tensors: OptimizerState['tensors'] = new Map();
    for (const s of this.slots) {
      for (const [prefix, v] of [['exp_avg', s.expAvg], ['exp_avg_sq', s.expAvgSq]] as const) {
        tensors.set(`${prefix}.${s.name}`, { shape: [...v.shape], dtype: 'float32', data: Float32Array.from(v.dataSync() as Float32Array) });
      }
    }
    return { tensors, meta: { config: { ...this.config }, steps: this.stepCounts() } };
  }

  /** Restores slots saved by state(); every slot must be present with its shape (one-line error otherwise). */
  loadState(state: { tensors: ReadonlyMap<string, { shape: number[]; data: ArrayLike<number> }>; meta: OptimizerState['meta'] }, source = 'optimizer state'): void {
    const c = state.meta.config;
    for (const k of ['kind', 'beta1', 'beta2', 'eps', 'weightDecay'] as const)
      if (c[k] !== this.config[k]) throw new Error(`${source}: optimizer ${k} ${String(c[k])} differs from this run's ${String(this.config[k])}`);
    const problems: string[] = [];
    for (const s of this.slots) {
      for (const prefix of ['exp_avg', 'exp_avg_sq']) {
        const t = state.tensors.get(`${prefix}.${s.name}`);
        if (!t) problems.push(`missing ${prefix}.${s.name}`);
        else if (t.shape.join(',') !== s.param.shape.join(',')) problems.push(`${prefix}.${s.name} is [${t.shape}], expected [${s.param.shape}]`);
      }
      if (!Number.isInteger(state.meta.steps[s.name])) problems.push(`no step count for ${s.name}`);
    }
    if (problems.length) throw new Error(`${source}: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (${problems.length} problems)` : ''}`);
    for (const s of this.slots) {
      const m = state.tensors.get(`exp_avg.${s.name}`)!;
      const v = state.tensors.get(`exp_avg_sq.${s.name}`)!;
      tf.tidy(() => {
        s.expAvg.assign(tf.tensor(Float32Array.from(m.data), s.param.shape, 'float32'));
        s.expAvgSq.assign(tf.tensor(Float32Array.from(v.data), s.param.shape, 'float32'));
      });
      s.step = state.meta.steps[s.name];
    }
  }

  dispose(): void {
    for (const s of this.slots) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
  }
}

/**
 * torch.nn.utils.clip_grad_norm_: scales every gradient by max_norm / (total_norm + 1e-6) when that is < 1.
 * Returns the new gradients (the caller disposes the old ones when they differ) and the total norm before
 * clipping. Per-tensor sums of squares come back as float32 and are added in float64.
 */
export function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: number } {
  if (grads.length === 0) return { grads, norm: 0 };
  const sums = tf.tidy(() => tf.stack(grads.map((g) => tf.sum(tf.square(g)))).dataSync());
  let sq = 0;
  for (const v of sums) sq += v;
  const norm = Math.sqrt(sq);
  const coef = maxNorm / (norm + 1e-6);
  if (!(coef < 1)) return { grads, norm };
  return { grads: grads.map((g) => tf.mul(g, coef)), norm };
}

// ------------------------------------------------------------------------------------------- schedules

/**
 * Learning-rate schedules. All are functions of the 0-based step; internally they use BasicSR's 1-based
 * iteration it = step + 1 (BasicSR steps its scheduler before each update, so the first update sees it = 1).
 *
 *   constant       lr
 *   cosine         linear warm-up lr * it / warmup for it <= warmup, then one cosine from lr to minLr over the
 *                  remaining iterations (reaches minLr at the last step)
 *   cyclic-cosine  BasicSR's CosineAnnealingRestartCyclicLR exactly: periods, restart weights, one eta_min per
 *                  period, lr = eta_min + w * (lr - eta_min) * (1 + cos(pi * (it - restart) / period)) / 2;
 *                  BasicSR's warm-up overrides it (lr * it / warmup while it < warmup)
 *   multistep      lr * gamma^(number of milestones <= it) (MultiStepLR, SwinIR/KAIR)
 */
export type ScheduleSpec =
  | { kind: 'constant'; lr: number }
  | { kind: 'cosine'; lr: number; minLr: number; total: number; warmup: number }
  | { kind: 'cyclic-cosine'; lr: number; periods: number[]; restartWeights: number[]; etaMins: number[]; warmup: number }
  | { kind: 'multistep'; lr: number; milestones: number[]; gamma: number; warmup: number };

export type ScheduleKind = ScheduleSpec['kind'];
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['constant', 'cosine', 'cyclic-cosine', 'multistep'];

export function learningRate(spec: ScheduleSpec, step: number): number {
  const it = step + 1;
  switch (spec.kind) {
    case 'constant':
      return spec.lr;
    case 'cosine': {
      if (spec.warmup > 0 && it <= spec.warmup) return (spec.lr * it) / spec.warmup;
      const span = Math.max(1, spec.total - spec.warmup);
      const t = Math.min(1, (it - spec.warmup) / span);
      return spec.minLr + 0.5 * (spec.lr - spec.minLr) * (1 + Math.cos(Math.PI * t));
    }
    case 'cyclic-cosine': {
      if (spec.warmup > 0 && it < spec.warmup) return (spec.lr * it) / spec.warmup;
      let start = 0;
      let idx = 0;
      // First period whose cumulative end is >= it; past the end the last period is held at its end.
      for (; idx < spec.periods.length - 1 && it > start + spec.periods[idx]; idx++) start += spec.periods[idx];
      const t = Math.min(1, (it - start) / spec.periods[idx]);
      const eta = spec.etaMins[idx];
      return eta + spec.restartWeights[idx] * 0.5 * (spec.lr - eta) * (1 + Math.cos(Math.PI * t));
    }
    case 'multistep': {
      if (spec.warmup > 0 && it < spec.warmup) return (spec.lr * it) / spec.warmup;
      return spec.lr * spec.gamma ** spec.milestones.filter((m) => m <= it).length;
    }
  }
}

/**
 * Restormer's schedule (AdamW 3e-4; CosineAnnealingRestartCyclicLR periods [92k, 208k] of 300k, eta_mins
 * [3e-4, 1e-6]: constant for the first 92/300, then cosine to 1e-6) scaled to `total` steps.
 */
export function restormerSchedule(total: number, lr = 3e-4, minLr = 1e-6): ScheduleSpec {
  const first = Math.max(1, Math.round((total * 92) / 300));
  return { kind: 'cyclic-cosine', lr, periods: [first, Math.max(1, total - first)], restartWeights: [1, 1], etaMins: [lr, minLr], warmup: 0 };
}

/** The schedules the CLI and the study name: cosine, constant, restormer (BasicSR cyclic cosine), multistep (SwinIR). */
export const SCHEDULE_NAMES = ['cosine', 'constant', 'restormer', 'multistep'] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

/**
 * A named schedule over `steps`: cosine from lr down to minLr after `warmup`; constant; Restormer's cyclic cosine
 * scaled to the run; multistep halving at 50/80/90/95% of the run (SwinIR's milestones [250k, 400k, 450k, 475k]
 * of 500k, also EDT's T_PERIOD).
 */
export function namedSchedule(name: ScheduleName, o: { lr: number; minLr: number; steps: number; warmup?: number }): ScheduleSpec {
  const warmup = o.warmup ?? 0;
  switch (name) {
    case 'constant':
      return { kind: 'constant', lr: o.lr };
    case 'cosine':
      return { kind: 'cosine', lr: o.lr, minLr: o.minLr, total: o.steps, warmup };
    case 'restormer':
      return { ...(restormerSchedule(o.steps, o.lr, o.minLr) as Extract<ScheduleSpec, { kind: 'cyclic-cosine' }>), warmup };
    case 'multistep':
      return { kind: 'multistep', lr: o.lr, milestones: [0.5, 0.8, 0.9, 0.95].map((f) => Math.round(f * o.steps)), gamma: 0.5, warmup };
  }
}
