/**
 * MPRNet's released checkpoints: one Google Drive file per task (Deblurring/, Denoising/, Deraining/
 * pretrained_models/README.md). Drive serves large files through a confirmation page, so there is no direct URL:
 * `irlens weights get` names the page and the path to drop the file into (or use IRLENS_WEIGHTS_MIRROR).
 * State-dict key 'state_dict' (utils/model_utils.py load_checkpoint).
 */
import type { OfficialWeightsEntry } from '../../models/family';

export const MPRNET_OFFICIAL_WEIGHTS: OfficialWeightsEntry[] = [
  {
    name: 'mprnet-model_deblurring',
    file: 'model_deblurring.pth',
    preset: 'mprnet-deblur',
    task: 'deblur',
    source: 'https://drive.google.com/file/d/1QwQUVbk6YVOJViCsOKYNykCsdJSVGRtb/view',
    paramKey: 'state_dict',
    note: 'GoPro',
  },
  {
    name: 'mprnet-model_denoising',
    file: 'model_denoising.pth',
    preset: 'mprnet-denoise',
    task: 'denoise',
    source: 'https://drive.google.com/file/d/1LODPt9kYmxwU98g96UrRA0_Eh5HYcsRw/view',
    paramKey: 'state_dict',
    note: 'SIDD real-image denoising',
  },
  {
    name: 'mprnet-model_deraining',
    file: 'model_deraining.pth',
    preset: 'mprnet-derain',
    task: 'derain',
    source: 'https://drive.google.com/file/d/1O3WEJbcat7eTY6doXWeorAbQ1l_WmMnM/view',
    paramKey: 'state_dict',
    note: 'Rain13K',
  },
];
