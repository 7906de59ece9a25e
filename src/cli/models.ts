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
    .action(async (filter: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      await startBackend(cmd.optsWithGlobals().backend, true);
      const rows = presetRows(filter);
      if (rows.length === 0) throw new Error(`models: no preset matches '${filter}'`);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      const w = Math.max(...rows.map((r) => r.name.length), 6);
      process.stdout.write(`${'preset'.padEnd(w)}  ${'family'.padEnd(9)}  ${'params'.padStart(11)}  ${'task'.padEnd(9)}  description\n`);
      for (const r of rows)
        process.stdout.write(
          `${r.name.padEnd(w)}  ${r.family.padEnd(9)}  ${r.params.toLocaleString('en-US').padStart(11)}  ${r.task.padEnd(9)}  ${r.description}\n`,
        );
    });
}
