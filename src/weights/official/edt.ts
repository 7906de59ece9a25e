/**
 * EDT's released checkpoints: the README's model zoo, all in one OneDrive folder (no direct per-file URLs), named
 * task_model_data[__pretrain-task_pretrain-data] with a config of the same name in configs/. Each entry maps to
 * the irlens preset of its task and model size; multi-task and EDTSF checkpoints without a preset say so.
 */
import type { OfficialWeightsEntry } from '../../models/family';

const ONEDRIVE =
  'https://mycuhk-my.sharepoint.com/:f:/g/personal/1155137927_link_cuhk_edu_hk/Eikt_wPDrIFCpVpiU0zYNu0BwOhQIHgNWuH1FYZbxZhq_w?e=bVEVeW';

/** The model zoo of the README (fenglinglwb/EDT), Fine-tune / Pre-train / Scratch rows. */
const NAMES = [
  'SRx2_EDTT_Div2kFlickr2K', 'SRx2_EDTT_Div2kFlickr2K__SRx2_ImageNet200K', 'SRx2_EDTT_Div2kFlickr2K__SRx2x3x4_ImageNet200K',
  'SRx2_EDTT_ImageNet200K', 'SRx2x3x4_EDTT_ImageNet200K',
  'SRx3_EDTT_Div2kFlickr2K', 'SRx3_EDTT_Div2kFlickr2K__SRx2x3x4_ImageNet200K',
  'SRx4_EDTT_Div2kFlickr2K', 'SRx4_EDTT_Div2kFlickr2K__SRx2x3x4_ImageNet200K',
  'SRx2_EDTS_Div2kFlickr2K', 'SRx2_EDTS_Div2kFlickr2K__SRx2_ImageNet200K', 'SRx2_EDTS_ImageNet200K',
  'SRx2_EDTB_Div2kFlickr2K', 'SRx2_EDTB_Div2kFlickr2K__SRx2_ImageNet50K', 'SRx2_EDTB_Div2kFlickr2K__SRx2_ImageNet100K',
  'SRx2_EDTB_Div2kFlickr2K__SRx2_ImageNet200K', 'SRx2_EDTB_Div2kFlickr2K__SRx2_ImageNet400K',
  'SRx2_EDTB_Div2kFlickr2K__SRx2_ImageNetFull', 'SRx2_EDTB_Div2kFlickr2K__SRx2x3x4_ImageNet200K',
  'SRx2_EDTB_ImageNet50K', 'SRx2_EDTB_ImageNet100K', 'SRx2_EDTB_ImageNet200K', 'SRx2_EDTB_ImageNet400K', 'SRx2_EDTB_ImageNetFull',
  'SRx3_EDTB_Div2kFlickr2K', 'SRx3_EDTB_Div2kFlickr2K__SRx3_ImageNet200K', 'SRx3_EDTB_Div2kFlickr2K__SRx2x3x4_ImageNet200K',
  'SRx3_EDTB_ImageNet200K',
  'SRx4_EDTB_Div2kFlickr2K', 'SRx4_EDTB_Div2kFlickr2K__SRx4_ImageNet200K', 'SRx4_EDTB_Div2kFlickr2K__SRx2x3x4_ImageNet200K',
  'SRx4_EDTB_ImageNet200K',
  'SRx2x3x4_EDTB_ImageNet200K', 'SRx2x3DNg15_EDTB_ImageNet200K',
  'SRx2_EDTL_Div2kFlickr2K', 'SRx2_EDTL_Div2kFlickr2K__SRx2_ImageNet200K', 'SRx2_EDTL_ImageNet200K',
  ...[15, 25, 50].flatMap((n) => [
    `DNg${n}_EDTB_D4`, `DNg${n}_EDTB_D4__DNg${n}_ImageNet200K`, `DNg${n}_EDTB_D4__DNg15g25g50_ImageNet200K`,
    `DNg${n}_EDTB_ImageNet200K`, `DNg${n}_EDTBSF_D4`,
  ]),
  'DNg15g25g50_EDTB_ImageNet200K',
  'DRls_EDTB_RAIN100L__DRls_ImageNet200K', 'DRls_EDTB_RAIN100L__DRlshs_ImageNet200K', 'DRls_EDTB_ImageNet200K',
  'DRhs_EDTB_RAIN100H__DRhs_ImageNet200K', 'DRhs_EDTB_RAIN100H__DRlshs_ImageNet200K', 'DRhs_EDTB_ImageNet200K',
  'DRlshs_EDTB_ImageNet200K',
];

const SIZE_PRESET: Record<string, string> = { EDTT: 'edt-t', EDTS: 'edt-s', EDTB: 'edt-b', EDTL: 'edt-l' };
const RAIN_TASK: Record<string, string> = { ls: 'dr-light', hs: 'dr-heavy' };

/** Preset, task and note of one model-zoo name, from its task_model part (the config it was trained with). */
function describe(name: string): Pick<OfficialWeightsEntry, 'preset' | 'task' | 'note'> {
  const [task, model] = name.split('__')[0].split('_');
  const size = SIZE_PRESET[model];
  const sr = /^SRx(\d)$/.exec(task);
  const dn = /^DNg(\d+)$/.exec(task);
  const dr = /^DR(ls|hs)$/.exec(task);
  const pretrainOnly = !name.includes('__') && name.includes('ImageNet') ? 'pre-trained on ImageNet only' : undefined;
  if (model === 'EDTBSF') return { preset: '', task: dn ? `dn-${dn[1]}` : task, note: 'no irlens preset yet: EDT-B without the encoder/decoder down/up-sampling (EDTBSF)' };
  if (sr && size) return { preset: `${size}-sr-x${sr[1]}`, task: `sr-x${sr[1]}`, ...(pretrainOnly ? { note: pretrainOnly } : {}) };
  if (dn && size === 'edt-b') return { preset: `edt-b-dn-g${dn[1]}`, task: `dn-${dn[1]}`, ...(pretrainOnly ? { note: pretrainOnly } : {}) };
  if (dr && size === 'edt-b') return { preset: `edt-b-${RAIN_TASK[dr[1]]}`, task: RAIN_TASK[dr[1]], ...(pretrainOnly ? { note: pretrainOnly } : {}) };
  if (task === 'SRx2x3x4' && size === 'edt-t') return { preset: 'edt-t-sr-x2x3x4', task: 'sr-x2,sr-x3,sr-x4', note: 'multi-task pre-training on ImageNet' };
  const tasks: Record<string, string> = { SRx2x3x4: 'sr-x2,sr-x3,sr-x4', SRx2x3DNg15: 'sr-x2,sr-x3,dn-15', DNg15g25g50: 'dn-15,dn-25,dn-50', DRlshs: 'dr-light,dr-heavy' };
  return { preset: '', task: tasks[task] ?? task, note: `no irlens preset yet: multi-task ${model} (configs/${name}.py); load it with an edt config giving those branches` };
}

export const EDT_OFFICIAL_WEIGHTS: OfficialWeightsEntry[] = NAMES.map((name) => ({
  name,
  file: `${name}.pth`,
  ...describe(name),
  source: ONEDRIVE,
}));
