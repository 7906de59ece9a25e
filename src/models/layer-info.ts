/**
 * What every hook point of a model outputs: one forward on a zero input of a given size, observing (not copying)
 * every module output in execution order, with its shape, its layout and whether it is a default CKA layer.
 * Backs `irlens layers`; use it to pick `--layers-a/--layers-b` globs or hook points for interventions.
 */
import * as tf from '@tensorflow/tfjs';
import { compilePatterns, hookPoints } from './hooks';
import type { RestorationModel } from './model';
import type { Module } from './module';

/**
 * How to read a hook point's tensor:
 * - image: NHWC conv map [B, H, W, C]
 * - tokens: transformer tokens [B, L, C] (L = H*W positions in raster order)
 * - heads: per head: attention weights [B*windows, heads, N, N] or outputs [B*windows, heads, N, head_dim]
 * - windows: window-partitioned maps [B*windows, h, w, C]
 * - window-tokens: window-partitioned tokens [B*windows, N, C]
 * - features: [B, C]; other: anything else
 */
export type LayerLayout = 'image' | 'tokens' | 'heads' | 'windows' | 'window-tokens' | 'features' | 'other';

export const LAYOUT_TEXT: Record<LayerLayout, string> = {
  image: 'NHWC image (B,H,W,C)',
  tokens: 'tokens (B,L,C)',
  heads: 'per head (B*nW,heads,N,N|d)',
  windows: 'windows (B*nW,h,w,C)',
  'window-tokens': 'window tokens (B*nW,N,C)',
  features: 'features (B,C)',
  other: 'other',
};

export interface LayerInfo {
  /** Hook point name (module path; `path:i` for element i of a list output). */
  name: string;
  /** Output shape in irlens layout (channels last); null when the module did not run for this task. */
  shape: number[] | null;
  layout: LayerLayout | null;
  /** Selected by the model's default CKA layer globs for this task. */
  defaultLayer: boolean;
  /** The module's own description of its output, where it has one (hook points inside attention). */
  description?: string;
  /** How often the module ran in the forward (shared modules run more than once; the first shape is shown). */
  calls: number;
}

export interface LayerListing {
  family: string;
  preset?: string;
  task: string;
  tasks: string[];
  /** Model input [H, W, C] (the low-resolution size for SR). */
  input: [number, number, number];
  output: number[];
  /** The default CKA layer globs of this task (what `cka` compares without --layers-a/-b). */
  defaultGlobs: string[];
  /** Hook points in execution order, then those that did not run for this task. */
  layers: LayerInfo[];
}

export interface LayerInfoOptions {
  task?: string;
  /** Model input [H, W]; must fit the task's test-time padding multiple (default: the smallest multiple >= 32). */
  size?: [number, number];
}

/** The smallest input side >= 32 that the task's padding rule accepts as is. */
export function defaultLayerInfoSize(model: RestorationModel, task?: string): [number, number] {
  const { multiple } = model.paddingRule(model.task(task).name);
  const side = Math.ceil(32 / multiple) * multiple;
  return [side, side];
}

/**
 * Layout from the shape (batch 1) and what the module says it is. Attention weights and per-head outputs are
 * told by their module (the softmax and attn_drop of window attention, hook points whose description names
 * heads), never by shape alone: a window of 24x6 with 6 channels would look like a square N x N map.
 */
function layoutOf(shape: number[], batch: number, module: Module | undefined, name: string): LayerLayout {
  const batchFirst = shape[0] === batch;
  const description = (module as { description?: unknown } | undefined)?.description;
  const perHead = /(^|\.)(softmax|attn_drop)$/.test(name) || (typeof description === 'string' && /\bheads\b/.test(description));
  if (shape.length === 4) {
    if (perHead) return 'heads';
    return batchFirst ? 'image' : 'windows';
  }
  if (shape.length === 3) return batchFirst ? 'tokens' : 'window-tokens';
  if (shape.length === 2 && batchFirst) return 'features';
  return 'other';
}

/** Every hook point's output shape and layout for one zero input (batch 1); frees everything it allocates. */
export function layerInfo(model: RestorationModel, opts: LayerInfoOptions = {}): LayerListing {
  const task = model.task(opts.task);
  const { multiple } = model.paddingRule(task.name);
  const [h, w] = opts.size ?? defaultLayerInfoSize(model, task.name);
  const name = model.preset ?? model.family;
  if (!(h >= 1 && w >= 1 && h % multiple === 0 && w % multiple === 0)) {
    const fit = (v: number) => Math.max(multiple, Math.round(v / multiple) * multiple);
    throw new Error(`--size: ${name} [${task.name}] needs input sides that are multiples of ${multiple}, got ${h}x${w} (try ${fit(h)}x${fit(w)})`);
  }
  const defaults = model.defaultLayers(task.name);
  const isDefault = compilePatterns(model, defaults);
  const modules = new Map(model.namedModules());
  const seen = new Map<string, LayerInfo>();
  const observe = (t: tf.Tensor, info: { name: string }) => {
    const prev = seen.get(info.name);
    if (prev) prev.calls++;
    else {
      const module = modules.get(info.name.replace(/:\d+$/, ''));
      const description = (module as { description?: unknown } | undefined)?.description;
      seen.set(info.name, {
        name: info.name,
        shape: [...t.shape],
        layout: layoutOf(t.shape, 1, module, info.name),
        defaultLayer: isDefault.some((m) => m(info.name)),
        ...(typeof description === 'string' ? { description } : {}),
        calls: 1,
      });
    }
  };
  const x = tf.zeros([1, h, w, model.inChannels]) as tf.Tensor4D;
  let output: number[];
  try {
    // runWithHooks with observers that return nothing: shapes only, no copy of any activation is kept.
    const y = model.runWithHooks(x, { '**': observe }, task.name);
    output = [...y.shape];
    y.dispose();
  } finally {
    x.dispose();
  }
  const notRun: LayerInfo[] = hookPoints(model)
    .filter((p) => !seen.has(p) && ![...seen.keys()].some((k) => k.startsWith(`${p}:`)))
    .map((p) => ({ name: p, shape: null, layout: null, defaultLayer: isDefault.some((m) => m(p)), calls: 0 }));
  return {
    family: model.family,
    preset: model.preset,
    task: task.name,
    tasks: model.tasks().map((t) => t.name),
    input: [h, w, model.inChannels],
    output,
    defaultGlobs: defaults,
    layers: [...seen.values(), ...notRun],
  };
}
