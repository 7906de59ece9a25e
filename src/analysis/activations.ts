/**
 * CKA of two activation matrices given as .npy files (rows = the same examples in the same order, trailing
 * dimensions flattened into features): the `irlens cka A.npy B.npy` path, usable from the library as well.
 */
import { readNpy, type NpyArray } from '../io/npy';
import { naming } from '../util/errors';
import { requireFile } from '../util/fs';
import { gram, mat, type Kernel, type Mat } from './gram';
import { assertEnoughExamples, type Estimator } from './hsic';
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
  settings: ActivationCkaOptions & { permutation: boolean; rows: string };
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
  requireMemory(gramBytes(X.rows, X.cols, Y.cols), `cka of ${X.rows} rows (two ${X.rows}x${X.rows} float64 Gram matrices)`,
    'use fewer rows (a random subset of examples), or raise the limit with IRLENS_MAX_MEMORY (e.g. 32G)');
  const K = gram(X, o.kernel, { threshold: o.threshold });
  const L = gram(Y, o.kernel, { threshold: o.threshold });
  const acc = new MinibatchCKA(['A'], ['B'], { estimator: o.estimator, bootstrap: o.bootstrap, permutation: o.permutation, seed: o.seed });
  acc.update([K.data], [L.data], X.rows);
  const r = acc.result();
  return {
    value: r.matrix[0][0],
    flag: r.flags[0][0],
    ...(r.ci ? { ci: r.ci[0][0], ciRaw: r.ciRaw![0][0] } : {}),
    ...(r.permutation ? { permutation: r.permutation[0][0] } : {}),
    n: X.rows,
    p: X.cols,
    q: Y.cols,
    files: { a: fileA, b: fileB },
    settings: {
      kernel: o.kernel,
      threshold: o.threshold,
      estimator: o.estimator,
      bootstrap: o.bootstrap,
      permutation: o.permutation ?? false,
      seed: o.seed,
      rows: 'examples (same order in both files); trailing dimensions flattened into features',
    },
  };
}
