/** `irlens ablate`: end to end on tiny settings, JSON contents, paired folders, LAM, one-line errors, no half-written output. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { loadBuiltinImages } from '../../../src/io/builtin';
import { writePng, centerCrop } from '../../../src/io/image';
import { runCli } from '../../cli/run-cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-ablate-'));

beforeAll(async () => {
  await initBackend('wasm');
});

describe('irlens ablate', () => {
  it('writes html + json with baseline, entries, intervals, per-image values and weights provenance', async () => {
    const before = tf.memory().numTensors;
    const out = path.join(tmp, 'r1');
    const r = await runCli('--backend', 'wasm', 'ablate', 'restormer-tiny@random', '--degradation', 'dn-25', '--images', '3', '--size', '32', '--layers', 'encoder_level1.0,latent.*', '--modes', 'zero,mean,identity', '--fold', '4', '--bootstrap', '100', '--out', out);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const j = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
    expect(j.format).toBe('irlens-ablate/1');
    expect(j.weights.source).toBe('random-init');
    expect(j.weights.warning).toMatch(/randomly initialised/);
    expect(j.baseline.mean.output.psnr).toBeGreaterThan(0);
    expect(j.entries.length).toBe(2 * 3);
    for (const e of j.entries) {
      expect(['encoder_level1.0', 'latent.0']).toContain(e.hookPoint);
      expect(e.perImage.output.psnr.length).toBe(3);
      const drops = e.perImage.output.psnr.map((v: number, i: number) => j.baseline.perImage.output.psnr[i] - v);
      expect(e.drop.output.psnr).toBeCloseTo(drops.reduce((a: number, b: number) => a + b, 0) / 3, 10);
      expect(e.drop.output.psnrCi.lo).toBeLessThanOrEqual(e.drop.output.psnr + 1e-12);
    }
    expect(j.lam[0].diffusionIndex).toBeGreaterThan(0);
    expect(j.data.degradation).toBe('dn-25');
    const html = fs.readFileSync(`${out}.html`, 'utf8');
    expect(html).toContain('Knock-out map');
    expect(html).toMatch(/WARNING: randomly initialised/);
    expect(html).toContain('Plotly.newPlot');
    expect(html).not.toMatch(/<script>\s*const /); // no top-level consts in inline scripts
    expect(r.stdout).toMatch(/PSNR drop/);
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);

  it('paired folders --lq/--gt matched by file name; MPRNet stages in the JSON', async () => {
    const imgs = (await loadBuiltinImages({ channels: 3 })).slice(0, 2);
    const lq = path.join(tmp, 'lq');
    const gt = path.join(tmp, 'gt');
    fs.mkdirSync(lq);
    fs.mkdirSync(gt);
    for (const { name, image } of imgs) {
      const c = centerCrop(image, 32, 32);
      await writePng(path.join(gt, `${name}.png`), c);
      await writePng(path.join(lq, `${name}.png`), { ...c, data: c.data.map((v) => Math.min(1, v * 0.9 + 0.05)) });
    }
    const out = path.join(tmp, 'paired');
    const r = await runCli('--backend', 'wasm', 'ablate', 'mprnet-tiny', '--lq', lq, '--gt', gt, '--size', '32', '--layers', 'stage3_orsnet.orb1', '--modes', 'zero,resample', '--no-lam', '--json', '--out', out);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.outputs).toEqual(['stage3', 'stage2', 'stage1']);
    expect(j.data.from).toMatch(/paired folders/);
    expect(j.entries[0].drop.stage1.psnr).toBe(0);
    fs.writeFileSync(path.join(lq, 'extra.png'), fs.readFileSync(path.join(lq, `${imgs[0].name}.png`)));
    const bad = await runCli('--backend', 'wasm', 'ablate', 'mprnet-tiny', '--lq', lq, '--gt', gt, '--no-lam', '--out', path.join(tmp, 'bad'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--gt: no ground truth for 'extra.png'/);
  }, 120_000);

  it('lam A B: maps side by side with DI', async () => {
    const img = path.join(tmp, 'lam.png');
    const [{ image }] = await loadBuiltinImages({ channels: 3, names: undefined });
    await writePng(img, centerCrop(image, 32, 32));
    const out = path.join(tmp, 'lam');
    const r = await runCli('--backend', 'wasm', 'ablate', 'lam', 'swinir-tiny', 'edt-tiny', '--image', img, '--window', '8,8,8', '--fold', '3', '--out', out);
    expect(r.stderr.split('\n').filter((l) => /error/.test(l))).toEqual([]);
    expect(r.code).toBe(0);
    const j = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
    expect(j.models.length).toBe(2);
    for (const m of j.models) expect(m.diffusionIndex).toBeGreaterThan(0);
    expect(fs.readFileSync(`${out}.html`, 'utf8')).toContain('DI');
  }, 120_000);

  it('one-line errors and nothing written', async () => {
    const out = path.join(tmp, 'never');
    const cases: [string[], RegExp][] = [
      [['ablate', 'swinir-tiny', '--modes', 'zero,wipe'], /--modes: expected a comma-separated list/],
      [['ablate', 'swinir-tiny', '--layers', 'nolayer'], /unknown hook point 'nolayer'/],
      [['ablate', 'swinir-tiny', '--lq', tmp], /--gt: give both/],
      [['ablate', 'swinir-tiny', '--images', '1', '--modes', 'resample'], /resample needs at least 2 images/],
      [['ablate', 'swinir-tiny', 'restormer-tiny'], /MODEL: expected one model spec/],
      [['ablate', 'mprnet-tiny@random'], /--degradation: task 'deblur' has no synthetic degradation/],
      [['ablate', 'swinir-tiny@swinir-tiny-sr-x2', '--degradation', 'dn-25'], /--degradation: 'dn-25' has scale 1, task 'sr-x2' expects 2/],
      [['ablate', 'lam', 'swinir-tiny', '--window', '1,2,3'], /--image: lam needs an image/],
      [['ablate', 'lam', 'swinir-tiny', '--image', 'x.png', '--window', '1,2'], /--window: expected x,y,w/],
      [['ablate', 'swinir-tiny', '--layers', 'conv_first', '--modes', 'identity', '--images', '2'], /identity: conv_first maps/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli('--backend', 'wasm', ...args, '--out', out);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n').pop()).toMatch(re);
      expect(fs.existsSync(`${out}.json`) || fs.existsSync(`${out}.html`)).toBe(false);
    }
  }, 120_000);
});

describe('irlens ablate --heads', () => {
  it('adds one entry per attention head and mode (identity excluded); memory flat', async () => {
    const before = tf.memory().numTensors;
    const out = path.join(tmp, 'heads');
    const r = await runCli('--backend', 'wasm', 'ablate', 'swinir-tiny', '--images', '2', '--size', '32', '--layers', 'layers.0', '--modes', 'zero,identity', '--heads', '--no-lam', '--json', '--out', out);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    const heads = j.entries.filter((e: { head: number | null }) => e.head !== null);
    // swinir-tiny: 2 blocks in layers.0, 2 heads each, zero only
    expect(heads.map((e: { key: string }) => e.key).sort()).toEqual(
      ['layers.0.residual_group.blocks.0.attn.heads#0/zero', 'layers.0.residual_group.blocks.0.attn.heads#1/zero', 'layers.0.residual_group.blocks.1.attn.heads#0/zero', 'layers.0.residual_group.blocks.1.attn.heads#1/zero'],
    );
    expect(fs.readFileSync(`${out}.html`, 'utf8')).toContain('Per-head ablation');
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);
  it('`<attn glob>.heads.<k>` in --layers selects head k of every matching attention', async () => {
    const r = await runCli('--backend', 'wasm', 'ablate', 'swinir-tiny', '--images', '2', '--size', '32', '--layers', 'layers.*.residual_group.blocks.0.attn.heads.1', '--modes', 'mean', '--no-lam', '--json', '--out', path.join(tmp, 'head1'));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).entries.map((e: { key: string }) => e.key)).toEqual([
      'layers.0.residual_group.blocks.0.attn.heads#1/mean',
      'layers.1.residual_group.blocks.0.attn.heads#1/mean',
    ]);
  }, 120_000);
});
