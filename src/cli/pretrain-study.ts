/**
 * `irlens pretrain study`: the EDT pre-training study (src/pretrain/study/) from the command line. A preset
 * gives every setting; options override single ones; --resume continues the study in --run-dir with its stored
 * settings (options given explicitly must agree with them). runStudy returns the result; this command writes
 * the report (writeStudyReport) and prints the summary.
 */
import { Command } from 'commander';
import { choiceOption, flagName, givenOptions, parseList, parseNonNegativeInt, parsePositiveInt, startBackend } from './common';
import {
  buildStudyConfig,
  type StudyOverrides,
  checkPlanFits,
  computeAccounting,
  defaultStudyOut,
  defaultStudyRunDir,
  planStudy,
  readStudyConfig,
  runStudy,
  studyArchs,
  studySplit,
  STUDY_ARMS,
  STUDY_PRESETS,
  type StudyArch,
  type StudyConfig,
  type StudyPreset,
  writeStudyReport,
} from '../pretrain/study';

interface StudyCliOptions extends StudyOverrides {
  arch: string;
  preset: string;
  cka: boolean;
  runDir?: string;
  out?: string;
  resume?: boolean;
  dryRun?: boolean;
  progress: boolean;
}

function parseSplit(text: string): [number, number, number] {
  const w = text.split(',').map((s) => Number(s.trim()));
  if (w.length !== 3 || !w.every((x) => Number.isFinite(x) && x > 0)) throw new Error(`--split: expected three positive weights PRETRAIN,FINETUNE,EVAL (e.g. 5,2,3), got '${text}'`);
  return w as [number, number, number];
}

/** Options that steer this process only (they may differ on --resume). */
const PROCESS_OPTIONS = new Set(['runDir', 'out', 'resume', 'dryRun', 'progress', 'backend']);

function configFromOptions(o: StudyCliOptions): StudyConfig {
  return buildStudyConfig(o.preset as StudyPreset, o.arch as StudyArch, {
    targets: o.targets,
    arms: o.arms,
    seeds: o.seeds,
    stepsPretrain: o.stepsPretrain,
    stepsFinetune: o.stepsFinetune,
    batch: o.batch,
    evalEvery: o.evalEvery,
    data: o.data,
    split: o.split,
    cka: o.cka,
  });
}

/** --resume: the stored settings, after checking that options given explicitly rebuild the same values. */
function resumeConfig(cmd: Command, o: StudyCliOptions, runDir: string): StudyConfig {
  const stored = readStudyConfig(runDir);
  const given = givenOptions(cmd, PROCESS_OPTIONS);
  if (given.length === 0) return stored;
  const rebuilt = configFromOptions({ ...o, arch: cmd.getOptionValueSource('arch') === 'cli' ? o.arch : stored.arch, preset: cmd.getOptionValueSource('preset') === 'cli' ? o.preset : stored.preset });
  for (const k of given) {
    const field: Record<string, (c: StudyConfig) => unknown> = {
      arch: (c) => c.arch,
      preset: (c) => c.preset,
      targets: (c) => c.targets,
      arms: (c) => c.arms,
      seeds: (c) => c.seeds,
      stepsPretrain: (c) => c.stepsPretrain,
      stepsFinetune: (c) => c.stepsFinetune,
      batch: (c) => c.batch,
      evalEvery: (c) => c.evalEvery,
      data: (c) => c.data,
      split: (c) => c.split,
      cka: (c) => c.cka.enabled,
    };
    const get = field[k];
    if (get && JSON.stringify(get(rebuilt)) !== JSON.stringify(get(stored)))
      throw new Error(`--resume: ${flagName(k)} gives ${JSON.stringify(get(rebuilt))} but the study in '${runDir}' has ${JSON.stringify(get(stored))}; a resumed study keeps its settings`);
  }
  return stored;
}

function printPlan(c: StudyConfig): void {
  const plan = planStudy(c);
  checkPlanFits(c, plan);
  const split = studySplit(c);
  const w = (s: string) => process.stdout.write(`${s}\n`);
  w(`study ${c.arch} (${c.model}${Object.keys(c.modelConfig).length ? ` ${JSON.stringify(c.modelConfig)}` : ''}), preset ${c.preset}`);
  w(`targets ${c.targets.join(', ')}; arms ${c.arms.join(', ')}; seeds ${c.seeds.join(', ')}`);
  w(`data: ${split.source}; ${split.rule}`);
  w(`  pre-training pool: ${split.pretrain.join(', ')}`);
  w(`  fine-tuning pool:  ${split.finetune.join(', ')}`);
  w(`  held-out:          ${split.eval.join(', ')}`);
  w('equal compute (steps):');
  for (const a of computeAccounting(c, plan)) w(`  ${a.target.padEnd(10)} ${a.arm.padEnd(10)} ${a.pretrainSteps} + ${a.finetuneSteps} = ${a.totalSteps}  (patch ${a.patchSizes})`);
  w(`runs (${plan.length}, ${plan.reduce((s, r) => s + r.steps, 0)} steps):`);
  for (const r of plan) w(`  ${r.id.padEnd(48)} ${r.tasks.join('+').padEnd(28)} ${String(r.steps).padStart(7)} steps, patch ${r.patch}${r.from ? `, from ${r.from}` : ''}`);
}

