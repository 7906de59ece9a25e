/** `irlens info`: versions, backend and built-in data, for bug reports and sanity checks. */
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { builtinImages } from '../io/builtin';
import { listFamilies, listPresets } from '../models';
import { IRLENS_VERSION, PACKAGE_ROOT } from '../version';
import { startBackend } from './common';
import { computePath } from '../engine/compute';

export function infoCommand(): Command {
  return new Command('info')
    .description('print versions, the TF.js backend in use and the built-in data')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const backend = await startBackend(cmd.optsWithGlobals().backend, true);
      const images = builtinImages();
      const info = {
        irlens: IRLENS_VERSION,
        node: process.version,
        tfjs: tf.version.tfjs,
        backend: { name: backend.name, tf: backend.tfBackend, description: backend.description, skipped: backend.skipped },
        compute: computePath(),
        packageRoot: PACKAGE_ROOT,
        builtinImages: images.map((i) => i.name),
        families: listFamilies().map((f) => f.name),
        presets: listPresets().length,
      };
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
        return;
      }
      const lines = [
        `irlens ${info.irlens} (node ${info.node}, tfjs ${info.tfjs})`,
        `backend: ${backend.name} — ${backend.description}`,
        ...backend.skipped.map((s) => `  skipped ${s}`),
        `compute: ${info.compute.kind} — ${info.compute.description}`,
        `built-in images (${images.length}): ${info.builtinImages.join(', ')}`,
        `model families: ${info.families.join(', ')} (${info.presets} presets; see \`npm run models\`)`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
