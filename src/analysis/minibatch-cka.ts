/**
 * Minibatch CKA (Nguyen, Raghu, Kornblith 2021, Eq. 2) as a streaming accumulator:
 *
 *   CKA(a, b) = sum_k HSIC(K_a,k, L_b,k) / sqrt( sum_k HSIC(K_a,k, K_a,k) * sum_k HSIC(L_b,k, L_b,k) )
 *
 * over minibatches k: a RATIO OF SUMS, never a mean of per-batch CKA values. Each update() adds one minibatch's
 * HSIC terms for every layer pair into Float64Array sums, so memory is O(layersA * layersB) (times the number of
 * bootstrap replicates), independent of how many batches or images stream through.
 *
 * Optional, in the same pass:
 * - Bootstrap CI over images. For each replicate and each batch, n indices are drawn with replacement from that
 *   batch (seeded Rng, the same indices for models A and B so examples stay paired), every Gram is re-indexed
 *   K[idx, idx] and the replicate's own HSIC sums are accumulated.
 *   Duplicates: a resample keeps duplicated examples as duplicates, so an off-diagonal entry whose two indices are
 *   the same example holds k(x, x), which HSIC1's zeroed diagonal does not remove (about 1/n of the pairs). This
 *   is not an error of the resample: the draws are i.i.d. from the batch's empirical distribution, and HSIC1 of
 *   them is unbiased for the HSIC of that distribution, the plug-in V-statistic tr(K H L H)/n^2, not for HSIC1 of
 *   the batch. The replicate CKAs therefore centre near the plug-in (biased) CKA, above the debiased estimate,
 *   by an amount that grows as batches get smaller. `ciRaw` reports their plain 2.5/97.5 percentiles. `ci`
 *   removes that shift by bootstrapping the estimation error: with theta^ the estimate and theta_V the plug-in
 *   CKA from sum_b tr(K_b H L_b H)/n_b^2 (accumulated alongside), ci = theta^ + percentiles(theta* - theta_V).
 *   For the biased estimator with equal batch sizes theta_V = theta^ and ci = ciRaw.
 * - Permutation baseline: the cross term accumulated with model B's examples shuffled within each batch
 *   (P L P^T, a fresh seeded permutation per batch); self terms are permutation-invariant, so the baseline uses
 *   the unshuffled denominators. It estimates the CKA of unrelated example pairings (~0 for HSIC1).
 *
 * Same-model comparisons (A against itself with the same layer list) give exactly 1 on the diagonal: identical
 * Grams give bit-identical HSIC terms, and CKA returns h / h (see cka.ts geometricMean).
 */
import { quantileSeq } from 'mathjs';
import { Rng } from '../util/rng';
import { ckaFromHsic, type CkaFlag } from './cka';
import { reindexGram, squareMat } from './gram';
import { assertEnoughExamples, assertEstimator, hsicPrepared, prepareGram, type Estimator, type PreparedGram } from './hsic';

export interface MinibatchCkaOptions {
  /** Default 'unbiased' (HSIC1, as Nguyen et al.); 'biased' sums HSIC0 per batch. */
  estimator?: Estimator;
  /** Number of bootstrap replicates for a 95% percentile CI; 0 or absent = none. */
  bootstrap?: number;
  /** Also accumulate the shuffled-pairing baseline. */
  permutation?: boolean;
  /** Seed for the bootstrap and permutation draws (default 0). */
  seed?: number;
}

export interface CkaInterval {
  lo: number | null;
  hi: number | null;
}

export interface MinibatchCkaResult {
  /** Rows of every matrix follow layersA (model A), columns follow layersB (model B). */
  layersA: string[];
  layersB: string[];
  estimator: Estimator;
  /** matrix[i][j] = CKA(layersA[i], layersB[j]); null where flags[i][j] says why. */
  matrix: (number | null)[][];
  flags: (CkaFlag | null)[][];
  /** 95% bootstrap interval, estimate + percentiles of (replicate - plug-in CKA) (when options.bootstrap > 0). */
  ci?: CkaInterval[][];
  /** Plain 2.5/97.5 percentiles of the replicate CKAs (centred near the plug-in CKA; see the module comment). */
  ciRaw?: CkaInterval[][];
  /** CKA with model B's examples shuffled within each batch (when options.permutation). */
  permutation?: (number | null)[][];
  bootstrap?: { replicates: number; level: 0.95; method: string };
  batches: number;
  examples: number;
}

