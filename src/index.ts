/**
 * irlens library API: an explicit list, grouped by layer (util <- engine <- io/degradations <- models <-
 * analysis/pretrain). What is not listed here is internal and may change; deeper modules stay importable by
 * path for tests and tools.
 *
 *   import * as irlens from 'irlens';
 *   await irlens.initBackend();
 *   const model = irlens.createModel('restormer-tiny');
 *   const { output, cache } = model.runWithCache(x, ['encoder_level1.*', 'latent']);
 *   irlens.disposeCache(cache);
 */

// ------------------------------------------------------------------------------------------ util, version
export { Rng, type RngState } from './util/rng';
export { closestNames } from './util/closest';
export { IRLENS_VERSION, PACKAGE_ROOT } from './version';

// ------------------------------------------------------------------------------------------------ engine
/** TF.js backend selection (wasm with irlens kernels, cpu, native). */
export { initBackend, backendInfo, parseBackendName, BACKEND_NAMES, type BackendName, type BackendInfo } from './engine/backend';

// ---------------------------------------------------------------------------------------------------- io
/** Images (float32 HWC in [0,1]), .npy files, image folders and the built-in test images. */
export {
  readImage,
  writePng,
  encodePng,
  assertImage,
  convertChannels,
  imageToTensor,
  tensorToImages,
  cropImage,
  centerCrop,
  centerCropSquare,
  cropToMultiple,
  resizeImage,
  readNpy,
  writeNpy,
  decodeNpy,
  encodeNpy,
  npyToTensor,
  tensorToNpy,
  listImages,
  loadImages,
  IMAGE_EXTENSIONS,
  builtinImages,
  loadBuiltinImages,
  BUILTIN_IMAGES,
  BUILTIN_IMAGE_SIZE,
  type ImageF32,
  type Channels,
  type ResizeKernel,
  type ReadImageOptions,
  type WritePngOptions,
  type ResizeOptions,
  type NpyDtype,
  type NpyData,
  type NpyArray,
  type NpyToTensorOptions,
  type ListImagesOptions,
  type LoadImagesOptions,
  type ImageBatch,
  type BuiltinImageInfo,
  type LoadBuiltinOptions,
} from './io';

// ------------------------------------------------------------------------------------------ degradations
/** Synthetic degradations by name ('sr-x2', 'dn-25', 'dr-light', 'blur-motion', 'jpeg-q20', ...) and their primitives. */
export {
  parseDegradation,
  registerDegradation,
  degradationForms,
  srFactor,
  addGaussianNoise,
  addRain,
  RAIN_PRESETS,
  motionBlur,
  defocusBlur,
  jpegRoundTrip,
  imresize,
  modcrop,
  bicubicDownsample,
  type Degradation,
  type DegradationKind,
  type DegradedPair,
  type DegradationOptions,
  type DegradationFamily,
} from './degradations';

// ---------------------------------------------------------------------------------- models: the families
/**
 * Family descriptors (src/models/family.ts) and building from them: presets, configs with the official key
 * names, parameter counts without allocating, the size limit, training defaults.
 */
export {
  registerFamily,
  registerPreset,
  getFamily,
  hasFamily,
  listFamilies,
  getPreset,
  listPresets,
  closestModelNames,
  sameSizeOnly,
  resolveSpec,
  resolveConfig,
  createModel,
  inspectModel,
  countParameters,
  trainingDefaults,
  defaultPatch,
  defaultLoss,
  patchMultipleOf,
  parseParamCount,
  formatParamCount,
  maxParamsLimit,
  DEFAULT_MAX_PARAMS,
  type Config,
  type FamilyDescriptor,
  type FamilyDef,
  type FamilyPreset,
  type PresetDef,
  type TaskAdapter,
  type TrainingDefaults,
  type StudyDefaults,
  type OfficialWeightsEntry,
  type VariantDef,
  type CreateOptions,
  type ResolvedTrainingDefaults,
} from './models';

