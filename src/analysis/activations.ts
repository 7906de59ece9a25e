/**
 * CKA of activations a user brings (rows = the same examples in the same order, trailing dimensions flattened
 * into features): two .npy matrices give one value (`irlens cka A.npy B.npy`), two .npz archives (one array per
 * layer, e.g. numpy.savez from PyTorch hooks) the layer x layer map (`irlens cka A.npz B.npz`). With `batch`, the
 * rows are split into consecutive minibatches and the minibatch estimator (ratio of summed per-batch HSIC, as in
 * the model study) is used; without it one batch holds every row. Usable from the library as well.
 */
import { readNpy, type NpyArray } from '../io/npy';
import { readNpz } from '../io/npz';
import { naming } from '../util/errors';
import { requireFile } from '../util/fs';
import { gram, mat, type Kernel, type Mat } from './gram';
import { assertEnoughExamples, minExamples, type Estimator } from './hsic';
import { MinibatchCKA, type CkaInterval } from './minibatch-cka';
import type { CkaFlag } from './cka';
import { gramBytes, requireMemory } from '../util/memory';

/** An n x p float64 matrix from a .npy array of rank >= 2 (trailing dimensions flattened per example). */
export function npyToMat(arr: NpyArray, what: string): Mat {
  if (arr.shape.length < 2) throw new Error(`${what}: expected an n x p activation matrix (rank >= 2), got shape (${arr.shape.join(', ')})`);
  const n = arr.shape[0];
  const p = arr.shape.slice(1).reduce((a, b) => a * b, 1);
  const data = new Float64Array(n * p);
  if (n === 0 || p === 0) throw new Error(`${what}: array of shape (${arr.shape.join(', ')}) is empty`);
  for (let i = 0; i < data.length; i++) {
    data[i] = Number(arr.data[i]);
    if (!Number.isFinite(data[i])) throw new Error(`${what}: value ${data[i]} at row ${Math.floor(i / p)}, feature ${i % p} (values must be finite)`);
  }
  return mat(n, p, data);
}

export interface ActivationCkaOptions {
  kernel: Kernel;
  threshold: number;
  estimator: Estimator;
  bootstrap: number;
  permutation?: boolean;
  seed: number;
  /** Rows per minibatch (default: all rows in one batch); a last batch under the estimator's minimum joins the one before. */
  batch?: number;
}

export interface ActivationCkaResult {
  value: number | null;
  flag: CkaFlag | null;
  ci?: CkaInterval;
  ciRaw?: CkaInterval;
  permutation?: number | null;
  n: number;
  p: number;
  q: number;
  files: { a: string; b: string };
  settings: ActivationCkaOptions & { permutation: boolean; rows: string; batchSizes: number[] };
}

/** Row ranges [start, end) of consecutive minibatches of `batch` rows; a short last one (< min) merges into the one before. */
export function rowBatches(n: number, batch: number | undefined, min: number): [number, number][] {
  const b = batch ?? n;
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += b) out.push([s, Math.min(n, s + b)]);
  const last = out[out.length - 1];
  if (out.length > 1 && last[1] - last[0] < min) {
    out.pop();
    out[out.length - 1][1] = n;
  }
  return out;
}

function rowsOf(m: Mat, [s, e]: [number, number]): Mat {
  return mat(e - s, m.cols, m.data.subarray(s * m.cols, e * m.cols));
}

function checkBatch(o: ActivationCkaOptions, rows: number): void {
  if (o.batch === undefined) return;
  if (!Number.isInteger(o.batch) || o.batch < 1) throw new Error(`--batch: expected a positive integer, got ${o.batch}`);
  naming('--batch', () => assertEnoughExamples(Math.min(o.batch!, rows), o.estimator, `${o.batch} rows per batch`));
}

/** Minibatch CKA of every matrix of `as` against every matrix of `bs` (all with the same rows). */
function matsCka(as: Mat[], namesA: string[], bs: Mat[], namesB: string[], o: ActivationCkaOptions) {
  const n = as[0].rows;
  const batches = rowBatches(n, o.batch, minExamples(o.estimator));
  const acc = new MinibatchCKA(namesA, namesB, { estimator: o.estimator, bootstrap: o.bootstrap, permutation: o.permutation, seed: o.seed });
  for (const range of batches) {
    const grams = (ms: Mat[]) => ms.map((m) => gram(rowsOf(m, range), o.kernel, { threshold: o.threshold }).data);
    acc.update(grams(as), grams(bs), range[1] - range[0]);
  }
  return { r: acc.result(), batchSizes: batches.map(([s, e]) => e - s) };
}

const ROWS_RULE = 'examples (same order in both files); trailing dimensions flattened into features';


/** The settings block both activation-file results report. */
function activationSettings(o: ActivationCkaOptions, batchSizes: number[]): ActivationCkaResult['settings'] {
  return {
    kernel: o.kernel,
    threshold: o.threshold,
    estimator: o.estimator,
    bootstrap: o.bootstrap,
    permutation: o.permutation ?? false,
    seed: o.seed,
    ...(o.batch !== undefined ? { batch: o.batch } : {}),
    batchSizes,
    rows: ROWS_RULE,
  };
}

