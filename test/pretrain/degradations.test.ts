import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ImageF32 } from '../../src/io/types';
import { Rng } from '../../src/util/rng';
import { psnr } from '../../src/analysis/metrics';
import {
  addGaussianNoise,
  addRain,
  bicubicDownsample,
  convolve2d,
  degradationForms,
  diskKernel,
  imresize,
  jpegRoundTrip,
  kernelSum,
  modcrop,
  motionBlur,
  motionKernel,
  parseDegradation,
  resizeContributions,
  registerDegradation,
  srFactor,
} from '../../src/degradations';

interface B64Image { shape: number[]; data: string }
function decode(b: B64Image): ImageF32 {
  const buf = Buffer.from(b.data, 'base64');
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return { data, height: b.shape[0], width: b.shape[1], channels: b.shape[2] };
}

/** Deterministic smooth-ish test image without an Rng (so image content never depends on the code under test). */
function testImage(h: number, w: number, c = 3): ImageF32 {
  const data = new Float32Array(h * w * c);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let k = 0; k < c; k++) {
        data[(y * w + x) * c + k] = 0.5 + 0.35 * Math.sin(0.11 * x * (k + 1) + 0.07 * y) * Math.cos(0.05 * y * (k + 2));
      }
  return { data, height: h, width: w, channels: c };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('imresize (MATLAB bicubic)', () => {
  const fx = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/degradations/imresize.json'), 'utf8'));
  const inputs: Record<string, ImageF32> = { rgb: decode(fx.images.rgb), gray: decode(fx.images.gray) };
  for (const c of fx.cases) {
    it(`matches the numpy MATLAB reference: ${c.name}`, () => {
      const want = decode(c.output);
      const got = imresize(inputs[c.input], c.size ?? c.scale);
      expect([got.height, got.width, got.channels]).toEqual([want.height, want.width, want.channels]);
      expect(maxAbsDiff(got.data, want.data)).toBeLessThan(1e-5);
    });
  }

  it('keeps a constant image constant (down and up)', () => {
    const img: ImageF32 = { data: new Float32Array(30 * 27 * 3).fill(0.375), height: 30, width: 27, channels: 3 };
    for (const s of [1 / 2, 1 / 3, 1 / 4, 2, 3]) {
      const out = imresize(img, s);
      expect(Math.max(...out.data.map((v) => Math.abs(v - 0.375)))).toBeLessThan(1e-6);
    }
  });

  it('downscaling an upscaled smooth ramp gives the ramp back (away from the borders)', () => {
    const h = 16, w = 20;
    const ramp: ImageF32 = { data: new Float32Array(h * w), height: h, width: w, channels: 1 };
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) ramp.data[y * w + x] = 0.1 + 0.03 * x + 0.02 * y;
    const back = imresize(imresize(ramp, 2), 0.5);
    expect([back.height, back.width]).toEqual([h, w]);
    for (let y = 3; y < h - 3; y++)
      for (let x = 3; x < w - 3; x++) expect(Math.abs(back.data[y * w + x] - ramp.data[y * w + x])).toBeLessThan(1e-5);
  });

  it('weight rows sum to 1 and indices stay in range', () => {
    for (const [n, m, s] of [[24, 8, 1 / 3], [13, 7, 0.5], [17, 34, 2], [24, 10, 10 / 24]] as const) {
      const c = resizeContributions(n, m, s);
      for (let i = 0; i < m; i++) {
        let sum = 0;
        for (let t = 0; t < c.taps; t++) {
          sum += c.weights[i * c.taps + t];
          expect(c.indices[i * c.taps + t]).toBeGreaterThanOrEqual(0);
          expect(c.indices[i * c.taps + t]).toBeLessThan(n);
        }
        expect(sum).toBeCloseTo(1, 12);
      }
    }
  });

  it('modcrop crops to a multiple of the scale, and sr-xN pairs lq with the modcropped gt', async () => {
    const img = testImage(26, 23);
    expect([modcrop(img, 4).height, modcrop(img, 4).width]).toEqual([24, 20]);
    const { lq, gt } = bicubicDownsample(img, 3);
    expect([gt.height, gt.width, lq.height, lq.width]).toEqual([24, 21, 8, 7]);
    const pair = await parseDegradation('sr-x3').applyPair(img, new Rng(1));
    expect(maxAbsDiff(pair.lq.data, lq.data)).toBe(0);
    expect(maxAbsDiff(pair.gt.data, gt.data)).toBe(0);
  });

  it('is not quantised unless asked', () => {
    const img = testImage(16, 16);
    const raw = imresize(img, 0.5);
    const q = imresize(img, 0.5, { quantize: true });
    expect(raw.data.some((v) => Math.abs(v * 255 - Math.round(v * 255)) > 1e-3)).toBe(true);
    for (const v of q.data) expect(Math.abs(v * 255 - Math.round(v * 255))).toBeLessThan(1e-4);
    expect(maxAbsDiff(raw.data, q.data)).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
  });
});

