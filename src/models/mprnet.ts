/**
 * MPRNet (Zamir et al., CVPR 2021; swz30/MPRNet {Deblurring,Denoising,Deraining}/MPRNet.py), written from the
 * facts of the official code with its module names, so `stateEntries()` yields the official state_dict keys
 * in the official order and every module output is a hook point named by its official path.
 *
 * Three stages on a multi-patch hierarchy: stage 1 runs shallow_feat1 + a U-Net encoder on four quadrants and
 * its decoder on the two halves, stage 2 runs on the two halves with cross-stage feature fusion (CSFF), stage 3
 * (ORSNet) runs at full resolution. Supervised attention modules (sam12, sam23) pass features and intermediate
 * images between stages. forward() returns the stage-3 image; forwardStages() all three, like the official
 * forward, for the multi-stage loss.
 *
 * The three task files differ only in their defaults (n_feat / scale_unetfeats / scale_orsnetfeats) and in that
 * Deblurring/MPRNet.py hard-codes 3 channels for the shallow-feature convs and the tail where the other two use
 * in_c / out_c; with the defaults in_c = out_c = 3 the three are identical, so no extra key is needed.
 *
 * Modules that run once per patch (shallow_feat1, stage1_encoder, stage1_decoder, sam12, shallow_feat2,
 * concat12, stage2_encoder) fire several times per forward; a hook cache keeps the last call (bottom-right
 * quadrant for stage-1 encoder features, bottom half for the stage-1 decoder and stage-2 encoder).
 */
import * as tf from '@tensorflow/tfjs';
import { Module, Sequential } from './module';
import { Conv2d, Lambda, PReLU, ReLU, Sigmoid, bilinearResize } from './layers';
import { PaddingRule, RestorationModel, TaskSpec } from './model';
import { type Config, registerFamily, sameSizeOnly, withoutDefaultSwitches } from './family';

export interface MPRNetConfig {
  in_c: number;
  out_c: number;
  n_feat: number;
  scale_unetfeats: number;
  scale_orsnetfeats: number;
  num_cab: number;
  kernel_size: number;
  reduction: number;
  bias: boolean;
  /**
   * Not official keys (the official MPRNet always has all three stages, both SAMs and CSFF): the paper's
   * ablation switches (Zamir et al. 2021, Tables 1-2). num_stages keeps the last N stages (1: stage 3 alone on
   * the full image; 2: stages 2 and 3); the last stage always produces the output.
   */
  num_stages: number;
  /** false: each SAM keeps only its image conv (conv2, the stage's supervised image); features pass on ungated. */
  sam: boolean;
  /** false: no cross-stage feature fusion (stage-2 encoder csff convs, ORSNet's up_/conv_enc/dec). */
  csff: boolean;
  /** 'encdec': the third stage is an encoder-decoder like stage 2 (stage3_encoder/decoder) instead of ORSNet. */
  stage3: 'orsnet' | 'encdec';
}

/** Defaults of MPRNet.__init__ in Deblurring/MPRNet.py. */
const DEFAULTS: MPRNetConfig = {
  in_c: 3,
  out_c: 3,
  n_feat: 96,
  scale_unetfeats: 48,
  scale_orsnetfeats: 32,
  num_cab: 8,
  kernel_size: 3,
  reduction: 4,
  bias: false,
  num_stages: 3,
  sam: true,
  csff: true,
  stage3: 'orsnet',
};

/** The non-official ablation switches at their defaults (absent from model.config unless turned). */
const ABLATION_SWITCHES = { num_stages: 3, sam: true, csff: true, stage3: 'orsnet' as const };

/** The images SAM predicts always have 3 channels (conv2/conv3 are hard-coded to 3 in the official code). */
const SAM_IMAGE_CHANNELS = 3;

/** nn.Upsample(scale_factor=s, mode='bilinear', align_corners=False) as a hook-able, parameter-free module. */
function bilinearScale(s: number): Lambda {
  return new Lambda(`Upsample(${s}, bilinear)`, (x) => {
    const [, h, w] = x.shape;
    return bilinearResize(x as tf.Tensor4D, Math.floor(h * s), Math.floor(w * s));
  });
}

