/**
 * The study's CKA: per layer, each fine-tuned model against the scratch model of its target (and scratch against
 * scratch of another seed, the baseline); layer x layer SR against denoising models; each scratch model against
 * itself. Square tiles of the held-out images; each model gets its own task's degradation of the same tiles.
 */
import * as path from 'node:path';
import { cropImage } from '../../io/image';
import { layerSimilarity, type NamedImage, type SimilarityResult } from '../../analysis/similarity';
import { lcm, mean as meanOf, std as stdOf } from '../../util/stats';
import { describeTask } from '../multitask';
import { FINAL_MODEL } from '../train-checkpoint';
import type { StudyArm, StudyConfig } from './config';
import { loadStudyModel } from './evaluate';
import { patchUnit, type PlannedStudyRun } from './plan';
import type { StudyCka, StudyCkaMap, StudyLayerCurve, StudySelfMap } from './types';


/** Square tiles of side `tile` (a grid, row-major, at most `max` per image) of the held-out images. */
function tiles(images: NamedImage[], tile: number, max: number): NamedImage[] {
  const out: NamedImage[] = [];
  for (const { name, image } of images) {
    const ny = Math.floor(image.height / tile);
    const nx = Math.floor(image.width / tile);
    if (ny === 0 || nx === 0) throw new Error(`study CKA: held-out image '${name}' is ${image.height}x${image.width}, smaller than the ${tile} px tile`);
    let k = 0;
    for (let y = 0; y < ny && k < max; y++) for (let x = 0; x < nx && k < max; x++, k++) out.push({ name: `${name}@${y},${x}`, image: cropImage(image, y * tile, x * tile, tile, tile) });
  }
  return out;
}

function ckaTile(c: StudyConfig, cache: Map<string, number>): number {
  const unit = lcm(...c.targets.map((t) => patchUnit(c, t, cache)));
  return Math.max(unit, Math.round(c.cka.tile / unit) * unit);
}

function columnMeanStd(rows: (number | null)[][]): { mean: (number | null)[]; std: (number | null)[] } {
  const len = rows[0]?.length ?? 0;
  const mean: (number | null)[] = [];
  const std: (number | null)[] = [];
  for (let i = 0; i < len; i++) {
    const xs = rows.map((r) => r[i]).filter((v): v is number => v !== null && Number.isFinite(v));
    if (xs.length === 0) {
      mean.push(null);
      std.push(null);
    } else {
      mean.push(meanOf(xs));
      std.push(stdOf(xs));
    }
  }
  return { mean, std };
}

function diagonal(r: SimilarityResult): (number | null)[] {
  return r.layersA.map((l, i) => {
    const j = r.layersB.indexOf(l);
    return j >= 0 ? r.matrix[i][j] : null;
  });
}

/** Runs `one` for every seed and keeps the seed-mean matrix in the first seed's result (labels say so). */
async function seedMeanMap(seeds: number[], one: (seed: number) => Promise<SimilarityResult>): Promise<{ mean: SimilarityResult; perSeed: { seed: number; matrix: (number | null)[][] }[] }> {
  const perSeed: { seed: number; matrix: (number | null)[][] }[] = [];
  let first: SimilarityResult | undefined;
  for (const seed of seeds) {
    const r = await one(seed);
    first ??= r;
    perSeed.push({ seed, matrix: r.matrix });
  }
  const f = first!;
  const mean = f.matrix.map((row, i) => row.map((_, j) => columnMeanStd(perSeed.map((p) => [p.matrix[i][j]])).mean[0]));
  // A cell undefined in every seed keeps the first seed's flag (why it is undefined).
  const flags = f.flags.map((row, i) => row.map((fl, j) => (mean[i][j] === null ? fl ?? 'non-finite' : null)));
  const suffix = seeds.length > 1 ? ` (mean of ${seeds.length} seeds)` : '';
  const models = { a: { ...f.models.a, label: `${f.models.a.label}${suffix}` }, b: { ...f.models.b, label: `${f.models.b.label}${suffix}` } };
  return { mean: { ...f, matrix: mean, flags, models }, perSeed };
}

/** CKA of the first layer (head output = body input) with the second to last (body output) of a self map. */
function bodyMixing(r: SimilarityResult): number | null {
  const n = r.layersA.length;
  return n >= 3 ? r.matrix[0][n - 2] : null;
}

