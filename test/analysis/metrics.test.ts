import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ImageF32 } from '../../src/io/types';
import { evaluateBatch, psnr, ssim } from '../../src/analysis/metrics';

interface B64Image { shape: number[]; data: string }
function decode(b: B64Image): ImageF32 {
  const buf = Buffer.from(b.data, 'base64');
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return { data, height: b.shape[0], width: b.shape[1], channels: b.shape[2] };
}

const fx = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/degradations/metrics.json'), 'utf8'));
const images: Record<string, ImageF32> = Object.fromEntries(Object.entries(fx.images).map(([k, v]) => [k, decode(v as B64Image)]));

describe('PSNR / SSIM (BasicSR conventions) against numpy / skimage', () => {
  for (const c of fx.cases) {
    const label = `${c.a} vs ${c.b}, crop ${c.cropBorder}, ${c.testYChannel ? 'Y' : 'all channels'}${c.quantize ? ', quantised' : ''}`;
    it(label, () => {
      const opts = { cropBorder: c.cropBorder, testYChannel: c.testYChannel, quantize: c.quantize };
      expect(Math.abs(psnr(images[c.a], images[c.b], opts) - c.psnr)).toBeLessThan(1e-6);
      expect(Math.abs(ssim(images[c.a], images[c.b], opts) - c.ssim)).toBeLessThan(1e-6);
    });
  }
});

describe('metric edge cases', () => {
  const gt = images.gt;
  it('identical images: PSNR Infinity, SSIM 1', () => {
    expect(psnr(gt, gt)).toBe(Infinity);
    expect(psnr(gt, gt, { testYChannel: true, cropBorder: 2 })).toBe(Infinity);
    expect(ssim(gt, gt)).toBeCloseTo(1, 12);
    expect(ssim(gt, gt, { testYChannel: true })).toBeCloseTo(1, 12);
  });
  it('is symmetric and orders degradations sensibly', () => {
    expect(psnr(images.noisy, gt)).toBeCloseTo(psnr(gt, images.noisy), 12);
    expect(ssim(images.noisy, gt)).toBeCloseTo(ssim(gt, images.noisy), 12);
    expect(psnr(images.offGrid, gt)).toBeGreaterThan(psnr(images.noisy, gt));
  });
  it('batch helper returns per-image values and their means', () => {
    const r = evaluateBatch([images.noisy, images.blurred], [gt, gt], { cropBorder: 2, testYChannel: true });
    expect(r.psnr[0]).toBeCloseTo(psnr(images.noisy, gt, { cropBorder: 2, testYChannel: true }), 12);
    expect(r.ssim[1]).toBeCloseTo(ssim(images.blurred, gt, { cropBorder: 2, testYChannel: true }), 12);
    expect(r.meanPsnr).toBeCloseTo((r.psnr[0] + r.psnr[1]) / 2, 12);
    expect(r.meanSsim).toBeCloseTo((r.ssim[0] + r.ssim[1]) / 2, 12);
    expect(evaluateBatch([gt], [gt]).meanPsnr).toBe(Infinity);
  });
  it('rejects mismatched shapes and over-large crops with one-line errors', () => {
    expect(() => psnr(gt, images.cam)).toThrow(/psnr: images differ in shape/);
    expect(() => ssim(gt, gt, { cropBorder: 15 })).toThrow(/ssim: .*cropBorder 15/);
    expect(() => psnr(gt, gt, { cropBorder: -1 })).toThrow(/cropBorder must be an integer/);
    expect(() => evaluateBatch([gt], [])).toThrow(/evaluateBatch/);
  });
  it('is fast enough for evaluation loops (256x256 RGB)', () => {
    const n = 256 * 256 * 3;
    const a: ImageF32 = { data: new Float32Array(n), height: 256, width: 256, channels: 3 };
    const b: ImageF32 = { data: new Float32Array(n), height: 256, width: 256, channels: 3 };
    for (let i = 0; i < n; i++) {
      a.data[i] = (i % 251) / 251;
      b.data[i] = ((i * 7) % 253) / 253;
    }
    psnr(a, b); // warm-up (JIT)
    ssim(a, b);
    const t0 = performance.now();
    const p = psnr(a, b);
    const t1 = performance.now();
    const s = ssim(a, b);
    const t2 = performance.now();
    console.log(`256x256 RGB: psnr ${(t1 - t0).toFixed(2)} ms, ssim ${(t2 - t1).toFixed(2)} ms`);
    expect(Number.isFinite(p) && Number.isFinite(s)).toBe(true);
  });
});
