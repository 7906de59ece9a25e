/**
 * Restormer's released checkpoints. The task READMEs link Google Drive folders (Motion_Deblurring/, Deraining/,
 * Defocus_Deblurring/, Denoising/ pretrained_models/README.md); the same files are assets of the repository's
 * GitHub release v1.0, which are direct downloads. Sizes and sha256 are not published; a strict load verifies.
 * State-dict key 'params' (demo.py).
 */
import type { OfficialWeightsEntry } from '../../models/family';

const DOWNLOAD = 'https://github.com/swz30/Restormer/releases/download/v1.0';
const DRIVE = {
  deblur: 'https://drive.google.com/drive/folders/1czMyfRTQDX3j3ErByYeZ1PM4GVLbJeGK',
  derain: 'https://drive.google.com/drive/folders/1ZEDDEVW0UgkpWi-N4Lj_JUoVChGXCu_u',
  defocus: 'https://drive.google.com/drive/folders/1bRBG8DG_72AGA6-eRePvChlT5ZO4cwJ4',
  denoise: 'https://drive.google.com/drive/folders/1Qwsjyny54RZWa7zC4Apg7exixLBo4uF0',
  realDenoise: 'https://drive.google.com/file/d/1FF_4NTboTWQ7sHCq4xhyLZsSl0U0JfjH/view',
};

function entry(file: string, preset: string, task: string, source: string, note?: string): OfficialWeightsEntry {
  return {
    name: file.replace(/\.pth$/, ''),
    file,
    preset,
    task,
    source,
    url: `${DOWNLOAD}/${file}`,
    paramKey: 'params',
    ...(note ? { note } : {}),
  };
}

export const RESTORMER_OFFICIAL_WEIGHTS: OfficialWeightsEntry[] = [
  entry('motion_deblurring.pth', 'restormer-deblur', 'deblur', DRIVE.deblur, 'GoPro'),
  entry('deraining.pth', 'restormer-derain', 'derain', DRIVE.derain, 'Rain13K'),
  entry('single_image_defocus_deblurring.pth', 'restormer', 'defocus', DRIVE.defocus, 'DPDD, single image'),
  entry('dual_pixel_defocus_deblurring.pth', 'restormer-defocus-dp', 'defocus', DRIVE.defocus, 'DPDD, dual-pixel (6 input channels)'),
  entry('real_denoising.pth', 'restormer-denoise', 'denoise', DRIVE.realDenoise, 'SIDD real-image denoising'),
  entry('gaussian_color_denoising_blind.pth', 'restormer-denoise', 'dn-25', DRIVE.denoise, 'blind: one model for sigma 0-50'),
  ...[15, 25, 50].map((n) => entry(`gaussian_color_denoising_sigma${n}.pth`, 'restormer-denoise', `dn-${n}`, DRIVE.denoise)),
  entry('gaussian_gray_denoising_blind.pth', 'restormer-denoise-gray', 'dn-25', DRIVE.denoise, 'blind: one model for sigma 0-50'),
  ...[15, 25, 50].map((n) => entry(`gaussian_gray_denoising_sigma${n}.pth`, 'restormer-denoise-gray', `dn-${n}`, DRIVE.denoise)),
];
