/**
 * The architectural-ablation study (src/pretrain/variants/) at its smoke preset: settings and their one-line
 * errors, equal compute and pairing in the plan, an interrupted ablation resumed to the same numbers as an
 * uninterrupted one, the statistics (paired by seed; Wilcoxon only when it can reach the level), the report.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { pairedTest } from '../../src/analysis/ablation/stats';
import {
  buildVariantsConfig,
  planVariants,
  resolveVariants,
  runVariants,
  summariseVariants,
  variantsReportHtml,
  writeVariantsReport,
  WILCOXON_MIN_N,
  type VariantsResult,
} from '../../src/pretrain/variants';
import { countParameters } from '../../src/models/registry';

beforeAll(async () => {
  await initBackend('wasm');
});

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-variants-'));

describe('variants settings', () => {
  it('refuses bad input with one-line errors naming the option', () => {
    const v = (variants: string[], o: Record<string, unknown> = {}) => () => buildVariantsConfig('smoke', 'swinir', { variants, ...o });
    expect(v(['resi-1conv', 'resi-2conv'])).toThrow(/^--variants: swinir has no variant 'resi-2conv'/);
    expect(v(['resi-1conv'])).toThrow(/^--variants: expected at least two/);
    expect(v(['resi-1conv', 'resi-1conv'])).toThrow(/^--variants: repeated name/);
    expect(v(['resi-1conv', 'resi-3conv'], { baseline: 'window-7' })).toThrow(/^--baseline: 'window-7' is not among --variants/);
    expect(v(['resi-1conv', 'resi-3conv'], { seeds: 1 })).toThrow(/^--seeds: expected an integer >= 2/);
    expect(v(['resi-1conv', 'resi-3conv'], { task: 'sr-x9z' })).toThrow(/^--task: 'sr-x9z' is not a synthetic task/);
    expect(v(['resi-1conv', 'resi-3conv'], { model: 'edt-tiny' })).toThrow(/^--model: 'edt-tiny' is a edt model, not swinir/);
    expect(() => buildVariantsConfig('smoke', 'unet', { variants: ['a', 'b'] })).toThrow(/^--arch: expected one of/);
  });

  it('plans equal compute, paired seeds and one patch every variant fits; counts parameters of the task network', () => {
    const c = buildVariantsConfig('smoke', 'swinir', { variants: ['window-8', 'window-7'], seeds: 3 });
    const variants = resolveVariants(c);
    const plan = planVariants(c, variants);
    expect(plan.map((r) => r.id)).toEqual(['seed-0/window-8', 'seed-0/window-7', 'seed-1/window-8', 'seed-1/window-7', 'seed-2/window-8', 'seed-2/window-7']);
    expect(new Set(plan.map((r) => `${r.steps}x${r.batch}x${r.patch}`)).size).toBe(1);
    // GT patch: a multiple of lcm(7, 8) x 2 (SR x2) at least 2 x the preset's 24 px input.
    expect(plan[0].patch).toBe(112);
    expect(plan.filter((r) => r.seed === 1).map((r) => r.trainSeed)).toEqual([1, 1]);
    expect(variants.map((v) => v.params)).toEqual([
      countParameters('swinir-tiny', { window_size: 8 }),
      countParameters('swinir-tiny', { window_size: 7 }),
    ]);
    // A denoising task counts the network of that task (upsampler '').
    const dn = resolveVariants(buildVariantsConfig('smoke', 'swinir', { variants: ['resi-1conv', 'resi-3conv'], task: 'dn-25' }));
    expect(dn[0].params).toBe(countParameters('swinir-tiny', { resi_connection: '1conv', rstb_residual: true, upsampler: '', upscale: 1 }));
  });

  it('keeps the steps of a progressive variant and scales its patches', () => {
    const c = buildVariantsConfig('smoke', 'restormer', { variants: ['fixed-patch', 'progressive'], steps: 12 });
    const plan = planVariants(c, resolveVariants(c));
    const prog = plan.find((r) => r.variant === 'progressive')!;
    expect(plan.find((r) => r.variant === 'fixed-patch')!.progressive).toBeUndefined();
    expect(prog.progressive!.reduce((s, st) => s + st.steps, 0)).toBe(12);
    expect(Math.max(...prog.progressive!.map((s) => s.patch))).toBeGreaterThan(prog.patch);
  });
});

describe('variants statistics', () => {
  it('pairs by seed and runs the Wilcoxon test only with enough seeds', () => {
    const c = buildVariantsConfig('smoke', 'swinir', { variants: ['resi-1conv', 'resi-3conv'], seeds: 7 });
    const variants = resolveVariants(c);
    const base = [30.1, 29.8, 30.4, 30.0, 29.9, 30.2, 30.3];
    const other = [30.3, 30.1, 30.5, 30.4, 30.0, 30.6, 30.5];
    const rows = (n: number) =>
      c.seeds.slice(0, n).flatMap((seed) => [
        { variant: 'resi-1conv', seed, psnr: base[seed], ssim: 0.8, perImage: [] },
        { variant: 'resi-3conv', seed, psnr: other[seed], ssim: 0.8 + seed * 1e-3, perImage: [] },
      ]);
    const seven = summariseVariants(c, variants, rows(7));
    const d = seven[1].vsBaseline!.psnr;
    const ref = pairedTest(other, base, { alpha: 0.05, replicates: c.bootstrap, seed: 'variants:resi-3conv:psnr' });
    expect(d.meanDiff).toBeCloseTo(1.7 / 7, 9);
    expect(d.tTest!.pValue).toBe(ref.tTest!.pValue);
    expect(d.wilcoxon!.pValue).toBe(ref.wilcoxon!.pValue);
    expect(d.ci).toEqual(ref.ci);
    expect(d.notSignificant).toBe(false);
    expect(seven[0].vsBaseline).toBeUndefined();
    expect(seven[0].psnr.mean).toBeCloseTo(30.1, 9);
    const three = summariseVariants(c, variants, rows(3))[1].vsBaseline!.psnr;
    expect(3).toBeLessThan(WILCOXON_MIN_N);
    expect(three.wilcoxon).toBeNull();
    expect(three.n).toBe(3);
  });
});

describe('variants smoke run', () => {
  let full: VariantsResult;
  let fullDir: string;

  it('runs end to end and writes a self-contained report with JSON, all or none', async () => {
    fullDir = tmp();
    const c = buildVariantsConfig('smoke', 'swinir', { variants: ['resi-1conv', 'resi-none'] });
    const t0 = performance.now();
    full = await runVariants(c, path.join(fullDir, 'run'));
    expect((performance.now() - t0) / 1000).toBeLessThan(60);
    expect(full.runs.map((r) => r.status)).toEqual(['trained', 'trained', 'trained', 'trained']);
    expect(full.results).toHaveLength(4);
    for (const r of full.results) expect(Number.isFinite(r.psnr) && r.psnr > 5 && r.ssim > 0).toBe(true);
    expect(full.summary.map((s) => s.variant)).toEqual(['resi-1conv', 'resi-none']);
    expect(full.summary[1].vsBaseline!.psnr.n).toBe(2);
    expect(full.accounting[0].pixels).toBe(full.accounting[1].pixels);
    expect(full.notes.join(' ')).toMatch(/What it cannot show/);

    const base = path.join(fullDir, 'report', 'v');
    const files = writeVariantsReport(full, base);
    const html = fs.readFileSync(files.html, 'utf8');
    expect(html).toContain('Plotly.newPlot');
    expect(html).not.toMatch(/<script[^>]+src=/);
    // Each chart script is an IIFE: no top-level const/let that a second chart would redeclare.
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]).filter((s) => s.includes('Plotly.newPlot(') && s.length < 100_000); // the chart scripts, not plotly.js itself
    expect(scripts.length).toBeGreaterThanOrEqual(2);
    for (const s of scripts) expect(s.trimStart().startsWith('(function')).toBe(true);
    const json = JSON.parse(fs.readFileSync(files.json, 'utf8')) as VariantsResult;
    expect(json.summary[1].vsBaseline!.psnr.meanDiff).toBe(full.summary[1].vsBaseline!.psnr.meanDiff);
    // A failing write leaves no half set: the JSON path is a directory, so neither file is written.
    const bad = path.join(fullDir, 'bad');
    fs.mkdirSync(`${bad}.json`, { recursive: true });
    expect(() => writeVariantsReport(full, bad)).toThrow();
    expect(fs.existsSync(`${bad}.html`)).toBe(false);
    expect(variantsReportHtml(full)).toContain('resi-none');
  }, 120_000);

  it('resumes an interrupted ablation to the same numbers and refuses changed settings', async () => {
    const dir = path.join(tmp(), 'run');
    const c = buildVariantsConfig('smoke', 'swinir', { variants: ['resi-1conv', 'resi-none'] });
    let n = 0;
    await expect(
      runVariants(c, dir, {
        onRun: () => {
          if (++n === 2) throw new Error('interrupted');
        },
      }),
    ).rejects.toThrow('interrupted');
    await expect(runVariants(c, dir)).rejects.toThrow(/already holds a variants ablation; pass --resume/);
    const other = buildVariantsConfig('smoke', 'swinir', { variants: ['resi-1conv', 'resi-3conv'] });
    await expect(runVariants(other, dir, { resume: true })).rejects.toThrow(/^--resume: settings differ/);
    const resumed = await runVariants(c, dir, { resume: true });
    expect(resumed.runs.map((r) => r.status)).toEqual(['skipped', 'skipped', 'trained', 'trained']);
    expect(resumed.results.map((r) => r.psnr)).toEqual(full.results.map((r) => r.psnr));
    expect(resumed.provenance.invocations).toHaveLength(1);

    // A run killed before its first checkpoint leaves only run.json (and log lines): it starts again.
    const last = path.join(dir, 'seed-1', 'resi-none');
    for (const f of fs.readdirSync(last)) if (f !== 'run.json') fs.rmSync(path.join(last, f), { recursive: true, force: true });
    const restarted = await runVariants(c, dir, { resume: true });
    expect(restarted.runs.map((r) => r.status)).toEqual(['skipped', 'skipped', 'skipped', 'trained']);
    expect(restarted.results.map((r) => r.psnr)).toEqual(full.results.map((r) => r.psnr));
    expect(restarted.provenance.invocations).toHaveLength(2);
  }, 120_000);
});

describe('npm run ablate -- variants', () => {
  it('runs from the command line (options shared with `ablate` reach it), resumes, and refuses bad input', async () => {
    const { runCli } = await import('../cli/run-cli');
    const dir = tmp();
    const run = path.join(dir, 'run');
    const out = path.join(dir, 'rep');
    const ok = await runCli('ablate', 'variants', '--arch', 'swinir', '--variants', 'resi-1conv,resi-3conv', '--preset', 'smoke', '--task', 'dn-25', '--run-dir', run, '--out', out, '--json', '--backend', 'wasm');
    expect(ok.stderr).not.toMatch(/error/);
    expect(ok.code).toBe(0);
    const printed = JSON.parse(ok.stdout) as { summary: { variant: string }[]; files: { html: string; json: string } };
    expect(printed.summary.map((s) => s.variant)).toEqual(['resi-1conv', 'resi-3conv']);
    expect(printed.files.html).toBe(`${out}.html`);
    const json = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8')) as VariantsResult;
    expect(json.config.task).toBe('dn-25');
    expect(json.provenance.command).toMatch(/^irlens ablate variants --arch swinir/);

    const again = await runCli('ablate', 'variants', '--resume', '--run-dir', run, '--out', out);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/finished before, skipped/);
    const changed = await runCli('ablate', 'variants', '--resume', '--run-dir', run, '--task', 'sr-x2', '--out', out);
    expect(changed.code).toBe(1);
    expect(changed.stderr).toMatch(/irlens: error: --resume: --task gives "sr-x2" but the ablation in .* has "dn-25"/);

    const bad = await runCli('ablate', 'variants', '--arch', 'swinir', '--variants', 'resi-1conv,nope', '--preset', 'smoke', '--run-dir', path.join(dir, 'bad'), '--out', path.join(dir, 'bad'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/irlens: error: --variants: swinir has no variant 'nope'/);
    expect(fs.existsSync(path.join(dir, 'bad.html')) || fs.existsSync(path.join(dir, 'bad'))).toBe(false);

    const list = await runCli('ablate', 'variants', '--list', '--arch', 'edt');
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/window-12x12 +crossed windows 12x12/);
  }, 120_000);
});
