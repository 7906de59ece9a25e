/** Model zoo: importing this registers every family and preset (one import line per family file). */
import './reference';
import './restormer';
import './mprnet';
import './swinir';
import './edt';

export * from './module';
export * from './layers';
export * from './hooks';
export * from './model';
export * from './registry';
export {
  closestModelNames,
  sameSizeOnly,
  type OfficialWeightsEntry,
  type StudyDefaults,
  type TaskAdapter,
  type TrainingDefaults,
  type VariantDef,
} from './family';
export { splitHeads, windowAttention, type AttentionInput, type AttentionTaps, type WindowAttentionOptions } from './blocks/window-attention';
export * from './weights';
export * from './layer-info';
