/**
 * Browser check of every generated HTML report: each generator below writes its reports (tiny settings) into a
 * folder of its own; every *.html there is opened from file:// in Debian's chromium (playwright-core, a fresh
 * profile, no network), and the test fails on any page error, console error or non-file request, and unless
 * every Plotly chart the page draws (`Plotly.newPlot("<id>", ...)` in its scripts) exists, holds traces with
 * data and is visible on screen. A second report kind is one more entry in GENERATORS.
 *
 * Screenshots go to $IRLENS_SCREENSHOTS (default: a fresh temp folder, printed) so a person can look at them.
 * Without /usr/bin/chromium (or $IRLENS_CHROMIUM) the test is skipped with a message, except under CI, where a
 * missing browser is a failure: CI installs chromium.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { createModel } from '../../src/models';
import { loadBuiltinImages } from '../../src/io';
import { layerSimilarity } from '../../src/analysis/similarity';
import { writeCkaReport } from '../../src/analysis/report';
import { buildStudyConfig, runStudy, writeStudyReport } from '../../src/pretrain/study';
import { buildVariantsConfig, runVariants, writeVariantsReport } from '../../src/pretrain/variants';
import { runCli } from '../cli/run-cli';

const CHROMIUM = process.env.IRLENS_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

interface ReportGenerator {
  name: string;
  /** Writes the reports into `dir` (every *.html there is checked). */
  generate(dir: string): Promise<void>;
}

/** Every kind of HTML report irlens writes, at the smallest settings that still draw every chart. */
const GENERATORS: ReportGenerator[] = [
  {
    name: 'cka',
    async generate(dir) {
      const images = (await loadBuiltinImages({ channels: 3 })).slice(0, 4);
      const a = createModel('restormer-tiny');
      const b = createModel('swinir-tiny');
      try {
        const cross = await layerSimilarity({ modelA: a, modelB: b, images, size: [32, 32], batch: 4, bootstrap: 4, permutation: true, seed: 0 });
        await writeCkaReport(cross, path.join(dir, 'cka-restormer-tiny-vs-swinir-tiny'));
        const self = await layerSimilarity({ modelA: a, images, size: [32, 32], batch: 4, seed: 0 });
        await writeCkaReport(self, path.join(dir, 'cka-restormer-tiny-self'));
      } finally {
        a.dispose();
        b.dispose();
      }
    },
  },
  {
    name: 'pretrain-study',
    async generate(dir) {
      // The smoke preset made smaller still (as test/pretrain/study.test.ts): every arm and target, so the page has
      // all its charts: curves per target, per-layer CKA per target, one SR-vs-DN map per arm and two self maps.
      const c = buildStudyConfig('smoke', 'edt', { stepsPretrain: 2, stepsFinetune: 2, batch: 1, evalEvery: 1 });
      const config = { ...c, evalSize: 48, finalEvalSize: 64, cka: { ...c.cka, tile: 64, tilesPerImage: 2, batch: 6 } };
      const result = await runStudy(config, path.join(dir, 'runs'));
      await writeStudyReport(result, path.join(dir, 'pretrain-study-edt'));
    },
  },
  {
    name: 'variants',
    async generate(dir) {
      // The smoke preset at one step of batch 1: two variants (the baseline and one compared with it, so the
      // difference chart has a point) x two seeds (the fewest that give a bootstrap interval).
      const c = buildVariantsConfig('smoke', 'swinir', { variants: ['resi-1conv', 'resi-none'], steps: 1, batch: 1 });
      const result = await runVariants(c, path.join(dir, 'runs'));
      writeVariantsReport(result, path.join(dir, 'variants-swinir'));
    },
  },
  {
    name: 'ablate',
    async generate(dir) {
      // Through the CLI (in-process), as a user runs it: the ablation report and the LAM report.
      for (const args of [
        ['ablate', 'refnet-tiny', '--images', '2', '--size', '32x32', '--bootstrap', '20', '--modes', 'zero,mean', '--out', path.join(dir, 'ablate-refnet-tiny')],
        ['ablate', 'lam', 'refnet-tiny', '--image', 'data/camera.png', '--window', '8,8,16', '--fold', '5', '--out', path.join(dir, 'lam-refnet-tiny')],
      ]) {
        const r = await runCli(...args);
        if (r.code !== 0) throw new Error(`irlens ${args.join(' ')}: ${r.stderr.trim()}`);
      }
    },
  },
];

// page.evaluate/waitForFunction bodies run in the page: this project's lib has no DOM types, so the few used are declared.
interface PlotElement {
  classList: { contains(c: string): boolean };
  data?: Record<string, unknown>[];
  getBoundingClientRect(): { width: number; height: number };
  querySelectorAll(selector: string): { length: number };
}
declare const document: { getElementById(id: string): PlotElement | null };

interface PlotState {
  id: string;
  exists: boolean;
  drawn: boolean;
  traces: { type: string; x: number; y: number; z: number; finite: boolean }[];
  width: number;
  height: number;
  svgShapes: number;
}

