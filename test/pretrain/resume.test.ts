/**
 * Exact resume, for real: the CLI runs as a child process, is killed with SIGKILL a few steps after its first
 * checkpoint, and is resumed; its final weights must be byte-identical to an uninterrupted run's (multi-task
 * refnet, random task order, so optimizer slots, per-parameter step counts, sampler and Rng state all matter).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'src/cli/main.ts');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-resume-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the pretrain CLI; `killWhen` is polled (every 2 ms) and SIGKILLs the child once it returns true. */
function cli(args: string[], killWhen?: () => boolean): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, '--backend', 'wasm', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    const timer = killWhen
      ? setInterval(() => {
          if (!child.killed && killWhen()) child.kill('SIGKILL');
        }, 2)
      : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearInterval(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const RUN = ['pretrain', 'train', '--model', 'refnet-tiny', '--tasks', 'dn-25,dr-light', '--task-order', 'random', '--task-weights', '2,1',
  '--steps', '80', '--batch', '4', '--patch', '32', '--lr', '2e-3', '--warmup', '4', '--clip-norm', '0.5', '--eval-every', '16',
  '--ckpt-every', '8', '--eval-size', '32', '--seed', '3', '--no-progress'];

const trainLines = (dir: string) =>
  fs
    .readFileSync(path.join(dir, 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .map(({ its: _its, sec: _sec, ...rest }) => rest); // timings differ between runs

describe('resume after SIGKILL', () => {
  it('reaches the same final weights as an uninterrupted run', async () => {
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    // Kill between checkpoints (after step 11 is logged): the resumed run must also drop the log lines after
    // its checkpoint and redraw exactly the same batches.
    const logged = (step: number) => {
      try {
        return fs.readFileSync(path.join(b, 'train.jsonl'), 'utf8').includes(`"step":${step},`);
      } catch {
        return false;
      }
    };
    const [full, killed] = await Promise.all([cli([...RUN, '--run-dir', a]), cli([...RUN, '--run-dir', b], () => logged(11))]);
    expect(full.code, full.stderr).toBe(0);
    expect(killed.signal).toBe('SIGKILL');
    expect(fs.existsSync(path.join(b, 'model.safetensors'))).toBe(false); // really killed mid-run
    const state = JSON.parse(fs.readFileSync(path.join(b, 'state.json'), 'utf8'));
    expect(state.step).toBeGreaterThanOrEqual(8);
    expect(state.step).toBeLessThan(80);
    expect(state.done).toBe(false);
    const logAtKill = fs.statSync(path.join(b, 'train.jsonl')).size;

    const resumed = await cli(['pretrain', 'train', '--run-dir', b, '--resume', '--no-progress']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`resumed at ${state.step}`));
    if (state.step === 8) expect(logAtKill).toBeGreaterThan(state.logBytes); // usual case: lines after the checkpoint

    const wa = fs.readFileSync(path.join(a, 'model.safetensors'));
    const wb = fs.readFileSync(path.join(b, 'model.safetensors'));
    expect(wb.equals(wa)).toBe(true);
    expect(trainLines(b)).toEqual(trainLines(a));
    expect(fs.readdirSync(path.join(b, 'checkpoints'))).toEqual(['step-00000080']);
    expect(fs.readdirSync(b).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    // A resumed run keeps its options; a different one is a one-line error.
    const clash = await cli(['pretrain', 'train', '--run-dir', b, '--resume', '--lr', '1e-3']);
    expect(clash.code).toBe(1);
    expect(clash.stderr.trim().split('\n')).toEqual(["irlens: error: --resume: --lr 0.001 differs from the run's 0.002; a resumed run keeps its options"]);
  });

  it('bad options fail with one line and leave no run directory', async () => {
    const c = path.join(tmp, 'c');
    const bad = await cli(['pretrain', 'train', '--model', 'refnet-tiny', '--tasks', 'sr-x2', '--run-dir', c, '--steps', '2']);
    expect(bad.code).toBe(1);
    const lines = bad.stderr.trim().split('\n').filter((l) => !l.startsWith('irlens: backend'));
    expect(lines).toEqual(["irlens: error: refnet restores same-size images and cannot train task 'sr-x2' (scale 2)"]);
    expect(fs.existsSync(c)).toBe(false);
    const badNum = await cli(['pretrain', 'train', '--model', 'refnet-tiny', '--tasks', 'dn-25', '--run-dir', c, '--steps', 'x']);
    expect(badNum.code).toBe(1);
    expect(badNum.stderr.trim()).toBe("irlens: error: --steps: expected a positive integer, got 'x'");
    expect(fs.existsSync(c)).toBe(false);
  });
});
