/**
 * Kernel-level profile of one forward pass (model.restore), or with --train of one training step (the step
 * `irlens bench --train` times: L1 loss, gradients, AdamW), on a backend: self time per kernel name (time
 * spent in kernels called from inside a kernel, e.g. irlens's composed wasm kernels, is charged to those inner
 * kernels, not twice), the heaviest kernel/shape signatures, and the tensor count across repeated forwards.
 *
 *   npx tsx bench/profile-forward.ts --model swinir-sr-x2 [--size 64x64] [--backend wasm] [--top 25] [--json FILE] [--train]
 *
 * Timing uses tf.profile's per-kernel wall clock (the wasm and cpu backends run kernels synchronously).
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/engine/backend';
import { createModel } from '../src/models';
import { trainStep } from '../src/cli/bench';
import { writeFileAtomic } from '../src/util/fs';
import { parseRunArgs, type RunArgs } from './run-args';

interface Args extends RunArgs {
  backend: string;
  task?: string;
}

function readArgs(argv: string[]): Args {
  const a = parseRunArgs('profile-forward', argv, { model: 'swinir-sr-x2', size: [64, 64] }, { backend: 'wasm', task: undefined });
  return { ...a, backend: a.extra.backend!, task: a.extra.task };
}

interface Stat {
  calls: number;
  selfMs: number;
}

type ProfileKernel = (name: string, inputs: tf.NamedTensorMap, f: () => tf.Tensor[]) => unknown;

/**
 * Wraps the engine profiler so that each kernel's self time (its wall clock minus that of kernels it runs
 * inside) is recorded by name and by name + input shapes.
 */
function recordSelfTimes(byName: Map<string, Stat>, bySignature: Map<string, Stat>): () => void {
  const profiler = (tf.engine() as unknown as { profiler: { profileKernel: ProfileKernel } }).profiler;
  const original = profiler.profileKernel;
  const childMs: number[] = [];
  profiler.profileKernel = function (name, inputs, f) {
    childMs.push(0);
    const t0 = performance.now();
    const result = original.call(this, name, inputs, f);
    const total = performance.now() - t0;
    const self = total - childMs.pop()!;
    if (childMs.length > 0) childMs[childMs.length - 1] += total;
    const shapes = Object.values(inputs)
      .map((t) => (t ? `[${t.shape.join(',')}]` : '-'))
      .join(' ');
    for (const [map, key] of [
      [byName, name],
      [bySignature, `${name} ${shapes}`],
    ] as const) {
      const s = map.get(key) ?? { calls: 0, selfMs: 0 };
      s.calls++;
      s.selfMs += self;
      map.set(key, s);
    }
    return result;
  };
  return () => {
    profiler.profileKernel = original;
  };
}

function table(rows: [string, Stat][], totalMs: number, top: number): string {
  const lines = rows
    .sort((a, b) => b[1].selfMs - a[1].selfMs)
    .slice(0, top)
    .map(([k, s]) => `${s.selfMs.toFixed(1).padStart(10)} ms ${((100 * s.selfMs) / totalMs).toFixed(1).padStart(5)}% ${String(s.calls).padStart(6)}x  ${k}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = readArgs(process.argv.slice(2));
  await initBackend(args.backend);
  const model = createModel(args.model);
  const [h, w] = args.size;
  const x = tf.randomUniform([1, h, w, model.inChannels], 0, 1, 'float32', 1) as tf.Tensor4D;
  const trainer = args.train ? trainStep(model, model.task(args.task).name) : undefined;
  const run = async () => {
    if (trainer) return trainer.step(x);
    const y = model.restore(x, args.task);
    await y.data();
    y.dispose();
  };
  await run(); // warm-up: caches, kernel setup
  const tensorsAfterWarmup = tf.memory().numTensors;
  const t0 = performance.now();
  await run();
  const wallMs = performance.now() - t0;
  const tensorsAfterSecond = tf.memory().numTensors;

  const byName = new Map<string, Stat>();
  const bySignature = new Map<string, Stat>();
  const restore = recordSelfTimes(byName, bySignature);
  const t1 = performance.now();
  await tf.profile(run);
  const profiledMs = performance.now() - t1;
  restore();
  const kernelMs = [...byName.values()].reduce((a, s) => a + s.selfMs, 0);

  const out = process.stdout;
  out.write(`${args.model} ${h}x${w} on ${tf.getBackend()}: ${args.train ? 'training step' : 'forward'} ${wallMs.toFixed(0)} ms (unprofiled), ` +
    `${profiledMs.toFixed(0)} ms profiled, kernels ${kernelMs.toFixed(0)} ms self time\n`);
  out.write(`tensors: ${tensorsAfterWarmup} after warm-up, ${tensorsAfterSecond} after a second forward\n\n`);
  out.write(`self time by kernel\n${table([...byName], kernelMs, args.top)}\n\n`);
  out.write(`self time by kernel and input shapes\n${table([...bySignature], kernelMs, args.top)}\n`);
  if (args.json) {
    const obj = {
      model: args.model,
      size: args.size,
      backend: tf.getBackend(),
      mode: args.train ? 'train' : 'forward',
      wallMs,
      kernelMs,
      byName: Object.fromEntries(byName),
      bySignature: Object.fromEntries(bySignature),
    };
    writeFileAtomic(args.json, `${JSON.stringify(obj, null, 2)}\n`);
  }
  trainer?.dispose();
  x.dispose();
  model.dispose();
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
});
