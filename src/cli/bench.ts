/** `irlens bench`: median forward time and peak tensor memory of one input, after a warm-up. */
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { median, parsePositiveInt, parseSize, startBackend } from './common';
import { addModelOptions, loadModelFromOptions, ModelCliOptions } from './model-options';

export interface BenchResult {
  model: string;
  task: string;
  params: number;
  backend: string;
  size: [number, number];
  batch: number;
  repeat: number;
  medianMs: number;
  minMs: number;
  peakBytes: number;
  rssBytes: number;
}

export function benchCommand(): Command {
  return addModelOptions(new Command('bench'))
    .description('time the forward pass of a model (median over --repeat runs after one warm-up)')
    .option('--size <HxW>', 'input size', '128x128')
    .option('--batch <n>', 'batch size', parsePositiveInt('--batch'), 1)
    .option('--repeat <n>', 'timed runs', parsePositiveInt('--repeat'), 5)
    .option('--json', 'print JSON')
    .action(async (opts: ModelCliOptions & { size: string; batch: number; repeat: number; json?: boolean }, cmd: Command) => {
      const [h, w] = parseSize(opts.size);
      const backend = await startBackend(cmd.optsWithGlobals().backend, opts.json);
      const { model, label } = await loadModelFromOptions(opts);
      const task = model.task(opts.task).name;
      const x = tf.randomUniform([opts.batch, h, w, model.inChannels], 0, 1, 'float32', 1) as tf.Tensor4D;
      const run = async () => {
        const y = model.restore(x, task);
        await y.data();
        y.dispose();
      };
      await run(); // warm-up: kernel compilation, mask caches
      const prof = await tf.profile(run);
      const times: number[] = [];
      for (let i = 0; i < opts.repeat; i++) {
        const t0 = performance.now();
        await run();
        times.push(performance.now() - t0);
      }
      const result: BenchResult = {
        model: label,
        task,
        params: model.numParameters(),
        backend: backend.name,
        size: [h, w],
        batch: opts.batch,
        repeat: opts.repeat,
        medianMs: median(times),
        minMs: Math.min(...times),
        peakBytes: prof.peakBytes,
        rssBytes: process.memoryUsage().rss,
      };
      x.dispose();
      model.dispose();
      if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else
        process.stdout.write(
          `${label} [${task}] ${opts.batch}x${h}x${w} on ${backend.name}: median ${result.medianMs.toFixed(1)} ms ` +
            `(min ${result.minMs.toFixed(1)}, ${opts.repeat} runs), peak tensor memory ${(result.peakBytes / 2 ** 20).toFixed(1)} MiB, ` +
            `rss ${(result.rssBytes / 2 ** 20).toFixed(0)} MiB, ${result.params.toLocaleString('en-US')} params\n`,
        );
    });
}