// ------------------------------------------------------------------- models: module tree, layers, hooks
/** The module tree (PyTorch state_dict names), layers for writing a family, hook points and replayed runs. */
export {
  RestorationModel,
  padBottomRight,
  Module,
  Sequential,
  ModuleList,
  Parameter,
  withInitSeed,
  withShapeOnly,
  tfShapeOf,
  Conv2d,
  ConvTranspose2d,
  Linear,
  LayerNorm,
  PReLU,
  Lambda,
  HookPoint,
  ReLU,
  GELU,
  Sigmoid,
  LeakyReLU,
  Identity,
  Dropout,
  PixelShuffle,
  PixelUnshuffle,
  gelu,
  pixelShuffle,
  pixelUnshuffle,
  roll,
  roll2,
  windowAttention,
  splitHeads,
  hookPoints,
  resolveHookNames,
  compilePatterns,
  runWithCache,
  runWithHooks,
  disposeCache,
  replayablePaths,
  replayFromCache,
  type TaskSpec,
  type TaskKind,
  type PaddingRule,
  type TorchLayout,
  type TorchTensor,
  type Init,
  type Conv2dOptions,
  type AttentionInput,
  type AttentionTaps,
  type WindowAttentionOptions,
  type HookFn,
  type ModuleOutput,
  type ReplayMap,
  type HookRunOptions,
  type CacheRun,
} from './models';

// --------------------------------------------------------------- models: weights, specs and checkpoints
/** Loading weights by state_dict name, layer listings. */
export {
  loadWeights,
  exportStateDict,
  expectedShapes,
  layerInfo,
  defaultLayerInfoSize,
  LAYOUT_TEXT,
  type LoadReport,
  type LayerInfo,
  type LayerLayout,
  type LayerListing,
  type LayerInfoOptions,
} from './models';
/** PyTorch checkpoints (pickle-free reader with limits) and safetensors. */
export {
  loadStateDict,
  loadStateDictFromBytes,
  readTorchCheckpoint,
  parseTorchCheckpoint,
  detectCheckpointFormat,
  extractStateDict,
  readSafetensors,
  parseSafetensors,
  writeSafetensors,
  encodeSafetensors,
  CheckpointError,
  STATE_DICT_KEYS,
  type StateDict,
  type RawTensor,
  type TensorDType,
  type LoadedStateDict,
  type LoadOptions,
  type CheckpointFormat,
  type SafetensorsContent,
} from './models/checkpoint';
/** Model specs as the CLI takes them (PRESET, PRESET@WEIGHTS, saved checkpoints); official weights: catalog, verified download, provenance lines. */
export {
  loadModelSpec,
  loadSavedModel,
  saveModel,
  parseConfigJson,
  type LoadedModel,
  type SpecOptions,
  officialWeights,
  findOfficialWeights,
  requireOfficialWeights,
  catalogNames,
  getOfficialWeights,
  shippedWeights,
  findShippedWeights,
  describeWeights,
  weightsLine,
  irlensHome,
  type OfficialCatalogEntry,
  type ShippedWeightsEntry,
  type GetOptions,
  type GotWeights,
  type WeightsProvenance,
  type WeightsDescription,
} from './weights';

// -------------------------------------------------------------------------------- analysis: CKA / HSIC
/** Gram matrices, HSIC estimators, CKA (full and minibatch), features from activations, layer similarity. */
export { mat, linearGram, rbfGram, gram, centerGram, gramFromTensor, type Mat, type Kernel, type RbfOptions } from './analysis/gram';
export { hsic, hsic0, hsic1, ESTIMATORS, type Estimator } from './analysis/hsic';
export { cka, debiasedCka, ckaFromGrams, ckaFromHsic, linearCkaFeatures, type CkaValue, type CkaFlag, type CkaOptions, type FeatureCkaOptions } from './analysis/cka';
export { MinibatchCKA, type MinibatchCkaOptions, type MinibatchCkaResult, type CkaInterval } from './analysis/minibatch-cka';
export { toFeatures, featureSettings, FEATURE_MODES, DEFAULT_MAX_PIXELS, type FeatureMode, type FeatureOptions, type FeatureSettings } from './analysis/features';
export {
  layerSimilarity,
  bestMatches,
  modelInputSize,
  defaultStudySize,
  checkStudySize,
  DEFAULT_BATCH,
  type LayerSimilarityOptions,
  type SimilarityResult,
  type SimilaritySettings,
  type ModelSide,
  type ImageSource,
  type BestMatch,
} from './analysis/similarity';
/** CKA of your own activations: two .npy matrices, or the layer x layer map of two .npz archives (optionally minibatched). */
export { activationFilesCka, activationArchivesCka, type ActivationCkaOptions, type ActivationCkaResult, type ArchiveCkaResult } from './analysis/activations';
export { readNpz, decodeNpz, type NpzMember } from './io/npz';
/** What every analysis output states: command line, version and git commit, compute path, weights. */
export { runProvenance, commandLine, type RunProvenance, type ModelWeights } from './analysis/provenance';
/** Restoration metrics, scored as each task's official test script does. */
export { psnr, ssim, evaluateBatch, metricOptionsFor, type MetricOptions, type BatchMetrics } from './analysis/metrics';
/** CKA reports (JSON, HTML, PNG heatmaps). */
export {
  writeCkaReport,
  ckaReportJson,
  ckaHtml,
  ckaPng,
  ckaSvg,
  ckaPdf,
  svgToPdf,
  FIGURE_FORMATS,
  type FigureFormat,
  ckaHeatmapSpec,
  ckaHeatmapHtml,
  plotlyOnce,
  plotlyDiv,
  plotId,
  heatmapSvg,
  svgToPng,
  CKA_REPORT_FORMAT,
  type HeatmapSpec,
  type CkaReportFiles,
} from './analysis/report';

