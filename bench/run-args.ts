/**
 * The options the per-model bench scripts share (--model, --size HxW, --train, --top N, --json FILE, and any
 * script-specific string options), parsed with node's util.parseArgs; bad values are one-line errors naming
 * the script and the option.
 */
import { parseArgs } from 'node:util';

export interface RunArgs {
  model: string;
  size: [number, number];
  train: boolean;
  top: number;
  json?: string;
  /** The script-specific options, as given (or their defaults). */
  extra: Record<string, string | undefined>;
}

export function positiveInteger(tool: string, option: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${tool}: ${option} expects a positive integer, got '${value}'`);
  return n;
}

export function parseRunArgs(tool: string, argv: string[], defaults: { model: string; size: [number, number] }, extra: Record<string, string | undefined> = {}): RunArgs {
  const options = {
    model: { type: 'string' as const },
    size: { type: 'string' as const },
    train: { type: 'boolean' as const },
    top: { type: 'string' as const },
    json: { type: 'string' as const },
    ...Object.fromEntries(Object.keys(extra).map((k) => [k, { type: 'string' as const }])),
  };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new Error(`${tool}: ${(e as Error).message.split('\n')[0]}`);
  }
  let size = defaults.size;
  if (typeof values.size === 'string') {
    const m = /^(\d+)x(\d+)$/.exec(values.size);
    if (!m) throw new Error(`${tool}: --size expects HxW, got '${values.size}'`);
    size = [Number(m[1]), Number(m[2])];
  }
  return {
    model: typeof values.model === 'string' ? values.model : defaults.model,
    size,
    train: values.train === true,
    top: typeof values.top === 'string' ? positiveInteger(tool, '--top', values.top) : 25,
    json: typeof values.json === 'string' ? values.json : undefined,
    extra: Object.fromEntries(Object.entries(extra).map(([k, d]) => [k, typeof values[k] === 'string' ? (values[k] as string) : d])),
  };
}