describe('Gaussian noise', () => {
  const img = testImage(128, 128);
  it('has mean ~0 and std ~sigma/255', () => {
    for (const sigma of [15, 25, 50]) {
      const out = addGaussianNoise(img, new Rng(7), sigma);
      let s = 0, s2 = 0;
      const n = out.data.length;
      for (let i = 0; i < n; i++) {
        const d = out.data[i] - img.data[i];
        s += d;
        s2 += d * d;
      }
      const mean = s / n;
      const std = Math.sqrt(s2 / n - mean * mean);
      const sd = sigma / 255;
      expect(Math.abs(mean)).toBeLessThan((4 * sd) / Math.sqrt(n));
      expect(Math.abs(std / sd - 1)).toBeLessThan(0.01);
    }
  });
  it('is deterministic for a seed, differs across seeds, clips only on request', () => {
    const a = addGaussianNoise(img, new Rng(3), 25);
    const b = addGaussianNoise(img, new Rng(3), 25);
    const c = addGaussianNoise(img, new Rng(4), 25);
    expect(maxAbsDiff(a.data, b.data)).toBe(0);
    expect(maxAbsDiff(a.data, c.data)).toBeGreaterThan(0.01);
    expect(a.data.some((v) => v < 0 || v > 1)).toBe(true);
    const clipped = addGaussianNoise(img, new Rng(3), 50, { clip: true });
    expect(clipped.data.every((v) => v >= 0 && v <= 1)).toBe(true);
  });
});

describe('rain streaks', () => {
  const img = testImage(96, 96);
  const meanIncrease = (out: ImageF32) => {
    let s = 0;
    for (let i = 0; i < img.data.length; i++) s += out.data[i] - img.data[i];
    return s / img.data.length;
  };
  it('is deterministic and only brightens', () => {
    for (const preset of ['light', 'heavy'] as const) {
      const a = addRain(img, new Rng(11), preset);
      const b = addRain(img, new Rng(11), preset);
      expect(maxAbsDiff(a.image.data, b.image.data)).toBe(0);
      let minChange = Infinity;
      for (let i = 0; i < img.data.length; i++) minChange = Math.min(minChange, a.image.data[i] - img.data[i]);
      expect(minChange).toBeGreaterThanOrEqual(-1e-7);
      expect(a.image.data.every((v) => v >= 0 && v <= 1)).toBe(true);
      expect(maxAbsDiff(a.image.data, addRain(img, new Rng(12), preset).image.data)).toBeGreaterThan(0.05);
    }
  });
  it('heavy covers more of the image than light', () => {
    for (const seed of [1, 2, 3]) {
      const light = addRain(img, new Rng(seed), 'light');
      const heavy = addRain(img, new Rng(seed), 'heavy');
      const covered = (s: Float32Array) => s.filter((v) => v > 0.05).length / s.length;
      expect(covered(heavy.streaks)).toBeGreaterThan(2 * covered(light.streaks));
      expect(meanIncrease(heavy.image)).toBeGreaterThan(meanIncrease(light.image));
      expect(meanIncrease(light.image)).toBeGreaterThan(0);
    }
  });
});

describe('blur', () => {
  it('kernels sum to 1', () => {
    for (const k of [motionKernel(9, 30), motionKernel(15, 90, 15), motionKernel(6.3, 137), diskKernel(1), diskKernel(2.5), diskKernel(4)]) {
      expect(kernelSum(k)).toBeCloseTo(1, 12);
      expect(k.height % 2).toBe(1);
    }
    const r = motionBlur(testImage(20, 20), new Rng(5), { size: 11 });
    expect([r.kernel.height, r.kernel.width]).toEqual([11, 11]);
    expect(kernelSum(r.kernel)).toBeCloseTo(1, 12);
  });
  it('keeps constants, is deterministic, and returns the kernel through applyPair', async () => {
    const flat: ImageF32 = { data: new Float32Array(24 * 24 * 3).fill(0.6), height: 24, width: 24, channels: 3 };
    for (const name of ['blur-motion', 'blur-motion-k9', 'blur-defocus-r3']) {
      const d = parseDegradation(name);
      const out = await d.apply(flat, new Rng(1));
      expect(Math.max(...out.data.map((v) => Math.abs(v - 0.6)))).toBeLessThan(1e-6);
      const img = testImage(24, 24);
      const a = await d.applyPair(img, new Rng(9));
      const b = await d.applyPair(img, new Rng(9));
      expect(maxAbsDiff(a.lq.data, b.lq.data)).toBe(0);
      expect(a.kernel).toBeDefined();
      expect(kernelSum(a.kernel!)).toBeCloseTo(1, 12);
    }
  });
  it('convolve2d is a flipped-kernel convolution with the requested mirror boundary', () => {
    const img = testImage(7, 9);
    // Asymmetric 3x5 kernel so a missing flip or a wrong centre shows.
    const k = { data: Float64Array.from({ length: 15 }, (_, i) => (i * 7) % 5 + 0.5 * i), height: 3, width: 5 };
    const mirrors = {
      symmetric: (p: number, n: number) => (p < 0 ? -p - 1 : p >= n ? 2 * n - 1 - p : p),
      reflect: (p: number, n: number) => (p < 0 ? -p : p >= n ? 2 * n - 2 - p : p),
    };
    for (const boundary of ['symmetric', 'reflect'] as const) {
      const got = convolve2d(img, k, boundary);
      const m = mirrors[boundary];
      let worst = 0;
      for (let y = 0; y < 7; y++)
        for (let x = 0; x < 9; x++)
          for (let c = 0; c < 3; c++) {
            let want = 0;
            for (let i = 0; i < 3; i++)
              for (let j = 0; j < 5; j++) want += k.data[i * 5 + j] * img.data[(m(y - i + 1, 7) * 9 + m(x - j + 2, 9)) * 3 + c];
            worst = Math.max(worst, Math.abs(got.data[(y * 9 + x) * 3 + c] - want));
          }
      expect(worst).toBeLessThan(1e-5);
    }
  });
  it('a horizontal motion kernel blurs along rows only', () => {
    const k = motionKernel(5, 0);
    expect(k.height).toBe(5);
    for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) if (i !== 2) expect(k.data[i * 5 + j]).toBe(0);
    const v = motionKernel(5, 90);
    for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) if (j !== 2) expect(v.data[i * 5 + j]).toBe(0);
  });
});

