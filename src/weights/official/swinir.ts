/**
 * SwinIR's released checkpoints: assets of the GitHub release v0.0 of JingyunLiang/SwinIR (file names from the
 * README's test commands, main_test_swinir.py's download URL pattern and download-weights.sh). Direct downloads;
 * sizes and sha256 are not published by the authors, so they are left out (a strict load verifies each file).
 * State-dict keys: 'params' ('params_ema' for the GAN-trained real-world SR models), as main_test_swinir.py reads them.
 */
import type { OfficialWeightsEntry } from '../../models/family';

const RELEASE = 'https://github.com/JingyunLiang/SwinIR/releases/tag/v0.0';
const DOWNLOAD = 'https://github.com/JingyunLiang/SwinIR/releases/download/v0.0';

function entry(file: string, preset: string, task: string, extra: Partial<OfficialWeightsEntry> = {}): OfficialWeightsEntry {
  return { name: file.replace(/\.pth$/, ''), file, preset, task, source: RELEASE, url: `${DOWNLOAD}/${file}`, ...extra };
}

const SR_SCALES = [2, 3, 4, 8] as const;

export const SWINIR_OFFICIAL_WEIGHTS: OfficialWeightsEntry[] = [
  ...SR_SCALES.map((s) => entry(`001_classicalSR_DF2K_s64w8_SwinIR-M_x${s}.pth`, `swinir-sr-x${s}`, `sr-x${s}`, { paramKey: 'params' })),
  ...SR_SCALES.map((s) =>
    entry(`001_classicalSR_DIV2K_s48w8_SwinIR-M_x${s}.pth`, `swinir-sr-x${s}`, `sr-x${s}`, {
      paramKey: 'params',
      note: 'DIV2K, training patch 48 (img_size 48 only changes a buffer irlens recomputes)',
    }),
  ),
  ...[2, 3, 4].map((s) => entry(`002_lightweightSR_DIV2K_s64w8_SwinIR-S_x${s}.pth`, `swinir-light-sr-x${s}`, `sr-x${s}`, { paramKey: 'params' })),
  entry('003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth', 'swinir-real-sr-x4', 'real-sr-x4', { paramKey: 'params_ema' }),
  entry('003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_PSNR.pth', 'swinir-real-sr-x4', 'real-sr-x4', {
    note: 'PSNR-oriented variant of the real-world SR x4 model (listed in KAIR\'s SwinIR model zoo)',
  }),
  entry('003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth', '', 'real-sr-x2', {
    paramKey: 'params_ema',
    note: 'no irlens preset yet: real-world SR x2 (SwinIR-M, nearest+conv, upscale 2)',
  }),
  entry('003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth', 'swinir-real-sr-x4-l', 'real-sr-x4', { paramKey: 'params_ema' }),
  entry('003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_PSNR.pth', 'swinir-real-sr-x4-l', 'real-sr-x4', {
    note: 'PSNR-oriented variant of SwinIR-L real-world SR x4',
  }),
  ...[15, 25, 50].map((n) => entry(`004_grayDN_DFWB_s128w8_SwinIR-M_noise${n}.pth`, 'swinir-dn-gray', `dn-${n}`, { paramKey: 'params' })),
  ...[15, 25, 50].map((n) => entry(`005_colorDN_DFWB_s128w8_SwinIR-M_noise${n}.pth`, 'swinir-dn', `dn-${n}`, { paramKey: 'params' })),
  ...[10, 20, 30, 40].map((q) => entry(`006_CAR_DFWB_s126w7_SwinIR-M_jpeg${q}.pth`, 'swinir-jpeg-gray', `jpeg-q${q}`, { paramKey: 'params' })),
  ...[10, 20, 30, 40].map((q) => entry(`006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg${q}.pth`, 'swinir-jpeg', `jpeg-q${q}`, { paramKey: 'params' })),
];
