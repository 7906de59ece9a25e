/** Checkpoint I/O: torch.save (zip and legacy) reading without executing pickles, safetensors read/write. */
export {
  CheckpointError,
  DTYPE_ITEMSIZE,
  isRawTensor,
  numelOf,
  TENSOR_DTYPES,
  type RawTensor,
  type StateDict,
  type TensorData,
  type TensorDType,
} from './tensor';
export { MAX_PICKLE_BYTES, type TorchCheckpoint, type TorchFormat } from './torch';
export { PICKLE_LIMITS, scanPickle } from './pickle';
export {
  detectCheckpointFormat,
  extractStateDict,
  loadStateDict,
  loadStateDictFromBytes,
  parseTorchCheckpoint,
  readTorchCheckpoint,
  STATE_DICT_KEYS,
  type CheckpointFormat,
  type ExtractOptions,
  type LoadedStateDict,
  type LoadOptions,
} from './state-dict';
export {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  writeSafetensors,
  type SafetensorsContent,
  type SafetensorsWriteOptions,
} from './safetensors';
