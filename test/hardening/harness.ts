/**
 * The bad-input suite's harness: runs the irlens CLI as a child process (as a user would), with its peak RSS
 * measured from inside the child (process.resourceUsage().maxRSS at exit, via report-rss.cjs, so no
 * /usr/bin/time is needed), a wall-clock limit, and a table of the results per input class.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { expect, vi } from 'vitest';

// Children queue for two slots shared by all files: a test may wait for others before its own child starts.
vi.setConfig({ testTimeout: 600_000, hookTimeout: 600_000 });

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'src/cli/main.ts');
const PRELOAD = path.join(__dirname, 'report-rss.cjs');

/**
 * Peak memory allowed to any child, and its CPU-time limit ("fails in a few seconds": CPU time, because wall
 * time on a shared 2-core machine mostly measures the neighbours). The wall limit only catches hangs.
 */
export const RSS_LIMIT_MB = 1024;
export const CPU_LIMIT_MS = 20_000;
export const HANG_LIMIT_MS = 150_000;

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  rssMB: number;
  /** The child's user + system CPU time. */
  cpuMs: number;
  ms: number;
}

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `irlens-hard-${tag}-`));
}

/**
 * At most two children at once across all test files (vitest runs files in parallel workers; CI has 2 cores
 * and each child's start-up is CPU-bound): slots are lock files in the temp dir, taken with O_EXCL.
 */
const CHILD_SLOTS = 2;
const SLOT_DIR = path.join(os.tmpdir(), 'irlens-hardening-slots');
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
async function withSlot<T>(fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(SLOT_DIR, { recursive: true });
  for (;;) {
    for (let i = 0; i < CHILD_SLOTS; i++) {
      const lock = path.join(SLOT_DIR, `slot-${i}`);
      try {
        fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      } catch {
        // Left by a killed worker (dead owner), or empty for longer than a write takes: free it.
        try {
          const owner = Number(fs.readFileSync(lock, 'utf8') || 0);
          const stale = owner ? !pidAlive(owner) : Date.now() - fs.statSync(lock).mtimeMs > 5000;
          if (stale) fs.rmSync(lock, { force: true });
        } catch {
          // released meanwhile
        }
        continue;
      }
      try {
        return await fn();
      } finally {
        fs.rmSync(lock, { force: true });
      }
    }
    await new Promise((r) => setTimeout(r, 25 + Math.random() * 25));
  }
}

