/**
 * Ablation report rendering without a model: the drop colour scale (largest drop strongly coloured, missing cells
 * off the scale and labelled), the notebook fragments, and the all-or-none HTML+JSON write.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AblationEntryResult, AblationResult } from '../../../src/analysis/ablation/runner';
import {
  ablateChartHtml,
  ablateHeadCharts,
  ablateKnockoutChart,
  ablateRankChart,
  ablateTableHtml,
  writeAblateReport,
  type AblationReport,
  type ChartSpec,
} from '../../../src/analysis/report/ablate-report';

const BASE = [30, 31, 32];

function entry(point: string, mode: AblationEntryResult['mode'], ablated: number[], head?: number): AblationEntryResult {
  const drops = ablated.map((v, i) => BASE[i] - v);
  const d = drops.reduce((a, b) => a + b, 0) / drops.length;
  return {
    point,
    mode,
    ...(head === undefined ? {} : { head }),
    key: `${point}${head === undefined ? '' : `#${head}`}/${mode}`,
    perImage: { output: { psnr: ablated, ssim: ablated.map(() => 0.5) } },
    mean: { output: { psnr: ablated.reduce((a, b) => a + b, 0) / ablated.length, ssim: 0.5 } },
    drop: { output: { psnr: d, psnrCi: { lo: Math.min(...drops), hi: Math.max(...drops) }, ssim: 0.1, ssimCi: { lo: 0, hi: 0.2 } } },
    replayed: 0,
  };
}

function result(): AblationResult {
  return {
    outputs: ['output'],
    images: ['a', 'b', 'c'],
    baseline: { perImage: { output: { psnr: BASE, ssim: [0.9, 0.9, 0.9] } }, mean: { output: { psnr: 31, ssim: 0.9 } } },
    entries: [
      entry('body.0', 'zero', [20, 21, 22]), // drop 10: the most harmful cell
      entry('body.0', 'identity', [29, 30, 31]), // drop 1
      entry('body.1', 'zero', [30.5, 31.5, 32.5]), // drop -0.5: the ablation helps
      entry('body.1.attn.heads', 'zero', [29, 30, 31], 0),
      entry('body.1.attn.heads', 'zero', [30, 31, 32], 1),
    ],
    stats: {},
    timings: { baselineMs: 1, ablationsMs: 2, forwards: 5, replayedModules: 0 },
    skipped: [{ key: 'body.1/identity', reason: 'identity: changes shape' }],
    kept: new Map(),
    baselineImages: [],
  };
}

type Heatmap = { z: (number | null)[][]; x: string[]; y: string[]; zmin: number; zmax: number; colorscale: [number, string][] };

/** The colour of value v on a heatmap's scale (nearest stop; enough to tell dark from light). */
function colorOf(h: Heatmap, v: number): string {
  const t = (v - h.zmin) / (h.zmax - h.zmin);
  return h.colorscale.reduce((best, s) => (Math.abs(s[0] - t) < Math.abs(best[0] - t) ? s : best))[1];
}
const lightness = (hex: string) => {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return (Math.max(r, g, b) + Math.min(r, g, b)) / 2 / 255;
};

describe('ablation report charts', () => {
  it('colours the largest drop strongly, no change near white, and marks missing cells n/a off the scale', () => {
    const chart = ablateKnockoutChart(result()) as ChartSpec;
    const h = chart.traces[0] as Heatmap;
    expect(h.y).toEqual(['body.0', 'body.1']);
    expect(h.x).toEqual(['zero', 'identity']);
    expect(h.z).toEqual([
      [10, 1],
      [-0.5, null],
    ]);
    expect(h.zmax).toBe(10);
    expect(h.zmin).toBe(-10);
    const top = colorOf(h, 10);
    expect(lightness(top)).toBeLessThan(0.35); // dark red, not the light grey of plotly's 'Reds' top
    expect(lightness(colorOf(h, 0))).toBeGreaterThan(0.9);
    const missing = chart.layout.plot_bgcolor as string;
    expect(h.colorscale.map((s) => s[1])).not.toContain(missing);
    const notes = chart.layout.annotations as { x: string; y: string; text: string }[];
    expect(notes).toEqual([expect.objectContaining({ x: 'identity', y: 'body.1', text: 'n/a' })]);
  });

  it('ranks bars by drop and gives per-head grids with the same scale', () => {
    const r = result();
    const bars = ablateRankChart(r).traces[0] as { y: string[]; x: number[] };
    expect(bars.y[bars.y.length - 1]).toBe('body.0/zero'); // largest at the top (plotly draws the last bar on top)
    expect(bars.x[bars.x.length - 1]).toBeCloseTo(10, 12);
    const heads = ablateHeadCharts(r);
    expect(heads.map((g) => g.mode)).toEqual(['zero']);
    const hz = heads[0].chart.traces[0] as Heatmap;
    expect(hz.x).toEqual(['head 0', 'head 1']);
    expect(hz.z[0][0]).toBeCloseTo(1, 12);
  });

  it('gives notebook fragments with plotly inlined only when asked, and the sorted table', () => {
    const r = result();
    const withPlotly = ablateChartHtml(ablateRankChart(r), { plotly: true });
    const without = ablateChartHtml(ablateRankChart(r), { plotly: false, divId: 'x1' });
    expect(withPlotly.length).toBeGreaterThan(without.length + 100_000);
    expect(without).toContain('<div id="x1"');
    expect(without).toContain('Plotly.newPlot("x1"');
    const t = ablateTableHtml(r);
    expect(t.indexOf('body.0</td><td>zero')).toBeLessThan(t.indexOf('body.1</td><td>zero'));
  });
});

describe('writeAblateReport', () => {
  const report = (): AblationReport => ({
    model: { label: 'm', family: 'f', task: 't', params: 1 },
    weights: { source: 'random-init', file: null, sha256: null },
    data: { from: 'test', images: 3, size: [8, 8], degradation: 'none' },
    settings: {},
    result: result(),
    provenance: {},
    timings: {},
  });

  it('writes the pair, and on failure leaves neither a new file nor a changed old one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-ablate-report-'));
    try {
      const files = await writeAblateReport(report(), path.join(dir, 'a'));
      expect(JSON.parse(fs.readFileSync(files.json, 'utf8')).entries).toHaveLength(5);
      expect(fs.readFileSync(files.html, 'utf8')).toContain('Knock-out map');
      // A directory where the HTML should go: nothing of the new set appears (no JSON without its HTML).
      fs.mkdirSync(path.join(dir, 'b.html'));
      await expect(writeAblateReport(report(), path.join(dir, 'b'))).rejects.toThrow(/b\.html/);
      expect(fs.existsSync(path.join(dir, 'b.json'))).toBe(false);
      // The same failure over an existing set keeps the previous JSON as it was.
      const oldJson = fs.readFileSync(files.json, 'utf8');
      fs.rmSync(files.html);
      fs.mkdirSync(files.html);
      const r = report();
      r.model.label = 'changed';
      await expect(writeAblateReport(r, path.join(dir, 'a'))).rejects.toThrow(/a\.html/);
      expect(fs.readFileSync(files.json, 'utf8')).toBe(oldJson);
      expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
