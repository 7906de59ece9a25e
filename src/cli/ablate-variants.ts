/**
 * `irlens ablate variants`: architectural ablations (src/pretrain/variants/). Trains each named variant of a
 * family (config deltas of its descriptor, on top of the preset's tiny or paper network) with equal compute
 * for several seeds, evaluates them on held-out images and compares each with the baseline (paired by seed),
 * then writes reports/ablate-variants-<arch>.{html,json}. --resume continues the run directory's ablation with
 * its stored settings.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { choiceOption, flagName, givenOptions, parseList, parsePositiveInt, startBackend } from './common';
import {
  buildVariantsConfig,
  defaultVariantsRunDir,
  readVariantsConfig,
  runVariants,
  variantArchs,
  VARIANT_PRESETS,
  writeVariantsReport,
  type VariantPreset,
  type VariantsConfig,
} from '../pretrain/variants';
import { getFamily } from '../models/family';

interface VariantsCliOptions {
  arch: string;
  variants?: string[];
  baseline?: string;
  model?: string;
  task?: string;
  seeds?: number;
  preset: string;
  steps?: number;
  batch?: number;
  data?: string;
  evalImages?: number;
  runDir?: string;
  resume?: boolean;
  out?: string;
  json?: boolean;
  list?: boolean;
  progress: boolean;
}

/** Options that steer this process only (they may differ on --resume). */
const PROCESS_OPTIONS = new Set(['runDir', 'out', 'resume', 'json', 'list', 'progress', 'backend']);

/**
 * Options that `ablate` itself also declares (--task, --data, --batch, --json, --out): commander lets a parent
 * command take its own options wherever they appear (the program cannot use positional options without changing
 * every other command), so under `ablate` they land on the parent. They mean the same here; take them from there.
 */
const SHARED_WITH_ABLATE = ['task', 'data', 'batch', 'json', 'out'] as const;

function withParentOptions(cmd: Command, o: VariantsCliOptions): { options: VariantsCliOptions; given: string[] } {
  const options = { ...o } as Record<string, unknown>;
  const given = givenOptions(cmd, PROCESS_OPTIONS);
  const parent = cmd.parent;
  if (parent)
    for (const k of SHARED_WITH_ABLATE)
      if (parent.getOptionValueSource(k) === 'cli' && cmd.getOptionValueSource(k) !== 'cli') {
        options[k] = parent.opts()[k];
        if (!PROCESS_OPTIONS.has(k)) given.push(k);
      }
  return { options: options as unknown as VariantsCliOptions, given };
}

function configFromOptions(o: VariantsCliOptions): VariantsConfig {
  if (!o.variants) throw new Error(`--variants: expected a comma-separated list of ${o.arch} variants (\`ablate variants --arch ${o.arch} --list\` shows them)`);
  return buildVariantsConfig(o.preset as VariantPreset, o.arch, {
    model: o.model,
    task: o.task,
    variants: o.variants,
    baseline: o.baseline,
    seeds: o.seeds,
    steps: o.steps,
    batch: o.batch,
    data: o.data,
    evalImages: o.evalImages,
  });
}

/** --resume: the stored settings; options typed explicitly must rebuild the same values. */
function resumeConfig(cmd: Command, o: VariantsCliOptions, given: string[], runDir: string): VariantsConfig {
  const stored = readVariantsConfig(runDir);
  if (given.length === 0) return stored;
  const rebuilt = configFromOptions({
    ...o,
    arch: cmd.getOptionValueSource('arch') === 'cli' ? o.arch : stored.arch,
    preset: cmd.getOptionValueSource('preset') === 'cli' ? o.preset : stored.preset,
    variants: o.variants ?? stored.variants,
  });
  const field: Record<string, (c: VariantsConfig) => unknown> = {
    arch: (c) => c.arch,
    preset: (c) => c.preset,
    model: (c) => c.model,
    task: (c) => c.task,
    variants: (c) => c.variants,
    baseline: (c) => c.baseline,
    seeds: (c) => c.seeds,
    steps: (c) => c.steps,
    batch: (c) => c.batch,
    data: (c) => c.data,
    evalImages: (c) => c.split.eval,
  };
  for (const k of given) {
    const get = field[k];
    if (get && JSON.stringify(get(rebuilt)) !== JSON.stringify(get(stored)))
      throw new Error(`--resume: ${flagName(k)} gives ${JSON.stringify(get(rebuilt))} but the ablation in '${runDir}' has ${JSON.stringify(get(stored))}; a resumed ablation keeps its settings`);
  }
  return stored;
}