describe('jpeg', () => {
  it('round trip quality orders as expected and is deterministic', async () => {
    const img = testImage(64, 64);
    const q10 = await jpegRoundTrip(img, 10);
    const q90 = await jpegRoundTrip(img, 90);
    const p10 = psnr(q10, img);
    const p90 = psnr(q90, img);
    expect(p10).toBeGreaterThan(20);
    expect(p10).toBeLessThan(40);
    expect(p90).toBeGreaterThan(p10 + 5);
    expect(p90).toBeLessThan(60);
    expect(maxAbsDiff(q10.data, (await jpegRoundTrip(img, 10)).data)).toBe(0);
    const gray = await jpegRoundTrip(testImage(32, 32, 1), 50);
    expect(gray.channels).toBe(1);
  });
});

describe('registry', () => {
  it('parses every documented form', () => {
    const cases: [string, string, number][] = [
      ['sr-x2', 'sr', 2], ['sr-x3', 'sr', 3], ['sr-x4', 'sr', 4], ['dn-15', 'dn', 1], ['dn-25', 'dn', 1],
      ['dn-50', 'dn', 1], ['dn-7.5', 'dn', 1], ['dr-light', 'dr', 1], ['dr-heavy', 'dr', 1], ['blur-motion', 'blur', 1],
      ['blur-motion-k21', 'blur', 1], ['blur-defocus-r2', 'blur', 1], ['jpeg-q10', 'jpeg', 1], ['none', 'none', 1],
    ];
    for (const [name, kind, scale] of cases) {
      const d = parseDegradation(name);
      expect([d.name, d.kind, d.scale]).toEqual([name, kind, scale]);
      expect(d.applySync === undefined).toBe(kind === 'jpeg');
    }
  });
  it('rejects bad names with a one-line message listing valid forms', () => {
    for (const bad of ['sr-x1', 'dn-', 'rain', 'blur-motion-k8', 'jpeg-q0', 'jpeg-q101', 'dn-0']) {
      let msg = '';
      try {
        parseDegradation(bad);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toContain(bad);
      expect(msg.includes('\n')).toBe(false);
    }
    expect(() => parseDegradation('nope')).toThrow(degradationForms().join(', '));
  });
});

describe('registry without the study', () => {
  it("parses pre-upsampled SR 'sr-up-x<s>' after importing only the degradations", async () => {
    const d = parseDegradation('sr-up-x3');
    expect([d.name, d.kind, d.scale]).toEqual(['sr-up-x3', 'sr', 1]);
    const img: ImageF32 = { data: new Float32Array(31 * 32 * 3).map((_, i) => (i % 11) / 11), height: 31, width: 32, channels: 3 };
    const { lq, gt, params } = await d.applyPair(img, new Rng(0));
    // modcrop to a multiple of 3, then down and up again: same size as the target.
    expect([gt.height, gt.width, lq.height, lq.width]).toEqual([30, 30, 30, 30]);
    expect(params).toEqual({ factor: 3, preUpsampled: true });
    expect(srFactor('sr-up-x3')).toBe(3);
    expect(srFactor('sr-x4')).toBe(4);
    expect(srFactor('dn-25')).toBe(1);
  });

  it('refuses a second family with a taken form, in one line', () => {
    const family = { form: 'sr-x<2..8>', pattern: /^never$/, make: () => parseDegradation('none') };
    expect(() => registerDegradation(family)).toThrow(/^registerDegradation: degradation form 'sr-x<2\.\.8>' is already registered$/);
  });
});
