/**
 * What every analysis output states about where it came from: the command line, irlens's version and git commit,
 * the compute path and the weights of each model (src/weights/provenance.ts). Reports put it in their JSON, HTML
 * header and figure footer, so a figure copied out of its report still says what produced it.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { computePath } from '../engine/compute';
import { IRLENS_VERSION } from '../version';
import { describeWeights, weightsLine, type WeightsDescription, type WeightsProvenance } from '../weights/provenance';

export interface RunProvenance {
  /** The command line as typed (null when called from the library without one). */
  command: string | null;
  irlens: string;
  /** HEAD of the git checkout irlens runs from; null outside a checkout (an npm install) or without git. */
  gitCommit: string | null;
  /** True when that checkout has uncommitted changes (null when unknown). */
  gitDirty: boolean | null;
  /** Which kernels ran the heavy ops (engine/compute.ts). */
  compute: { kind: string; threads: number; description: string };
}

export interface ModelWeights extends WeightsDescription {
  /** One line for figure footers and logs (weightsLine). */
  line: string;
}

let git: { commit: string | null; dirty: boolean | null } | undefined;

/** The git commit of irlens's own source tree, read once per process; never throws. */
export function irlensGitCommit(): { commit: string | null; dirty: boolean | null } {
  if (git) return git;
  const root = path.resolve(__dirname, '..', '..');
  const run = (args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim();
  try {
    // Only a checkout whose top level is irlens itself: an install inside someone else's repository must not
    // report that repository's commit.
    if (path.resolve(run(['rev-parse', '--show-toplevel'])) !== root) throw new Error('not irlens');
    const commit = run(['rev-parse', 'HEAD']);
    let dirty: boolean | null = null;
    try {
      dirty = run(['status', '--porcelain', '--untracked-files=no']) !== '';
    } catch {
      dirty = null;
    }
    git = { commit, dirty };
  } catch {
    git = { commit: null, dirty: null };
  }
  return git;
}

/** Shell-style quoting of one argument (for a command line a user can paste back). */
function quoteArg(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** `irlens <args...>` from argv-style arguments (without node and the script). */
export function commandLine(args: readonly string[]): string {
  return ['irlens', ...args.map(quoteArg)].join(' ');
}

/** The run's provenance; `command` is the command line (commandLine()) or null. Call after initBackend. */
export function runProvenance(command: string | null): RunProvenance {
  const g = irlensGitCommit();
  const c = computePath();
  return { command, irlens: IRLENS_VERSION, gitCommit: g.commit, gitDirty: g.dirty, compute: { kind: c.kind, threads: c.threads, description: c.description } };
}

/** describeWeights plus its one-line form. */
export function modelWeights(p: WeightsProvenance): ModelWeights {
  return { ...describeWeights(p), line: weightsLine(p) };
}

/** "irlens 0.3.0 (git 1a2b3c4d5e6f, modified)" */
export function versionLine(p: Pick<RunProvenance, 'irlens' | 'gitCommit' | 'gitDirty'>): string {
  return `irlens ${p.irlens}${p.gitCommit ? ` (git ${p.gitCommit.slice(0, 12)}${p.gitDirty ? ', modified' : ''})` : ''}`;
}
