/**
 * Signals that arrive while native kernels run must not corrupt the process. oneDNN 2.6's AVX-512 f32 GEMM
 * (dnnl_sgemm) runs with its stack pointer in heap memory, so a signal handled on that thread writes its frame
 * into the heap (oneDNN #4845). Before the addon deferred signals during its calls, this test's child aborted with
 * "corrupted size vs. prev_size" within a second in 3 of 3 runs.
 *
 * A child process runs native products, a 3x3 conv and its filter gradient on 2 threads, with a JS handler for
 * SIGUSR2, while this process sends it SIGUSR2 as fast as it can; the child must exit 0 with every result equal
 * to its first one, bit for bit. Without the native addon the child runs the wasm kernels and the check still holds.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'irlens_native.node');
const CHILD = path.join(__dirname, 'signal-flood-child.ts');

describe('signals during native kernels', () => {
  it('a child flooded with SIGUSR2 (JS handler) while it runs products and convs exits 0 with unchanged results', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { cwd: ROOT, env: { ...process.env, IRLENS_THREADS: '2' } });
    let stdout = '';
    let stderr = '';
    let flooding = false;
    let sent = 0;
    const flood = () => {
      if (!flooding) return;
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(child.pid!, 'SIGUSR2');
          sent++;
        } catch {
          flooding = false;
          return;
        }
      }
      setImmediate(flood);
    };
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!flooding && stdout.includes('ready\n') && !stdout.includes('{')) {
        flooding = true;
        flood();
      }
      if (stdout.includes('{')) flooding = false;
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => {
        flooding = false;
        resolve({ code, signal });
      }),
    );
    expect(exit, `child stderr: ${stderr}`).toEqual({ code: 0, signal: null });
    const result = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { path: string; rounds: number; differ: number; handled: number };
    if (fs.existsSync(ADDON) && process.env.IRLENS_NATIVE !== '0') expect(result.path).toBe('native-openblas');
    expect(result.differ).toBe(0);
    expect(result.rounds).toBeGreaterThan(1);
    expect(result.handled).toBeGreaterThan(0);
    expect(sent).toBeGreaterThan(100);
  }, 120_000);
});
