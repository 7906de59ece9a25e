/**
 * The study's images: one seeded split of the built-in images or a --data folder into a pre-training pool, a
 * fine-tuning pool and held-out evaluation images. Runs get explicit file lists (RunSpec data kind 'files'), so
 * the held-out images are never among a run's training files.
 */
import * as path from 'node:path';
import { BUILTIN_IMAGES, builtinImages } from '../../io/builtin';
import { listImages } from '../../io/folder';
import { readImage } from '../../io/image';
import type { NamedImage } from '../../analysis/similarity';
import { Rng } from '../../util/rng';
import type { FileListData } from '../trainer';
import type { StudyConfig } from './config';

export interface StudySplit {
  pretrain: string[];
  finetune: string[];
  eval: string[];
  /** How the split was made. */
  rule: string;
  source: string;
}

interface SourceImage {
  name: string;
  file: string;
}

function sourceImages(c: StudyConfig): SourceImage[] {
  if (c.data.kind === 'builtin') return builtinImages().map((b) => ({ name: b.name, file: b.path }));
  const dir = c.data.dir;
  return listImages(dir).map((file) => ({ name: path.relative(dir, file).split(path.sep).join('/'), file }));
}

/** Pool sizes from the split weights: held-out images capped at maxEval, every part at least one image. */
export function splitCounts(n: number, s: StudyConfig['split']): [number, number, number] {
  if (n < 3) throw new Error(`--data: ${n} image(s); the study needs at least 3 (pre-training pool, fine-tuning pool, held-out)`);
  const total = s.pretrain + s.finetune + s.eval;
  const e = Math.max(1, Math.min(s.maxEval, Math.round((n * s.eval) / total), n - 2));
  const rest = n - e;
  const f = Math.max(1, Math.min(rest - 1, Math.round((rest * s.finetune) / (s.pretrain + s.finetune))));
  return [rest - f, f, e];
}

/** The seeded split of the images into pools (names). */
export function studySplit(c: StudyConfig): StudySplit {
  const images = sourceImages(c);
  const [p, f, e] = splitCounts(images.length, c.split);
  const order = new Rng(`study-split:${c.split.seed}`).permutation(images.length);
  const names = Array.from(order, (i) => images[i].name);
  const sorted = (xs: string[]) => [...xs].sort();
  return {
    pretrain: sorted(names.slice(0, p)),
    finetune: sorted(names.slice(p, p + f)),
    eval: sorted(names.slice(p + f, p + f + e)),
    rule: `seeded shuffle (Rng 'study-split:${c.split.seed}') of the ${images.length} images, then ${p} pre-training / ${f} fine-tuning / ${e} held-out (weights ${c.split.pretrain}:${c.split.finetune}:${c.split.eval}, held-out capped at ${c.split.maxEval})`,
    source: c.data.kind === 'builtin' ? `the ${BUILTIN_IMAGES.length} built-in 256x256 images (data/)` : `--data ${c.data.dir}`,
  };
}


/** The training files of a pool and the held-out files, by split name, for a run's data spec. */
export function poolFiles(c: StudyConfig, split: StudySplit, pool: 'pretrain' | 'finetune'): FileListData {
  const byName = new Map(sourceImages(c).map((s) => [s.name, s.file]));
  const files = (names: string[]) => names.map((name) => ({ name, file: path.resolve(byName.get(name)!) }));
  return { kind: 'files', train: files(split[pool]), eval: files(split.eval) };
}

export async function loadHeldOut(c: StudyConfig, split: StudySplit, channels: 1 | 3): Promise<NamedImage[]> {
  const byName = new Map(sourceImages(c).map((s) => [s.name, s]));
  return Promise.all(split.eval.map(async (name) => ({ name, image: await readImage(byName.get(name)!.file, { channels }) })));
}