/** Raw HSIC sums (copies), e.g. to check or combine accumulators. cross is row-major [layersA x layersB]. */
export interface HsicSums {
  cross: Float64Array;
  selfA: Float64Array;
  selfB: Float64Array;
}

function newSums(a: number, b: number): HsicSums {
  return { cross: new Float64Array(a * b), selfA: new Float64Array(a), selfB: new Float64Array(b) };
}

function addInto(target: Float64Array, source: Float64Array): void {
  for (let i = 0; i < target.length; i++) target[i] += source[i];
}

function copySums(s: HsicSums): HsicSums {
  return { cross: Float64Array.from(s.cross), selfA: Float64Array.from(s.selfA), selfB: Float64Array.from(s.selfB) };
}

const WHERE = 'minibatch-cka.ts';

export class MinibatchCKA {
  readonly layersA: string[];
  readonly layersB: string[];
  readonly estimator: Estimator;
  readonly replicates: number;
  readonly permutation: boolean;
  readonly seed: number;
  private readonly main: HsicSums;
  private readonly boot: HsicSums[];
  /** Plug-in (V-statistic) HSIC sums, the bootstrap world's true values; only kept with bootstrap. */
  private readonly plugin: HsicSums | undefined;
  /** Cross sums under the within-batch shuffle of model B (denominators come from `main`). */
  private readonly permCross: Float64Array | undefined;
  private readonly bootRng: Rng;
  private readonly permRng: Rng;
  private nBatches = 0;
  private nExamples = 0;

  constructor(layersA: string[], layersB: string[], opts: MinibatchCkaOptions = {}) {
    if (layersA.length === 0 || layersB.length === 0) throw new Error(`${WHERE}: layersA and layersB must each name at least one layer`);
    const replicates = opts.bootstrap ?? 0;
    if (!Number.isInteger(replicates) || replicates < 0) throw new Error(`${WHERE}: bootstrap must be a non-negative integer, got ${opts.bootstrap}`);
    const seed = opts.seed ?? 0;
    if (!Number.isFinite(seed)) throw new Error(`${WHERE}: seed must be a finite number, got ${opts.seed}`);
    this.layersA = [...layersA];
    this.layersB = [...layersB];
    this.estimator = assertEstimator(opts.estimator ?? 'unbiased', WHERE);
    this.replicates = replicates;
    this.permutation = opts.permutation ?? false;
    this.seed = seed;
    this.main = newSums(layersA.length, layersB.length);
    this.boot = Array.from({ length: replicates }, () => newSums(layersA.length, layersB.length));
    this.plugin = replicates > 0 ? newSums(layersA.length, layersB.length) : undefined;
    this.permCross = this.permutation ? new Float64Array(layersA.length * layersB.length) : undefined;
    // Independent streams keyed by purpose, so enabling one option does not change the other's draws.
    this.bootRng = new Rng(`${seed}:bootstrap`);
    this.permRng = new Rng(`${seed}:permutation`);
  }

