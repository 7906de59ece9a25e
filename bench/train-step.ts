/**
 * Times one training step (forward + backward + Adam update) of a small conv net with depthwise convs on the
 * wasm and cpu backends.
 *
 *   npx tsx bench/train-step.ts [--backend wasm|cpu] [--repeat N] [--size S] [--width C]
 *
 * Defaults: both backends, 10 timed steps (after 2 warm-up steps), 1x3x64x64 input, width 32.
 * The same net is trained in test/engine/train-wasm.test.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/engine/backend';
import { gelu } from '../src/engine/wasm/gelu';

export interface TinyConvNetConfig {
  /** Feature channels. */
  width: number;
  /** Residual blocks: depthwise 3x3 -> GELU (exact, irlens's engine GELU) -> 1x1. */
  blocks: number;
  seed?: number;
}

export interface TinyConvNet {
  variables: tf.Variable[];
  apply(x: tf.Tensor4D): tf.Tensor4D;
  dispose(): void;
}


/**
 * conv3x3 (3 -> width) -> blocks x [depthwise 3x3 -> GELU -> conv1x1 (+ residual)] -> conv3x3 (width -> width,
 * + residual, like the conv after the body in SwinIR/EDT) -> conv3x3 (width -> 3) + input residual.
 * NHWC; seeded initialisation.
 */
export function createTinyConvNet(config: TinyConvNetConfig): TinyConvNet {
  const { width, blocks } = config;
  let seed = config.seed ?? 1;
  const param = (shape: number[], fanIn: number) =>
    tf.variable(tf.randomNormal(shape, 0, Math.sqrt(1 / fanIn), 'float32', seed++));
  const zeros = (n: number) => tf.variable(tf.zeros([n]));
  const convIn = { w: param([3, 3, 3, width], 27), b: zeros(width) };
  const body = Array.from({ length: blocks }, () => ({
    dw: param([3, 3, width, 1], 9),
    dwB: zeros(width),
    pw: param([1, 1, width, width], width),
    pwB: zeros(width),
  }));
  const convBody = { w: param([3, 3, width, width], 9 * width), b: zeros(width) };
  const convOut = { w: param([3, 3, width, 3], 9 * width), b: zeros(3) };
  const variables = [
    convIn.w,
    convIn.b,
    ...body.flatMap((p) => [p.dw, p.dwB, p.pw, p.pwB]),
    convBody.w,
    convBody.b,
    convOut.w,
    convOut.b,
  ];
  const w4 = (v: tf.Variable) => v as unknown as tf.Tensor4D;
  return {
    variables,
    apply: (x) =>
      tf.tidy(() => {
        let h = tf.add(tf.conv2d(x, w4(convIn.w), 1, 'same'), convIn.b) as tf.Tensor4D;
        for (const p of body) {
          const d = tf.add(tf.depthwiseConv2d(h, w4(p.dw), 1, 'same'), p.dwB) as tf.Tensor4D;
          const g = gelu(d) as tf.Tensor4D;
          h = tf.add(h, tf.add(tf.conv2d(g, w4(p.pw), 1, 'valid'), p.pwB));
        }
        h = tf.add(h, tf.add(tf.conv2d(h, w4(convBody.w), 1, 'same'), convBody.b));
        return tf.add(x, tf.add(tf.conv2d(h, w4(convOut.w), 1, 'same'), convOut.b));
      }),
    dispose: () => variables.forEach((v) => v.dispose()),
  };
}

/** A fixed restoration-like task: inputs are noisy, targets are the clean 3x3 box-blurred images. */
export function makeTask(batch: number, size: number, seed = 7): { x: tf.Tensor4D; y: tf.Tensor4D } {
  return tf.tidy(() => {
    const clean = tf.randomUniform([batch, size, size, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
    const box = tf.fill([3, 3, 3, 1], 1 / 9) as tf.Tensor4D;
    const y = tf.depthwiseConv2d(clean, box, 1, 'same');
    const x = tf.add(y, tf.randomNormal(y.shape, 0, 0.1, 'float32', seed + 1)) as tf.Tensor4D;
    return { x, y };
  });
}

/** One Adam step on the mean squared error; returns the loss before the update. */
export function trainStep(net: TinyConvNet, optimizer: tf.Optimizer, x: tf.Tensor4D, y: tf.Tensor4D): number {
  const cost = optimizer.minimize(() => tf.mean(tf.squaredDifference(net.apply(x), y)) as tf.Scalar, true, net.variables);
  if (!cost) throw new Error('train-step: optimizer.minimize returned no cost');
  const value = cost.dataSync()[0];
  cost.dispose();
  return value;
}

function parseArgs(argv: string[]): { backends: string[]; repeat: number; size: number; width: number } {
  const out = { backends: ['wasm', 'cpu'], repeat: 10, size: 64, width: 32 };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    const int = (name: string) => {
      const v = Number(value);
      if (!Number.isInteger(v) || v < 1) throw new Error(`train-step: ${name} expects a positive integer, got '${value}'`);
      i++;
      return v;
    };
    switch (argv[i]) {
      case '--backend':
        if (value !== 'wasm' && value !== 'cpu') throw new Error(`train-step: --backend expects wasm or cpu, got '${value}'`);
        out.backends = [value];
        i++;
        break;
      case '--repeat':
        out.repeat = int('--repeat');
        break;
      case '--size':
        out.size = int('--size');
        break;
      case '--width':
        out.width = int('--width');
        break;
      default:
        throw new Error(`train-step: unknown option '${argv[i]}' (expected --backend, --repeat, --size, --width)`);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(`train step: 1x3x${args.size}x${args.size}, width ${args.width}, 2 blocks, Adam; ${args.repeat} timed steps`);
  const results: Record<string, number> = {};
  for (const backend of args.backends) {
    await initBackend(backend);
    const net = createTinyConvNet({ width: args.width, blocks: 2 });
    const optimizer = tf.train.adam(1e-3);
    const { x, y } = makeTask(1, args.size);
    for (let i = 0; i < 2; i++) trainStep(net, optimizer, x, y); // Adam creates its slots on the first step
    const times: number[] = [];
    for (let i = 0; i < args.repeat; i++) {
      const t0 = performance.now();
      trainStep(net, optimizer, x, y);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    results[backend] = times[Math.floor(times.length / 2)];
    const [min, max] = [times[0], times[times.length - 1]];
    console.log(`${backend.padEnd(5)} median ${results[backend].toFixed(1)} ms  (min ${min.toFixed(1)}, max ${max.toFixed(1)})`);
    tf.dispose([x, y]);
    optimizer.dispose();
    net.dispose();
  }
  if (results.wasm !== undefined && results.cpu !== undefined) {
    console.log(`cpu / wasm: ${(results.cpu / results.wasm).toFixed(1)}x`);
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
