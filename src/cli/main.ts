#!/usr/bin/env node
/** The irlens command line: one entry, subcommands; `npm run <cmd> -- ...` reaches the same commands. */
import { Command } from 'commander';
import { IRLENS_VERSION } from '../version';
import { userMessage } from '../util/errors';
import { parseThreads, setComputeThreads } from '../engine/compute';
import { infoCommand } from './info';
import { modelsCommand } from './models';
import { restoreCommand } from './restore';
import { benchCommand } from './bench';
import { ckaCommand } from './cka';
import { pretrainCommand } from './pretrain';
import { layersCommand } from './layers';
import { weightsCommand } from './weights';
import { ablateCommand } from './ablate';

export function buildProgram(): Command {
  const program = new Command('irlens')
    .description('representation studies of image-restoration networks (Restormer, MPRNet, SwinIR, EDT)')
    .version(IRLENS_VERSION)
    .option('--backend <name>', 'TF.js backend: node-gpu, node, wasm or cpu (default: best available; env IRLENS_BACKEND)')
    .option('--threads <n>', 'threads for the native kernels (default: all cores; env IRLENS_THREADS)', (v: string) => parseThreads(v, '--threads'))
    .hook('preAction', (cmd) => {
      const threads = cmd.opts().threads as number | undefined;
      if (threads !== undefined) setComputeThreads(threads);
    })
    .showHelpAfterError();
  for (const cmd of [infoCommand(), modelsCommand(), restoreCommand(), benchCommand(), ckaCommand(), pretrainCommand(), layersCommand(), weightsCommand()]) program.addCommand(cmd);
  program.addCommand(ablateCommand());
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (e) {
    process.stderr.write(`irlens: error: ${userMessage(e)}\n`);
    if (process.env.IRLENS_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
