/** `irlens models`: the preset table (name, family, default task, parameter count, config). */
import { Command } from 'commander';
import { inspectModel, listPresets } from '../models';
import { startBackend } from './common';

export interface PresetRow {
  name: string;
  family: string;
  /** Default task branch, then every branch. */
  task: string;
  tasks: string[];
  params: number;
  officialParams?: number;
  description: string;
  config: Record<string, unknown>;
}

export function presetRows(filter?: string): PresetRow[] {
  return listPresets()
    .filter((p) => !filter || p.name.includes(filter) || p.family === filter)
    .map((p) => {
      const { params, tasks, config } = inspectModel(p.name);
      return {
        name: p.name,
        family: p.family,
        task: tasks[0].name,
        tasks: tasks.map((t) => t.name),
        params,
        officialParams: p.officialParams,
        description: p.description,
        config,
      };
    });
}

export function modelsCommand(): Command {
  return new Command('models')
    .description('list model presets with parameter counts and official configs')
    .argument('[filter]', 'only presets whose name contains this text, or of this family')
    .option('--json', 'print JSON (one object per preset, with the full config)')
    .addHelpText('after', '\nThe tasks column lists each preset\'s task branches, the default first; commands take one with --task.\n`irlens layers PRESET --task T` lists its hook points.\n')
    .action(async (_filter: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      // `npm run models -- swinir -- --json` passes a literal `--`, after which commander reads `--json` as an operand.
      const operands = cmd.args.filter((a) => a !== '--json');
      const json = opts.json || operands.length < cmd.args.length;
      if (operands.length > 1) throw new Error(`models: expected at most one filter, got ${operands.map((a) => `'${a}'`).join(' ')}`);
      const filter = operands[0];
      await startBackend(cmd.optsWithGlobals().backend, true);
      const rows = presetRows(filter);
      if (rows.length === 0) throw new Error(`models: no preset matches '${filter}'`);
      if (json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      const w = Math.max(...rows.map((r) => r.name.length), 6);
      const tw = Math.max(...rows.map((r) => r.tasks.join(',').length), 5);
      process.stdout.write(`${'preset'.padEnd(w)}  ${'family'.padEnd(9)}  ${'params'.padStart(11)}  ${'tasks'.padEnd(tw)}  description\n`);
      for (const r of rows)
        process.stdout.write(
          `${r.name.padEnd(w)}  ${r.family.padEnd(9)}  ${r.params.toLocaleString('en-US').padStart(11)}  ${r.tasks.join(',').padEnd(tw)}  ${r.description}\n`,
        );
    });
}