/** The official `conv` helper: 'same' zero padding k//2, stride 1. */
function conv(cin: number, cout: number, k: number, bias: boolean): Conv2d {
  return new Conv2d(cin, cout, k, { padding: Math.floor(k / 2), bias });
}

class CALayer extends Module {
  readonly avg_pool: Lambda;
  readonly conv_du: Sequential;
  constructor(channel: number, reduction: number, bias: boolean) {
    super();
    const squeezed = Math.floor(channel / reduction);
    this.avg_pool = this.child('avg_pool', new Lambda('AdaptiveAvgPool2d(1)', (x) => tf.mean(x, [1, 2], true)));
    this.conv_du = this.child(
      'conv_du',
      new Sequential([conv(channel, squeezed, 1, bias), ReLU(), conv(squeezed, channel, 1, bias), Sigmoid()]),
    );
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.mul(x, this.conv_du.call<tf.Tensor4D>(this.avg_pool.call<tf.Tensor4D>(x))));
  }
}

/** Channel attention block. `act` is the model's single PReLU, shared by every CAB (registered under each). */
class CAB extends Module {
  readonly CA: CALayer;
  readonly body: Sequential;
  constructor(nFeat: number, k: number, reduction: number, bias: boolean, act: PReLU) {
    super();
    // Official registration order: CA before body (this fixes the state_dict order).
    this.CA = this.child('CA', new CALayer(nFeat, reduction, bias));
    this.body = this.child('body', new Sequential([conv(nFeat, nFeat, k, bias), act, conv(nFeat, nFeat, k, bias)]));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.add(this.CA.call<tf.Tensor4D>(this.body.call<tf.Tensor4D>(x)), x));
  }
}

/** Supervised attention module; returns [features for the next stage, this stage's image]. */
class SAM extends Module {
  readonly conv1?: Conv2d;
  readonly conv2: Conv2d;
  readonly conv3?: Conv2d;
  /** attention false (config sam false): only the image conv; the features pass on unchanged. */
  constructor(nFeat: number, k: number, bias: boolean, attention = true) {
    super();
    if (attention) this.conv1 = this.child('conv1', conv(nFeat, nFeat, k, bias));
    this.conv2 = this.child('conv2', conv(nFeat, SAM_IMAGE_CHANNELS, k, bias));
    if (attention) this.conv3 = this.child('conv3', conv(SAM_IMAGE_CHANNELS, nFeat, k, bias));
  }
  forward(x: tf.Tensor4D, xImg: tf.Tensor4D): tf.Tensor4D[] {
    return tf.tidy(() => {
      // Broadcasts over channels when the input image is gray, as the official `+` does.
      const img = tf.add(this.conv2.call<tf.Tensor4D>(x), xImg) as tf.Tensor4D;
      if (!this.conv1 || !this.conv3) return [tf.clone(x), img];
      const x1 = this.conv1.call<tf.Tensor4D>(x);
      const gate = tf.sigmoid(this.conv3.call<tf.Tensor4D>(img));
      return [tf.add(tf.mul(x1, gate), x) as tf.Tensor4D, img];
    });
  }
}

/** Bilinear x0.5 then 1x1 conv (C -> C+s); always bias-free in the official code. */
class DownSample extends Module {
  readonly down: Sequential;
  constructor(inChannels: number, sFactor: number) {
    super();
    this.down = this.child('down', new Sequential([bilinearScale(0.5), conv(inChannels, inChannels + sFactor, 1, false)]));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return this.down.call<tf.Tensor4D>(x);
  }
}