  /**
   * Adds one minibatch of n examples: gramsA[i] is the n x n Gram (row-major) of layersA[i] on these examples,
   * gramsB[j] that of layersB[j] on the same examples in the same order.
   */
  update(gramsA: Float64Array[], gramsB: Float64Array[], n: number): void {
    if (gramsA.length !== this.layersA.length || gramsB.length !== this.layersB.length) {
      throw new Error(
        `${WHERE} update: expected ${this.layersA.length} Grams for model A and ${this.layersB.length} for model B, ` +
          `got ${gramsA.length} and ${gramsB.length}`,
      );
    }
    if (!Number.isInteger(n)) throw new Error(`${WHERE} update: n must be an integer, got ${n}`);
    assertEnoughExamples(n, this.estimator, `${WHERE} update (merge a short last batch into another or drop it)`);
    gramsA.forEach((g, i) => squareMat(g, n, `${WHERE} update: Gram of A layer '${this.layersA[i]}'`));
    gramsB.forEach((g, j) => squareMat(g, n, `${WHERE} update: Gram of B layer '${this.layersB[j]}'`));

    const shared = new Map<Float64Array, PreparedGram>();
    const prepA = this.prepare(gramsA, n, undefined, shared);
    const prepB = this.prepare(gramsB, n, undefined, shared);
    this.accumulate(this.main, prepA, prepB);

    if (this.permCross) {
      const shuffledB = this.prepare(gramsB, n, this.permRng.permutation(n), new Map());
      this.accumulateCross(this.permCross, prepA, shuffledB);
    }
    if (this.plugin) {
      // Plug-in V-statistic tr(K H L H)/n^2 = HSIC0 * (n-1)^2/n^2.
      const biased = this.estimator === 'biased' ? shared : new Map<Float64Array, PreparedGram>();
      const pA = this.prepare(gramsA, n, undefined, biased, 'biased');
      const pB = this.prepare(gramsB, n, undefined, biased, 'biased');
      this.accumulate(this.plugin, pA, pB, ((n - 1) * (n - 1)) / (n * n));
    }
    for (const sums of this.boot) {
      const idx = new Int32Array(n);
      for (let i = 0; i < n; i++) idx[i] = this.bootRng.int(0, n);
      const resampled = new Map<Float64Array, PreparedGram>();
      this.accumulate(sums, this.prepare(gramsA, n, idx, resampled), this.prepare(gramsB, n, idx, resampled));
    }
    this.nBatches += 1;
    this.nExamples += n;
  }

  /**
   * Adds another accumulator's sums (e.g. from a worker that streamed other batches). Same layers and options
   * required; with bootstrap or permutation the seeds must differ, or both would have drawn the same index
   * patterns for their batches and the merged replicates would not be independent across batches.
   */
  merge(other: MinibatchCKA): void {
    if (other === this) throw new Error(`${WHERE} merge: cannot merge an accumulator into itself`);
    if ((this.replicates > 0 || this.permutation) && other.seed === this.seed) {
      throw new Error(`${WHERE} merge: accumulators with bootstrap/permutation must use different seeds, both use ${this.seed}`);
    }
    const same =
      other.estimator === this.estimator &&
      other.replicates === this.replicates &&
      other.permutation === this.permutation &&
      other.layersA.join('\n') === this.layersA.join('\n') &&
      other.layersB.join('\n') === this.layersB.join('\n');
    if (!same) throw new Error(`${WHERE} merge: accumulators differ in layers, estimator, bootstrap or permutation settings`);
    const add = (t: HsicSums, s: HsicSums): void => {
      addInto(t.cross, s.cross);
      addInto(t.selfA, s.selfA);
      addInto(t.selfB, s.selfB);
    };
    add(this.main, other.main);
    if (this.plugin && other.plugin) add(this.plugin, other.plugin);
    this.boot.forEach((s, r) => add(s, other.boot[r]));
    if (this.permCross && other.permCross) addInto(this.permCross, other.permCross);
    this.nBatches += other.nBatches;
    this.nExamples += other.nExamples;
  }

  /** Copies of the accumulated HSIC sums (not divided by anything). */
  sums(): HsicSums {
    return copySums(this.main);
  }

  /** Number of float64 values held; constant over update() calls. */
  stateSize(): number {
    const per = this.main.cross.length + this.main.selfA.length + this.main.selfB.length;
    return per * (1 + this.boot.length + (this.plugin ? 1 : 0)) + (this.permCross?.length ?? 0);
  }

  get batches(): number {
    return this.nBatches;
  }

