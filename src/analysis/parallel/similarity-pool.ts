/**
 * Data-parallel extraction for layer-similarity studies: N worker threads, each with its own copy of the models
 * and one native kernel thread, compute whole minibatches' Grams; the study merges them in batch order into its
 * one float64 accumulator, so the result has the bits of a single-threaded (--threads 1) run. On this project's
 * 2-core machines two workers take about as long as two kernel threads, plus their start-up and twice the memory,
 * so workers are opt-in (bench/README, "Core scaling and data-parallel extraction").
 *
 * Interventions are JS closures and cannot cross to a worker, so a study with hooks runs in-process.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { backendInfo } from '../../engine/backend';
import { transferModel } from '../../models/transfer';
import type { RestorationModel } from '../../models/model';
import type { BatchGrams, ForwardGrams, GramSettings, NamedImage, StudySide } from '../similarity-batch';
import type { BatchJob, WireForward, WorkerInit, WorkerReply } from './protocol';

const WHERE = 'layerSimilarity workers';

/** The worker entry next to this file: .ts under tsx/vitest (loaded through tsx's require hook), .js in dist. */
function workerEntry(): { file: string; execArgv: string[] } {
  const ext = path.extname(__filename);
  const file = path.join(__dirname, `similarity-worker${ext}`);
  return { file, execArgv: ext === '.ts' ? ['--require', require.resolve('tsx/cjs')] : [] };
}

function studyBackend(): WorkerInit['backend'] {
  const name = backendInfo()?.name ?? (tf.getBackend() === 'wasm' ? 'wasm' : tf.getBackend());
  if (name !== 'wasm' && name !== 'cpu')
    throw new Error(`${WHERE}: data-parallel extraction runs on the wasm (native kernels) or cpu backend, not '${name}'; use one worker`);
  return name;
}

function unwire(w: WireForward): ForwardGrams {
  return { grams: new Map(w.names.map((n, i) => [n, w.grams[i]])), order: w.order, forwardMs: w.forwardMs, gramMs: w.gramMs };
}

interface Pending {
  resolve(r: BatchGrams): void;
  reject(e: Error): void;
}

export class SimilarityPool {
  private readonly pending = new Map<number, Pending>();
  private next = 0;
  private failure: Error | undefined;

  private constructor(private readonly workers: Worker[]) {}

  /** Starts `count` workers with copies of the sides' models; resolves once every worker has built them. */
  static async start(count: number, A: StudySide, B: StudySide, shared: boolean, settings: GramSettings): Promise<SimilarityPool> {
    const backend = studyBackend();
    if (Object.keys(A.hooks).length > 0 || Object.keys(B.hooks).length > 0)
      throw new Error(`${WHERE}: intervention hooks are functions and cannot be sent to worker threads; run with one worker`);
    const models: RestorationModel[] = [A.model];
    if (B.model !== A.model) models.push(B.model);
    const init: WorkerInit = {
      backend,
      models: models.map(transferModel),
      a: { model: 0, label: A.label, task: A.task.name, globs: A.globs },
      b: { model: models.indexOf(B.model), label: B.label, task: B.task.name, globs: B.globs },
      shared,
      settings,
    };
    const { file, execArgv } = workerEntry();
    const workers = Array.from({ length: count }, () => new Worker(file, { workerData: init, execArgv }));
    const pool = new SimilarityPool(workers);
    try {
      await Promise.all(workers.map((w, i) => pool.attach(w, i)));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /** Resolves when worker i is ready; afterwards routes its replies to the jobs waiting for them. */
  private attach(w: Worker, i: number): Promise<void> {
    return new Promise((ready, fail) => {
      let started = false;
      const die = (e: Error) => {
        if (!started) fail(e);
        this.fail(e);
      };
      w.on('message', (m: WorkerReply) => {
        if (m.kind === 'ready') {
          started = true;
          ready();
        } else if (m.kind === 'init-error') die(new Error(`${WHERE}: worker ${i + 1} could not start: ${m.error}`));
        else if (m.kind === 'batch-error') this.settle(m.batch, new Error(m.error));
        else {
          const a = unwire(m.a);
          this.settle(m.batch, { a, b: m.b ? unwire(m.b) : a, spatial: m.spatial, inputA: m.inputA, inputB: m.inputB, imagesMs: m.imagesMs });
        }
      });
      w.on('error', (e) => die(new Error(`${WHERE}: worker ${i + 1} failed: ${e.message}`)));
      w.on('exit', (code) => {
        if (code !== 0) die(new Error(`${WHERE}: worker ${i + 1} exited with code ${code} (out of memory?)`));
      });
    });
  }

  private settle(batch: number, r: BatchGrams | Error): void {
    const p = this.pending.get(batch);
    if (!p) return;
    this.pending.delete(batch);
    if (r instanceof Error) p.reject(r);
    else p.resolve(r);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /** The Grams of one batch; batches go to the workers in turn (all batches are the same size but the last). */
  run(batch: number, first: number, crops: NamedImage[]): Promise<BatchGrams> {
    if (this.failure) return Promise.reject(this.failure);
    const w = this.workers[this.next];
    this.next = (this.next + 1) % this.workers.length;
    return new Promise((resolve, reject) => {
      this.pending.set(batch, { resolve, reject });
      w.postMessage({ batch, first, crops } satisfies BatchJob);
    });
  }

  get size(): number {
    return this.workers.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
