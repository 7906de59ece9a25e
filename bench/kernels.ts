/**
 * Micro-benchmark of the heavy kernels on the wasm backend as irlens starts it (native kernels when built, else
 * wasm; IRLENS_NATIVE=0 forces wasm): best of --repeat runs in wall-clock time and in process CPU time (all
 * threads summed). On a loaded machine the CPU time is the better measure of the work: a kernel that waits
 * for a core accrues wall time but no CPU time.
 *
 *   npx tsx bench/kernels.ts [--repeat 15]        (IRLENS_THREADS / IRLENS_NATIVE select the path)
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/engine/backend';
import { computePath } from '../src/engine/compute';
import { gelu } from '../src/engine/wasm/gelu';

const repeat = Number(process.argv[process.argv.indexOf('--repeat') + 1] ?? 15) || 15;

interface Case {
  name: string;
  flops: number;
  inputs: number[][];
  run: (...t: tf.Tensor[]) => tf.Tensor;
}

const CASES: Case[] = [
  { name: 'matMul 4096x180 x 180x540', flops: 2 * 4096 * 180 * 540, inputs: [[4096, 180], [180, 540]], run: (a, b) => tf.matMul(a, b) },
  { name: 'batchMatMul 384 x 64x30 x 30x64 (window attention)', flops: 2 * 384 * 64 * 30 * 64, inputs: [[384, 64, 30], [384, 64, 30]], run: (a, b) => tf.matMul(a, b, false, true) },
  { name: 'conv2d 3x3 128x128x48 -> 48', flops: 2 * 128 * 128 * 9 * 48 * 48, inputs: [[1, 128, 128, 48], [3, 3, 48, 48]], run: (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same') },
  { name: 'conv2d 3x3 128x128x128 -> 128 (MPRNet ORSNet)', flops: 2 * 128 * 128 * 9 * 128 * 128, inputs: [[1, 128, 128, 128], [3, 3, 128, 128]], run: (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same') },
  { name: 'conv2d 1x1 128x128x48 -> 144', flops: 2 * 128 * 128 * 48 * 144, inputs: [[1, 128, 128, 48], [1, 1, 48, 144]], run: (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same') },
  { name: 'depthwise 3x3 128x128x144', flops: 2 * 128 * 128 * 9 * 144, inputs: [[1, 128, 128, 144], [3, 3, 144, 1]], run: (x, f) => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same') },
  { name: 'gelu 4096x360', flops: 0, inputs: [[1, 4096, 360]], run: (x) => gelu(x) },
];

(async () => {
  await initBackend('wasm');
  const p = computePath();
  console.log(`${p.kind}, ${p.threads} thread(s): ${p.description}`);
  for (const c of CASES) {
    const ins = c.inputs.map((s, i) => tf.randomNormal(s, 0, 1, 'float32', i + 1));
    let best = Infinity;
    let bestCpu = Infinity;
    for (let r = 0; r < repeat + 1; r++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const y = c.run(...ins);
      const dt = performance.now() - t0; // the kernels run synchronously on wasm and native
      const cpu = process.cpuUsage(c0);
      y.dispose();
      if (r > 0) {
        best = Math.min(best, dt);
        bestCpu = Math.min(bestCpu, (cpu.user + cpu.system) / 1000);
      }
    }
    const rate = c.flops > 0 ? `, ${(c.flops / best / 1e6).toFixed(1)} GFLOP/s wall` : '';
    console.log(`  ${c.name}: ${best.toFixed(2)} ms wall${rate}; ${bestCpu.toFixed(2)} ms CPU`);
    tf.dispose(ins);
  }
})();
