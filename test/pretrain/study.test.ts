import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../src/models';
import { initBackend } from '../../src/engine/backend';
import {
  buildStudyConfig,
  checkPlanFits,
  computeAccounting,
  planStudy,
  relatedMix,
  runStudy,
  splitCounts,
  studyPreset,
  STUDY_ARMS,
  type StudyRunRecord,
  type StudyConfig,
  type StudyResult,
  writeStudyReport,
} from '../../src/pretrain/study';
import { parseDegradation } from '../../src/degradations';
import { readTrainerState } from '../../src/pretrain/train-checkpoint';
import { Rng } from '../../src/util/rng';

const ROOT = path.resolve(__dirname, '../..');

beforeAll(async () => {
  await initBackend('wasm');
});

/** The smoke preset made smaller still: every arm and target, 2 + 2 steps, small crops. */
function tinyConfig(): StudyConfig {
  const c = buildStudyConfig('smoke', 'edt', { stepsPretrain: 2, stepsFinetune: 2, batch: 1, evalEvery: 0 });
  return { ...c, evalSize: 48, finalEvalSize: 64, cka: { ...c.cka, tile: 64, tilesPerImage: 2, batch: 6 } };
}

describe('study configuration and plan', () => {
  it('gives every pre-trained arm pre-train + fine-tune steps and scratch the same total on the target alone', () => {
    const c = buildStudyConfig('cpu', 'edt');
    const plan = planStudy(c);
    const acc = computeAccounting(c, plan);
    expect(acc).toHaveLength(c.arms.length * c.targets.length);
    for (const a of acc) {
      expect(a.totalSteps).toBe(c.stepsPretrain + c.stepsFinetune);
      if (a.arm === 'scratch') expect(a.pretrainSteps).toBe(0);
      else expect([a.pretrainSteps, a.finetuneSteps]).toEqual([c.stepsPretrain, c.stepsFinetune]);
    }
    for (const r of plan.filter((x) => x.kind === 'scratch')) expect(r.steps).toBe(c.stepsPretrain + c.stepsFinetune);
    // One unrelated pre-training run per seed serves both targets; related mixes follow the target.
    expect(plan.filter((r) => r.seed === 0 && r.kind === 'pretrain').map((r) => r.tasks.join('+'))).toEqual([
      'sr-x2',
      'dn-25',
      'sr-x2+sr-x3+sr-x4',
      'dn-15+dn-25+dn-50',
      'sr-x2+dn-25+dr-light',
    ]);
    // Patches fit every task of a run (edt-tiny with 4x8 windows: SR unit 8 x scale, DN unit 32).
    for (const r of plan) for (const t of r.tasks) expect(r.patch % (t.startsWith('sr') ? 8 * Number(t.slice(-1)) : 32)).toBe(0);
  });

  it('splits the images into disjoint pools and keeps held-out images out of training', () => {
    expect(splitCounts(10, studyPreset('cpu').split)).toEqual([5, 2, 3]);
    expect(splitCounts(1000, studyPreset('cpu').split)[2]).toBe(20);
    expect(() => splitCounts(2, studyPreset('cpu').split)).toThrow(/at least 3/);
  });

  it('knows related mixes and a pre-upsampled SR task for same-size networks', () => {
    expect(relatedMix('sr-x2')).toEqual(['sr-x2', 'sr-x3', 'sr-x4']);
    expect(relatedMix('dn-25')).toEqual(['dn-15', 'dn-25', 'dn-50']);
    expect(relatedMix('sr-up-x2')).toEqual(['sr-up-x2', 'sr-up-x3', 'sr-up-x4']);
    const img = { data: new Float32Array(32 * 32 * 3).map((_, i) => (i % 7) / 7), height: 32, width: 32, channels: 3 };
    const d = parseDegradation('sr-up-x2');
    const lq = d.applySync!(img, new Rng(0));
    expect([lq.height, lq.width, d.scale]).toEqual([32, 32, 1]);
    expect(buildStudyConfig('smoke', 'refnet').targets).toEqual(['sr-up-x2', 'dn-25']);
  });

  it('rejects bad options with one-line errors naming the option', () => {
    const bad: [() => unknown, RegExp][] = [
      [() => buildStudyConfig('cpu', 'edt', { arms: ['single'] }), /^--arms: scratch/],
      [() => buildStudyConfig('cpu', 'edt', { arms: ['scratch', 'bogus'] }), /^--arms: unknown arm 'bogus'/],
      [() => buildStudyConfig('cpu', 'edt', { seeds: 0 }), /^--seeds/],
      [() => buildStudyConfig('cpu', 'edt', { targets: ['sr-x9'] }), /^--targets: 'sr-x9'/],
      [() => buildStudyConfig('cpu', 'refnet', { targets: ['sr-x2', 'dn-25'] }), /^--arch refnet: refnet-tiny cannot train 'sr-x2'/],
      [() => buildStudyConfig('cpu', 'bogus' as never), /^--arch/],
      [() => buildStudyConfig('bogus' as never, 'edt'), /^--preset/],
      [() => buildStudyConfig('cpu', 'edt', { split: [1, 0, 1] }), /^--split/],
      [() => { const c = buildStudyConfig('paper', 'edt'); checkPlanFits(c, planStudy(c)); }, /^--preset paper: run .* needs 288 px training patches, larger than the 256 px built-in images/],
    ];
    for (const [fn, re] of bad) {
      let msg = '';
      try {
        fn();
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toMatch(re);
      expect(msg).not.toContain('\n');
    }
  });
});

describe('study end to end (edt-tiny)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-study-'));
  const runDir = path.join(dir, 'run');
  const out = path.join(dir, 'report');
  let first: StudyResult;
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('runs every arm x target, reports finite PSNR, equal compute and a self-contained HTML', async () => {
    const c = tinyConfig();
    const before = tf.memory().numTensors;
    first = await runStudy(c, runDir);
    await writeStudyReport(first, out);
    expect(tf.memory().numTensors).toBe(before);

    const json = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8')) as StudyResult;
    expect(json.format).toBe('irlens-pretrain-study/1');
    for (const target of c.targets)
      for (const arm of STUDY_ARMS) {
        const r = json.results.find((x) => x.target === target && x.arm === arm && x.seed === 0);
        expect(r, `${arm} x ${target}`).toBeDefined();
        expect(Number.isFinite(r!.psnr) && Number.isFinite(r!.ssim)).toBe(true);
        const s = json.summary.find((x) => x.target === target && x.arm === arm)!;
        expect(Number.isFinite(s.psnr.mean)).toBe(true);
      }
    for (const a of json.accounting) expect(a.totalSteps).toBe(c.stepsPretrain + c.stepsFinetune);
    const scratch = json.runs.filter((r) => r.kind === 'scratch');
    expect(scratch.every((r) => r.steps === c.stepsPretrain + c.stepsFinetune)).toBe(true);
    // Held-out images are in no run's training files (explicit file lists in each run.json).
    for (const r of json.runs) {
      const spec = JSON.parse(fs.readFileSync(path.join(runDir, r.id, 'run.json'), 'utf8')) as { data: { kind: string; train: { name: string }[]; eval: { name: string }[] } };
      expect(spec.data.kind).toBe('files');
      expect(spec.data.train.map((t) => t.name).filter((n) => json.split.eval.includes(n))).toEqual([]);
      expect(spec.data.eval.map((t) => t.name)).toEqual(json.split.eval);
      expect(spec.data.train.map((t) => t.name)).toEqual(r.pool === 'pretrain' ? json.split.pretrain : json.split.finetune);
    }
    // CKA: a per-layer curve per fine-tuned arm and target, SR vs DN maps per arm.
    expect(json.cka!.perLayer.filter((p) => p.target === 'sr-x2').map((p) => p.label)).toEqual(['single', 'related', 'unrelated']);
    expect(json.cka!.maps.map((m) => m.arm)).toEqual([...STUDY_ARMS]);
    expect(json.cka!.perLayer.every((p) => p.layers.length > 2 && p.mean.some((v) => v !== null))).toBe(true);

    const html = fs.readFileSync(`${out}.html`, 'utf8');
    expect(html).not.toMatch(/<script[^>]*\bsrc\s*=\s*["']?https?:/i);
    expect(html).not.toMatch(/<link[^>]*href\s*=\s*["']?https?:/i);
    expect(html).toContain('plotly.js'); // the inlined bundle's banner
    // The inline scripts after plotly run (against a recording stub) and draw into divs that exist.
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]).filter((s) => !s.includes('plotly.js v') && s.includes('Plotly.newPlot'));
    const drawn: string[] = [];
    const Plotly = { newPlot: (id: string) => drawn.push(id) };
    for (const s of scripts) new Function('Plotly', s)(Plotly);
    // ... and together in one context, as a browser runs a page: no two scripts declare the same top-level name.
    const page = vm.createContext({ Plotly: { newPlot: () => undefined } });
    for (const s of scripts) vm.runInContext(s, page);
    expect(drawn.length).toBeGreaterThanOrEqual(c.targets.length * 3 + c.arms.length);
    for (const id of drawn) expect(html).toContain(`id="${id}"`);
  });

  it('resume skips finished arms and continues an interrupted one', async () => {
    const c = tinyConfig();
    // Make one run look interrupted: final weights gone, state not done.
    const victim = path.join(runDir, 'seed-0', 'scratch-dn-25');
    const state = readTrainerState(victim)!;
    fs.writeFileSync(path.join(victim, 'state.json'), JSON.stringify({ ...state, done: false }));
    fs.rmSync(path.join(victim, 'model.safetensors'));
    const seen: StudyRunRecord[] = [];
    const again = await runStudy(c, runDir, { resume: true, onRun: (r) => seen.push(r) });
    expect(seen.filter((r) => r.status === 'skipped').length).toBe(first.runs.length - 1);
    expect(seen.find((r) => r.id === 'seed-0/scratch-dn-25')!.status).toBe('resumed');
    expect(fs.existsSync(path.join(victim, 'model.safetensors'))).toBe(true);
    expect(again.results.find((r) => r.arm === 'scratch' && r.target === 'dn-25')!.psnr).toBeCloseTo(
      first.results.find((r) => r.arm === 'scratch' && r.target === 'dn-25')!.psnr,
      6,
    );
  });

  it('refuses a second study in the same directory and a resume with other settings', async () => {
    await expect(runStudy(tinyConfig(), runDir)).rejects.toThrow(/already holds a study; pass --resume/);
    await expect(runStudy({ ...tinyConfig(), stepsFinetune: 3 }, runDir, { resume: true })).rejects.toThrow(/^--resume: settings differ.*stepsFinetune/);
  });
});

describe('study CLI', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'pretrain', 'study', ...args], { cwd: ROOT, encoding: 'utf8' });

  it('prints the plan with --dry-run and fails with one line on bad options', () => {
    const ok = cli(['--preset', 'smoke', '--dry-run']);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/sr-x2\s+scratch\s+0 \+ 10 = 10/);
    for (const args of [['--arch', 'bogus'], ['--seeds', '0', '--dry-run']]) {
      const r = cli(args);
      expect(r.status, args.join(' ')).not.toBe(0);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('irlens: error:'));
      expect(lines, r.stderr).toHaveLength(1);
    }
  });
});