/** Ids of the charts a page draws: jsonForScript writes them as JSON strings. */
function plotIds(html: string): string[] {
  return [...html.matchAll(/Plotly\.newPlot\(\s*("(?:[^"\\]|\\.)*")/g)].map((m) => JSON.parse(m[1]) as string);
}

function problemsOf(p: PlotState): string[] {
  if (!p.exists) return [`#${p.id}: no such element`];
  if (!p.drawn) return [`#${p.id}: never drawn (its script did not run or threw)`];
  const out: string[] = [];
  if (p.traces.length === 0) out.push(`#${p.id}: no traces`);
  p.traces.forEach((t, i) => {
    const hasData = t.type === 'heatmap' ? t.z > 0 && t.finite : t.x > 0 && t.y === t.x && t.finite;
    if (!hasData) out.push(`#${p.id} trace ${i} (${t.type}): no data (x ${t.x}, y ${t.y}, z ${t.z}, finite ${t.finite})`);
  });
  if (p.width < 50 || p.height < 50) out.push(`#${p.id}: ${p.width}x${p.height} px on screen`);
  if (p.svgShapes === 0) out.push(`#${p.id}: nothing drawn in its SVG`);
  return out;
}

const missing = !HAVE_CHROMIUM && process.env.CI ? `CI is set but ${CHROMIUM} does not exist (apt-get install chromium)` : undefined;
const skipReason = !HAVE_CHROMIUM && !process.env.CI ? `skipped: no browser at ${CHROMIUM} (apt-get install chromium, or set IRLENS_CHROMIUM)` : undefined;

if (skipReason) process.stderr.write(`test/browser/reports.test.ts: ${skipReason}\n`);

describe.skipIf(!!skipReason)(`HTML reports in chromium${skipReason ? ` (${skipReason})` : ''}`, () => {
  let root: string;
  let shots: string;
  let context: BrowserContext | undefined;

  beforeAll(async () => {
    if (missing) return;
    await initBackend('wasm');
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-browser-'));
    shots = process.env.IRLENS_SCREENSHOTS ?? path.join(root, 'screenshots');
    fs.mkdirSync(shots, { recursive: true });
    for (const g of GENERATORS) {
      fs.mkdirSync(path.join(root, g.name));
      await g.generate(path.join(root, g.name));
    }
    context = await chromium.launchPersistentContext(path.join(root, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1280, height: 900 },
      offline: true,
    });
    process.stderr.write(`browser test: screenshots in ${shots}\n`);
  }, 600_000);

  afterAll(async () => {
    await context?.close();
    if (root && !process.env.IRLENS_SCREENSHOTS?.startsWith(root)) fs.rmSync(path.join(root, 'profile'), { recursive: true, force: true });
  });

  it('has a browser (CI installs chromium)', () => {
    expect(missing).toBeUndefined();
  });

  for (const g of GENERATORS) {
    it(`${g.name}: every page opens without errors and every chart has data on screen`, async () => {
      expect(missing).toBeUndefined();
      const dir = path.join(root, g.name);
      const pages = fs.readdirSync(dir).filter((f) => f.endsWith('.html')).sort();
      expect(pages.length, `${g.name} wrote no .html`).toBeGreaterThan(0);
      for (const file of pages) {
        const html = fs.readFileSync(path.join(dir, file), 'utf8');
        const ids = plotIds(html);
        expect(ids.length, `${file}: no Plotly chart in the page`).toBeGreaterThan(0);
        expect(new Set(ids).size, `${file}: chart ids repeat`).toBe(ids.length);

        const page = await context!.newPage();
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
        page.on('console', (m) => {
          if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
        });
        page.on('request', (r) => {
          if (!/^(file|data|blob|about):/.test(r.url())) errors.push(`network request: ${r.url()}`);
        });
        await page.goto(pathToFileURL(path.join(dir, file)).href, { waitUntil: 'load' });
        // Plotly draws synchronously in newPlot for these charts; give layout/resize a moment before looking.
        await page
          .waitForFunction((want) => want.every((id) => document.getElementById(id)?.classList.contains('js-plotly-plot')), ids, { timeout: 15_000 })
          .catch(() => undefined);
        await page.waitForTimeout(300);
        const states = await page.evaluate((want): PlotState[] => {
          const len = (v: unknown) => (Array.isArray(v) || ArrayBuffer.isView(v) ? (v as ArrayLike<unknown>).length : 0);
          const anyFinite = (v: unknown): boolean =>
            Array.isArray(v) || ArrayBuffer.isView(v) ? Array.from(v as ArrayLike<unknown>).some(anyFinite) : typeof v === 'number' ? Number.isFinite(v) : typeof v === 'string';
          return want.map((id) => {
            const el = document.getElementById(id);
            const box = el?.getBoundingClientRect();
            return {
              id,
              exists: !!el,
              drawn: !!el?.classList.contains('js-plotly-plot'),
              traces: (el?.data ?? []).map((t) => ({
                type: String(t.type ?? 'scatter'),
                x: len(t.x),
                y: len(t.y),
                z: len(t.z),
                finite: t.type === 'heatmap' ? anyFinite(t.z) : anyFinite(t.y),
              })),
              width: box?.width ?? 0,
              height: box?.height ?? 0,
              svgShapes: el ? el.querySelectorAll('svg.main-svg path, svg.main-svg rect, image').length : 0,
            };
          });
        }, ids);
        await page.screenshot({ path: path.join(shots, `${g.name}--${file.replace(/\.html$/, '')}.png`), fullPage: true });
        await page.close();
        const problems = [...errors, ...states.flatMap(problemsOf)];
        expect(problems, `${file} (${ids.length} charts)`).toEqual([]);
      }
    }, 120_000);
  }
});