  get examples(): number {
    return this.nExamples;
  }

  result(): MinibatchCkaResult {
    const A = this.layersA.length;
    const B = this.layersB.length;
    const cells = <T>(f: (i: number, j: number) => T): T[][] =>
      Array.from({ length: A }, (_, i) => Array.from({ length: B }, (_, j) => f(i, j)));
    const main = cells((i, j) => ckaFromHsic(this.main.cross[i * B + j], this.main.selfA[i], this.main.selfB[j]));
    const out: MinibatchCkaResult = {
      layersA: [...this.layersA],
      layersB: [...this.layersB],
      estimator: this.estimator,
      matrix: main.map((row) => row.map((c) => c.value)),
      flags: main.map((row) => row.map((c) => c.flag ?? null)),
      batches: this.nBatches,
      examples: this.nExamples,
    };
    if (this.replicates > 0) {
      const intervals = cells((i, j) => this.intervals(i, j, main[i][j].value));
      out.ci = intervals.map((row) => row.map((c) => c.ci));
      out.ciRaw = intervals.map((row) => row.map((c) => c.raw));
      out.bootstrap = {
        replicates: this.replicates,
        level: 0.95,
        method:
          'examples resampled with replacement within each batch, paired across models, duplicates kept; ' +
          'ci = estimate + 2.5/97.5 percentiles of (replicate CKA - plug-in V-statistic CKA); ciRaw = plain percentiles',
      };
    }
    const permCross = this.permCross;
    if (permCross) {
      out.permutation = cells((i, j) => ckaFromHsic(permCross[i * B + j], this.main.selfA[i], this.main.selfB[j]).value);
    }
    return out;
  }

  /** Raw percentile interval of the replicate CKAs and the plug-in-recentred one (module comment). */
  private intervals(i: number, j: number, estimate: number | null): { ci: CkaInterval; raw: CkaInterval } {
    const B = this.layersB.length;
    const cellOf = (s: HsicSums) => ckaFromHsic(s.cross[i * B + j], s.selfA[i], s.selfB[j]).value;
    const values = this.boot.map(cellOf).filter((v): v is number => v !== null);
    const none = { lo: null, hi: null };
    if (values.length === 0) return { ci: none, raw: none };
    const raw = { lo: quantileSeq(values, 0.025) as number, hi: quantileSeq(values, 0.975) as number };
    const plugin = cellOf(this.plugin!);
    if (estimate === null || plugin === null) return { ci: none, raw };
    return { ci: { lo: estimate + (raw.lo - plugin), hi: estimate + (raw.hi - plugin) }, raw };
  }

  /** Prepares each Gram (re-indexed by idx when given); the cache reuses work for a Gram object seen twice. */
  private prepare(
    grams: Float64Array[],
    n: number,
    idx: ArrayLike<number> | undefined,
    cache: Map<Float64Array, PreparedGram>,
    estimator: Estimator = this.estimator,
  ): PreparedGram[] {
    return grams.map((g) => {
      let p = cache.get(g);
      if (!p) {
        const K = squareMat(g, n);
        p = prepareGram(idx ? reindexGram(K, idx) : K, estimator);
        cache.set(g, p);
      }
      return p;
    });
  }

  /** Adds scale * HSIC for every self and cross term. */
  private accumulate(sums: HsicSums, prepA: PreparedGram[], prepB: PreparedGram[], scale = 1): void {
    prepA.forEach((a, i) => (sums.selfA[i] += scale * hsicPrepared(a, a)));
    prepB.forEach((b, j) => (sums.selfB[j] += scale * hsicPrepared(b, b)));
    this.accumulateCross(sums.cross, prepA, prepB, scale);
  }

  private accumulateCross(cross: Float64Array, prepA: PreparedGram[], prepB: PreparedGram[], scale = 1): void {
    const B = prepB.length;
    prepA.forEach((a, i) => prepB.forEach((b, j) => (cross[i * B + j] += scale * hsicPrepared(a, b))));
  }
}
