/**
 * RefNet: a small residual conv net with depthwise convs, irlens's own reference model. It is not one of the
 * studied architectures; it exists so the module/hook system, training and analysis can be demonstrated and
 * tested on something that runs in milliseconds (the quickstart notebook uses it).
 *
 * conv_first 3x3 -> body.N = [pw1 1x1 (F->eF), dw 3x3 depthwise, GELU, pw2 1x1 (eF->F)] + skip -> conv_last 3x3
 * -> + input image.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, ModuleList } from './module';
import { Conv2d, gelu } from './layers';
import { PaddingRule, RestorationModel, TaskSpec } from './model';
import { type Config, registerFamily, sameSizeOnly } from './family';

class RefBlock extends Module {
  readonly pw1: Conv2d;
  readonly dw: Conv2d;
  readonly pw2: Conv2d;
  constructor(dim: number, expansion: number) {
    super();
    const hidden = dim * expansion;
    this.pw1 = this.child('pw1', new Conv2d(dim, hidden, 1));
    this.dw = this.child('dw', new Conv2d(hidden, hidden, 3, { groups: hidden }));
    this.pw2 = this.child('pw2', new Conv2d(hidden, dim, 1));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const h = gelu(this.dw.call<tf.Tensor4D>(this.pw1.call<tf.Tensor4D>(x))) as tf.Tensor4D;
      return tf.add(x, this.pw2.call<tf.Tensor4D>(h));
    });
  }
}

export class RefNet extends RestorationModel {
  readonly family = 'refnet';
  readonly inChannels: number;
  readonly outChannels: number;
  readonly conv_first: Conv2d;
  readonly body: ModuleList<RefBlock>;
  readonly conv_last: Conv2d;

  constructor(readonly config: Readonly<Config>) {
    super();
    const c = config as { in_chans: number; dim: number; num_blocks: number; expansion: number };
    this.inChannels = c.in_chans;
    this.outChannels = c.in_chans;
    this.conv_first = this.child('conv_first', new Conv2d(c.in_chans, c.dim, 3));
    this.body = this.child('body', new ModuleList(Array.from({ length: c.num_blocks }, () => new RefBlock(c.dim, c.expansion))));
    this.conv_last = this.child('conv_last', new Conv2d(c.dim, c.in_chans, 3));
  }

  tasks(): TaskSpec[] {
    return [{ name: 'dn-25', kind: 'dn', scale: 1, degradation: 'dn-25' }];
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let f = this.conv_first.call<tf.Tensor4D>(x);
      for (const b of this.body.items) f = b.call<tf.Tensor4D>(f);
      return tf.add(x, this.conv_last.call<tf.Tensor4D>(f));
    });
  }

  paddingRule(): PaddingRule {
    return { multiple: 1, mode: 'reflect' };
  }

  defaultLayers(): string[] {
    return ['conv_first', 'body.*', 'conv_last'];
  }
}

registerFamily({
  name: 'refnet',
  defaults: { in_chans: 3, dim: 16, num_blocks: 4, expansion: 2 },
  build: (config) => new RefNet(config),
  validate(c) {
    for (const k of ['in_chans', 'dim', 'num_blocks', 'expansion'])
      if (!Number.isInteger(c[k]) || (c[k] as number) < 1) throw new Error(`config: ${k} must be a positive integer`);
  },
  presets: [
    {
      name: 'refnet-tiny',
      description: "irlens's reference conv net (depthwise blocks), for demos and tests",
      config: { dim: 8, num_blocks: 2 },
    },
  ],
  // The image-to-feature and feature-to-image convs are the per-task parts.
  tasks: { headPrefixes: () => ['conv_first', 'conv_last'], configFor: sameSizeOnly('refnet') },
  study: { tiny: 'refnet-tiny', tinyConfig: {}, paper: 'refnet-tiny', paperConfig: {}, sr: (s) => `sr-up-x${s}` },
});