/**
 * CKA between the activation matrices in `fileA` and `fileB` (labelled A and B in errors). One "minibatch" holds
 * every row, so the value equals ckaFromGrams(K, L) and the bootstrap/permutation baselines come with it.
 */
export function activationFilesCka(fileA: string, fileB: string, o: ActivationCkaOptions): ActivationCkaResult {
  requireFile(fileA, 'A');
  requireFile(fileB, 'B');
  const X = naming('A', () => npyToMat(readNpy(fileA), `A '${fileA}'`));
  const Y = naming('B', () => npyToMat(readNpy(fileB), `B '${fileB}'`));
  if (X.rows !== Y.rows)
    throw new Error(`B: '${fileB}' has ${Y.rows} rows but '${fileA}' has ${X.rows}; rows must be the same examples in the same order`);
  naming('--estimator', () => assertEnoughExamples(X.rows, o.estimator, `${X.rows} rows`));
  checkBatch(o, X.rows);
  const b = Math.min(o.batch ?? X.rows, X.rows);
  requireMemory(gramBytes(b, X.cols, Y.cols), `cka of ${b} rows per batch (two ${b}x${b} float64 Gram matrices)`,
    'use fewer rows (a random subset of examples) or a smaller --batch, or raise the limit with IRLENS_MAX_MEMORY (e.g. 32G)');
  const { r, batchSizes } = matsCka([X], ['A'], [Y], ['B'], o);
  return {
    value: r.matrix[0][0],
    flag: r.flags[0][0],
    ...(r.ci ? { ci: r.ci[0][0], ciRaw: r.ciRaw![0][0] } : {}),
    ...(r.permutation ? { permutation: r.permutation[0][0] } : {}),
    n: X.rows,
    p: X.cols,
    q: Y.cols,
    files: { a: fileA, b: fileB },
    settings: activationSettings(o, batchSizes),
  };
}

export interface ArchiveCkaResult {
  /** Array names of A (rows of `matrix`) and B (columns), in archive order. */
  layersA: string[];
  layersB: string[];
  matrix: (number | null)[][];
  flags: (CkaFlag | null)[][];
  ci?: CkaInterval[][];
  permutation?: (number | null)[][];
  /** Rows (examples) and features per layer. */
  n: number;
  featuresA: number[];
  featuresB: number[];
  files: { a: string; b: string };
  settings: ActivationCkaOptions & { permutation: boolean; rows: string; batchSizes: number[] };
}

function archiveMats(file: string, which: 'A' | 'B'): { names: string[]; mats: Mat[] } {
  const members = naming(which, () => readNpz(file));
  const mats = members.map((m) => naming(which, () => npyToMat(m.array, `${which} '${file}' member '${m.name}'`)));
  const n = mats[0].rows;
  const odd = mats.findIndex((m) => m.rows !== n);
  if (odd >= 0)
    throw new Error(`${which}: '${file}' member '${members[odd].name}' has ${mats[odd].rows} rows but '${members[0].name}' has ${n}; every layer must hold the same examples`);
  return { names: members.map((m) => m.name), mats };
}

/**
 * Layer x layer CKA between two .npz archives of activations (one array per layer, rows = the same examples in
 * both archives, trailing dimensions flattened): matrix[i][j] = CKA(A's i-th array, B's j-th array).
 */
export function activationArchivesCka(fileA: string, fileB: string, o: ActivationCkaOptions): ArchiveCkaResult {
  requireFile(fileA, 'A');
  requireFile(fileB, 'B');
  const A = archiveMats(fileA, 'A');
  const B = archiveMats(fileB, 'B');
  const n = A.mats[0].rows;
  if (B.mats[0].rows !== n)
    throw new Error(`B: '${fileB}' has ${B.mats[0].rows} rows but '${fileA}' has ${n}; rows must be the same examples in the same order`);
  naming('--estimator', () => assertEnoughExamples(n, o.estimator, `${n} rows`));
  checkBatch(o, n);
  const b = Math.min(o.batch ?? n, n);
  const layers = A.mats.length + B.mats.length;
  requireMemory(layers * b * b * 8 * 2, `cka of ${layers} layers at ${b} rows per batch (one ${b}x${b} float64 Gram per layer)`,
    'use a smaller --batch or fewer rows, or raise the limit with IRLENS_MAX_MEMORY (e.g. 32G)');
  const { r, batchSizes } = matsCka(A.mats, A.names, B.mats, B.names, o);
  return {
    layersA: A.names,
    layersB: B.names,
    matrix: r.matrix,
    flags: r.flags,
    ...(r.ci ? { ci: r.ci } : {}),
    ...(r.permutation ? { permutation: r.permutation } : {}),
    n,
    featuresA: A.mats.map((m) => m.cols),
    featuresB: B.mats.map((m) => m.cols),
    files: { a: fileA, b: fileB },
    settings: activationSettings(o, batchSizes),
  };
}
