import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli';
import { writeNpy } from '../../src/io/npy';
import { loadBuiltinImages } from '../../src/io/builtin';
import { createModel } from '../../src/models';
import { initBackend } from '../../src/engine/backend';
import { computePath } from '../../src/engine/compute';
import { ckaFromGrams } from '../../src/analysis/cka';
import { linearGram, mat, rbfGram, type Mat } from '../../src/analysis/gram';
import { layerSimilarity } from '../../src/analysis/similarity';
import { plotlyBundle } from '../../src/analysis/report/html';
import { Rng } from '../../src/util/rng';

let dir: string;

beforeAll(async () => {
  process.env.IRLENS_BACKEND = 'wasm';
  await initBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-cka-cli-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs `irlens cka ...args` in-process. */
const cka = (...args: string[]) => runCli('cka', ...args);

function randn(rng: Rng, rows: number, cols: number): Mat {
  const m = mat(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = rng.normal();
  return m;
}

function saveMat(file: string, m: Mat): string {
  writeNpy(file, { shape: [m.rows, m.cols], dtype: 'float64', data: m.data });
  return file;
}

describe('irlens cka on two .npy activation matrices', () => {
  const rng = new Rng('npy');
  const X = randn(rng, 12, 5);
  const Y = mat(12, 3, X.data.filter((_, k) => k % 5 < 3).map((v) => Math.tanh(v) + 0.5 * rng.normal()));

  it('prints the CKA of the two matrices, equal to ckaFromGrams', async () => {
    const a = saveMat(path.join(dir, 'x.npy'), X);
    const b = saveMat(path.join(dir, 'y.npy'), Y);
    const r = await cka(a, b);
    expect(r.code).toBe(0);
    expect(Number(r.stdout.trim())).toBe(ckaFromGrams(linearGram(X), linearGram(Y), { estimator: 'unbiased' }).value);

    const j = await cka(a, b, '--json', '--kernel', 'rbf', '--estimator', 'biased', '--threshold', '0.8');
    expect(j.code).toBe(0);
    const parsed = JSON.parse(j.stdout);
    expect(parsed.value).toBe(ckaFromGrams(rbfGram(X, { threshold: 0.8 }), rbfGram(Y, { threshold: 0.8 }), { estimator: 'biased' }).value);
    expect(parsed.settings).toMatchObject({ kernel: 'rbf', estimator: 'biased', threshold: 0.8 });
    expect([parsed.n, parsed.p, parsed.q]).toEqual([12, 5, 3]);
  });

  it('rejects mismatched rows and model-study options, writing nothing', async () => {
    const a = saveMat(path.join(dir, 'x2.npy'), X);
    const c = saveMat(path.join(dir, 'short.npy'), randn(rng, 7, 2));
    const rows = await cka(a, c);
    expect(rows.code).toBe(1);
    expect(rows.stderr).toMatch(/^irlens: error: B: .* has 7 rows but .* has 12/);
    const opt = await cka(a, a, '--size', '32x32');
    expect(opt.stderr).toMatch(/^irlens: error: --size: does not apply/);
    const mixed = await cka(a, 'refnet-tiny');
    expect(mixed.stderr).toMatch(/^irlens: error: B: give two \.npy/);
  });
});

describe('irlens cka on two models', () => {
  it('writes html, json and png whose matrix is the engine result; prints best matches and timings', async () => {
    const out = path.join(dir, 'e2e', 'study');
    const args = ['refnet-tiny', 'refnet-tiny', '--init-seed-b', '1', '--images', '8', '--size', '32x32', '--batch', '4', '--seed', '5', '--out', out];
    const r = await cka(...args);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/best match in B for each layer of A \(and the same-name layer: the diagonal\)/);
    expect(r.stdout).toMatch(/conv_first +-> +\S+ +-?\d\.\d{4} +diagonal -?\d\.\d{4}/);
    expect(r.stdout).toMatch(/outside the forwards \d+%/);
    expect(r.stdout).toContain(`${out}.png`);

    const html = fs.readFileSync(`${out}.html`, 'utf8');
    expect(html).toContain(plotlyBundle().source.slice(1000, 2000));
    expect(html).not.toMatch(/<script[^>]*src=["']?https?:/i);
    expect((await sharp(fs.readFileSync(`${out}.png`)).metadata()).format).toBe('png');

    const json = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
    const images = (await loadBuiltinImages({ channels: 3 })).slice(0, 8);
    const a = createModel('refnet-tiny', { seed: 0 });
    const b = createModel('refnet-tiny', { seed: 1 });
    const engine = await layerSimilarity({ modelA: a, modelB: b, images, size: [32, 32], batch: 4, seed: 5 });
    a.dispose();
    b.dispose();
    expect(json.matrix).toEqual(engine.matrix);
    expect(json.layersA).toEqual(engine.layersA);
    expect(json.provenance.images).toEqual(images.map((i) => i.name));
    expect(json.settings.size).toEqual([32, 32]);
    expect(json.models.b.label).toBe('refnet-tiny-seed1'); // two inits of one preset get distinct labels
  });

  it('same spec twice: one forward, exact diagonal; --json prints the result', async () => {
    const out = path.join(dir, 'self', 'study');
    const r = await cka('refnet-tiny', '--images', '4', '--size', '16x16', '--batch', '4', '--out', out, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.settings.sameModel).toBe(true);
    j.matrix.forEach((row: number[], i: number) => expect(row[i]).toBe(1));
    expect(j.files.json).toBe(`${out}.json`);
  });

  it('--workers 2: the report says so and its matrix is the one of one in-process thread', async () => {
    const base = ['restormer-tiny', 'refnet-tiny', '--images', '8', '--size', '32x32', '--batch', '4', '--json'];
    const serial = await runCli('--threads', '1', 'cka', ...base, '--out', path.join(dir, 'w1', 'study'));
    const parallel = await runCli('--threads', '1', 'cka', ...base, '--workers', '2', '--out', path.join(dir, 'w2', 'study'));
    expect(serial.code).toBe(0);
    expect(parallel.code).toBe(0);
    const [js, jp] = [JSON.parse(serial.stdout), JSON.parse(parallel.stdout)];
    expect(jp.matrix).toEqual(js.matrix);
    expect(jp.permutation).toEqual(js.permutation);
    expect(jp.provenance.timings.workers).toBe(2);
    expect(fs.readFileSync(path.join(dir, 'w2', 'study.html'), 'utf8')).toContain('on 2 worker threads');
  });

  it.each([
    [['--batch', '2'], /^--batch: the unbiased estimator needs at least 4/],
    [['--batch', 'x'], /^--batch: expected a positive integer/],
    [['--kernel', 'poly'], /^--kernel: expected one of linear, rbf/],
    [['--estimator', 'fast'], /^--estimator: expected one of unbiased, biased/],
    [['--size', '30x30'], /^--size: 30x30 gives restormer-tiny/],
    [['--size', 'big'], /^--size: expected HxW/],
    [['--layers-a', 'encoder_levl1.*'], /^--layers-a: unknown hook point 'encoder_levl1\.\*'/],
    [['--task-b', 'sr-x9'], /^--task-b: model refnet-tiny has no task 'sr-x9'/],
    [['--images', '3'], /^--images: the unbiased estimator needs at least 4/],
    [['--data', '/nonexistent/irlens'], /^--data: image folder '\/nonexistent\/irlens': does not exist/],
    [['--threshold', '-1'], /^--threshold: expected a number > 0/],
    [['--max-pixels', '8'], /^--max-pixels: only applies to --mode pixels/],
    [['--workers', '0'], /^--workers: expected a positive integer/],
  ])('bad option %j: one-line error naming it, exit 1, no files', async (extra, message) => {
    const out = path.join(dir, 'bad', 'study');
    const r = await cka('restormer-tiny', 'refnet-tiny', '--out', out, ...extra);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('irlens: error'));
    expect(lines).toHaveLength(1);
    expect(lines[0].replace('irlens: error: ', '')).toMatch(message);
    expect(r.stdout).toBe('');
    expect(fs.existsSync(path.join(dir, 'bad'))).toBe(false);
  });

  it('refuses an --out that is a directory and an unknown model', async () => {
    const d = path.join(dir, 'adir');
    fs.mkdirSync(d);
    const r = await cka('refnet-tiny', '--out', d);
    expect(r.stderr).toMatch(/irlens: error: --out: '.*adir' is a directory/);
    expect(fs.readdirSync(d)).toEqual([]);
    const m = await cka('refnet-tiny', 'nosuchnet');
    expect(m.stderr).toMatch(/irlens: error: B: unknown model 'nosuchnet'/);
  });
});

describe('irlens cka provenance, figures and progress', () => {
  it('JSON/HTML/figures state command, commit, compute and weights; random init warns; --format svg,pdf', async () => {
    const out = path.join(dir, 'prov', 'study');
    const r = await cka('refnet-tiny', 'refnet-tiny', '--init-seed-b', '1', '--images', '4', '--size', '16x16', '--batch', '4', '--format', 'svg,pdf', '--out', out);
    expect(r.code).toBe(0);
    expect(fs.readdirSync(path.join(dir, 'prov')).sort()).toEqual(['study.html', 'study.json', 'study.pdf', 'study.svg']);
    expect(r.stderr).toMatch(/irlens: refnet-tiny: WARNING: randomly initialised/);
    const j = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
    expect(j.provenance.run.command).toBe(`irlens cka refnet-tiny refnet-tiny --init-seed-b 1 --images 4 --size 16x16 --batch 4 --format svg,pdf --out ${out}`);
    expect(j.provenance.run.compute.kind).toBe(computePath().kind);
    expect(j.provenance.run).toHaveProperty('gitCommit'); // a string in a checkout, null outside one
    expect(j.models.a.weights).toMatchObject({ source: 'random-init', sha256: null });
    expect(j.models.b.weights.warning).toMatch(/seed 1/);
    expect(j.warnings).toHaveLength(2);
    expect(j.permutation).toHaveLength(j.layersA.length); // on by default
    expect(j.settings.permutation).toBe(true);
    expect(fs.readFileSync(`${out}.html`, 'utf8')).toContain('How to read this');
    expect(fs.readFileSync(`${out}.svg`, 'utf8')).toContain('RANDOM INIT');
    expect(fs.readFileSync(`${out}.pdf`).subarray(0, 5).toString()).toBe('%PDF-');

    const off = await cka('refnet-tiny', '--images', '4', '--size', '16x16', '--batch', '4', '--no-permutation', '--json', '--out', path.join(dir, 'prov2', 's'));
    const jo = JSON.parse(off.stdout);
    expect(jo.permutation).toBeUndefined();
    expect(jo.settings.permutation).toBe(false);
    const bad = await cka('refnet-tiny', '--format', 'svg,tiff', '--out', path.join(dir, 'prov3', 's'));
    expect(bad.stderr).toMatch(/^irlens: error: --format: expected a comma-separated list of html, json, png, svg, pdf, got 'svg,tiff'/);
    expect(fs.existsSync(path.join(dir, 'prov3'))).toBe(false);
  });

  it('trained default weights are named with file and sha256, and no warning', async () => {
    const r = await cka('restormer-tiny', '--images', '4', '--size', '32x32', '--batch', '4', '--json', '--no-permutation', '--out', path.join(dir, 'trained', 's'));
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.models.a.weights.source).toBe('irlens-trained');
    expect(j.models.a.weights.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(j.models.a.weights.file).toMatch(/\.safetensors$/);
    expect(j.warnings).toBeUndefined();
  });

  it('progress moves after each model forward, not once per batch of both', async () => {
    const images = (await loadBuiltinImages({ channels: 3 })).slice(0, 8);
    const a = createModel('refnet-tiny', { seed: 0 });
    const b = createModel('refnet-tiny', { seed: 1 });
    const seen: [string, number][] = [];
    await layerSimilarity({ modelA: a, modelB: b, images, size: [16, 16], batch: 4, onProgress: (p) => seen.push([p.side, p.forwardImages]) });
    const self: number[] = [];
    await layerSimilarity({ modelA: a, images, size: [16, 16], batch: 4, onProgress: (p) => self.push(p.forwardImages) });
    a.dispose();
    b.dispose();
    expect(seen).toEqual([['A', 4], ['B', 8], ['A', 12], ['B', 16]]);
    expect(self).toEqual([4, 8]);
  });
});
