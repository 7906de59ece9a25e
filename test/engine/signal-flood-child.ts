/**
 * Child process of native-signals.test.ts: runs native products, a 3x3 conv and its filter gradient in a loop for
 * two seconds with a JS SIGUSR2 handler installed (the parent floods it with SIGUSR2), then prints one JSON line:
 * the compute path, the rounds run, how many rounds differed from the first, and how many signals were handled.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/engine/backend';
import { computePath } from '../../src/engine/compute';

async function main(): Promise<void> {
  await initBackend('wasm');
  let handled = 0;
  process.on('SIGUSR2', () => {
    handled++;
  });
  const a = tf.randomUniform([384, 384], -1, 1, 'float32', 1);
  const b = tf.randomUniform([384, 384], -1, 1, 'float32', 2);
  const x = tf.randomUniform([1, 24, 24, 64], -1, 1, 'float32', 3) as tf.Tensor4D;
  const f = tf.randomUniform([3, 3, 64, 64], -1, 1, 'float32', 4) as tf.Tensor4D;
  const run = () =>
    tf.tidy(() => {
      const y = tf.conv2d(x, f, 1, 'same');
      const df = tf.grad((w) => tf.sum(tf.conv2d(x, w as tf.Tensor4D, 1, 'same')))(f);
      return [tf.matMul(a, b).dataSync().slice(), y.dataSync().slice(), df.dataSync().slice()];
    });
  const first = run();
  process.stdout.write('ready\n');
  const end = Date.now() + 2000;
  let rounds = 0;
  let differ = 0;
  while (Date.now() < end || handled === 0) {
    const got = run();
    if (got.some((g, i) => g.some((v, j) => v !== first[i][j]))) differ++;
    rounds++;
    await new Promise((resolve) => setImmediate(resolve)); // lets the handler run
  }
  process.stdout.write(JSON.stringify({ path: computePath().kind, rounds, differ, handled }) + '\n');
  process.exit(0);
}
void main();
