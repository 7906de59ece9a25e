import { describe, expect, it } from 'vitest';
import { ckaHeatmapHtml } from '../../src/analysis/report/cka-report';
import { plotlyBundle, plotlyOnce } from '../../src/analysis/report/html';
import type { SimilarityResult } from '../../src/analysis/similarity';

// The smallest result ckaHeatmapHtml reads: one cell.
const r = {
  layersA: ['a'],
  layersB: ['b'],
  matrix: [[0.5]],
  flags: [[null]],
  models: { a: { label: 'A', task: 'dn-25' }, b: { label: 'B', task: 'dn-25' } },
} as unknown as SimilarityResult;

const copies = (html: string) => html.split(plotlyBundle().source).length - 1;

describe('plotly.js in HTML fragments (notebook outputs)', () => {
  it('comes once per process by default, always with plotly: true, never with plotly: false', () => {
    expect(copies(ckaHeatmapHtml(r))).toBe(1);
    expect(copies(ckaHeatmapHtml(r))).toBe(0);
    expect(copies(ckaHeatmapHtml(r, { plotly: true }))).toBe(1);
    expect(copies(ckaHeatmapHtml(r, { plotly: false }))).toBe(0);
    expect(plotlyOnce()).toBe('');
    expect(copies(plotlyOnce(true))).toBe(1);
    expect(ckaHeatmapHtml(r)).toMatch(/^<div id="irlens-cka-[^"]+" style="width:100%"><\/div>\n<script>\(function/);
  });
});
