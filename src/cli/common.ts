/** Shared CLI plumbing: backend start-up, one-line errors, option parsers. */
import { BackendInfo, initBackend } from '../engine/backend';

/** Starts the backend from --backend (or IRLENS_BACKEND) and states it on stderr, as every command does. */
export async function startBackend(requested?: string, quiet = false): Promise<BackendInfo> {
  const info = await initBackend(requested);
  if (!quiet) process.stderr.write(`irlens: backend ${info.name} — ${info.description}\n`);
  return info;
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

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
