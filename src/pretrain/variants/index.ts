/**
 * Architectural ablations (`ablate variants`): each family declares named variants as config deltas (its
 * descriptor's `variants`, src/models/<family>.ts); this study trains a chosen set of them on top of one preset
 * at equal compute over several seeds and compares them with paired statistics against a baseline.
 *
 * Modules: config (settings, presets, variant resolution and parameter counts), plan (runs, common patch,
 * accounting), run (training, held-out evaluation, statistics: runVariants), report (HTML/JSON).
 */
export * from './config';
export * from './plan';
export * from './run';
export * from './report';
