/**
 * Bad-input suite, runs: a resume that cannot resume refuses and touches nothing; a truncated latest checkpoint
 * falls back to the newest intact one; a bad --data creates nothing. Through the CLI in child processes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorLines, expectRefusal, expectSuccess, printTable, runChild, tempDir } from './harness';

const tmp = tempDir('runs');
const base = path.join(tmp, 'base');
afterAll(() => {
  printTable('runs');
  fs.rmSync(tmp, { recursive: true, force: true });
});

const TRAIN = ['pretrain', 'train', '--model', 'refnet-tiny', '--tasks', 'dn-25', '--steps', '6', '--batch', '2', '--patch', '16',
  '--ckpt-every', '2', '--eval-every', '0', '--eval-size', '16', '--keep-checkpoints', '3', '--no-progress'];

/** Every file of a directory with its size and content hash-free fingerprint (size + mtime). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const st = fs.statSync(path.join(dir, f));
    if (st.isFile()) out[f] = `${st.size}@${st.mtimeMs}`;
  }
  return out;
}

function copyRun(name: string): string {
  const dir = path.join(tmp, name);
  fs.cpSync(base, dir, { recursive: true, preserveTimestamps: true });
  return dir;
}

beforeAll(async () => {
  // One short run whose step-4 checkpoint stands for "the latest" (the run finished at 6: state.json says done).
  // Stop at 4 by giving --steps 4 first, so --resume has work left.
  const r = await runChild([...TRAIN.map((a) => (a === '6' ? '4' : a)), '--run-dir', base]);
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

describe.concurrent('resume', () => {
  it('state.json and the checkpoint states missing: refuses and changes nothing', async () => {
    const dir = copyRun('nostate');
    fs.rmSync(path.join(dir, 'state.json'));
    for (const d of fs.readdirSync(path.join(dir, 'checkpoints'))) fs.rmSync(path.join(dir, 'checkpoints', d, 'state.json'));
    const before = snapshot(dir);
    const r = await runChild(['pretrain', 'train', '--resume', '--run-dir', dir, '--no-progress']);
    expectRefusal('resume', r, /--resume: '.*nostate' has no intact checkpoint to resume from \(no state\.json .*\); nothing was changed/);
    expect(snapshot(dir)).toEqual(before);
  });
  it('a truncated latest checkpoint falls back to the newest intact one', async () => {
    const dir = copyRun('cut');
    const latest = path.join(dir, 'checkpoints', 'step-00000004', 'model.safetensors');
    fs.truncateSync(latest, fs.statSync(latest).size - 10);
    const r = await runChild(['pretrain', 'train', '--resume', '--run-dir', dir, '--no-progress']);
    expectSuccess('resume', r);
    expect(r.stderr).toMatch(/skipped damaged checkpoints \(.*step-00000004.*is truncated.*\); resuming from step 2/);
  });
  it('every checkpoint damaged: refuses and lists why, changing nothing', async () => {
    const dir = copyRun('allcut');
    for (const d of fs.readdirSync(path.join(dir, 'checkpoints'))) fs.truncateSync(path.join(dir, 'checkpoints', d, 'optimizer.safetensors'), 20);
    const before = snapshot(dir);
    const r = await runChild(['pretrain', 'train', '--resume', '--run-dir', dir, '--no-progress']);
    expectRefusal('resume', r, /has no intact checkpoint to resume from \(.*optimizer\.safetensors' is truncated/);
    expect(snapshot(dir)).toEqual(before);
  });
  it('each checkpoint directory resumes on its own (state.json at the top removed)', async () => {
    const dir = copyRun('selfdesc');
    fs.rmSync(path.join(dir, 'state.json'));
    const r = await runChild(['pretrain', 'train', '--resume', '--run-dir', dir, '--no-progress']);
    expectSuccess('resume', r);
    expect(errorLines(r.stderr)).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
  });
  it('a bad --data creates no run directory, so the corrected rerun is not "already holds a run"', async () => {
    const dir = path.join(tmp, 'baddata');
    const r = await runChild([...TRAIN, '--data', path.join(tmp, 'no-such-folder'), '--run-dir', dir]);
    expectRefusal('resume', r, /image folder '.*no-such-folder': does not exist/);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
