/**
 * PyTorch-equivalent layers on NHWC tensors, with PyTorch parameter names, shapes and default initialisation
 * (kaiming_uniform(a=sqrt(5)) => U(+-1/sqrt(fan_in)) for weights and biases of Conv2d/Linear).
 */
import * as tf from '@tensorflow/tfjs';
import { recordingGradients } from '../engine/gradient-memory';
import { gatedGelu, gelu } from '../engine/wasm/gelu';
import { prelu } from '../engine/wasm/prelu';
import { layerNorm } from '../engine/wasm/layer-norm';
import { currentHookContext } from './hook-context';
import { Init, Module } from './module';

const torchDefault = (fanIn: number): Init => ({ kind: 'uniform', bound: 1 / Math.sqrt(fanIn) });

export interface Conv2dOptions {
  stride?: number;
  /** Zero padding on each side (PyTorch `padding`); defaults to floor(k/2). */
  padding?: number;
  dilation?: number;
  bias?: boolean;
  /** 1 or in===out channels (depthwise). Other group counts are not used by the seed architectures. */
  groups?: number;
}

export class Conv2d extends Module {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;
  readonly depthwise: boolean;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    opts: Conv2dOptions = {},
  ) {
    super();
    const groups = opts.groups ?? 1;
    this.stride = opts.stride ?? 1;
    this.dilation = opts.dilation ?? 1;
    this.padding = opts.padding ?? Math.floor(kernelSize / 2) * this.dilation;
    this.depthwise = groups !== 1;
    if (this.depthwise && !(groups === inChannels && groups === outChannels))
      throw new Error(`Conv2d: groups=${groups} supported only as depthwise (groups = in = out channels)`);
    const k = kernelSize;
    const fanIn = (inChannels / groups) * k * k;
    this.weight = this.param(
      'weight',
      [outChannels, inChannels / groups, k, k],
      torchDefault(fanIn),
      this.depthwise ? 'depthwise' : 'conv',
    );
    if (opts.bias ?? true) this.bias = this.param('bias', [outChannels], torchDefault(fanIn));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const pad = this.padding;
      const y = this.depthwise
        ? tf.depthwiseConv2d(x, this.weight as tf.Tensor4D, this.stride, pad, 'NHWC', this.dilation)
        : tf.conv2d(x, this.weight as tf.Tensor4D, this.stride, pad, 'NHWC', this.dilation);
      return this.bias ? tf.add(y, this.bias) : y;
    });
  }
}

/** nn.ConvTranspose2d with padding 0 (the only form the seed architectures use). */
export class ConvTranspose2d extends Module {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly stride: number,
    bias = true,
  ) {
    super();
    // PyTorch computes fan_in of a transposed conv from weight.size(1) = out channels.
    const fanIn = outChannels * kernelSize * kernelSize;
    this.weight = this.param('weight', [inChannels, outChannels, kernelSize, kernelSize], torchDefault(fanIn), 'convTranspose');
    if (bias) this.bias = this.param('bias', [outChannels], torchDefault(fanIn));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w] = x.shape;
      const k = this.kernelSize;
      const s = this.stride;
      const out: [number, number, number, number] = [n, (h - 1) * s + k, (w - 1) * s + k, this.outChannels];
      const y = tf.conv2dTranspose(x, this.weight as tf.Tensor4D, out, s, 'valid');
      return this.bias ? tf.add(y, this.bias) : y;
    });
  }
}

export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean; init?: Init; biasInit?: Init } = {},
  ) {
    super();
    this.weight = this.param('weight', [outFeatures, inFeatures], opts.init ?? torchDefault(inFeatures), 'linear');
    if (opts.bias ?? true) this.bias = this.param('bias', [outFeatures], opts.biasInit ?? torchDefault(inFeatures));
  }

  /** Applies to the last axis of a tensor of any rank. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = tf.reshape(x, [-1, this.inFeatures]);
      const w = this.weight as tf.Tensor2D;
      // Outside training the bias joins the product's kernel (one pass less, the same bits: the native GEMM adds
      // it after the product, as Add would). While a tape records, tfjs's fused op would save its output too.
      const y = !this.bias ? tf.matMul(x2, w) : recordingGradients() ? tf.add(tf.matMul(x2, w), this.bias) : tf.fused.matMul({ a: x2, b: w, bias: this.bias });
      return tf.reshape(y, [...lead, this.outFeatures]);
    });
  }
}

/** nn.LayerNorm over the last axis (channels in NHWC, features of tokens); biased variance like PyTorch. */
export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;

  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    withBias = true,
  ) {
    super();
    this.weight = this.param('weight', [dim], { kind: 'constant', value: 1 });
    if (withBias) this.bias = this.param('bias', [dim], { kind: 'constant', value: 0 });
  }

  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight, this.bias, { eps: this.eps, centred: true });
  }
}

/** nn.PReLU(num_parameters=1, init=0.25); the arithmetic (a fused native kernel, or tf ops) is in src/engine/wasm/prelu.ts. */
export class PReLU extends Module {
  readonly weight: tf.Variable;
  constructor(numParameters = 1, init = 0.25) {
    super();
    this.weight = this.param('weight', [numParameters], { kind: 'constant', value: init });
  }
  forward(x: tf.Tensor): tf.Tensor {
    return prelu(x, this.weight);
  }
}

/** A parameter-free module wrapping a function, so that it takes an index in a Sequential and is a hook point. */
export class Lambda extends Module {
  constructor(
    readonly label: string,
    private readonly fn: (x: tf.Tensor) => tf.Tensor,
  ) {
    super();
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.fn(x));
  }
}