function outBase(out: string | undefined, arch: string): string {
  const base = (out ?? path.join('reports', `ablate-variants-${arch}`)).replace(/\.(html|json)$/i, '');
  if (base === '' || /[\\/]$/.test(base)) throw new Error(`--out: expected a base file path such as reports/my-variants, got '${out}'`);
  if (fs.existsSync(base) && fs.statSync(base).isDirectory()) throw new Error(`--out: '${base}' is a directory; give a base file path such as ${path.join(base, 'variants')}`);
  return base;
}

export function variantsCommand(): Command {
  return new Command('variants')
    .description('architectural ablations: train named variants of a family (config deltas on its tiny or paper preset) at equal compute over seeds; mean ± std, paired differences to the baseline with bootstrap CI and paired tests -> reports/ablate-variants-<arch>.{html,json}')
    .addOption(choiceOption('--arch <name>', 'family (the families that declare variants)', variantArchs()))
    .option('--variants <list>', 'comma-separated variant names; the first is the baseline unless --baseline', parseList('--variants'))
    .option('--baseline <name>', 'the variant the others are compared with (default: the first of --variants)')
    .option('--list', 'list the variants of --arch (or of every family) and exit')
    .option('--model <preset>', "preset the variants apply to (default: the family's tiny preset; its paper preset with --preset paper)")
    .option('--task <name>', 'synthetic task (default: sr-x2 for SwinIR/EDT, dn-25 for Restormer/MPRNet)')
    .option('--seeds <n>', 'number of seeds (0..n-1; at least 2)', parsePositiveInt('--seeds'))
    .addOption(choiceOption('--preset <name>', 'smoke (seconds; tests), cpu (a 2-core machine, < 45 min for 2-3 variants), paper (the papers\' schedules, for GPUs)', VARIANT_PRESETS, 'cpu'))
    .option('--steps <n>', 'training steps of every run', parsePositiveInt('--steps'))
    .option('--batch <n>', 'batch size of every run', parsePositiveInt('--batch'))
    .option('--data <dir>', 'clean images to split into training and held-out (default: the built-in images)')
    .option('--eval-images <n>', 'held-out images', parsePositiveInt('--eval-images'))
    .option('--run-dir <dir>', 'run directory (default runs/ablate-variants-<arch>)')
    .option('--resume', 'continue the ablation in --run-dir (finished runs are skipped, an interrupted one resumes from its checkpoint)')
    .option('--out <path>', 'base path of the reports (default reports/ablate-variants-<arch>)')
    .option('--json', 'print the summary as JSON on stdout')
    .option('--no-progress', 'no progress bars')
    .action(async (typed: VariantsCliOptions, cmd: Command) => {
      const { options: o, given } = withParentOptions(cmd, typed);
      if (o.list) {
        const archs = cmd.getOptionValueSource('arch') === 'cli' ? [o.arch] : variantArchs();
        for (const a of archs) {
          process.stdout.write(`${a}:\n`);
          for (const [name, v] of Object.entries(getFamily(a).variants ?? {})) process.stdout.write(`  ${name.padEnd(14)} ${v.description}\n`);
        }
        return;
      }
      const archGiven = cmd.getOptionValueSource('arch') === 'cli';
      if (!archGiven && !(o.resume && o.runDir)) throw new Error(`--arch: expected one of ${variantArchs().join(', ')} (or --resume with --run-dir)`);
      const runDir = o.runDir ?? defaultVariantsRunDir(o.arch);
      // The checks build each variant's network: the backend must be up first.
      await startBackend(cmd.optsWithGlobals().backend as string | undefined);
      const config = o.resume ? resumeConfig(cmd, o, given, runDir) : configFromOptions(o);
      const base = outBase(o.out, config.arch);
      let root: Command = cmd;
      while (root.parent) root = root.parent;
      // The program's argv as parsed (commander keeps it as rawArgs, untyped): right in-process too (tests, notebooks).
      const raw = (root as unknown as { rawArgs?: string[] }).rawArgs ?? process.argv;
      const command = ['irlens', ...raw.slice(2)].join(' ');
      const result = await runVariants(config, runDir, {
        resume: o.resume,
        progress: o.progress && process.stderr.isTTY,
        notify: (l) => process.stderr.write(`${l}\n`),
        command,
      });
      const files = writeVariantsReport(result, base);
      if (o.json) process.stdout.write(`${JSON.stringify({ summary: result.summary, accounting: result.accounting, files, wallSeconds: result.provenance.wallSeconds }, null, 1)}\n`);
      else process.stdout.write(`wrote ${files.html}, ${files.json}\n`);
    });
}
