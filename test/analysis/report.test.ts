import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { SimilarityResult } from '../../src/analysis/similarity';
import { colorAt, rgbHex, VIRIDIS } from '../../src/analysis/report/colormap';
import { heatmapSvg, valueRange } from '../../src/analysis/report/heatmap-svg';
import { htmlPage, jsonForScript, plotlyBundle } from '../../src/analysis/report/html';
import { svgToPng } from '../../src/analysis/report/png';
import { ckaHeatmapHtml, ckaHtml, ckaPdf, ckaPng, ckaReportJson, ckaSvg, writeCkaReport } from '../../src/analysis/report/cka-report';
import { escapeHtml } from '../../src/analysis/report/html';
import { modelWeights } from '../../src/analysis/provenance';
import { randomInitProvenance, RANDOM_INIT_WARNING } from '../../src/weights/provenance';
import { plotId, plotlyDiv, plotlyScript } from '../../src/analysis/report/plotly';

/** A small study result as layerSimilarity returns it, with one undefined cell and a negative value. */
function fakeResult(): SimilarityResult {
  const side = (label: string, task: string) => ({
    label,
    family: 'refnet',
    preset: label,
    task,
    degradation: 'dn-25',
    inputSize: [32, 32] as [number, number],
    channels: 3,
    params: 1234,
    layerGlobs: ['body.*'],
  });
  return {
    layersA: ['conv_first', 'body.0', 'body.<1>'],
    layersB: ['x.0', 'x.1'],
    matrix: [
      [0.9, 0.5],
      [null, -0.12],
      [0.25, 1],
    ],
    flags: [
      [null, null],
      ['non-finite', null],
      [null, null],
    ],
    ci: [
      [{ lo: 0.8, hi: 0.95 }, { lo: 0.4, hi: 0.6 }],
      [{ lo: null, hi: null }, { lo: -0.3, hi: 0.1 }],
      [{ lo: 0.1, hi: 0.4 }, { lo: 0.99, hi: 1 }],
    ],
    models: { a: side('model-a', 'dn-25'), b: side('model-b', 'dn-25') },
    examples: 8,
    settings: {
      kernel: 'linear',
      threshold: 1,
      estimator: 'unbiased',
      features: { mode: 'flatten', rule: 'one example per image' },
      batch: 4,
      batchSizes: [4, 4],
      lastBatch: 'none',
      size: [32, 32],
      cropRule: 'centre crop',
      degradationRule: 'task degradation',
      layerOrder: 'execution',
      bootstrap: 10,
      permutation: false,
      seed: 0,
      sameModel: false,
    },
    provenance: {
      backend: { name: 'wasm', description: 'wasm' },
      versions: { irlens: '0.1.0', node: process.version },
      seed: 0,
      images: ['a.png', 'b<c>.png'],
      timings: { total: 10, forwardA: 4, forwardB: 3, gram: 2, other: 1, detail: { images: 0.5, accumulate: 0.5 } },
      createdAt: '2025-01-01T00:00:00.000Z',
    },
  };
}

describe('colour scale', () => {
  it("is plotly's Viridis at the ends and interpolates in between", () => {
    expect(rgbHex(colorAt(0))).toBe(VIRIDIS[0][1]);
    expect(rgbHex(colorAt(1))).toBe(VIRIDIS[VIRIDIS.length - 1][1]);
    expect(rgbHex(colorAt(VIRIDIS[8][0]))).toBe(VIRIDIS[8][1]);
    expect(rgbHex(colorAt(-5))).toBe(VIRIDIS[0][1]);
    expect(valueRange([[0.2, null, -0.3], [0.5, 1]])).toEqual([-0.3, 1]);
  });
});

