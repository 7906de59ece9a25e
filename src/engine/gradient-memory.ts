/**
 * Memory of a backward pass. tfjs 4.22 keeps two things alive longer than the gradient needs them:
 *
 * 1. Shape-only saves. The gradients of Reshape, Add, Sub, Concat, Slice, PadV2, Sum, Mean and AddN save their
 *    inputs only to read the inputs' shapes, yet a saved tensor keeps its whole buffer until the backward pass
 *    ends (a residual add saves both of its [B,H,W,C] operands). In an EDT-B forward they were 61% of what the
 *    tape held. For these kernels the engine now saves nothing and the tape node gets stand-ins with the shape,
 *    rank, size and dtype of what tfjs would have saved; tfjs's own gradient functions run unchanged. Reading
 *    anything else from a stand-in (after a tfjs upgrade changes a gradient, say) throws.
 * 2. Release during the backward pass. tfjs frees every saved tensor and every intermediate gradient only when
 *    the whole backward pass is done, so its peak is all saved tensors plus the gradient of every activation
 *    (an EDT-B step at 48x48: 1.2 GB after the forward, past the 4 GB wasm heap in the backward). Nodes are
 *    processed in reverse order of recording, so once a node's gradient has run, its saved tensors and the
 *    gradients of its outputs are never read again: they are freed when the next node's gradient starts.
 *    Kept: gradients asked for (the xs of tf.grads / variableGrads) and a dy the caller passed. A gradient
 *    function that hands a tensor on unchanged (dy as its input's gradient) hands on a clone, so that every
 *    accumulated gradient is its own tensor. Only first-order passes are touched.
 *
 * This patches three methods of the tfjs engine (`gradients`, `getTensorsForGradient`, `addTapeNode`), as the
 * rest of irlens's engine code relies on tfjs internals: tfjs has no public hook for either. The gradients are
 * the same bits as without the patch (test/engine/gradient-memory.test.ts).
 */
import * as tf from '@tensorflow/tfjs';

/** Kernels whose tfjs 4.22 gradient reads only `.shape`/`.rank` of what it saves (checked in their *_grad.js). */
export const SHAPE_ONLY_GRADIENT_KERNELS: ReadonlySet<string> = new Set(['Reshape', 'Add', 'Sub', 'Concat', 'Slice', 'PadV2', 'Sum', 'Mean', 'AddN']);

type Inputs = Record<string, tf.Tensor>;
type Thunks = Record<string, () => tf.Tensor>;
type NodeGradient = (dys: tf.Tensor[]) => Thunks;
type GradientsFunc = ((...args: unknown[]) => unknown) | null | undefined;

interface TapeNode {
  inputs: Inputs;
  outputs: tf.Tensor[];
  saved?: { dispose(): void }[];
  gradient?: NodeGradient;
}

interface EngineInternals {
  state: { gradientDepth: number; activeTape: TapeNode[] | null };
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): unknown;
  getTensorsForGradient(kernelName: string, inputs: Inputs, outputs: tf.Tensor[]): tf.Tensor[];
  addTapeNode(kernelName: string, inputs: Inputs, outputs: tf.Tensor[], gradientsFunc: GradientsFunc, saved: unknown[], attrs: unknown): void;
}

interface ShapeOnly {
  readonly shape: number[];
  readonly rank: number;
  readonly size: number;
  readonly dtype: tf.DataType;
  dispose(): void;
}

function shapeOnly(t: tf.Tensor, kernelName: string): ShapeOnly {
  const target: ShapeOnly = { shape: t.shape.slice(), rank: t.rank, size: t.size, dtype: t.dtype, dispose() {} };
  return new Proxy(target, {
    get(obj, prop) {
      if (typeof prop === 'symbol' || prop in obj) return obj[prop as keyof ShapeOnly];
      throw new Error(
        `irlens: the ${kernelName} gradient read '${prop}' of a saved input, but irlens keeps only the shapes of ` +
          `${kernelName}'s inputs (src/engine/gradient-memory.ts): remove ${kernelName} from SHAPE_ONLY_GRADIENT_KERNELS`,
      );
    },
  });
}

/** The inputs tfjs would save for this kernel's gradient, in the order it saves them. */
function inputsTheGradientSaves(kernelName: string, inputs: Inputs): tf.Tensor[] {
  const config = tf.getGradient(kernelName);
  if (!config) return [];
  if (config.saveAllInputs) return Object.keys(inputs).map((k) => inputs[k]);
  return (config.inputsToSave ?? []).map((name) => inputs[name]);
}