/** Bilinear x2 then 1x1 conv (C+s -> C), bias-free; SkipUpSample adds the skip tensor. */
class UpSample extends Module {
  readonly up: Sequential;
  constructor(inChannels: number, sFactor: number) {
    super();
    this.up = this.child('up', new Sequential([bilinearScale(2), conv(inChannels + sFactor, inChannels, 1, false)]));
  }
  forward(x: tf.Tensor4D, skip?: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const y = this.up.call<tf.Tensor4D>(x);
      return skip ? tf.add(y, skip) : y;
    });
  }
}

function cabs(n: number, nFeat: number, k: number, reduction: number, bias: boolean, act: PReLU): CAB[] {
  return Array.from({ length: n }, () => new CAB(nFeat, k, reduction, bias, act));
}

/** Widths of the three U-Net levels. */
function levelWidths(nFeat: number, s: number): [number, number, number] {
  return [nFeat, nFeat + s, nFeat + 2 * s];
}

class Encoder extends Module {
  readonly levels: Sequential[];
  readonly downs: DownSample[];
  /** csff_enc1..3 then csff_dec1..3 (stage 2 only). */
  readonly csffEnc: Conv2d[] = [];
  readonly csffDec: Conv2d[] = [];

  constructor(c: MPRNetConfig, act: PReLU, csff: boolean) {
    super();
    const widths = levelWidths(c.n_feat, c.scale_unetfeats);
    this.levels = widths.map((w, i) =>
      this.child(`encoder_level${i + 1}`, new Sequential(cabs(2, w, c.kernel_size, c.reduction, c.bias, act))),
    );
    this.downs = [
      this.child('down12', new DownSample(widths[0], c.scale_unetfeats)),
      this.child('down23', new DownSample(widths[1], c.scale_unetfeats)),
    ];
    if (csff) {
      widths.forEach((w, i) => this.csffEnc.push(this.child(`csff_enc${i + 1}`, conv(w, w, 1, c.bias))));
      widths.forEach((w, i) => this.csffDec.push(this.child(`csff_dec${i + 1}`, conv(w, w, 1, c.bias))));
    }
  }

  /** Returns [enc1, enc2, enc3]; with the previous stage's encoder/decoder outputs, fuses them (CSFF). */
  forward(x: tf.Tensor4D, encOuts?: tf.Tensor4D[], decOuts?: tf.Tensor4D[]): tf.Tensor4D[] {
    return tf.tidy(() => {
      const fuse = encOuts !== undefined && decOuts !== undefined;
      if (fuse && this.csffEnc.length === 0) throw new Error(`MPRNet ${this.path}: this encoder has no CSFF convs`);
      const outs: tf.Tensor4D[] = [];
      let h = x;
      for (let i = 0; i < 3; i++) {
        if (i > 0) h = this.downs[i - 1].call<tf.Tensor4D>(h);
        let e = this.levels[i].call<tf.Tensor4D>(h);
        if (fuse) e = tf.addN([e, this.csffEnc[i].call<tf.Tensor4D>(encOuts[i]), this.csffDec[i].call<tf.Tensor4D>(decOuts[i])]);
        outs.push(e);
        h = e;
      }
      return outs;
    });
  }
}

class Decoder extends Module {
  readonly levels: Sequential[];
  readonly skip_attn1: CAB;
  readonly skip_attn2: CAB;
  readonly up21: UpSample;
  readonly up32: UpSample;

  constructor(c: MPRNetConfig, act: PReLU) {
    super();
    const widths = levelWidths(c.n_feat, c.scale_unetfeats);
    this.levels = widths.map((w, i) =>
      this.child(`decoder_level${i + 1}`, new Sequential(cabs(2, w, c.kernel_size, c.reduction, c.bias, act))),
    );
    this.skip_attn1 = this.child('skip_attn1', new CAB(widths[0], c.kernel_size, c.reduction, c.bias, act));
    this.skip_attn2 = this.child('skip_attn2', new CAB(widths[1], c.kernel_size, c.reduction, c.bias, act));
    this.up21 = this.child('up21', new UpSample(widths[0], c.scale_unetfeats));
    this.up32 = this.child('up32', new UpSample(widths[1], c.scale_unetfeats));
  }

