/**
 * Entry of one data-parallel extraction worker (a Node worker thread): it starts the study's backend with one
 * native thread, rebuilds the models from their transferred parameters, and answers each batch job with that
 * batch's Grams, computed by the same `batchGrams` the single-threaded study runs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../../engine/backend';
import { setComputeThreads } from '../../engine/compute';
import '../../models';
import { rebuildModel } from '../../models/transfer';
import type { RestorationModel } from '../../models/model';
import { parseDegradation } from '../../degradations';
import { batchGrams, type ForwardGrams, type StudySide } from '../similarity-batch';
import type { BatchJob, WireForward, WorkerInit, WorkerReply, WorkerSideSpec } from './protocol';

const port = parentPort!;
const init = workerData as WorkerInit;

function side(models: RestorationModel[], spec: WorkerSideSpec): StudySide {
  const model = models[spec.model];
  const task = model.task(spec.task);
  return { model, label: spec.label, task, degradation: task.degradation ? parseDegradation(task.degradation) : undefined, globs: spec.globs, hooks: {} };
}

function wire(f: ForwardGrams): WireForward {
  return { names: [...f.grams.keys()], grams: [...f.grams.values()], order: f.order, forwardMs: f.forwardMs, gramMs: f.gramMs };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function start(): Promise<{ A: StudySide; B: StudySide }> {
  await initBackend(init.backend);
  // The workers are the parallelism: one kernel thread each, so N workers use N cores without oversubscribing.
  setComputeThreads(1);
  const models = init.models.map(rebuildModel);
  return { A: side(models, init.a), B: side(models, init.b) };
}

start().then(
  ({ A, B }) => {
    // Jobs run one at a time, in arrival order.
    let queue = Promise.resolve();
    port.on('message', (job: BatchJob) => {
      queue = queue.then(async () => {
        let reply: WorkerReply;
        let transfer: ArrayBuffer[] = [];
        try {
          const r = await batchGrams(A, B, init.shared, job.crops, job.first, job.batch, init.settings);
          const a = wire(r.a);
          const b = init.shared ? undefined : wire(r.b);
          transfer = [...new Set([...a.grams, ...(b?.grams ?? [])].map((g) => g.buffer as ArrayBuffer))];
          reply = { kind: 'batch', batch: job.batch, a, ...(b ? { b } : {}), spatial: r.spatial, inputA: r.inputA, inputB: r.inputB, imagesMs: r.imagesMs };
        } catch (e) {
          reply = { kind: 'batch-error', batch: job.batch, error: message(e) };
        }
        port.postMessage(reply, transfer);
      });
    });
    port.postMessage({ kind: 'ready' } satisfies WorkerReply);
  },
  (e) => port.postMessage({ kind: 'init-error', error: message(e) } satisfies WorkerReply),
);