/** One backward pass in progress: what must outlive it, and the node whose tensors are freed next. */
interface Pass {
  keepIds: Set<number>;
  keep?: tf.Tensor;
  /** Every input gradient handed on so far. */
  handedOn: WeakSet<tf.Tensor>;
  /** The gradients handed on for each tensor id: tfjs adds them up and frees only the running sum. */
  handedFor: Map<number, tf.Tensor[]>;
  pending?: { saved: { dispose(): void }[]; dys: tf.Tensor[] };
}
const passes: Pass[] = [];

function releasePending(pass: Pass): void {
  const p = pass.pending;
  pass.pending = undefined;
  if (!p) return;
  for (const t of p.saved) t.dispose();
  for (const dy of p.dys) dy.dispose();
}

/** Wraps a tape node's gradient so that the node's tensors are freed when the next node's gradient starts. */
function releasingGradient(engine: EngineInternals, node: TapeNode, gradient: NodeGradient): NodeGradient {
  return (dys) => {
    const pass = passes[passes.length - 1];
    if (!pass || engine.state.gradientDepth !== 0) return gradient(dys); // higher-order or outside gradients()
    releasePending(pass);
    const thunks = gradient(dys);
    const own = new Set(dys);
    const wrapped: Thunks = {};
    for (const name of Object.keys(thunks))
      wrapped[name] = () => {
        let dx = thunks[name]();
        if (own.has(dx) || pass.handedOn.has(dx)) dx = dx.clone(); // the original is freed or accumulated
        pass.handedOn.add(dx);
        const id = node.inputs[name]?.id;
        if (id !== undefined) pass.handedFor.set(id, [...(pass.handedFor.get(id) ?? []), dx]);
        return dx;
      };
    // This node's output gradients are complete: the final sums (dys) and the parts tfjs summed into them.
    const done: tf.Tensor[] = [];
    node.outputs.forEach((o, i) => {
      if (pass.keepIds.has(o.id)) return;
      if (dys[i] != null && dys[i] !== pass.keep) done.push(dys[i]);
      done.push(...(pass.handedFor.get(o.id) ?? []));
      pass.handedFor.delete(o.id);
    });
    pass.pending = { saved: node.saved ?? [], dys: done };
    return wrapped;
  };
}

/** True while a gradient tape records (inside tf.grad / variableGrads), where ops save tensors for the backward. */
export function recordingGradients(): boolean {
  return (tf.engine() as unknown as EngineInternals).state.gradientDepth > 0;
}

let restore: (() => void) | undefined;

/** Installs both savings on the engine (all backends; idempotent). */
export function installGradientMemorySavings(): void {
  if (restore) return;
  const engine = tf.engine() as unknown as EngineInternals;
  const { gradients, getTensorsForGradient, addTapeNode } = engine;
  engine.gradients = function (f, xs, dy, allowNoGradients) {
    passes.push({ keepIds: new Set(xs.map((x) => x.id)), keep: dy, handedOn: new WeakSet(), handedFor: new Map() });
    try {
      return gradients.call(this, f, xs, dy, allowNoGradients);
    } finally {
      passes.pop();
    }
  };
  engine.getTensorsForGradient = function (kernelName, inputs, outputs) {
    return SHAPE_ONLY_GRADIENT_KERNELS.has(kernelName) ? [] : getTensorsForGradient.call(this, kernelName, inputs, outputs);
  };
  engine.addTapeNode = function (kernelName, inputs, outputs, gradientsFunc, saved, attrs) {
    // gradientsFunc is null exactly for registered kernels (custom gradients and clones pass their own).
    if (gradientsFunc == null && SHAPE_ONLY_GRADIENT_KERNELS.has(kernelName))
      saved = inputsTheGradientSaves(kernelName, inputs).map((t) => shapeOnly(t, kernelName));
    addTapeNode.call(this, kernelName, inputs, outputs, gradientsFunc, saved, attrs);
    const tape = this.state.activeTape;
    const node = tape?.[tape.length - 1];
    if (node?.gradient) node.gradient = releasingGradient(this, node, node.gradient);
  };
  restore = () => {
    engine.gradients = gradients;
    engine.getTensorsForGradient = getTensorsForGradient;
    engine.addTapeNode = addTapeNode;
  };
}

/** Puts tfjs's own behaviour back (A/B tests and measurements). */
export function uninstallGradientMemorySavings(): void {
  restore?.();
  restore = undefined;
}
