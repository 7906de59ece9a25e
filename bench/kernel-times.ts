/**
 * Unprofiled per-kernel wall time of forwards or training steps: every kernel registered for the backend is wrapped
 * with a clock (self time: kernels run inside a kernel are charged to themselves, not twice), and nothing else
 * changes. tf.profile (bench/profile-forward.ts) reads every output back between kernels, which puts the kernel
 * threads to sleep and makes its multi-thread numbers unreliable; this costs ~1 us per kernel call, so 1-thread and
 * N-thread runs compare kernel by kernel.
 *
 *   IRLENS_THREADS=2 npx tsx bench/kernel-times.ts --model restormer --size 64x64 [--train] [--steps 4] [--top 25] [--json FILE]
 *
 * Prints the wall time per step, the part spent in kernels, and the heaviest kernels and kernel/shape signatures.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/engine/backend';
import { computePath } from '../src/engine/compute';
import { createModel } from '../src/models';
import { trainStep } from '../src/cli/bench';
import { writeFileAtomic } from '../src/util/fs';
import { parseRunArgs, positiveInteger, type RunArgs } from './run-args';

interface Args extends RunArgs {
  steps: number;
}

function readArgs(argv: string[]): Args {
  const a = parseRunArgs('kernel-times', argv, { model: 'restormer', size: [64, 64] }, { steps: '4' });
  return { ...a, steps: positiveInteger('kernel-times', '--steps', a.extra.steps!) };
}

interface Stat {
  calls: number;
  ms: number;
}

/** Wraps every kernel of `backend` with a self-time clock that records while `recording()` is true. */
function clockKernels(backend: string, recording: () => boolean, bySignature: Map<string, Stat>): void {
  const open: number[] = []; // inner time of the kernels currently running, innermost last
  for (const config of tf.getKernelsForBackend(backend)) {
    const inner = config.kernelFunc;
    tf.unregisterKernel(config.kernelName, backend);
    tf.registerKernel({
      ...config,
      kernelFunc: (args) => {
        if (!recording()) return inner(args);
        const t0 = performance.now();
        open.push(0);
        try {
          return inner(args);
        } finally {
          const nested = open.pop()!;
          const dt = performance.now() - t0;
          if (open.length > 0) open[open.length - 1] += dt;
          const shapes = Object.values(args.inputs).map((t) => (t ? JSON.stringify((t as tf.TensorInfo).shape) : '-'));
          const key = `${config.kernelName} ${shapes.join(' ')}`;
          const s = bySignature.get(key) ?? { calls: 0, ms: 0 };
          s.calls++;
          s.ms += dt - nested;
          bySignature.set(key, s);
        }
      },
    });
  }
}

async function main(): Promise<void> {
  const args = readArgs(process.argv.slice(2));
  await initBackend('wasm');
  const bySignature = new Map<string, Stat>();
  let recording = false;
  clockKernels(tf.getBackend(), () => recording, bySignature);
  const model = createModel(args.model);
  const [h, w] = args.size;
  const x = tf.randomUniform([1, h, w, model.inChannels], 0, 1, 'float32', 1) as tf.Tensor4D;
  const trainer = args.train ? trainStep(model, model.task().name) : undefined;
  const run = async () => {
    if (trainer) return trainer.step(x);
    const y = model.restore(x);
    await y.data();
    y.dispose();
  };
  await run(); // warm-up: caches, kernel set-up, optimiser slots
  await run();
  recording = true;
  const t0 = performance.now();
  for (let i = 0; i < args.steps; i++) await run();
  const wallMs = (performance.now() - t0) / args.steps;
  recording = false;

  const per = (s: Stat) => ({ calls: s.calls / args.steps, ms: s.ms / args.steps });
  const signatures = [...bySignature].map(([key, s]) => ({ key, ...per(s) })).sort((a, b) => b.ms - a.ms);
  const byName = new Map<string, Stat>();
  for (const s of signatures) {
    const name = s.key.split(' ')[0];
    const t = byName.get(name) ?? { calls: 0, ms: 0 };
    t.calls += s.calls;
    t.ms += s.ms;
    byName.set(name, t);
  }
  const kernels = [...byName].map(([name, s]) => ({ name, ...s })).sort((a, b) => b.ms - a.ms);
  const kernelMs = kernels.reduce((a, k) => a + k.ms, 0);
  const path = computePath();
  if (args.json) writeFileAtomic(args.json, `${JSON.stringify({ model: args.model, size: args.size, train: args.train, threads: path.threads, wallMs, kernelMs, kernels, signatures }, null, 2)}\n`);
  const out = process.stdout;
  out.write(`${args.model} ${h}x${w} ${args.train ? 'training step' : 'forward'} on ${path.kind}, ${path.threads} thread(s): ${wallMs.toFixed(0)} ms per step (mean of ${args.steps}), kernels ${kernelMs.toFixed(0)} ms\n\n`);
  out.write('self time per step by kernel\n');
  for (const k of kernels.slice(0, args.top)) out.write(`${k.ms.toFixed(1).padStart(10)} ms ${(k.calls).toFixed(0).padStart(6)}x  ${k.name}\n`);
  out.write('\nself time per step by kernel and input shapes\n');
  for (const s of signatures.slice(0, args.top)) out.write(`${s.ms.toFixed(2).padStart(10)} ms ${s.calls.toFixed(0).padStart(6)}x  ${s.key}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message.startsWith('kernel-times:') ? '' : 'kernel-times: '}${e.message}\n`);
  process.exit(1);
});