describe('static heatmap', () => {
  it('SVG with both axes labelled, escaped, crossed null cells and no NaN; rasterised by sharp', async () => {
    const r = fakeResult();
    const svg = heatmapSvg({ rows: r.layersA, cols: r.layersB, values: r.matrix, title: 'T', rowTitle: 'model A: a', colTitle: 'model B: b' });
    expect(svg).toContain('body.&lt;1&gt;');
    expect(svg).toContain('model A: a');
    expect(svg).toContain('model B: b');
    expect(svg).not.toMatch(/NaN/);
    expect(svg.match(/<path d="M/g)).toHaveLength(1); // one crossed cell
    const png = await svgToPng(svg);
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(200);
    expect(() => heatmapSvg({ rows: ['a'], cols: ['b'], values: [[1, 2]], title: '', rowTitle: '', colTitle: '' })).toThrow(/1 x 1/);
  });
});

describe('HTML page shell', () => {
  it('inlines plotly and escapes data that could end a script element', () => {
    const page = htmlPage({ title: 'a <b>', body: '<p>x</p>', scripts: [`const d = ${jsonForScript({ s: '</script><script>alert(1)</script>' })};`] });
    expect(page).toContain(plotlyBundle().source.slice(0, 500));
    expect(page).toContain('<title>a &lt;b&gt;</title>');
    expect(page.match(/<\/script>/g)).toHaveLength(2); // plotly's and ours, nothing from the data
    expect(page).not.toMatch(/<script[^>]*\bsrc=/);
  });
});

describe('CKA report', () => {
  it('HTML is self-contained with model names on the axes, hover CIs and provenance', () => {
    const html = ckaHtml(fakeResult());
    expect(html).toContain(plotlyBundle().source.slice(-500));
    expect(html).not.toMatch(/<script[^>]*src=["']?https?:/i);
    expect(html).not.toMatch(/<link[^>]*href=["']?https?:/i);
    expect(html).toContain('model A: model-a [dn-25]');
    expect(html).toContain('model B: model-b [dn-25]');
    expect(html).toContain('95% CI [0.8000, 0.9500]');
    expect(html).toContain('CKA undefined (non-finite)');
    expect(html).toContain('b&lt;c&gt;.png');
    expect(html).toContain('plotly.js');
    expect(html).toContain('forward A');
  });

  it('JSON round-trips the matrix with nulls and carries settings and provenance', () => {
    const r = fakeResult();
    const j = JSON.parse(ckaReportJson(r));
    expect(j.format).toBe('irlens-cka/1');
    expect(j.matrix).toEqual(r.matrix);
    expect(j.settings).toEqual(r.settings);
    expect(j.provenance.versions['plotly.js']).toBe(plotlyBundle().version);
    expect(j.provenance.images).toEqual(r.provenance.images);
  });

  it('writes html, json and png, or nothing when the target cannot be written', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-report-'));
    const files = await writeCkaReport(fakeResult(), path.join(dir, 'sub', 'study'));
    expect(fs.readdirSync(path.join(dir, 'sub')).sort()).toEqual(['study.html', 'study.json', 'study.png']);
    expect((await sharp(fs.readFileSync(files.png)).metadata()).format).toBe('png');
    expect(Buffer.compare(fs.readFileSync(files.png), await ckaPng(fakeResult()))).toBe(0);

    fs.writeFileSync(path.join(dir, 'file'), 'x');
    await expect(writeCkaReport(fakeResult(), path.join(dir, 'file', 'study'))).rejects.toThrow(/^--out '.*': cannot write the report/);
    expect(fs.readdirSync(dir).sort()).toEqual(['file', 'sub']);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('several plots on one page', () => {
  /** Runs every inline script of a page except plotly's bundle in ONE context, as a browser runs a page's classic scripts. */
  function runPage(html: string): string[] {
    const drawn: string[] = [];
    const context = vm.createContext({ Plotly: { newPlot: (id: string) => drawn.push(id) } });
    for (const m of html.matchAll(/<script>([\s\S]*?)<\/script>/g)) if (!m[1].includes('plotly.js v')) vm.runInContext(m[1], context);
    return drawn;
  }

  it('draws every chart; no two inline scripts declare the same top-level name', () => {
    const r = fakeResult();
    const page = htmlPage({
      title: 't',
      plotly: false,
      body: ['<div id="heatmap"></div>', ckaHeatmapHtml(r, { plotly: false }), ckaHeatmapHtml(r, { plotly: false }), plotlyDiv(plotId(), [{ type: 'scatter', x: [1], y: [2] }], {})].join('\n'),
      scripts: [plotlyScript('heatmap', [], {})],
    });
    const drawn = runPage(page);
    expect(drawn).toHaveLength(4);
    expect(new Set(drawn).size).toBe(4);
    for (const id of drawn) expect(page).toContain(`id="${id}"`);
    // The same page built from scripts with top-level `const`s fails in one context: the check can fail.
    expect(() => runPage('<script>const D = 1;</script><script>const D = 2;</script>')).toThrow(/already been declared/);
  });

  it('keeps the CKA report page runnable (one heatmap into #heatmap)', () => {
    const page = ckaHtml(fakeResult());
    expect(runPage(page)).toEqual(['heatmap']);
  });
});

describe('CKA report provenance, reading guide and publication figures', () => {
  /** fakeResult with weights for both models (A untrained), a command line and a permutation baseline. */
  function withProvenance(): SimilarityResult {
    const r = fakeResult();
    r.models.a.weights = modelWeights(randomInitProvenance(3));
    r.models.b.weights = modelWeights({ source: 'irlens-trained', name: 'model-b-dn25', file: '/w/model-b.safetensors', sha256: 'ab'.repeat(32), trainedBy: 'irlens recipe' });
    r.warnings = [`model-a: ${r.models.a.weights.warning}`];
    r.permutation = [[0.01, -0.02], [null, 0.03], [0.0, 0.02]];
    r.settings.permutation = true;
    r.provenance.run = { command: "irlens cka model-a 'model b'", irlens: '0.1.0', gitCommit: '0123456789abcdef0123', gitDirty: true, compute: { kind: 'wasm', threads: 1, description: 'wasm SIMD, single thread' } };
    return r;
  }

  it('HTML: warning banner first, command, commit, compute and both weights in the header; how to read this', () => {
    const html = ckaHtml(withProvenance());
    const banner = html.indexOf('class="warning"');
    expect(banner).toBeGreaterThan(0);
    expect(banner).toBeLessThan(html.indexOf('How to read this'));
    expect(html).toContain(escapeHtml(RANDOM_INIT_WARNING));
    expect(html).toContain(escapeHtml("irlens cka model-a 'model b'"));
    expect(html).toContain('irlens 0.1.0 (git 0123456789ab, modified)');
    expect(html).toContain('wasm SIMD, single thread');
    expect(html).toContain('ab'.repeat(32));
    expect(html).toContain('irlens recipe');
    expect(html).toMatch(/invariant to rotations .* isotropic scaling .*not<\/em> to arbitrary invertible linear maps/);
    expect(html).toMatch(/Minibatch size changes the estimate/);
    expect(html).toMatch(/Shuffled-pairing baseline: the same computation .* \(here 0\.008 on average/);
    expect(html).toContain('<th>shuffled-pairing baseline</th>');
    // Without weights information the report says so instead of guessing.
    expect(ckaHtml(fakeResult())).toContain('not stated');
  });

  it('figures: SVG footer carries weights and warning, cells show the bootstrap interval; PDF and PNG from the same SVG', async () => {
    const r = withProvenance();
    const svg = ckaSvg(r);
    expect(svg).toContain('RANDOM INIT (seed 3), untrained');
    expect(svg).toContain('fill="#c00000"');
    expect(svg).toContain('weights: irlens-trained model-b-dn25 (sha256 abababababab)');
    expect(svg).toContain('command: irlens cka model-a');
    expect(svg).toContain('>[.80,.95]</tspan>');
    const pdf = await ckaPdf(r);
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    expect(Buffer.compare(pdf, await ckaPdf(r))).toBe(0); // reproducible bytes
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-figs-'));
    try {
      const files = await writeCkaReport(r, path.join(dir, 'fig'), { figures: ['svg', 'pdf', 'png'] });
      expect(fs.readdirSync(dir).sort()).toEqual(['fig.html', 'fig.json', 'fig.pdf', 'fig.png', 'fig.svg']);
      expect(fs.readFileSync(files.svg!, 'utf8')).toBe(svg);
      expect(Buffer.compare(fs.readFileSync(files.png!), await svgToPng(svg))).toBe(0);
      const j = JSON.parse(fs.readFileSync(files.json, 'utf8'));
      expect(j.warnings).toEqual(r.warnings);
      expect(j.models.a.weights).toMatchObject({ source: 'random-init', file: null, sha256: null });
      expect(j.models.b.weights).toMatchObject({ source: 'irlens-trained', file: '/w/model-b.safetensors', sha256: 'ab'.repeat(32), trainedBy: 'irlens recipe' });
      expect(j.provenance.run).toMatchObject({ command: "irlens cka model-a 'model b'", gitCommit: '0123456789abcdef0123', compute: { kind: 'wasm' } });
      // A figure that cannot be written leaves none of the set behind.
      fs.writeFileSync(path.join(dir, 'block'), '');
      await expect(writeCkaReport(r, path.join(dir, 'block', 'x'), { figures: ['svg', 'pdf'] })).rejects.toThrow(/cannot write the report/);
      expect(fs.readdirSync(dir).sort()).toEqual(['block', 'fig.html', 'fig.json', 'fig.pdf', 'fig.png', 'fig.svg']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
