/** `irlens restore`: run a model on an image or a PyTorch-layout .npy array. */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { imageToTensor, readImage, readNpy, tensorToImages, tensorToNpy, npyToTensor, writeNpy, writePng } from '../io';
import { requireFile } from '../util/fs';
import { restoreFinite } from '../analysis/nonfinite';
import { startBackend } from './common';
import { addModelOptions, loadModelFromOptions, ModelCliOptions } from './model-options';

const isNpy = (f: string) => path.extname(f).toLowerCase() === '.npy';

async function readInput(file: string, channels: number): Promise<{ x: tf.Tensor4D; layout: 'NCHW' | 'CHW' | 'image' }> {
  requireFile(file, '--input');
  if (isNpy(file)) {
    const arr = readNpy(file);
    const x = npyToTensor(arr, { name: `--input '${file}'`, unitRange: true });
    if (x.shape[3] !== channels) {
      x.dispose();
      throw new Error(`--input '${file}': array has ${arr.shape[arr.shape.length - 3]} channels, the model expects ${channels} (layout (N,C,H,W) or (C,H,W))`);
    }
    return { x, layout: arr.shape.length === 4 ? 'NCHW' : 'CHW' };
  }
  if (channels !== 1 && channels !== 3)
    throw new Error(`--input '${file}': the model takes ${channels} channels; give a (N,${channels},H,W) .npy array instead of an image`);
  const img = await readImage(file, { channels });
  return { x: imageToTensor(img), layout: 'image' };
}

export function restoreCommand(): Command {
  return addModelOptions(new Command('restore'))
    .description('restore an image or .npy array (N,C,H,W / C,H,W, values in [0,1]) with a model')
    .requiredOption('--input <file>', 'image (PNG/JPEG/TIFF/WebP) or .npy float array in PyTorch layout')
    .requiredOption('--output <file>', '.png (8-bit), or .npy (same layout as a .npy input, NCHW otherwise)')
    .action(async (opts: ModelCliOptions & { input: string; output: string }, cmd: Command) => {
      const outExt = path.extname(opts.output).toLowerCase();
      if (outExt !== '.png' && outExt !== '.npy') throw new Error(`--output '${opts.output}': expected a .png or .npy file name`);
      await startBackend(cmd.optsWithGlobals().backend);
      const { model, label } = await loadModelFromOptions(opts);
      const { x, layout } = await readInput(opts.input, model.inChannels);
      const t0 = performance.now();
      const y = restoreFinite(model, x, opts.task, `--input '${opts.input}'`);
      await y.data();
      const ms = performance.now() - t0;
      try {
        if (outExt === '.npy') writeNpy(opts.output, tensorToNpy(y, layout === 'CHW' ? 'CHW' : 'NCHW'));
        else {
          const imgs = tensorToImages(y);
          if (imgs.length !== 1) throw new Error(`--output '${opts.output}': a batch of ${imgs.length} needs a .npy output`);
          if (imgs[0].channels !== 1 && imgs[0].channels !== 3)
            throw new Error(`--output '${opts.output}': ${imgs[0].channels}-channel output needs a .npy output`);
          await writePng(opts.output, imgs[0]);
        }
      } finally {
        tf.dispose([x, y]);
        model.dispose();
      }
      process.stderr.write(`irlens: ${label} [${model.task(opts.task).name}] ${x.shape[1]}x${x.shape[2]} -> ${y.shape[1]}x${y.shape[2]} in ${ms.toFixed(0)} ms; wrote ${opts.output}\n`);
    });
}
