/** The options every model-running command shares: --model/--config/--weights/--seed/--task. */
import { Command } from 'commander';
import { LoadedModel, loadModelSpec, parseConfigJson } from '../weights/spec';
import { parseParamCount } from '../models/registry';
import { parseNonNegativeInt } from './common';

export interface ModelCliOptions {
  model: string;
  config?: string;
  weights?: string;
  paramKey?: string;
  seed: number;
  task?: string;
  maxParams?: number;
  randomInit?: boolean;
}

export function addModelOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--model <spec>', 'preset or family name, PRESET@weights.pth, PRESET@NAME (irlens weights list), PRESET@random, or an irlens .safetensors checkpoint')
    .option('--config <json>', 'official hyper-parameters overriding the preset, as JSON (e.g. \'{"dim":32}\')')
    .option('--weights <file>', 'official PyTorch .pth or safetensors weights (default: the tiny presets\' shipped trained weights, else seeded random init)')
    .option('--random-init', 'seeded random weights even where trained ones ship (same as PRESET@random)')
    .option('--param-key <key>', "state_dict wrapper key to read ('params', 'params_ema', 'state_dict')")
    .option('--seed <n>', 'seed of the random initialisation when no weights are given', parseNonNegativeInt('--seed'), 0)
    .option('--task <name>', 'task branch (multi-task models) and degradation convention')
    .option('--max-params <n>', 'refuse models with more parameters (e.g. 250M; default IRLENS_MAX_PARAMS, else 100M)', (v) => parseParamCount(v));
}

/** Loads the model named by the options, warning on stderr when it runs with random weights. */
export async function loadModelFromOptions(o: ModelCliOptions): Promise<LoadedModel> {
  const loaded = await loadModelSpec(o.model, {
    config: parseConfigJson(o.config),
    seed: o.seed,
    weights: o.weights,
    paramKey: o.paramKey,
    maxParams: o.maxParams,
    randomInit: o.randomInit,
  });
  if (!loaded.weights)
    process.stderr.write(`irlens: warning: ${loaded.label} has no weights; using seeded random init (seed ${o.seed})\n`);
  else if (loaded.provenance.source === 'irlens-trained')
    process.stderr.write(`irlens: ${loaded.label}: irlens-trained weights ${loaded.provenance.name} (${loaded.provenance.file}; --random-init for an untrained one)\n`);
  else
    process.stderr.write(
      `irlens: loaded ${loaded.weights.report.loaded} tensors from ${loaded.weights.file} [${loaded.weights.source}]` +
        (loaded.weights.report.skipped.length ? `, skipped ${loaded.weights.report.skipped.length} recomputed buffers` : '') +
        '\n',
    );
  loaded.model.task(o.task); // validates --task early, with the list of branches
  return loaded;
}
