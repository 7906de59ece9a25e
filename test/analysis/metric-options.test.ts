import { describe, expect, it } from 'vitest';
import { metricOptionsFor, psnr } from '../../src/analysis/metrics';
import { describeTask } from '../../src/pretrain/multitask';

describe('metricOptionsFor: one convention for trainer, study and reports (BasicSR)', () => {
  it('crops the SR factor and measures Y for every SR form, RGB uncropped otherwise', () => {
    const sr = (b: number) => ({ cropBorder: b, testYChannel: true, quantize: true });
    const rgb = { cropBorder: 0, testYChannel: false, quantize: true };
    expect(metricOptionsFor(describeTask('sr-x2'))).toEqual(sr(2));
    expect(metricOptionsFor(describeTask('sr-x4'))).toEqual(sr(4));
    // Pre-upsampled SR has scale 1 but the factor of its name (the study and the trainer used to disagree: 0 vs 3).
    expect(metricOptionsFor(describeTask('sr-up-x3'))).toEqual(sr(3));
    // Real-world SR: Y channel and the scale's border (the study used to measure RGB uncropped).
    expect(metricOptionsFor(describeTask('real-sr-x4'))).toEqual(sr(4));
    for (const t of ['dn-25', 'dr-light', 'blur-motion', 'jpeg-q20', 'deblur']) expect(metricOptionsFor(describeTask(t))).toEqual(rgb);
  });

  it('makes the cropped border matter: a wrong border or channel changes the number', () => {
    const n = 24;
    const gt = { data: new Float32Array(n * n * 3).map((_, i) => ((i * 7) % 13) / 13), height: n, width: n, channels: 3 };
    const out = { ...gt, data: gt.data.slice() };
    // Damage only the outer 3-pixel frame of the red channel.
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) if (y < 3 || x < 3 || y >= n - 3 || x >= n - 3) out.data[(y * n + x) * 3] = 0;
    const opts = metricOptionsFor(describeTask('sr-up-x3'));
    expect(psnr(out, gt, opts)).toBe(Infinity);
    expect(psnr(out, gt, { ...opts, cropBorder: 0 })).toBeLessThan(40);
  });
});