export function studyCommand(): Command {
  return new Command('study')
    .description("the EDT pre-training study at equal compute: scratch vs single-, related- and unrelated-task pre-training, fine-tuned on each target; PSNR/SSIM over seeds, curves and CKA in reports/pretrain-study-<arch>.{html,json}")
    .addOption(choiceOption('--arch <name>', 'architecture (the families with a study slot)', studyArchs(), 'edt'))
    .addOption(choiceOption('--preset <name>', 'smoke (a couple of minutes), cpu (a 2-core machine, < 45 min), paper (the EDT paper settings, for GPUs)', STUDY_PRESETS, 'cpu'))
    .option('--targets <list>', 'target tasks (default sr-x2,dn-25; sr-up-x2 for same-size networks)', parseList('--targets'))
    .option('--arms <list>', `arms (default all: ${STUDY_ARMS.join(',')}); scratch is required`, parseList('--arms'))
    .option('--seeds <n>', 'number of seeds (0..n-1)', parsePositiveInt('--seeds'))
    .option('--steps-pretrain <n>', 'pre-training steps', parsePositiveInt('--steps-pretrain'))
    .option('--steps-finetune <n>', 'fine-tuning steps (scratch gets pre-train + fine-tune steps)', parsePositiveInt('--steps-finetune'))
    .option('--batch <n>', 'batch size of every run', parsePositiveInt('--batch'))
    .option('--eval-every <n>', 'evaluate held-out crops every N steps for the curves (0 = at the end only)', parseNonNegativeInt('--eval-every'))
    .option('--data <dir>', 'folder of clean images to split into pools (default: the built-in images)')
    .option('--split <p,f,e>', 'relative sizes of the pre-training pool, fine-tuning pool and held-out images (default 5,2,3)', parseSplit)
    .option('--no-cka', 'skip the CKA analyses')
    .option('--run-dir <dir>', 'study run directory (default runs/pretrain-study-<arch>)')
    .option('--out <base>', 'report base path (default reports/pretrain-study-<arch>)')
    .option('--resume', 'continue the study in --run-dir: finished runs are skipped, an interrupted one resumes from its checkpoint')
    .option('--dry-run', 'print the split, the equal-compute accounting and the runs, then exit')
    .option('--no-progress', 'no per-run progress bars')
    .action(async (_opts: unknown, cmd: Command) => {
      const o = cmd.opts() as StudyCliOptions;
      // Validation builds the networks once, so the backend comes first.
      await startBackend(cmd.optsWithGlobals().backend, o.dryRun);
      const runDir = o.runDir ?? defaultStudyRunDir(o.arch as StudyArch);
      const config = o.resume ? resumeConfig(cmd, o, runDir) : configFromOptions(o);
      if (o.dryRun) {
        printPlan(config);
        return;
      }
      const t0 = performance.now();
      const out = o.out ?? defaultStudyOut(config.arch);
      const result = await runStudy(config, runDir, {
        resume: o.resume,
        progress: o.progress,
        command: `irlens pretrain study ${process.argv.slice(process.argv.indexOf('study') + 1).join(' ')}`.trim(),
        notify: (line) => process.stderr.write(`${line}\n`),
      });
      const files = await writeStudyReport(result, out);
      process.stderr.write(`irlens: study report ${files.html}, ${files.json}\n`);
      const lines = result.summary.map(
        (s) =>
          `${s.target.padEnd(10)} ${s.arm.padEnd(10)} PSNR ${s.psnr.mean.toFixed(2)} ± ${s.psnr.std.toFixed(2)} dB  SSIM ${s.ssim.mean.toFixed(4)} ± ${s.ssim.std.toFixed(4)}` +
          (s.deltaPsnr ? `  Δ ${s.deltaPsnr.mean >= 0 ? '+' : ''}${s.deltaPsnr.mean.toFixed(2)} ± ${s.deltaPsnr.std.toFixed(2)} dB` : ''),
      );
      process.stdout.write(`${lines.join('\n')}\nstudy finished in ${((performance.now() - t0) / 60000).toFixed(1)} min; report ${files.html}\n`);
    });
}
