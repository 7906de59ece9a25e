/**
 * Memory a training step holds: after one forward inside tf.variableGrads, the buffers saved for the backward
 * pass by kernel ("only": saved by that kernel alone, "shared": also by others), and the wasm heap's size after
 * the forward and after the backward (the heap only grows, so that is the high-water mark). Tells which ops to
 * fuse or recompute when a training step runs out of memory.
 *
 *   npx tsx bench/tape-memory.ts --model edt-b-sr-x2 [--size 48x48] [--top 20] [--tfjs-saves]
 *
 * --tfjs-saves: tfjs's own bookkeeping, without irlens's savings (src/engine/gradient-memory.ts), for A/B.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/engine/backend';
import { createModel } from '../src/models';
import { uninstallGradientMemorySavings } from '../src/engine/gradient-memory';

interface TapeNode {
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
}

function parse(argv: string[]) {
  const a = { model: 'edt-b-sr-x2', size: [48, 48], top: 20, tfjsSaves: false };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--tfjs-saves') {
      a.tfjsSaves = true;
      i--;
      continue;
    }
    if (v === undefined) throw new Error(`tape-memory: ${k} needs a value`);
    if (k === '--model') a.model = v;
    else if (k === '--size') a.size = v.split('x').map(Number);
    else if (k === '--top') a.top = Number(v);
    else throw new Error(`tape-memory: unknown option ${k}`);
  }
  return a;
}

async function main() {
  const args = parse(process.argv.slice(2));
  await initBackend('wasm');
  if (args.tfjsSaves) uninstallGradientMemorySavings(); // tfjs's own saves, for A/B
  const model = createModel(args.model, { seed: 0 });
  const task = model.task().name;
  const x = tf.randomUniform([1, args.size[0], args.size[1], model.inChannels], 0, 1, 'float32', 1) as tf.Tensor4D;
  // The wasm heap only grows: its size after the forward is the high-water mark of forward + saved tensors.
  const heapBytes = () => (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.byteLength ?? 0;
  const before = heapBytes();
  const byKernel = new Map<string, { nodes: number; only: number; shared: number }>();
  const params = model.namedParameters().map(([, p]) => p.variable);
  const { value, grads } = tf.variableGrads(() => {
    const y = model.forward(x, task);
    const tape = (tf.engine() as unknown as { state: { activeTape: TapeNode[] } }).state.activeTape;
    // Each live buffer (dataId) once: which kernels' nodes save it. A buffer saved by one kernel only is what
    // that kernel's gradient alone keeps alive ("only"); "shared" buffers are also saved by other kernels.
    const savers = new Map<object, { bytes: number; kernels: Set<string> }>();
    for (const node of tape)
      for (const t of node.saved ?? []) {
        if (!('dataId' in t) || t.isDisposed) continue; // shape-only stand-ins (src/engine/gradient-memory.ts) hold no buffer
        const id = (t as unknown as { dataId: object }).dataId;
        const e = savers.get(id) ?? { bytes: t.size * (t.dtype === 'float32' || t.dtype === 'int32' ? 4 : 1), kernels: new Set<string>() };
        e.kernels.add(node.kernelName);
        savers.set(id, e);
      }
    for (const node of tape) {
      const s = byKernel.get(node.kernelName) ?? { nodes: 0, only: 0, shared: 0 };
      s.nodes++;
      byKernel.set(node.kernelName, s);
    }
    let savedBytes = 0;
    for (const { bytes } of savers.values()) savedBytes += bytes;
    console.log(`saved for the backward pass: ${savers.size} buffers, ${(savedBytes / 2 ** 20).toFixed(0)} MiB`);
    for (const { bytes, kernels } of savers.values())
      for (const k of kernels) {
        const s = byKernel.get(k)!;
        if (kernels.size === 1) s.only += bytes;
        else s.shared += bytes;
      }
    if (process.env.TAPE_DUMP) for (const node of tape.slice(0, Number(process.env.TAPE_DUMP))) console.log(node.kernelName, Object.keys(node.inputs).join(','), node.outputs.map((t) => t.shape.join('x')).join(' '), (node.saved ?? []).map((t) => t.shape.join('x') + (t.isDisposed ? '(d)' : '')).join(' '));
    console.log(`tape: ${tape.length} nodes; wasm heap ${(before / 2 ** 20).toFixed(0)} MiB before the forward, ${(heapBytes() / 2 ** 20).toFixed(0)} MiB after`);
    return tf.mean(tf.abs(y)) as tf.Scalar;
  }, params);
  console.log(`wasm heap after the backward pass: ${(heapBytes() / 2 ** 20).toFixed(0)} MiB`);
  const rows = [...byKernel.entries()].sort((a, b) => b[1].only + b[1].shared - a[1].only - a[1].shared).slice(0, args.top);
  for (const [k, s] of rows) console.log(`${k.padEnd(28)} ${String(s.nodes).padStart(6)} nodes only ${(s.only / 2 ** 20).toFixed(1).padStart(8)} MiB  shared ${(s.shared / 2 ** 20).toFixed(1).padStart(8)} MiB`);
  tf.dispose([value, ...Object.values(grads), x]);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