export async function studyCka(c: StudyConfig, runs: PlannedStudyRun[], runDir: string, images: NamedImage[], notify: (l: string) => void): Promise<StudyCka> {
  const t0 = performance.now();
  const tile = ckaTile(c, new Map());
  const examples = tiles(images, tile, c.cka.tilesPerImage);
  if (examples.length < 4) throw new Error(`study CKA: ${examples.length} tiles of ${tile} px; the unbiased estimator needs at least 4 (more or larger held-out images)`);
  const batch = Math.max(4, Math.min(c.cka.batch, examples.length));
  const finalOf = (seed: number, arm: StudyArm, target: string) => {
    const r = runs.find((x) => x.seed === seed && x.target === target && x.arm === arm && x.kind !== 'pretrain')!;
    return path.join(runDir, r.id, FINAL_MODEL);
  };
  const similarity = async (fa: string, ta: string, la: string, fb: string, tb: string, lb: string, seed: number) => {
    const a = await loadStudyModel(fa, ta);
    try {
      const b = await loadStudyModel(fb, tb);
      try {
        return await layerSimilarity({ modelA: a, modelB: b, labelA: la, labelB: lb, taskA: ta, taskB: tb, images: examples, batch, seed: 1000 + seed });
      } finally {
        b.dispose();
      }
    } finally {
      a.dispose();
    }
  };

  const perLayer: StudyLayerCurve[] = [];
  for (const target of c.targets) {
    const labels: string[] = [...c.arms.filter((a) => a !== 'scratch'), ...(c.seeds.length > 1 ? ['scratch (other seed)'] : [])];
    for (const label of labels) {
      const perSeed: { seed: number; values: (number | null)[] }[] = [];
      let layers: string[] = [];
      for (const [i, seed] of c.seeds.entries()) {
        const other = c.seeds[(i + 1) % c.seeds.length];
        const fileA = label === 'scratch (other seed)' ? finalOf(other, 'scratch', target) : finalOf(seed, label as StudyArm, target);
        const labelA = label === 'scratch (other seed)' ? `scratch seed ${other}` : `${label} seed ${seed}`;
        const r = await similarity(fileA, target, labelA, finalOf(seed, 'scratch', target), target, `scratch seed ${seed}`, seed);
        layers = r.layersA;
        perSeed.push({ seed, values: diagonal(r) });
      }
      const { mean, std } = columnMeanStd(perSeed.map((p) => p.values));
      perLayer.push({ target, label, layers, perSeed, mean, std });
      notify(`irlens: study CKA ${target}: ${label} vs scratch, per layer ${mean.map((v) => (v === null ? '—' : v.toFixed(2))).join(' ')}`);
    }
  }

  const maps: StudyCkaMap[] = [];
  const srTarget = c.targets.find((t) => describeTask(t).kind === 'sr');
  const dnTarget = c.targets.find((t) => describeTask(t).kind === 'dn');
  if (srTarget && dnTarget) {
    for (const arm of c.arms) {
      const m = await seedMeanMap(c.seeds, (seed) =>
        similarity(finalOf(seed, arm, srTarget), srTarget, `${arm} ${srTarget}`, finalOf(seed, arm, dnTarget), dnTarget, `${arm} ${dnTarget}`, seed),
      );
      maps.push({ arm, srTarget, dnTarget, ...m });
      notify(`irlens: study CKA map ${arm}: ${srTarget} vs ${dnTarget} (${m.mean.layersA.length} x ${m.mean.layersB.length} layers)`);
    }
  }

  // Each scratch model against itself: the representation structure of an SR and a denoising network (EDT Fig. 3).
  const selfMaps: StudySelfMap[] = [];
  for (const target of c.targets) {
    const m = await seedMeanMap(c.seeds, async (seed) => {
      const model = await loadStudyModel(finalOf(seed, 'scratch', target), target);
      try {
        return await layerSimilarity({ modelA: model, labelA: `scratch ${target}`, taskA: target, images: examples, batch, seed: 1000 + seed });
      } finally {
        model.dispose();
      }
    });
    selfMaps.push({ target, ...m, bodyMixing: bodyMixing(m.mean) });
    notify(`irlens: study CKA self ${target}: ${m.mean.layersA.length} layers`);
  }
  return {
    settings: `debiased CKA (unbiased HSIC1, minibatch ratio of sums), linear kernel, features flattened per tile; ${examples.length} tiles of ${tile}x${tile} px from the ${images.length} held-out images (grid, at most ${c.cka.tilesPerImage} per image), minibatches of ${batch}; each model gets its own task's degradation of the same clean tiles`,
    images: examples.map((e) => e.name),
    examples: examples.length,
    perLayer,
    maps,
    selfMaps,
    seconds: (performance.now() - t0) / 1000,
    ...(srTarget && dnTarget ? {} : { note: 'no SR/denoising target pair among the targets: no SR vs DN maps' }),
  };
}
