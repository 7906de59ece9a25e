/**
 * Which weights a model runs with, for every output (JSON fields, report headers, figure footers): official
 * checkpoints, irlens's shipped trained tiny weights, a user's file, or an untrained random initialisation.
 */

export type WeightsSource = 'official' | 'irlens-trained' | 'file' | 'random-init';

export interface WeightsProvenance {
  source: WeightsSource;
  /** Catalog name (official or shipped weights). */
  name?: string;
  /** Absolute path of the loaded file. */
  file?: string;
  /** sha256 (hex) of the loaded file's bytes. */
  sha256?: string;
  /** Who trained the weights: the paper's authors, irlens's recipe, or unknown for a user's file. */
  trainedBy?: string;
  /** Command that trained them (shipped weights). */
  recipe?: string;
  /** Where the file came from (official weights). */
  url?: string;
  /** Seed of a random initialisation. */
  seed?: number;
}

export interface WeightsDescription {
  source: WeightsSource;
  file: string | null;
  sha256: string | null;
  trainedBy: string | null;
  /** Present for random-init models: put it, visibly, in every report. */
  warning?: string;
}

export const RANDOM_INIT_WARNING =
  'WARNING: randomly initialised, untrained weights. Results describe an untrained network, not what a trained restoration model learns.';

/** The provenance of a model without weights. */
export function randomInitProvenance(seed: number): WeightsProvenance {
  return { source: 'random-init', seed, trainedBy: 'nobody (random initialisation)' };
}

/**
 * The weights line every output carries: { source, file, sha256, trainedBy } and, for random-init models, a loud
 * `warning`. Accepts a LoadedModel (anything with `provenance`) or a provenance object.
 */
export function describeWeights(loaded: { provenance: WeightsProvenance } | WeightsProvenance): WeightsDescription {
  const p: WeightsProvenance = 'provenance' in loaded ? loaded.provenance : loaded;
  const d: WeightsDescription = {
    source: p.source,
    file: p.file ?? null,
    sha256: p.sha256 ?? null,
    trainedBy: p.trainedBy ?? null,
  };
  if (p.source === 'random-init') d.warning = `${RANDOM_INIT_WARNING}${p.seed !== undefined ? ` (seed ${p.seed})` : ''}`;
  return d;
}

/** One line for logs and figure footers, e.g. "weights: irlens-trained restormer-tiny-deblur (sha256 1a2b3c4d…)". */
export function weightsLine(loaded: { provenance: WeightsProvenance } | WeightsProvenance): string {
  const p: WeightsProvenance = 'provenance' in loaded ? loaded.provenance : loaded;
  if (p.source === 'random-init') return `weights: RANDOM INIT${p.seed !== undefined ? ` (seed ${p.seed})` : ''}, untrained`;
  const what = p.name ?? p.file ?? '?';
  return `weights: ${p.source} ${what}${p.sha256 ? ` (sha256 ${p.sha256.slice(0, 12)})` : ''}${p.trainedBy ? `, trained by ${p.trainedBy}` : ''}`;
}