  /** [enc1, enc2, enc3] -> [dec1, dec2, dec3]. */
  forward(encOuts: tf.Tensor4D[]): tf.Tensor4D[] {
    return tf.tidy(() => {
      const [enc1, enc2, enc3] = encOuts;
      const dec3 = this.levels[2].call<tf.Tensor4D>(enc3);
      const dec2 = this.levels[1].call<tf.Tensor4D>(this.up32.call<tf.Tensor4D>(dec3, this.skip_attn2.call<tf.Tensor4D>(enc2)));
      const dec1 = this.levels[0].call<tf.Tensor4D>(this.up21.call<tf.Tensor4D>(dec2, this.skip_attn1.call<tf.Tensor4D>(enc1)));
      return [dec1, dec2, dec3];
    });
  }
}

/** Original-resolution block: num_cab CABs + a conv that is bias-free whatever `bias` says (official). */
class ORB extends Module {
  readonly body: Sequential;
  constructor(nFeat: number, c: MPRNetConfig, act: PReLU) {
    super();
    const blocks: Module[] = cabs(c.num_cab, nFeat, c.kernel_size, c.reduction, c.bias, act);
    blocks.push(conv(nFeat, nFeat, c.kernel_size, false));
    this.body = this.child('body', new Sequential(blocks));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.add(this.body.call<tf.Tensor4D>(x), x));
  }
}

class ORSNet extends Module {
  readonly orbs: ORB[];
  /** up_enc1, up_dec1 (x2) and up_enc2, up_dec2 (nn.Sequential of two UpSamples, x4) lift level-2/3 features. */
  readonly upEnc: Module[] = [];
  readonly upDec: Module[] = [];
  readonly convEnc: Conv2d[] = [];
  readonly convDec: Conv2d[] = [];

  /** csff false: the ORBs alone (no stage-2 features fused). */
  constructor(c: MPRNetConfig, act: PReLU, csff = true) {
    super();
    const n = c.n_feat;
    const s = c.scale_unetfeats;
    const width = n + c.scale_orsnetfeats;
    this.orbs = [1, 2, 3].map((i) => this.child(`orb${i}`, new ORB(width, c, act)));
    if (!csff) return;
    const up1 = this.child('up_enc1', new UpSample(n, s));
    const dn1 = this.child('up_dec1', new UpSample(n, s));
    const up2 = this.child('up_enc2', new Sequential([new UpSample(n + s, s), new UpSample(n, s)]));
    const dn2 = this.child('up_dec2', new Sequential([new UpSample(n + s, s), new UpSample(n, s)]));
    this.upEnc = [up1, up2];
    this.upDec = [dn1, dn2];
    this.convEnc = [1, 2, 3].map((i) => this.child(`conv_enc${i}`, conv(n, width, 1, c.bias)));
    this.convDec = [1, 2, 3].map((i) => this.child(`conv_dec${i}`, conv(n, width, 1, c.bias)));
  }

  forward(x: tf.Tensor4D, encOuts?: tf.Tensor4D[], decOuts?: tf.Tensor4D[]): tf.Tensor4D {
    return tf.tidy(() => {
      let h = x;
      for (let i = 0; i < 3; i++) {
        h = this.orbs[i].call<tf.Tensor4D>(h);
        if (this.convEnc.length === 0 || !encOuts || !decOuts) continue;
        const e = i === 0 ? encOuts[0] : this.upEnc[i - 1].call<tf.Tensor4D>(encOuts[i]);
        const d = i === 0 ? decOuts[0] : this.upDec[i - 1].call<tf.Tensor4D>(decOuts[i]);
        h = tf.addN([h, this.convEnc[i].call<tf.Tensor4D>(e), this.convDec[i].call<tf.Tensor4D>(d)]);
      }
      return h;
    });
  }
}

const TASKS: Record<string, TaskSpec> = {
  deblur: { name: 'deblur', kind: 'deblur', scale: 1 },
  // Real noise (SIDD/DND) and rain (Rain13K): no synthetic degradation of ours produces these inputs.
  denoise: { name: 'denoise', kind: 'dn', scale: 1 },
  derain: { name: 'derain', kind: 'dr', scale: 1 },
};

