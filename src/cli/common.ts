/**
 * Shared CLI plumbing: backend start-up and the one set of option parsers every command uses. Parsers throw a
 * one-line Error naming the option, which src/cli/main.ts prints as `irlens: error: ...` (commander's own
 * choice errors print differently, so choiceOption keeps commander's choice list for --help but parses itself).
 */
import { Command, Option } from 'commander';
import { BackendInfo, initBackend } from '../engine/backend';

export { median } from '../util/stats';

/** Starts the backend from --backend (or IRLENS_BACKEND) and states it on stderr, as every command does. */
export async function startBackend(requested?: string, quiet = false): Promise<BackendInfo> {
  const info = await initBackend(requested);
  if (!quiet) process.stderr.write(`irlens: backend ${info.name} — ${info.description}\n`);
  return info;
}

/** The command-line flag of a commander option key: 'stepsPretrain' -> '--steps-pretrain'. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Keys of the options typed on the command line (not defaults), except `skip`. */
export function givenOptions(cmd: Command, skip: ReadonlySet<string> = new Set()): string[] {
  return Object.keys(cmd.opts()).filter((k) => !skip.has(k) && cmd.getOptionValueSource(k) === 'cli');
}

/** Parses 'HxW' or 'N' (square) into [h, w]. */
export function parseSize(text: string, option = '--size'): [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/i.exec(text.trim());
  if (!m) throw new Error(`${option}: expected HxW or N (e.g. 128x128), got '${text}'`);
  const h = Number(m[1]);
  const w = m[2] === undefined ? h : Number(m[2]);
  if (h < 1 || w < 1) throw new Error(`${option}: sizes must be positive, got '${text}'`);
  return [h, w];
}

/** Parses a positive integer option value, with a one-line error naming the option. */
export function parsePositiveInt(option: string) {
  return (text: string): number => {
    const v = Number(text);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${option}: expected a positive integer, got '${text}'`);
    return v;
  };
}

/** Parses a non-negative integer option value (seeds, counts that may be 0). */
export function parseNonNegativeInt(option: string) {
  return (text: string): number => {
    const v = Number(text);
    if (!Number.isInteger(v) || v < 0) throw new Error(`${option}: expected a non-negative integer, got '${text}'`);
    return v;
  };
}

/** Parses a finite number >= min (> min when `exclusive`). */
export function parseNumber(option: string, min = 0, exclusive = false) {
  return (text: string): number => {
    const v = Number(text);
    if (text.trim() === '' || !Number.isFinite(v) || v < min || (exclusive && v === min))
      throw new Error(`${option}: expected a number ${exclusive ? '>' : '>='} ${min}, got '${text}'`);
    return v;
  };
}

/** Parses a comma-separated list of non-empty items. */
export function parseList(option: string, what = 'a comma-separated list') {
  return (text: string): string[] => {
    const items = text.split(',').map((s) => s.trim());
    if (items.some((s) => s === '')) throw new Error(`${option}: expected ${what}, got '${text}'`);
    return items;
  };
}

/** Parses one of `values`. */
export function parseChoice<T extends string>(option: string, values: readonly T[]) {
  return (text: string): T => {
    if (!(values as readonly string[]).includes(text)) throw new Error(`${option}: expected one of ${values.join(', ')}, got '${text}'`);
    return text as T;
  };
}

/** An option taking one of `values` (listed by --help), with the one-line error of parseChoice. */
export function choiceOption<T extends string>(flags: string, description: string, values: readonly T[], defaultValue?: T): Option {
  const option = new Option(flags, description).choices(values);
  option.argParser(parseChoice(option.long ?? flags, values));
  return defaultValue === undefined ? option : option.default(defaultValue);
}
