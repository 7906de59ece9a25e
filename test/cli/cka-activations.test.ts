/** `irlens cka A.npz B.npz` and --batch on .npy/.npz against test/fixtures/make_npz_fixtures.py (numpy, float64). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli';

const FIX = path.join(__dirname, '..', 'fixtures', 'npz');
const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8')) as {
  layersA: string[];
  layersB: string[];
  batchSizes: Record<string, number[]>;
  cka: Record<string, number[][]>;
};
const a = path.join(FIX, 'a.npz');
const b = path.join(FIX, 'b.npz');

function close(got: (number | null)[][], want: number[][]) {
  expect(got.length).toBe(want.length);
  got.forEach((row, i) => row.forEach((v, j) => expect(Math.abs((v as number) - want[i][j])).toBeLessThan(1e-6)));
}

describe('irlens cka on two .npz archives', () => {
  it.each([
    ['unbiased', 'all', []],
    ['unbiased', 'batch5', ['--batch', '5']],
    ['biased', 'all', ['--estimator', 'biased']],
    ['biased', 'batch5', ['--estimator', 'biased', '--batch', '5']],
  ])('%s estimator, %s rows: the layer x layer map equals numpy float64 to 1e-6', async (est, rows, extra) => {
    const r = await runCli('cka', a, b, '--json', ...(extra as string[]));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.layersA).toEqual(expected.layersA);
    expect(j.layersB).toEqual(expected.layersB);
    expect(j.settings.batchSizes).toEqual(expected.batchSizes[`${est}/${rows}`]);
    close(j.matrix, expected.cka[`${est}/${rows}`]);
    expect(j.permutation).toHaveLength(2); // the shuffled-pairing baseline is on by default
    expect(j.featuresA).toEqual([12, 7]);
  });

  it('prints a table naming both axes; --no-permutation drops the baseline', async () => {
    const r = await runCli('cka', a, b, '--no-permutation');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/feat +head/);
    expect(lines[1]).toMatch(new RegExp(`^conv1 +${expected.cka['unbiased/all'][0][0].toFixed(6)} `));
    expect(r.stderr).toMatch(/2 arrays of A x 2 of B/);
    const j = JSON.parse((await runCli('cka', a, b, '--json', '--no-permutation')).stdout);
    expect(j.permutation).toBeUndefined();
  });

  it('--batch applies the minibatch estimator to two .npy matrices', async () => {
    const r = await runCli('cka', path.join(FIX, 'a_block0.npy'), path.join(FIX, 'b_feat.npy'), '--batch', '5', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(Math.abs(j.value - expected.cka['unbiased/batch5'][1][0])).toBeLessThan(1e-6);
    expect(j.settings.batchSizes).toEqual([5, 7]);
    const full = await runCli('cka', path.join(FIX, 'a_block0.npy'), path.join(FIX, 'b_feat.npy'));
    expect(Math.abs(Number(full.stdout.trim()) - expected.cka['unbiased/all'][1][0])).toBeLessThan(1e-6);
    expect(full.stderr).toMatch(/shuffled-pairing baseline -?\d/);
  });

  it('one-line errors: mixed kinds, too small a batch, model-study options', async () => {
    const mixed = await runCli('cka', a, path.join(FIX, 'b_feat.npy'));
    expect(mixed.stderr).toMatch(/^irlens: error: B: give two \.npy activation matrices, two \.npz archives or two model specs/);
    const small = await runCli('cka', a, b, '--batch', '3');
    expect(small.code).toBe(1);
    expect(small.stderr).toMatch(/^irlens: error: --batch: 3 rows per batch: .*needs n >= 4/m);
    const size = await runCli('cka', a, b, '--size', '32x32');
    expect(size.stderr).toMatch(/^irlens: error: --size: does not apply/);
    const fmt = await runCli('cka', a, b, '--format', 'svg');
    expect(fmt.stderr).toMatch(/^irlens: error: --format: does not apply/);
    const missing = await runCli('cka', a, path.join(FIX, 'nope.npz'));
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/^irlens: error: B: .*nope\.npz/);
  });
});
