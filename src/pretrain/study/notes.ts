/** What the study at its preset's scale can and cannot show (the report's notes). */
import type { StudyConfig } from './config';

/** What the study at this preset's scale can and cannot show. */
export function studyNotes(c: StudyConfig): string[] {
  const notes: string[] = [];
  if (c.preset !== 'paper') {
    notes.push(
      `Scale: ${c.model} (tiny), ${c.stepsPretrain} pre-training + ${c.stepsFinetune} fine-tuning steps of batch ${c.batch}, ${c.seeds.length} seed(s), ` +
        `${c.data.kind === 'builtin' ? 'ten 256x256 built-in images' : 'the images of --data'} split into small pools. This is minutes of CPU training; ` +
        'the paper pre-trains EDT-B for 500k iterations on 200k ImageNet images and fine-tunes on DIV2K+Flickr2K.',
      'What it can show: that the pipeline works end to end (equal-compute arms, multi-task pre-training with shared bodies, fine-tuning with reused or new heads, ' +
        'held-out evaluation, per-layer and layer x layer CKA), and differences between arms when they exceed the seed-to-seed spread.',
      'What it cannot show: the paper\'s result. Differences between arms at this scale may be within noise (compare them with the ± std over seeds and the ' +
        'per-seed values in the JSON); the tiny models are far from convergence, the pre-training pool is a handful of images, not ImageNet, and with so few ' +
        'steps a pre-trained model mostly differs from scratch by its learning-rate schedule and data. The CKA plots show the method working, not the paper\'s finding.',
    );
  } else {
    notes.push(
      'Paper settings (EDT, arXiv 2112.10175, and its official configs): EDT-B, pre-training on ImageNet (200k images) for 500k iterations, SR input patches ' +
        '48x48, denoising/deraining inputs 192x192, Adam (0.9, 0.99), lr 2e-4 halved at 250k/400k/450k/475k, fine-tuning at lr 1e-5 (500k iterations for SR, ' +
        '800k for DN in the official configs; one stepsFinetune here), 4 images per GPU (batch 32 assumes 8 GPUs). Give --data with large images: the SR x2/x3/x4 ' +
        'mix needs a patch that is a multiple of every scale\'s unit.',
      'Differences from the paper: one GT patch size per run (the trainer draws every task of a mix at one size, so SR x2 inputs in the x2/x3/x4 mix are larger ' +
        'than 48), the pools come from one folder split by --split, and the scratch arm trains for pre-train + fine-tune steps (equal compute) instead of the ' +
        'paper\'s from-scratch schedule.',
    );
  }
  notes.push(
    'What the paper found (for comparison): pre-training helps SR much more than denoising (denoising gains 0.02-0.11 dB); multi-related-task pre-training is the ' +
      'most effective and data-efficient; CKA shows pre-training mostly changes the higher layers of SR models (more local information there) and barely touches denoising models.',
  );
  return notes;
}


/** How the arms are given equal compute (the report's accounting note). */

export const ACCOUNTING_RULE =
  'equal compute in optimisation steps: every pre-trained arm gets stepsPretrain steps of pre-training (all tasks of its mix together, ' +
    'round-robin, one task per batch) and stepsFinetune steps of fine-tuning on the target; scratch gets stepsPretrain + stepsFinetune steps on the ' +
    'target alone, on the fine-tuning pool. Batch size is the same everywhere; patch sizes (and so FLOPs per step) differ between tasks and mixes ' +
    '(see the patch column), so equal steps are not exactly equal FLOPs.';

/** How the final models and the curves were evaluated, on `count` held-out images. */
export function evaluationRule(config: StudyConfig, count: number): string {
  return (
    `final models evaluated on the ${count} held-out images (${config.finalEvalSize > 0 ? `centre crops of at most ${config.finalEvalSize} px` : 'whole images'}), ` +
    'inputs degraded with noise/rain seeded by (target, image) only, so every arm and seed sees the same inputs; PSNR/SSIM with BasicSR conventions ' +
    '(8-bit quantised outputs; SR: Y channel, border of the scale cropped; others: RGB, no crop). Curves: the trainer\'s evaluations on the same ' +
    `held-out images (${config.evalSize > 0 ? `centre crops of at most ${config.evalSize} px` : 'whole'}), noise seeded per run.`
  );
}