/** Task each published preset was trained for; it becomes the default branch. */
const PRESET_TASK: Record<string, string> = {
  'mprnet-deblur': 'deblur',
  'mprnet-denoise': 'denoise',
  'mprnet-derain': 'derain',
};

export class MPRNet extends RestorationModel {
  readonly family = 'mprnet';
  readonly config: Readonly<MPRNetConfig>;
  readonly inChannels: number;
  readonly outChannels: number;
  /** The single nn.PReLU shared by every CAB (one parameter under many state_dict keys). */
  readonly act: PReLU;

  // Optional members exist only with the ablation switches off their defaults (num_stages, sam, csff, stage3).
  readonly shallow_feat1?: Sequential;
  readonly shallow_feat2?: Sequential;
  readonly shallow_feat3: Sequential;
  readonly stage1_encoder?: Encoder;
  readonly stage1_decoder?: Decoder;
  readonly stage2_encoder?: Encoder;
  readonly stage2_decoder?: Decoder;
  readonly stage3_orsnet?: ORSNet;
  readonly stage3_encoder?: Encoder;
  readonly stage3_decoder?: Decoder;
  readonly sam12?: SAM;
  readonly sam23?: SAM;
  readonly concat12?: Conv2d;
  readonly concat23: Conv2d;
  readonly tail: Conv2d;

  constructor(config: Readonly<Config>) {
    super();
    const c = { ...ABLATION_SWITCHES, ...(config as unknown as MPRNetConfig) };
    this.config = withoutDefaultSwitches(c, ABLATION_SWITCHES);
    this.inChannels = c.in_c;
    // stage3_img + input broadcasts over channels when one side is single-channel.
    this.outChannels = Math.max(c.in_c, c.out_c);
    const n = c.n_feat;
    const k = c.kernel_size;
    const has1 = c.num_stages >= 3;
    const has2 = c.num_stages >= 2;
    const encdec = c.stage3 === 'encdec';
    // Width of the last stage: ORSNet runs at n + scale_orsnetfeats, an encoder-decoder at n.
    const width3 = encdec ? n : n + c.scale_orsnetfeats;
    // Created here, first registered (hence named) as shallow_feat1.1.body.1, like named_modules().
    this.act = new PReLU();
    const shallow = () => new Sequential([conv(c.in_c, n, k, c.bias), new CAB(n, k, c.reduction, c.bias, this.act)]);
    if (has1) this.shallow_feat1 = this.child('shallow_feat1', shallow());
    if (has2) this.shallow_feat2 = this.child('shallow_feat2', shallow());
    this.shallow_feat3 = this.child('shallow_feat3', shallow());
    if (has1) {
      this.stage1_encoder = this.child('stage1_encoder', new Encoder(c, this.act, false));
      this.stage1_decoder = this.child('stage1_decoder', new Decoder(c, this.act));
    }
    if (has2) {
      this.stage2_encoder = this.child('stage2_encoder', new Encoder(c, this.act, c.csff && has1));
      this.stage2_decoder = this.child('stage2_decoder', new Decoder(c, this.act));
    }
    if (encdec) {
      this.stage3_encoder = this.child('stage3_encoder', new Encoder(c, this.act, c.csff && has2));
      this.stage3_decoder = this.child('stage3_decoder', new Decoder(c, this.act));
    } else this.stage3_orsnet = this.child('stage3_orsnet', new ORSNet(c, this.act, c.csff && has2));
    // SAMs use 1x1 convs whatever kernel_size is (official).
    if (has1) this.sam12 = this.child('sam12', new SAM(n, 1, c.bias, c.sam));
    if (has2) this.sam23 = this.child('sam23', new SAM(n, 1, c.bias, c.sam));
    if (has1) this.concat12 = this.child('concat12', conv(2 * n, n, k, c.bias));
    // Without stage 2 there are no SAM features to concatenate: concat23 maps shallow_feat3 alone.
    this.concat23 = this.child('concat23', conv(has2 ? 2 * n : n, width3, k, c.bias));
    this.tail = this.child('tail', conv(width3, c.out_c, k, c.bias));
  }

