/** `pretrain train` without --patch trains at the model's valid default patch (issue 10: edt-tiny needs multiples of 24 x scale). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { trainingDefaults } from '../../src/models/registry';
import { describeTask } from '../../src/pretrain/multitask';
import { runCli } from './run-cli';

let dir: string;
beforeAll(async () => {
  process.env.IRLENS_BACKEND = 'wasm';
  await initBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-patch-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('pretrain train --patch default', () => {
  it('edt-tiny sr-x2 without --patch trains at trainingDefaults(...).patch, not 64', async () => {
    const runDir = path.join(dir, 'edt');
    const r = await runCli('pretrain', 'train', '--model', 'edt-tiny', '--tasks', 'sr-x2', '--steps', '1', '--batch', '1', '--eval-every', '0', '--eval-count', '1', '--eval-size', '48', '--run-dir', runDir, '--no-progress');
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const want = trainingDefaults('edt-tiny', {}, [describeTask('sr-x2')]).patch;
    expect(want % 48).toBe(0); // 24 (window) x 2 (scale)
    expect(want).not.toBe(64);
    const run = JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8'));
    expect(run.train.patch).toBe(want);
  }, 120_000);

  it('an explicit invalid --patch keeps its one-line error', async () => {
    const r = await runCli('pretrain', 'train', '--model', 'edt-tiny', '--tasks', 'sr-x2', '--steps', '1', '--patch', '64', '--run-dir', path.join(dir, 'bad'), '--no-progress');
    expect(r.code).toBe(1);
    const errors = r.stderr.trim().split('\n').filter((l) => l.startsWith('irlens: error'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^irlens: error: --patch 64: .*multiples of 24/);
  });

  it('a task no degradation makes, or one the family cannot be configured for, is a --tasks error and creates nothing', async () => {
    const cases: [string[], RegExp][] = [
      [['--tasks', 'sr-x9'], /^irlens: error: --tasks: unknown degradation 'sr-x9'; valid forms: .*a named task needs --lq-dir\/--gt-dir/],
      [['--tasks', 'sr-x5'], /^irlens: error: --tasks: edt-tiny cannot train sr-x5 \(edt config: SCALES=\[5\]/],
      [['--tasks', 'sr-x5', '--patch', '48'], /^irlens: error: --tasks: edt-tiny cannot train 'sr-x5' \(edt config: SCALES=\[5\]/],
    ];
    for (const [args, re] of cases) {
      const runDir = path.join(dir, 'tasks');
      const r = await runCli('pretrain', 'train', '--model', 'edt-tiny', ...args, '--steps', '1', '--run-dir', runDir, '--no-progress');
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n').pop()).toMatch(re);
      expect(fs.existsSync(runDir)).toBe(false);
    }
  });
});
