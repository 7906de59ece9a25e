/**
 * RestorationModel: the common face of the four families. An architecture implements `forward` exactly as
 * the official PyTorch forward (NHWC in and out, values in [0,1], no extra padding) and declares how the
 * official test script pads inputs that do not fit; `restore` applies that padding, crops and clamps.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { type HookFn, type HookRunOptions, runWithCache, runWithHooks } from './hooks';

export type TaskKind = 'sr' | 'dn' | 'dr' | 'deblur' | 'defocus' | 'jpeg' | 'real-sr' | 'restore';

/** One task branch of a model (single-task models have one). */
export interface TaskSpec {
  /** Branch name as the model calls it: 'sr-x2', 'dn-25', 'dr-light', 'deblur', ... */
  name: string;
  kind: TaskKind;
  /** Output/input size ratio (1 for same-size restoration). */
  scale: number;
  /** Degradation (src/pretrain/degradations) that produces this task's inputs from clean images, if synthetic. */
  degradation?: string;
}

/** How the official test script pads an input whose size does not fit the network. */
export interface PaddingRule {
  multiple: number;
  mode: 'reflect' | 'symmetric';
}

export abstract class RestorationModel extends Module {
  abstract readonly family: string;
  /** The official hyper-parameters this instance was built with (config keys use the official names). */
  abstract readonly config: Readonly<Record<string, unknown>>;
  abstract readonly inChannels: number;
  abstract readonly outChannels: number;
  /** Preset name when built from one. */
  preset?: string;

  /** Task branches; the first is the default. */
  abstract tasks(): TaskSpec[];

  /** The official forward on an NHWC batch. `task` picks a branch of a multi-task model. */
  abstract override forward(x: tf.Tensor4D, task?: string): tf.Tensor4D;

  /** Test-time padding rule for `task`. */
  abstract paddingRule(task?: string): PaddingRule;

  /** Hook point globs a paper would plot (the default layers of a CKA study). */
  abstract defaultLayers(task?: string): string[];

  /** state_dict entries that the model recomputes instead of loading (e.g. attention masks). */
  ignoredStateKeys(): RegExp[] {
    return [];
  }

  /** Resolves a task name (undefined = default branch); one-line error listing the branches otherwise. */
  task(name?: string): TaskSpec {
    const all = this.tasks();
    if (name === undefined) return all[0];
    const t = all.find((s) => s.name === name);
    if (!t) throw new Error(`--task: model ${this.preset ?? this.family} has no task '${name}' (tasks: ${all.map((s) => s.name).join(', ')})`);
    return t;
  }

  /** Pads as the official test script does (only when needed), runs, crops back and clamps to [0,1]. */
  restore(x: tf.Tensor4D, task?: string): tf.Tensor4D {
    const spec = this.task(task);
    return tf.tidy(() => {
      const [, h, w] = x.shape;
      const rule = this.paddingRule(spec.name);
      const fits = h % rule.multiple === 0 && w % rule.multiple === 0;
      const input = fits ? x : padSymmetricOrReflect(x, rule);
      const y = this.forward(input, spec.name);
      const cropped = fits ? y : tf.slice(y, [0, 0, 0, 0], [-1, h * spec.scale, w * spec.scale, -1]);
      return tf.clipByValue(cropped, 0, 1);
    });
  }

  /** Forward with captured hook points (globs); the caller disposes output and cache (disposeCache). */
  runWithCache(x: tf.Tensor4D, names: string | string[], task?: string) {
    return runWithCache(this, names, () => this.forward(x, task));
  }

  /** Forward with interventions keyed by hook point (globs); `opts.replay` skips modules known from an earlier run. */
  runWithHooks(x: tf.Tensor4D, hooks: Record<string, HookFn | HookFn[]>, task?: string, opts: HookRunOptions = {}): tf.Tensor4D {
    return runWithHooks(this, hooks, () => this.forward(x, task), opts);
  }
}

function padSymmetricOrReflect(x: tf.Tensor4D, rule: PaddingRule): tf.Tensor4D {
  const [, h, w] = x.shape;
  const ph = (rule.multiple - (h % rule.multiple)) % rule.multiple;
  const pw = (rule.multiple - (w % rule.multiple)) % rule.multiple;
  return padBottomRight(x, ph, pw, rule.mode);
}

/**
 * Pads bottom/right by (ph, pw). 'reflect' is F.pad(mode='reflect'); 'symmetric' is the flip-and-concatenate of
 * the SwinIR/EDT test scripts, repeated when the pad exceeds the image (tiny inputs against large windows).
 */
export function padBottomRight(x: tf.Tensor4D, ph: number, pw: number, mode: 'reflect' | 'symmetric'): tf.Tensor4D {
  return tf.tidy(() => {
    let y = x;
    const grow = (axis: 1 | 2, pad: number) => {
      while (pad > 0) {
        const size = y.shape[axis];
        const step = Math.min(pad, mode === 'reflect' ? size - 1 : size);
        if (step <= 0) throw new Error(`input of ${x.shape[1]}x${x.shape[2]} pixels is too small: a size-${size} axis cannot be reflect-padded (inputs need at least 2 pixels per side)`);
        const p: [number, number][] = [
          [0, 0],
          [0, 0],
          [0, 0],
          [0, 0],
        ];
        p[axis] = [0, step];
        y = tf.mirrorPad(y, p, mode);
        pad -= step;
      }
    };
    grow(1, ph);
    grow(2, pw);
    return y;
  });
}