  tasks(): TaskSpec[] {
    const first = PRESET_TASK[this.preset ?? ''] ?? 'deblur';
    return [TASKS[first], ...Object.values(TASKS).filter((t) => t.name !== first)];
  }

  /** The restored image (stage-3 output + input), the official forward's first output. */
  forward(x: tf.Tensor4D, task?: string): tf.Tensor4D {
    return tf.tidy(() => this.forwardStages(x, task)[0]);
  }

  /**
   * The official forward's outputs in its order: [stage3_img + input, stage2_img, stage1_img] (fewer with
   * num_stages < 3: the images of the stages that exist, last stage first).
   */
  forwardStages(x: tf.Tensor4D, task?: string): tf.Tensor4D[] {
    this.task(task);
    const [, H, W, C] = x.shape;
    if (C !== this.inChannels) throw new Error(`MPRNet forward: expected ${this.inChannels} input channels, got ${C}`);
    // The patch hierarchy plus two down/up-samplings only line up when both halves are multiples of 4.
    if (H % 8 !== 0 || W % 8 !== 0)
      throw new Error(`MPRNet forward: input ${H}x${W} must be a multiple of 8 in both sizes (restore() pads)`);
    return tf.tidy(() => {
      const h2 = Math.floor(H / 2);
      const w2 = Math.floor(W / 2);
      const halves = [tf.slice(x, [0, 0, 0, 0], [-1, h2, -1, -1]), tf.slice(x, [0, h2, 0, 0], [-1, H - h2, -1, -1])];
      const images: tf.Tensor4D[] = [];

      // Stage 1: four quadrants through the encoder, left/right features joined along W, decoder per half.
      let stage1: { feat: tf.Tensor4D[][]; res: tf.Tensor4D[][]; sam: tf.Tensor4D[][] } | undefined;
      if (this.stage1_encoder) {
        const quarters = halves.map((t) => [tf.slice(t, [0, 0, 0, 0], [-1, -1, w2, -1]), tf.slice(t, [0, 0, w2, 0], [-1, -1, W - w2, -1])]);
        const feat = quarters.map(([left, right]) => {
          const l = this.stage1_encoder!.call<tf.Tensor4D[]>(this.shallow_feat1!.call<tf.Tensor4D>(left));
          const r = this.stage1_encoder!.call<tf.Tensor4D[]>(this.shallow_feat1!.call<tf.Tensor4D>(right));
          return l.map((t, i) => tf.concat([t, r[i]], 2));
        });
        const res = feat.map((f) => this.stage1_decoder!.call<tf.Tensor4D[]>(f));
        const sam = res.map((r, i) => this.sam12!.call<tf.Tensor4D[]>(r[0], halves[i]));
        images.push(tf.concat([sam[0][1], sam[1][1]], 1));
        stage1 = { feat, res, sam };
      }

      // Stage 2: two halves, fused with stage-1 encoder/decoder features, joined along H before the decoder.
      let stage2: { feat: tf.Tensor4D[]; res: tf.Tensor4D[]; samFeats: tf.Tensor4D } | undefined;
      if (this.stage2_encoder) {
        const feat2Halves = halves.map((half, i) => {
          const shallowFeat = this.shallow_feat2!.call<tf.Tensor4D>(half);
          if (!stage1) return this.stage2_encoder!.call<tf.Tensor4D[]>(shallowFeat);
          const fused = this.concat12!.call<tf.Tensor4D>(tf.concat([shallowFeat, stage1.sam[i][0]], 3));
          const csff = this.stage2_encoder!.csffEnc.length > 0;
          return csff ? this.stage2_encoder!.call<tf.Tensor4D[]>(fused, stage1.feat[i], stage1.res[i]) : this.stage2_encoder!.call<tf.Tensor4D[]>(fused);
        });
        const feat = feat2Halves[0].map((t, i) => tf.concat([t, feat2Halves[1][i]], 1));
        const res = this.stage2_decoder!.call<tf.Tensor4D[]>(feat);
        const [samFeats, stage2Img] = this.sam23!.call<tf.Tensor4D[]>(res[0], x);
        images.push(stage2Img);
        stage2 = { feat, res, samFeats };
      }

      // Stage 3: full resolution.
      const x3 = this.shallow_feat3.call<tf.Tensor4D>(x);
      const x3Cat = this.concat23.call<tf.Tensor4D>(stage2 ? tf.concat([x3, stage2.samFeats], 3) : x3);
      let out3: tf.Tensor4D;
      if (this.stage3_orsnet) out3 = this.stage3_orsnet.call<tf.Tensor4D>(x3Cat, stage2?.feat, stage2?.res);
      else {
        const enc = this.stage3_encoder!;
        const fuse = stage2 && enc.csffEnc.length > 0;
        const encOuts = fuse ? enc.call<tf.Tensor4D[]>(x3Cat, stage2!.feat, stage2!.res) : enc.call<tf.Tensor4D[]>(x3Cat);
        out3 = this.stage3_decoder!.call<tf.Tensor4D[]>(encOuts)[0];
      }
      const stage3Img = tf.add(this.tail.call<tf.Tensor4D>(out3), x) as tf.Tensor4D;
      return [stage3Img, ...images.reverse()];
    });
  }