// ------------------------------------------------------------------------------ analysis: ablations
/** Inference-time ablations (zero/mean/resample/noise/identity, per head), LAM and ERF, their statistics and reports. */
export {
  runAblation,
  entryKey,
  interventionHooks,
  ABLATION_MODES,
  syntheticPairs,
  pairedFromFolders,
  matchPairedFolders,
  toBatches,
  disposeBatches,
  taskMetric,
  lam,
  lamKernel,
  checkWindow,
  effectiveReceptiveField,
  LAM_DEFAULTS,
  bootstrapMean,
  pairedTest,
  gini,
  diffusionIndex,
  type AblationMode,
  type AblationBatch,
  type AblationEntrySpec,
  type AblationOptions,
  type AblationResult,
  type AblationEntryResult,
  type LamOptions,
  type LamResult,
  type Interval,
  type PairedTest,
} from './analysis/ablation';
export {
  writeAblateReport,
  ablateReportJson,
  ablateHtml,
  lamHtml,
  rankedEntries,
  ablateRankChart,
  ablateKnockoutChart,
  ablateHeadCharts,
  ablateChartHtml,
  ablateTableHtml,
  lamHeatImage,
  ABLATE_REPORT_FORMAT,
  type AblationReport,
  type AblateReportFiles,
  type ChartSpec,
  type WeightsInfo,
} from './analysis/report/ablate-report';

// ------------------------------------------------------------------------------------------- pretrain
/** Training and fine-tuning runs (single/multi-task), data sources, losses, optimiser and schedules. */
export {
  runTraining,
  Trainer,
  validateTrainOptions,
  scaleProgressive,
  parseStages,
  RESTORMER_PROGRESSIVE,
  createMultiTaskModel,
  createTrainModel,
  createTaskModel,
  describeTask,
  resolveBranch,
  headKeysOf,
  getTaskAdapter,
  MultiTaskModel,
  builtinSource,
  folderSource,
  fileListSource,
  SyntheticSource,
  PairedFolderSource,
  PatchSampler,
  computeLoss,
  l1Loss,
  charbonnierLoss,
  mprnetLoss,
  parseLossName,
  LOSS_NAMES,
  AdamOptimizer,
  learningRate,
  namedSchedule,
  DEFAULT_OPTIMIZER,
  OPTIMIZER_KINDS,
  SCHEDULE_NAMES,
  type RunSpec,
  type RunOptions,
  type RunResult,
  type TrainOptions,
  type Stage,
  type StepInfo,
  type MultiTaskConfig,
  type PairSource,
  type ImagePair,
  type TaskOrder,
  type LossName,
  type OptimizerKind,
  type OptimizerConfig,
  type ScheduleSpec,
  type ScheduleName,
} from './pretrain';
/** The EDT pre-training study: config, plan, run, report. */
export {
  studyPreset,
  buildStudyConfig,
  validateStudyConfig,
  readStudyConfig,
  planStudy,
  runStudy,
  writeStudyReport,
  readStudyResult,
  studyHtml,
  studyJson,
  studyTableHtml,
  studyCurvesHtml,
  studyLayerCkaHtml,
  studyCkaMapsHtml,
  studySelfCkaHtml,
  relatedMix,
  studyArchs,
  STUDY_ARMS,
  STUDY_PRESETS,
  type StudyConfig,
  type StudyResult,
  type StudyArch,
  type StudyArm,
  type StudyPreset,
  type StudyOptions,
} from './pretrain';