// Exact GELU (fused native kernel, vectorised wasm composition or tf.erf) lives in src/engine/wasm/gelu.ts.
export { gatedGelu, gelu };
// LayerNorm's arithmetic (one fused native kernel each way, or tf ops) lives in src/engine/wasm/layer-norm.ts.
export { layerNorm };

export const ReLU = () => new Lambda('ReLU', (x) => tf.relu(x));
export const GELU = () => new Lambda('GELU', gelu);
export const Sigmoid = () => new Lambda('Sigmoid', (x) => tf.sigmoid(x));
export const LeakyReLU = (slope = 0.01) => new Lambda(`LeakyReLU(${slope})`, (x) => tf.leakyRelu(x, slope));
export const Identity = () => new Lambda('Identity', (x) => x);
export const PixelShuffle = (r: number) => new Lambda(`PixelShuffle(${r})`, (x) => pixelShuffle(x as tf.Tensor4D, r));
export const PixelUnshuffle = (r: number) =>
  new Lambda(`PixelUnshuffle(${r})`, (x) => pixelUnshuffle(x as tf.Tensor4D, r));

/**
 * torch.nn.functional.pixel_shuffle on NHWC: input channel c*r^2 + i*r + j goes to output (h*r+i, w*r+j, c).
 * Written with reshape+transpose because DepthToSpace has no gradient in TF.js and uses another channel order.
 */
export function pixelShuffle(x: tf.Tensor4D, r: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, crr] = x.shape;
    const c = crr / (r * r);
    if (!Number.isInteger(c)) throw new Error(`pixelShuffle: ${crr} channels not divisible by ${r * r}`);
    const t = tf.transpose(tf.reshape(x, [n, h, w, c, r, r]), [0, 1, 4, 2, 5, 3]);
    return tf.reshape(t, [n, h * r, w * r, c]);
  });
}

/** torch.nn.functional.pixel_unshuffle on NHWC: the inverse of pixelShuffle (same channel order). */
export function pixelUnshuffle(x: tf.Tensor4D, r: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, hr, wr, c] = x.shape;
    const h = hr / r;
    const w = wr / r;
    if (!Number.isInteger(h) || !Number.isInteger(w)) throw new Error(`pixelUnshuffle: ${hr}x${wr} not divisible by ${r}`);
    const t = tf.transpose(tf.reshape(x, [n, h, r, w, r, c]), [0, 1, 3, 5, 2, 4]);
    return tf.reshape(t, [n, h, w, c * r * r]);
  });
}

/** F.interpolate(mode='bilinear', align_corners=False) to an explicit size (half-pixel centres). */
export function bilinearResize(x: tf.Tensor4D, height: number, width: number): tf.Tensor4D {
  return tf.image.resizeBilinear(x, [height, width], false, true);
}

/** F.interpolate(scale_factor=s, mode='nearest'): source index floor(i / s). */
export function nearestUpsample(x: tf.Tensor4D, s: number): tf.Tensor4D {
  const [, h, w] = x.shape;
  return tf.image.resizeNearestNeighbor(x, [h * s, w * s], false, false);
}

/** torch.roll(x, shifts=(a, b), dims=(axis, axis + 1)): the 2-D roll of shifted windows (SwinIR, EDT). */
export function roll2(x: tf.Tensor, a: number, b: number, axis = 1): tf.Tensor {
  return tf.tidy(() => roll(roll(x, a, axis), b, axis + 1));
}

/** torch.roll along one axis: out[i] = x[(i - shift) mod n]. */
export function roll(x: tf.Tensor, shift: number, axis: number): tf.Tensor {
  const n = x.shape[axis];
  const k = ((shift % n) + n) % n;
  if (k === 0) return x;
  return tf.tidy(() => {
    const sizes = [n - k, k];
    const [a, b] = tf.split(x, sizes, axis);
    return tf.concat([b, a], axis);
  });
}

/**
 * A hook point inside a module's forward, with no parameters (state_dict keys do not change): `tap(x)` reports
 * x as `<parent path>.<name>` like any module output, so hooks can read or replace it. `view`/`unview` convert
 * to and from the documented layout only during hooked runs of this model; plain forwards skip it entirely.
 */
export class HookPoint extends Module {
  constructor(readonly description: string) {
    super();
  }
  forward(x: tf.Tensor): tf.Tensor {
    return x;
  }
  tap<T extends tf.Tensor>(x: T, view?: (t: T) => tf.Tensor, unview?: (t: tf.Tensor) => T): T {
    const ctx = currentHookContext();
    if (!ctx || ctx.root !== this.root) return x;
    if (!view || !unview) return this.call<T>(x);
    return unview(this.call<tf.Tensor>(view(x)));
  }
}

/** timm trunc_normal_(std=.02) with its absolute cut-off a=-2, b=2, i.e. 100 std (effectively untruncated). */
export const TRUNC_NORMAL_02: Init = { kind: 'normal', std: 0.02, truncate: 2 / 0.02 };

/** nn.Linear initialised like the Swin-style _init_weights (SwinIR, EDT): trunc_normal(std .02), zero bias. */
export function swinLinear(inF: number, outF: number, bias = true): Linear {
  return new Linear(inF, outF, { bias, init: TRUNC_NORMAL_02, biasInit: { kind: 'constant', value: 0 } });
}

/**
 * nn.Dropout / DropPath in eval mode: an identity module that keeps the official hook point. irlens trains
 * without stochastic depth or dropout (the studied configs use them only as regularisers).
 */
export const Dropout = (label = 'Dropout') => new Lambda(`${label} (identity)`, (x) => x);

/** DIV2K RGB mean that SwinIR and EDT subtract before the network (img_range scaling follows). */
export const DIV2K_RGB_MEAN: number[] = [0.4488, 0.4371, 0.404];