  /** demo.py and Deblurring/test.py (RealBlur): reflect-pad bottom/right to a multiple of 8, crop back. */
  paddingRule(): PaddingRule {
    return { multiple: 8, mode: 'reflect' };
  }

  /**
   * Full-image hook points only: stage-1 modules and the stage-2 encoder run once per patch (4 and 2 calls per
   * forward), so their hook points would show one patch, not the image.
   */
  defaultLayers(): string[] {
    return ['stage2_decoder.decoder_level*', 'sam23', 'stage3_orsnet.orb*'];
  }
}

function validate(c: Config): void {
  const int = (k: string, min: number) => {
    if (!Number.isInteger(c[k]) || (c[k] as number) < min) throw new Error(`config: mprnet ${k} must be an integer >= ${min}, got ${String(c[k])}`);
  };
  for (const k of ['n_feat', 'kernel_size', 'reduction']) int(k, 1);
  for (const k of ['scale_unetfeats', 'scale_orsnetfeats', 'num_cab']) int(k, 0);
  for (const k of ['in_c', 'out_c'])
    if (c[k] !== 1 && c[k] !== 3)
      throw new Error(`config: mprnet ${k} must be 1 or 3 (SAM images have 3 channels and are added to the input), got ${String(c[k])}`);
  if ((c.kernel_size as number) % 2 !== 1) throw new Error(`config: mprnet kernel_size must be odd ('same' padding k//2), got ${String(c.kernel_size)}`);
  if ((c.n_feat as number) < (c.reduction as number))
    throw new Error(`config: mprnet reduction ${String(c.reduction)} exceeds n_feat ${String(c.n_feat)} (CALayer would have 0 channels)`);
  if (typeof c.bias !== 'boolean') throw new Error(`config: mprnet bias must be true or false, got ${String(c.bias)}`);
  if (![1, 2, 3].includes(c.num_stages as number)) throw new Error(`config: mprnet num_stages must be 1, 2 or 3, got ${String(c.num_stages)}`);
  for (const k of ['sam', 'csff'])
    if (typeof c[k] !== 'boolean') throw new Error(`config: mprnet ${k} must be true or false, got ${String(c[k])}`);
  if (c.stage3 !== 'orsnet' && c.stage3 !== 'encdec') throw new Error(`config: mprnet stage3 must be 'orsnet' or 'encdec', got ${String(c.stage3)}`);
}

