/**
 * The EDT pre-training study (Li et al., arXiv 2112.10175, section 4): for one architecture, at equal compute,
 *
 *   scratch    the target task only, on the fine-tuning pool, for pre-train + fine-tune steps;
 *   single     pre-train on the target task on the pre-training pool, then fine-tune on the fine-tuning pool;
 *   related    pre-train on related tasks (sr-x2+sr-x3+sr-x4 for an SR target, dn-15+dn-25+dn-50 for a
 *              denoising target), then fine-tune;
 *   unrelated  pre-train on unrelated tasks (sr-x2 + dn-25 + dr-light by default), then fine-tune;
 *
 * each arm on each target task (default sr-x2 and dn-25), for several seeds; the finished models are evaluated
 * on held-out images that no run trains on (PSNR/SSIM, BasicSR conventions) and compared with CKA.
 *
 * Modules: config (settings, presets, validation), plan (runs, patches, equal-compute accounting), data (the
 * split into pools and their file lists), run (orchestration: runStudy), evaluate (final PSNR/SSIM, summary),
 * curves (training curves from the logs), cka, notes, types (StudyResult), report (HTML/JSON, writeStudyReport).
 */
export * from './config';
export * from './plan';
export * from './data';
export * from './types';
export * from './evaluate';
export * from './curves';
export * from './cka';
export * from './notes';
export * from './run';
export * from './report';
