/**
 * Shared checks of the architecture tests (restormer, mprnet, swinir, edt): reading the fixtures that
 * test/fixtures/make_*_fixtures.py wrote, comparing presets and checkpoints with PyTorch's, and the memory and
 * gradient-step checks every architecture runs. Plain functions that call `expect`; each test file keeps its own
 * tests, tolerances and architecture-specific assertions.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { npyToTensor, readNpy } from '../../src/io/npy';
import { loadStateDict } from '../../src/models/checkpoint';
import { disposeCache } from '../../src/models/hooks';
import type { RestorationModel } from '../../src/models/model';
import { getPreset, listPresets } from '../../src/models/registry';
import { loadWeights, type LoadReport } from '../../src/models/weights';

/** state_dict keys with their PyTorch shapes, in state_dict order. */
export type KeyShapes = [string, number[]][];

/** One entry of a fixture directory's keys.json: what PyTorch reports for a preset (or fixture) config. */
export interface PresetKeys {
  config: Record<string, unknown>;
  params: number;
  keys: KeyShapes;
}

/** Parses `file` (a JSON file written by a fixture script) in the fixture directory `dir`. */
export function readFixtureJson<T>(dir: string, file: string): T {
  return JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as T;
}

/** keys.json of a fixture directory: preset name -> PyTorch's parameter count, keys and config. */
export function readPresetKeys<T = Record<string, PresetKeys>>(dir: string): T {
  return readFixtureJson<T>(dir, 'keys.json');
}

/** An NCHW/CHW .npy fixture as an NHWC tensor (the caller disposes it). */
export function readNpyTensor(dir: string, file: string): tf.Tensor4D {
  return npyToTensor(readNpy(path.join(dir, file)));
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** sum(|t|) as a number: a gradient that is all zeros gives 0. */
export function absSum(t: tf.Tensor): number {
  return tf.tidy(() => tf.sum(tf.abs(t)).dataSync()[0]);
}

/** The model's state_dict keys with their PyTorch shapes. */
export function stateShapes(model: RestorationModel): KeyShapes {
  return model.stateEntries().map(([k, p]) => [k, p.torchShape]);
}

/** The registry lists exactly `names` for `family`, and each entry of `published` as its officialParams. */
export function expectFamilyPresets(family: string, names: string[], published: Record<string, number> = {}): void {
  const registered = listPresets()
    .filter((p) => p.family === family)
    .map((p) => p.name);
  expect(registered.sort()).toEqual([...names].sort());
  for (const [name, n] of Object.entries(published)) expect(getPreset(name)!.officialParams).toBe(n);
}

export interface ConformanceOptions {
  /** The published parameter count, where the paper or official repo gives one. */
  published?: number;
  /** Also expect the registry's officialParams for `name` to equal PyTorch's count. */
  officialParams?: boolean;
  /** The state_dict entries the model must list (default: all of want.keys). */
  keys?: KeyShapes;
  /** The model config as compared with want.config (default: a copy of model.config). */
  config?: Record<string, unknown>;
}

/** Parameter count, state_dict keys and shapes, and config of `model` (built from preset `name`) equal PyTorch's. */
export function expectPresetConformance(name: string, model: RestorationModel, want: PresetKeys, opts: ConformanceOptions = {}): void {
  expect(model.numParameters()).toBe(want.params);
  if (opts.published !== undefined) expect(model.numParameters()).toBe(opts.published);
  if (opts.officialParams) expect(getPreset(name)!.officialParams).toBe(want.params);
  expect(stateShapes(model)).toEqual(opts.keys ?? want.keys);
  expect(opts.config ?? { ...model.config }).toEqual(want.config);
}

/**
 * Loads the fixture checkpoint `file` into `model`: it must come in the `expectedSource` wrapper (when given),
 * and every entry must be loaded or skipped as a buffer the model recomputes. The caller checks what was skipped.
 */
export async function loadFixtureModel(model: RestorationModel, file: string, expectedSource?: string): Promise<LoadReport> {
  const { stateDict, source } = await loadStateDict(file);
  if (expectedSource !== undefined) expect(source).toBe(expectedSource);
  const report = loadWeights(model, stateDict);
  expect(report.loaded + report.skipped.length).toBe(stateDict.size);
  return report;
}

export interface FixtureOutputOptions {
  /** Compare with clip(expected, 0, 1): restore() clamps, the official forward does not. */
  clampExpected?: boolean;
  /** Names the comparison in failure messages. */
  label?: string;
}

/** `run` on the input fixture gives the expected fixture's shape and values within `tol` (max abs difference). */
export function expectFixtureOutput(
  dir: string,
  input: string,
  expected: string,
  run: (x: tf.Tensor4D) => tf.Tensor4D,
  tol: number,
  opts: FixtureOutputOptions = {},
): void {
  const x = readNpyTensor(dir, input);
  const raw = readNpyTensor(dir, expected);
  const want = opts.clampExpected ? tf.clipByValue(raw, 0, 1) : raw;
  const y = run(x);
  try {
    expect(y.shape, opts.label).toEqual(want.shape);
    expect(maxAbsDiff(y, want), opts.label).toBeLessThan(tol);
  } finally {
    tf.dispose([x, raw, want, y]);
  }
}

/** A runWithCache output equals the plain forward's exactly; releases both outputs and the cache. */
export function expectCachedOutputEqualsForward(run: { output: tf.Tensor; cache: Map<string, tf.Tensor> }, direct: tf.Tensor): void {
  expect(maxAbsDiff(direct, run.output)).toBe(0);
  tf.dispose([run.output, direct]);
  disposeCache(run.cache);
}

/**
 * Runs `fn` once (first calls may allocate caches), then `repeats` times more, expecting tf.memory().numTensors
 * not to grow. Returns the count after the first run, for later checks in the same test.
 */
export function expectFlatTensorCount(fn: () => void, repeats: number): number {
  fn();
  const before = tf.memory().numTensors;
  for (let i = 0; i < repeats; i++) fn();
  expect(tf.memory().numTensors).toBe(before);
  return before;
}

/**
 * One SGD step (lr 0.01) on `variables`: every variable gets a finite gradient, `checkGrads` sees the gradients
 * (keyed by variable name) before the step, the loss decreases, and no tensor leaks.
 */
export function gradientStepCheck(
  loss: () => tf.Scalar,
  variables: tf.Variable[],
  checkGrads: (grads: tf.NamedTensorMap) => void = () => {},
): void {
  const optimizer = tf.train.sgd(0.01);
  const before = tf.memory().numTensors;
  const { value, grads } = tf.variableGrads(loss, variables);
  const l0 = value.dataSync()[0];
  expect(Object.keys(grads).length).toBe(variables.length);
  for (const g of Object.values(grads)) expect(Number.isFinite(absSum(g))).toBe(true);
  checkGrads(grads);
  optimizer.applyGradients(grads);
  const l1 = tf.tidy(() => loss().dataSync()[0]);
  expect(l1).toBeLessThan(l0);
  tf.dispose([value, ...Object.values(grads)]);
  expect(tf.memory().numTensors).toBe(before);
}