// MPRNet's per-task parts: shallow_feat1..3 (conv + CAB: the per-stage image-to-feature heads), tail, and the
// image convs of the supervised attention modules, sam12/sam23.conv2 (features -> stage image) and .conv3 (stage
// image -> attention): they read or write images, so they are the per-stage tails. sam*.conv1 works on features
// only and is shared. The single PReLU, used by the shallow_feat CABs too, is one parameter in the official
// model and stays shared.
const MPRNET_HEADS = ['shallow_feat1', 'shallow_feat2', 'shallow_feat3', 'sam12.conv2', 'sam12.conv3', 'sam23.conv2', 'sam23.conv3', 'tail'];

registerFamily({
  name: 'mprnet',
  defaults: { ...DEFAULTS },
  build: (config) => new MPRNet(config),
  validate,
  presets: [
    {
      name: 'mprnet-deblur',
      description: 'MPRNet deblurring (GoPro; Deblurring/MPRNet.py, n_feat 96)',
      config: { n_feat: 96, scale_unetfeats: 48, scale_orsnetfeats: 32 },
      officialParams: 20_127_073,
    },
    {
      name: 'mprnet-denoise',
      description: 'MPRNet real-image denoising (SIDD; Denoising/MPRNet.py, n_feat 80)',
      config: { n_feat: 80, scale_unetfeats: 48, scale_orsnetfeats: 32 },
      officialParams: 15_741_025,
    },
    {
      name: 'mprnet-derain',
      description: 'MPRNet deraining (Rain13K; Deraining/MPRNet.py, n_feat 40)',
      config: { n_feat: 40, scale_unetfeats: 20, scale_orsnetfeats: 16 },
      officialParams: 3_637_249,
    },
    {
      name: 'mprnet-tiny',
      description: 'MPRNet, tiny width for tests (every module kind, 1 CAB per ORB)',
      config: { n_feat: 8, scale_unetfeats: 4, scale_orsnetfeats: 4, num_cab: 1 },
    },
  ],
  tasks: { headPrefixes: () => [...MPRNET_HEADS], configFor: sameSizeOnly('mprnet') },
  // The official training loss: Charbonnier + 0.05 edge loss on every stage output.
  training: {
    loss: 'mprnet',
    // training.yml: batch 16, patch 256, Adam (0.9, 0.999), lr 2e-4 cosine to 1e-6; 3000 epochs of GoPro ~ 400k iterations.
    paper: { steps: 400_000, batch: 16, patch: { lq: 128, same: 256 }, lr: { peak: 2e-4, schedule: 'cosine', minFactor: 1e-6 / 2e-4 }, optimizer: { kind: 'adam', beta1: 0.9, beta2: 0.999, weightDecay: 0 } },
  },
  study: { tiny: 'mprnet-tiny', tinyConfig: {}, paper: 'mprnet-denoise', paperConfig: {}, sr: (s) => `sr-up-x${s}` },
  // The paper's ablations (Zamir et al. 2021, Tables 1-2); none is an official switch (see MPRNetConfig).
  variants: {
    'stages-1': { description: 'one stage: the last stage (ORSNet) alone on the full image', config: { num_stages: 1 } },
    'stages-2': { description: 'two stages: stage 2 on the halves, then the last stage', config: { num_stages: 2 } },
    'stages-3': { description: 'three stages (official)', config: { num_stages: 3 } },
    'sam-on': { description: 'supervised attention modules between stages (official)', config: { sam: true } },
    'sam-off': { description: 'no SAM gating: features pass on as they are, each stage image from one conv', config: { sam: false } },
    'csff-on': { description: 'cross-stage feature fusion (official)', config: { csff: true } },
    'csff-off': { description: 'no cross-stage feature fusion', config: { csff: false } },
    orsnet: { description: 'ORSNet (original-resolution subnetwork) as the last stage (official)', config: { stage3: 'orsnet' } },
    'encdec-stage3': { description: 'an encoder-decoder (like stage 2) as the last stage, at full resolution', config: { stage3: 'encdec' } },
  },
});
