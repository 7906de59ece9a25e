/**
 * Messages between a layer-similarity study and its data-parallel workers (structured clone; Grams travel as
 * transferred Float64Array buffers). Kept apart so the worker entry and the pool share one definition.
 */
import type { BackendName } from '../../engine/backend';
import type { TransferredModel } from '../../models/transfer';
import type { GramSettings, NamedImage } from '../similarity-batch';

export interface WorkerSideSpec {
  /** Index into WorkerInit.models. */
  model: number;
  label: string;
  task: string;
  globs: string[];
}

export interface WorkerInit {
  backend: Extract<BackendName, 'wasm' | 'cpu'>;
  models: TransferredModel[];
  a: WorkerSideSpec;
  b: WorkerSideSpec;
  shared: boolean;
  settings: GramSettings;
}

export interface BatchJob {
  batch: number;
  first: number;
  crops: NamedImage[];
}

export interface WireForward {
  names: string[];
  grams: Float64Array[];
  order: string[];
  forwardMs: number;
  gramMs: number;
}

export type WorkerReply =
  | { kind: 'ready' }
  | { kind: 'init-error'; error: string }
  | {
      kind: 'batch';
      batch: number;
      a: WireForward;
      /** Absent when both axes share A's forward. */
      b?: WireForward;
      spatial: string[];
      inputA: [number, number];
      inputB: [number, number];
      imagesMs: number;
    }
  | { kind: 'batch-error'; batch: number; error: string };
