/**
 * `irlens weights list [FILTER] [--json]`: every official checkpoint of the four papers and every trained weights
 * file shipped with irlens; `irlens weights get NAME...`: official checkpoints into the cache (IRLENS_HOME),
 * resumable, verified by sha256 (when known) and a strict load into their preset.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import '../models'; // registers the families (their descriptors may list official weights)
import {
  cachedWeightsPath,
  downloadUrl,
  getOfficialWeights,
  irlensHome,
  officialWeights,
  requireOfficialWeights,
  shippedWeights,
  shippedWeightsDir,
} from '../weights';
import { startBackend } from './common';

export interface WeightsRow {
  name: string;
  kind: 'official' | 'shipped';
  family: string;
  /** irlens preset the file loads into ('' when irlens has none yet: see note). */
  preset: string;
  task: string;
  file: string;
  /** Where the file is (shipped) or will be once fetched (official). */
  path: string;
  /** The file is on disk. */
  present: boolean;
  source: string;
  /** Direct URL (with IRLENS_WEIGHTS_MIRROR: the mirror's). */
  url: string | null;
  sizeBytes: number | null;
  sha256: string | null;
  /** Shipped weights: held-out PSNR gain over the degraded input (dB), per task. */
  psnrGain?: Record<string, number>;
  note?: string;
}

export function weightsRows(filter?: string): WeightsRow[] {
  const home = irlensHome();
  const rows: WeightsRow[] = [];
  for (const e of officialWeights()) {
    const p = cachedWeightsPath(e.family, e.file, home);
    rows.push({
      name: e.name,
      kind: 'official',
      family: e.family,
      preset: e.preset,
      task: e.task,
      file: e.file,
      path: p,
      present: fs.existsSync(p),
      source: e.source,
      url: downloadUrl(e) ?? null,
      sizeBytes: e.sizeBytes ?? null,
      sha256: e.sha256 ?? null,
      ...(e.note ? { note: e.note } : {}),
    });
  }
  for (const w of shippedWeights()) {
    const p = path.join(shippedWeightsDir(), w.file);
    rows.push({
      name: w.name,
      kind: 'shipped',
      family: w.preset.split('-')[0],
      preset: w.preset,
      task: w.tasks.join(','),
      file: w.file,
      path: p,
      present: fs.existsSync(p),
      source: 'irlens weights/ (scripts/train-tiny-weights.sh)',
      url: null,
      sizeBytes: w.bytes,
      sha256: w.sha256,
      psnrGain: Object.fromEntries(Object.entries(w.heldOut).map(([t, s]) => [t, Math.round(s.psnrGain * 100) / 100])),
      note: `${w.default ? `default weights of ${w.preset}; ` : ''}trained by ${w.trainedBy}`,
    });
  }
  if (!filter) return rows;
  const f = filter.toLowerCase();
  return rows.filter((r) => [r.name, r.preset, r.family, r.task, r.file].some((v) => v.toLowerCase().includes(f)));
}

function listCommand(): Command {
  return new Command('list')
    .description('list official checkpoints and shipped trained weights (preset, task, file, source, URL)')
    .argument('[filter]', 'only entries whose name, preset, family, task or file contains this text')
    .option('--json', 'print JSON (one object per entry)')
    .action((_filter: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      // `npm run weights -- list swinir -- --json` passes a literal `--` before --json (as for `models`).
      const operands = cmd.args.filter((a) => a !== '--json');
      const json = opts.json || operands.length < cmd.args.length;
      if (operands.length > 1) throw new Error(`weights list: expected at most one filter, got ${operands.map((a) => `'${a}'`).join(' ')}`);
      const rows = weightsRows(operands[0]);
      if (rows.length === 0) throw new Error(`weights list: nothing matches '${operands[0]}'`);
      if (json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      const nw = Math.max(...rows.map((r) => r.name.length), 4);
      const pw = Math.max(...rows.map((r) => (r.preset || '(none)').length), 6);
      const tw = Math.max(...rows.map((r) => r.task.length), 4);
      process.stdout.write(`${'name'.padEnd(nw)}  ${'preset'.padEnd(pw)}  ${'task'.padEnd(tw)}  got  download\n`);
      for (const r of rows) {
        const where = r.kind === 'shipped' ? `shipped (${Object.entries(r.psnrGain ?? {}).map(([t, g]) => `${t} ${g >= 0 ? "+" : ""}${g} dB`).join(', ')})` : (r.url ?? `folder only: ${r.source}`);
        process.stdout.write(`${r.name.padEnd(nw)}  ${(r.preset || '(none)').padEnd(pw)}  ${r.task.padEnd(tw)}  ${r.present ? 'yes' : ' - '}  ${where}${r.note && r.kind === 'official' ? `  [${r.note}]` : ''}\n`);
      }
      process.stdout.write(`\ncache: ${irlensHome()} (IRLENS_HOME); use one as PRESET@NAME, e.g. swinir-sr-x2@001_classicalSR_DF2K_s64w8_SwinIR-M_x2\n`);
    });
}

function getCommand(): Command {
  return new Command('get')
    .description('download official checkpoints into the cache (resumable; verified by sha256 when known and a strict load)')
    .argument('<names...>', 'catalog names (irlens weights list) or file names')
    .option('--no-progress', 'no progress bar')
    .addHelpText(
      'after',
      '\nCache: $IRLENS_HOME/weights/<family>/<file> (default ~/.cache/irlens). IRLENS_WEIGHTS_MIRROR=<base URL> fetches\n<base URL>/<file name> instead of the origin; IRLENS_OFFLINE=1 never touches the network. A cut download resumes\non the next call; a file that fails its checks is removed.\n',
    )
    .action(async (names: string[], opts: { progress: boolean }, cmd: Command) => {
      const entries = names.map((n) => requireOfficialWeights(n)); // every name checked before any download
      await startBackend(cmd.optsWithGlobals().backend, true);
      for (const entry of entries) {
        const got = await getOfficialWeights(entry, {
          progress: opts.progress && !!process.stderr.isTTY,
          onStart: (url, dest, at) => process.stderr.write(`irlens: ${entry.name}: ${at ? `resuming at byte ${at}` : 'downloading'} ${url} -> ${dest}\n`),
        });
        process.stderr.write(`irlens: ${entry.name}: ${got.downloaded ? 'downloaded and verified' : 'already in the cache'}${entry.preset ? ` (loads into ${entry.preset})` : ''}\n`);
        process.stdout.write(`${got.file}\n`);
      }
    });
}

export function weightsCommand(): Command {
  return new Command('weights')
    .description('official checkpoints (list, download into the cache) and the trained weights shipped with irlens')
    .addCommand(listCommand())
    .addCommand(getCommand());
}