/** Runs `irlens ...args` (wasm backend) in a child process; `ms` is its own wall time, not time queued. */
export function runChild(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<ChildResult> {
  return withSlot(() => spawnChild(args, opts));
}

function spawnChild(args: string[], opts: { env?: Record<string, string>; cwd?: string }): Promise<ChildResult> {
  const rssFile = path.join(os.tmpdir(), `irlens-rss-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--require', PRELOAD, '--import', 'tsx', CLI, '--backend', 'wasm', ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, IRLENS_RSS_FILE: rssFile, IRLENS_DEBUG: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    const timer = setTimeout(() => child.kill('SIGKILL'), HANG_LIMIT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      let rssMB = NaN;
      let cpuMs = NaN;
      try {
        const m = JSON.parse(fs.readFileSync(rssFile, 'utf8')) as { maxRssKiB: number; cpuMs: number };
        rssMB = m.maxRssKiB / 1024;
        cpuMs = m.cpuMs;
        fs.rmSync(rssFile, { force: true });
      } catch {
        // died without running exit handlers (V8 fatal error, SIGKILL): rssMB stays NaN and the case fails
      }
      resolve({ code, signal, stdout, stderr, rssMB, cpuMs, ms });
    });
  });
}

interface Row {
  cases: number;
  clear: number;
  maxRssMB: number;
  maxCpuMs: number;
  maxMs: number;
}
const table = new Map<string, Row>();

/** The irlens error lines of a child's stderr (warnings and notes excluded). */
export function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('irlens: error:'));
}

/**
 * Asserts a refused input: exit code 1, exactly one `irlens: error:` line matching `pattern`, nothing else on
 * stderr that looks like a stack trace or source dump, peak RSS and time under the limits. Records the row.
 */
export function expectRefusal(cls: string, r: ChildResult, pattern: RegExp): void {
  const row = record(cls, r);
  const errs = errorLines(r.stderr);
  const ok = r.code === 1 && errs.length === 1 && pattern.test(errs[0]) && !/^\s+at |\n\s+at /.test(r.stderr);
  if (ok) row.clear++;
  expect({ code: r.code, signal: r.signal, errors: errs }).toMatchObject({ code: 1, signal: null, errors: [expect.stringMatching(pattern)] });
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr.length).toBeLessThan(4000);
  expect(r.rssMB).toBeLessThan(RSS_LIMIT_MB);
  expect(r.cpuMs).toBeLessThan(CPU_LIMIT_MS);
}

function record(cls: string, r: ChildResult): Row {
  const row = table.get(cls) ?? { cases: 0, clear: 0, maxRssMB: 0, maxCpuMs: 0, maxMs: 0 };
  table.set(cls, row);
  row.cases++;
  // NaN (no measurement: the child died without exit handlers) must show in the table, not vanish in Math.max.
  row.maxRssMB = Number.isNaN(r.rssMB) ? NaN : Math.max(row.maxRssMB, r.rssMB);
  row.maxCpuMs = Number.isNaN(r.cpuMs) ? NaN : Math.max(row.maxCpuMs, r.cpuMs);
  row.maxMs = Math.max(row.maxMs, r.ms);
  return row;
}

/** Records a case that must succeed (exit 0) within the limits. */
export function expectSuccess(cls: string, r: ChildResult): void {
  const row = record(cls, r);
  if (r.code === 0) row.clear++;
  expect({ code: r.code, errors: errorLines(r.stderr) }).toEqual({ code: 0, errors: [] });
  expect(r.rssMB).toBeLessThan(RSS_LIMIT_MB);
  expect(r.cpuMs).toBeLessThan(CPU_LIMIT_MS);
}

/** Prints this file's table rows (class | cases | clear errors | max peak RSS | max time). */
export function printTable(title: string): void {
  const lines = [`bad-input suite, ${title}:`, '| class | cases | clear | max peak RSS | max CPU time | max wall time |', '|---|---|---|---|---|---|'];
  for (const [cls, r] of table)
    lines.push(`| ${cls} | ${r.cases} | ${r.clear} | ${r.maxRssMB.toFixed(0)} MB | ${(r.maxCpuMs / 1000).toFixed(1)} s | ${(r.maxMs / 1000).toFixed(1)} s |`);
  const out = process.env.IRLENS_HARDENING_TABLE;
  if (out) fs.appendFileSync(out, `${lines.slice(3).join('\n')}\n`);
  console.log(lines.join('\n'));
}

/** Files left in `dir` (recursively), relative names, for "no leftover files" checks. */
export function filesIn(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();
}

// ------------------------------------------------------------------------------------------ file generators

/** A .npy (v1.0) with a hand-written header: shapes numpy could not even allocate are fine here. */
export function npyBytes(descr: string, shape: (number | string)[], data: Uint8Array): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(data, 10 + header.length);
  return out;
}

export const f32 = (values: ArrayLike<number>) => new Uint8Array(Float32Array.from(values).buffer);

/** Pickle opcodes for torch.save-style state dicts. */
export const P = {
  proto: [0x80, 2],
  stop: [0x2e],
  mark: [0x28],
  tuple: [0x74],
  emptyTuple: [0x29],
  reduce: [0x52],
  setitems: [0x75],
  binpersid: [0x51],
  newfalse: [0x89],
  global: (mod: string, name: string) => [0x63, ...Buffer.from(`${mod}\n${name}\n`)],
  str: (s: string) => {
    const b = Buffer.from(s, 'utf8');
    return [0x58, b.length & 255, (b.length >> 8) & 255, (b.length >> 16) & 255, b.length >>> 24, ...b];
  },
  int: (n: number) => [0x4a, n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255],
  ints: (xs: number[]) => [0x28, ...xs.flatMap((x) => P.int(x)), 0x74],
};

export interface PickledTensor {
  name: string;
  key: string;
  numel: number;
  offset?: number;
  shape: number[];
  stride: number[];
}

/** data.pkl of an OrderedDict of float32 tensors, as torch.save writes it (protocol 2). */
export function stateDictPickle(tensors: PickledTensor[]): Uint8Array {
  const ops: number[] = [...P.proto, ...P.global('collections', 'OrderedDict'), ...P.emptyTuple, ...P.reduce, ...P.mark];
  for (const t of tensors) {
    ops.push(...P.str(t.name), ...P.global('torch._utils', '_rebuild_tensor_v2'), ...P.mark);
    ops.push(...P.mark, ...P.str('storage'), ...P.global('torch', 'FloatStorage'), ...P.str(t.key), ...P.str('cpu'), ...P.int(t.numel), ...P.tuple, ...P.binpersid);
    ops.push(...P.int(t.offset ?? 0), ...P.ints(t.shape), ...P.ints(t.stride), ...P.newfalse);
    ops.push(...P.global('collections', 'OrderedDict'), ...P.emptyTuple, ...P.reduce, ...P.tuple, ...P.reduce);
  }
  ops.push(...P.setitems, ...P.stop);
  return Uint8Array.from(ops);
}

/**
 * A zip archive written by hand (stored or raw-deflated members), so tests control every declared size: a
 * member may declare an `originalSize` other than its real one, the way a hostile archive would.
 */
export function zipArchive(members: { name: string; data: Uint8Array; deflate?: boolean; declaredSize?: number }[]): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const name = Buffer.from(m.name);
    const body = m.deflate ? zlib.deflateRawSync(m.data, { level: 1 }) : Buffer.from(m.data);
    const crc = zlib.crc32(m.data);
    const size = m.declaredSize ?? m.data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(m.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(m.deflate ? 8 : 0, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(members.length, 8);
  eocd.writeUInt16LE(members.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...locals, cd, eocd]));
}

/** A PNG whose header declares width x height (RGB, 8-bit) with one empty deflate stream: tiny on disk. */
export function pngHeaderOnly(width: number, height: number): Uint8Array {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return new Uint8Array(
    Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      chunk('IDAT', zlib.deflateSync(Buffer.alloc(width + 1))),
      chunk('IEND', Buffer.alloc(0)),
    ]),
  );
}
