import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { readNpy } from '../../src/io/npy';
import { runCli } from './run-cli';

const FIX = path.join(__dirname, '..', 'fixtures', 'swinir');
let dir: string;

beforeAll(async () => {
  process.env.IRLENS_BACKEND = 'wasm';
  await initBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-cli-'));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('irlens info / models', () => {
  it('states versions, backend and built-in data', async () => {
    const r = await runCli('info', '--json');
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.backend.name).toBe('wasm');
    expect(info.builtinImages).toHaveLength(10);
    expect(info.families).toEqual(expect.arrayContaining(['restormer', 'mprnet', 'swinir', 'edt']));
  });

  it('lists presets with the official parameter counts', async () => {
    const r = await runCli('models', 'swinir-light', '--json');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { name: string; params: number; officialParams: number; task: string }[];
    expect(rows.map((x) => x.name)).toEqual(['swinir-light-sr-x2', 'swinir-light-sr-x3', 'swinir-light-sr-x4']);
    for (const row of rows) expect(row.params).toBe(row.officialParams);
    expect(rows[2].task).toBe('sr-x4');
    const bad = await runCli('models', 'nothing-like-this');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^irlens: error: models: no preset matches 'nothing-like-this'\n$/m);
  });
});

describe('irlens restore', () => {
  it('runs official-format weights on a PyTorch-layout .npy and writes the same layout', async () => {
    const out = path.join(dir, 'out.npy');
    const r = await runCli('restore', '--model', `swinir-tiny@${path.join(FIX, 'tiny.pth')}`, '--input', path.join(FIX, 'tiny_in.npy'), '--output', out);
    expect(r.code).toBe(0);
    const got = readNpy(out);
    const want = readNpy(path.join(FIX, 'tiny_out.npy'));
    expect(got.shape).toEqual(want.shape);
    let maxDiff = 0;
    for (let i = 0; i < got.data.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(Number(got.data[i]) - Math.min(1, Math.max(0, Number(want.data[i])))));
    expect(maxDiff).toBeLessThan(1e-4); // restore clamps to [0,1], like the official test scripts
  });

  it('writes a PNG from an image', async () => {
    const out = path.join(dir, 'sr.png');
    const r = await runCli('restore', '--model', 'refnet-tiny', '--input', 'data/camera.png', '--output', out);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/no weights; using seeded random init/);
    expect(fs.readFileSync(out).subarray(1, 4).toString()).toBe('PNG');
  });

  it('fails with one line, a non-zero exit and no output file on bad input', async () => {
    const out = path.join(dir, 'never.png');
    const cases: [string[], RegExp][] = [
      [['--model', 'refnet-tiny', '--input', path.join(dir, 'missing.png'), '--output', out], /--input: file '.*missing\.png' does not exist/],
      [['--model', 'refnet-tiny', '--input', 'data/camera.png', '--output', path.join(dir, 'x.gif')], /--output '.*x\.gif': expected a \.png or \.npy file name/],
      [['--model', 'refnet-tinny', '--input', 'data/camera.png', '--output', out], /unknown model 'refnet-tinny' \(closest: refnet-tiny/],
      [['--model', 'refnet-tiny', '--config', '{"dim":', '--input', 'data/camera.png', '--output', out], /--config: not valid JSON/],
      [['--model', 'refnet-tiny', '--config', '{"width":4}', '--input', 'data/camera.png', '--output', out], /config: unknown key 'width' for refnet/],
      [['--model', 'swinir-tiny', '--weights', path.join(FIX, 'tiny-light.pth'), '--input', 'data/camera.png', '--output', out], /weights '.*tiny-light\.pth': (shape mismatch|missing keys)/],
      [['--model', 'refnet-tiny', '--task', 'sr-x9', '--input', 'data/camera.png', '--output', out], /--task: model refnet-tiny has no task 'sr-x9' \(tasks: dn-25\)/],
    ];
    for (const [args, msg] of cases) {
      const r = await runCli('restore', ...args);
      expect(r.code, args.join(' ')).toBe(1);
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('irlens: error:'));
      expect(errors, args.join(' ')).toHaveLength(1);
      expect(errors[0]).toMatch(msg);
    }
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('never') || f.startsWith('x.'))).toEqual([]);
  });
});

describe('irlens bench', () => {
  it('reports a median time and peak memory as JSON', async () => {
    const r = await runCli('bench', '--model', 'refnet-tiny', '--size', '32x32', '--repeat', '2', '--json');
    expect(r.code).toBe(0);
    const b = JSON.parse(r.stdout);
    expect(b).toMatchObject({ model: 'refnet-tiny', backend: 'wasm', size: [32, 32], repeat: 2 });
    expect(b.medianMs).toBeGreaterThan(0);
    expect(b.peakBytes).toBeGreaterThan(32 * 32 * 3 * 4);
    const bad = await runCli('bench', '--model', 'refnet-tiny', '--size', '32by32');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--size: expected HxW or N/);
  });
});
