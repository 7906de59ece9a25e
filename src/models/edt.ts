/**
 * EDT (Li et al. 2021, "On Efficient Transformer and Image Pre-training for Low-level Vision";
 * fenglinglwb/EDT utils/modules/edt.py, configs/*.py, test_sample.py), NHWC.
 *
 * One Network holds convolutional heads and tails per task branch around one shared transformer body:
 * head_sr_x{s} / tail_sr_x{s} for every MODEL.SCALES entry, head_dn_g{n} / tail_dn_g{n} for NOISE_LEVELS,
 * head_dr_{L,H} / tail_dr_{L,H} for RAIN_LEVELS (this is how single-, related- and unrelated-task pre-training
 * share representations). The official forward takes one input per branch and runs each through its own head,
 * the body and its own tail; here `task` picks one branch ('sr-x2', 'dn-25', 'dr-light', ...), which gives the
 * same prediction for that branch (in eval mode the official forward runs the body once per branch).
 *
 * Facts of the official code this port reproduces:
 * - Pre/post processing like SwinIR: (x - mean) * IMAGE_RANGE, mean (0.4488, 0.4371, 0.4040) for RGB, 0 gray
 *   (a plain attribute, not a state_dict entry); prediction / IMAGE_RANGE + mean.
 * - SR head: conv3 (in -> F), DEPTH ResBlockDown(F*2^i -> F*2^(i+1)) whose outputs are the skips, conv3 -> EMBED_DIM.
 *   SR tail: DEPTH ResBlockSkip (conv3, concat the skips in reverse order, ResBlockUp 2c -> c), then
 *   Upsample(s) + conv3 -> in ('pixelshuffle') or UpsampleOneStep + Identity ('pixelshuffledirect');
 *   output = bilinear(normalised input, s, align_corners=False) + tail.
 * - DN/DR head: ResBlockDown with down=True (conv 4x4 stride 2 pad 1, no bias, after the residual; the skip is
 *   the tensor before it): the body runs at 1/2^DEPTH resolution. Tail: UpResBlock (ConvTranspose2d k2 s2,
 *   concat skip, ResBlockUp) then conv3; output = normalised input + tail.
 * - Body (SwinBody): tokens + LayerNorm (patch_embed.norm) -> RSTBs (blocks + residual, no conv) -> LayerNorm ->
 *   conv_after_body + body input.
 * - Block (CSwinTransformerBlock): LayerNorm; qkv Linear(C -> 3C); channels [0, C/2) attend in horizontal
 *   WINDOW_SIZE (6x24) windows (attns.0), [C/2, C) in vertical transposed (24x6) windows (attns.1), each with
 *   NUM_HEADS heads over C/2 channels and scale (C/2/heads)^-0.5, no relative position bias; LePE = depthwise
 *   3x3 conv (bias) of v inside each window (zero padding at window edges) added to attn @ v. Odd blocks roll
 *   the horizontal half by -(wh/2, ww/2) and the vertical half by -(ww/2, wh/2) first (masks -100 between
 *   regions, like SwinIR) and roll back after. Halves concatenated -> proj; + shortcut; x + mlp(norm2(x)).
 * - Mlp: fc1 (C -> int(C*MLP_RATIO)) -> GELU -> depthwise 5x5 conv (bias) over the whole map -> the same GELU
 *   module again -> fc2 (the hook point `mlp.act` fires twice; a cache keeps the second output).
 * - Test-time padding (test_sample.py): flip-concat ('symmetric') bottom/right to a multiple of lcm(WINDOW_SIZE)
 *   (24) for SR and lcm * 2^DEPTH (96) for DN/DR. The script always adds up to one more multiple; `restore`
 *   pads only inputs that do not fit (RestorationModel's contract).
 * - Checkpoints are raw state_dicts; shifted blocks carry attn_mask_h / attn_mask_v buffers computed for
 *   IMAGE_SIZE, which the model recomputes for the runtime size (ignoredStateKeys).
 * - Dropout, attention dropout and drop-path are identity modules (the eval-mode forward). proj_drop and the
 *   training criterion (L1Loss) exist in the official module tree but are never called in forward, so they
 *   are not hook points here.
 * - Added hook points (no parameters, not in the official tree): every attention has `.heads` (per-head output
 *   before merging, [B*nW, heads, N, head_dim]) and `.attn_map` (softmax probabilities), see
 *   blocks/window-attention.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, ModuleList } from './module';
import { BasicLayer, PatchEmbed, PatchUnEmbed, residualConv, Size } from './blocks/swin';
import { lcm } from '../util/stats';
import { bilinearResize, Conv2d, ConvTranspose2d, DIV2K_RGB_MEAN, Dropout, GELU, HookPoint, Identity, Lambda, LayerNorm, LeakyReLU, Linear, roll2, swinLinear } from './layers';
import { PaddingRule, RestorationModel, TaskSpec } from './model';
import { type Config, registerFamily, type VariantDef, withoutDefaultSwitches } from './family';
import { shiftedWindowMask, windowPartition, windowReverse } from './blocks/windows';
import { upsample, upsampleOneStep } from './blocks/upsample';
import { windowAttention } from './blocks/window-attention';

export type EDTUpsampler = 'pixelshuffle' | 'pixelshuffledirect';
export type EDTRainLevel = 'L' | 'H';

/** The MODEL.* keys of the official configs that Network reads (DOWNSAMPLE and DEVICE are not model properties). */
export interface EDTConfig {
  IN_CHANNEL: number;
  /** Number of ResBlockDown stages in the heads (the configs' DATASET.NOISE_DOWN). */
  DEPTH: number;
  /** Training patch size of the body; only decides the shape of the attention-mask buffers. */
  IMAGE_SIZE: number;
  SCALES: number[];
  NOISE_LEVELS: number[];
  RAIN_LEVELS: EDTRainLevel[];
  WINDOW_SIZE: [number, number];
  IMAGE_RANGE: number;
  NUM_FEAT: number;
  DEPTHS: number[];
  EMBED_DIM: number;
  NUM_HEADS: number[];
  MLP_RATIO: number;
  UPSAMPLER: EDTUpsampler;
  RESI_CONNECTION: '1conv' | '3conv';
  /**
   * Not an official key (the official blocks always alternate plain and shifted): false makes every block
   * unshifted, the paper's "w/o shift" ablation of the shifted crossed local attention (Table 2).
   */
  SHIFT: boolean;
}

/**
 * The official Network has no defaults of its own (everything comes from a config file); these are the values
 * of configs/SRx2_EDTB_*.py, the main EDT-B SR x2 model.
 */
export const EDT_DEFAULTS: EDTConfig = {
  IN_CHANNEL: 3,
  DEPTH: 2,
  IMAGE_SIZE: 48,
  SCALES: [2],
  NOISE_LEVELS: [],
  RAIN_LEVELS: [],
  WINDOW_SIZE: [6, 24],
  IMAGE_RANGE: 1,
  NUM_FEAT: 32,
  DEPTHS: [6, 6, 6, 6, 6, 6],
  EMBED_DIM: 180,
  NUM_HEADS: [6, 6, 6, 6, 6, 6],
  MLP_RATIO: 2,
  UPSAMPLER: 'pixelshuffle',
  RESI_CONNECTION: '1conv',
  SHIFT: true,
};

const RAIN_TASK: Record<EDTRainLevel, string> = { L: 'dr-light', H: 'dr-heavy' };

// ------------------------------------------------------------------------------------------------------------
// Convolutional heads and tails

/** conv3 (c->c) -> LReLU(0.2) -> conv3 (c->o) -> LReLU(0.2), + 1x1 shortcut; `down` adds a 4x4/2 conv. */
class ResBlockDown extends Module {
  readonly conv_1: Conv2d;
  readonly relu_1: Lambda;
  readonly conv_2: Conv2d;
  readonly relu_2: Lambda;
  readonly shortcut: Conv2d;
  readonly conv_down?: Conv2d;

  constructor(inChl: number, outChl: number, down: boolean) {
    super();
    this.conv_1 = this.child('conv_1', new Conv2d(inChl, inChl, 3));
    this.relu_1 = this.child('relu_1', LeakyReLU(0.2));
    this.conv_2 = this.child('conv_2', new Conv2d(inChl, outChl, 3));
    this.relu_2 = this.child('relu_2', LeakyReLU(0.2));
    this.shortcut = this.child('shortcut', new Conv2d(inChl, outChl, 1));
    if (down) this.conv_down = this.child('conv_down', new Conv2d(outChl, outChl, 4, { stride: 2, padding: 1, bias: false }));
  }

  /** Without down: the block output. With down: [downsampled, block output] like the official (x_down, x). */
  forward(x: tf.Tensor4D): tf.Tensor4D | tf.Tensor4D[] {
    return tf.tidy(() => {
      const y = residualPair(this.conv_1, this.relu_1, this.conv_2, this.relu_2, this.shortcut, x);
      return this.conv_down ? [this.conv_down.call<tf.Tensor4D>(y), y] : y;
    });
  }
}

/** relu_2(conv_2(relu_1(conv_1(x)))) + shortcut(x), shared by ResBlockDown and ResBlockUp. */
function residualPair(c1: Conv2d, r1: Lambda, c2: Conv2d, r2: Lambda, sc: Conv2d, x: tf.Tensor4D): tf.Tensor4D {
  const identity = sc.call<tf.Tensor4D>(x);
  const y = r2.call<tf.Tensor4D>(c2.call(r1.call(c1.call(x))));
  return tf.add(y, identity);
}

/** conv3 (in->out) -> LReLU -> conv3 (out->out) -> LReLU, + 1x1 shortcut (in->out). */
class ResBlockUp extends Module {
  readonly conv_1: Conv2d;
  readonly relu_1: Lambda;
  readonly conv_2: Conv2d;
  readonly relu_2: Lambda;
  readonly shortcut: Conv2d;

  constructor(inChl: number, outChl: number) {
    super();
    this.conv_1 = this.child('conv_1', new Conv2d(inChl, outChl, 3));
    this.relu_1 = this.child('relu_1', LeakyReLU(0.2));
    this.conv_2 = this.child('conv_2', new Conv2d(outChl, outChl, 3));
    this.relu_2 = this.child('relu_2', LeakyReLU(0.2));
    this.shortcut = this.child('shortcut', new Conv2d(inChl, outChl, 1));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => residualPair(this.conv_1, this.relu_1, this.conv_2, this.relu_2, this.shortcut, x));
  }
}

/** DN/DR tail stage: ConvTranspose2d(k2, s2) -> concat skip -> ResBlockUp(2*out -> out). */
class UpResBlock extends Module {
  readonly up: ConvTranspose2d;
  readonly block: ResBlockUp;
  constructor(inChl: number, outChl: number) {
    super();
    this.up = this.child('up', new ConvTranspose2d(inChl, outChl, 2, 2));
    this.block = this.child('block', new ResBlockUp(2 * outChl, outChl));
  }
  forward(x: tf.Tensor4D, skip: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.block.call<tf.Tensor4D>(tf.concat([this.up.call<tf.Tensor4D>(x), skip], 3)));
  }
}

/** SR tail stage: conv3 -> concat skip -> ResBlockUp(2*out -> out). */
class ResBlockSkip extends Module {
  readonly conv: Conv2d;
  readonly block: ResBlockUp;
  constructor(inChl: number, outChl: number) {
    super();
    this.conv = this.child('conv', new Conv2d(inChl, outChl, 3));
    this.block = this.child('block', new ResBlockUp(2 * outChl, outChl));
  }
  forward(x: tf.Tensor4D, skip: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.block.call<tf.Tensor4D>(tf.concat([this.conv.call<tf.Tensor4D>(x), skip], 3)));
  }
}

// ------------------------------------------------------------------------------------------------------------
// Transformer body

/** fc1 -> GELU -> depthwise 5x5 -> GELU (same module) -> fc2, on a [B,H,W,C] map. */
class Mlp extends Module {
  readonly fc1: Linear;
  readonly act: Lambda;
  readonly dwconv: Conv2d;
  readonly fc2: Linear;
  constructor(dim: number, hidden: number) {
    super();
    this.fc1 = this.child('fc1', swinLinear(dim, hidden));
    this.act = this.child('act', GELU());
    this.dwconv = this.child('dwconv', new Conv2d(hidden, hidden, 5, { groups: hidden }));
    this.fc2 = this.child('fc2', swinLinear(hidden, dim));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const h = this.act.call<tf.Tensor4D>(this.fc1.call(x));
      return this.fc2.call<tf.Tensor4D>(this.act.call(this.dwconv.call(h)));
    });
  }
}

/**
 * Window attention over one half of the channels with LePE. `window` is this half's (height, width):
 * WINDOW_SIZE for attns.0 (horizontal), transposed for attns.1 (vertical).
 */
class WindowAttention extends Module {
  readonly attn_drop: Lambda;
  readonly lepe: Conv2d;
  readonly softmax: Lambda;
  readonly attn_map: HookPoint;
  readonly heads: HookPoint;
  readonly scale: number;

  constructor(
    readonly dim: number,
    readonly window: Size,
    readonly numHeads: number,
  ) {
    super();
    this.scale = Math.floor(dim / numHeads) ** -0.5;
    this.attn_drop = this.child('attn_drop', Dropout());
    this.lepe = this.child('lepe', new Conv2d(dim, dim, 3, { groups: dim }));
    this.softmax = this.child('softmax', new Lambda('Softmax', (x) => tf.softmax(x, -1)));
    this.attn_map = this.child('attn_map', new HookPoint('attention probabilities [B*nW, heads, N, N]'));
    this.heads = this.child('heads', new HookPoint('per-head output (attn @ v + LePE) before the halves are merged and projected [B*nW, heads, N, head_dim]'));
  }

  /**
   * x: [3*B, H, W, c], the q, k and v maps of this half stacked along the batch (the official input is
   * (3, B, H, W, c); 4-D keeps every slice on the wasm backend's fast path); mask: [nW, N, N] or none.
   * Returns [B, H, W, c].
   */
  forward(x: tf.Tensor4D, mask?: tf.Tensor3D): tf.Tensor4D {
    return tf.tidy(() => {
      const [, h, w, c] = x.shape;
      const [wh, ww] = this.window;
      const n = wh * ww;
      const heads = this.numHeads;
      const [q, k, v] = tf.split(x, 3, 0).map((t) => windowPartition(t as tf.Tensor4D, wh, ww)); // [B_, N, c]
      const bw = q.shape[0];
      const lepe = this.lepe.call<tf.Tensor4D>(tf.reshape(v, [bw, wh, ww, c]));
      const extra = tf.reshape(lepe, [bw, n, c]) as tf.Tensor3D;
      const merged = windowAttention(this, { q, k, v }, { heads, scale: this.scale, mask, extra });
      return windowReverse(merged, wh, ww, h, w);
    });
  }
}

/** Shifted crossed local attention block (see the file comment). Tokens [B, H*W, C] in and out. */
class CSwinTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attns: ModuleList<WindowAttention>;
  readonly drop_path: Lambda;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly qkv: Linear;
  readonly proj: Linear;
  /** (wh, ww) of the horizontal half; the vertical half uses (ww, wh). */
  readonly window: Size;
  /** Roll of the horizontal half (wh/2, ww/2) in odd blocks; the vertical half rolls by (ww/2, wh/2). */
  readonly shift?: Size;

  constructor(dim: number, heads: number, window: Size, shifted: boolean, mlpRatio: number) {
    super();
    this.window = window;
    if (shifted) this.shift = [Math.floor(window[0] / 2), Math.floor(window[1] / 2)];
    const half = Math.floor(dim / 2);
    this.norm1 = this.child('norm1', new LayerNorm(dim));
    this.attns = this.child(
      'attns',
      new ModuleList([new WindowAttention(half, [window[0], window[1]], heads), new WindowAttention(half, [window[1], window[0]], heads)]),
    );
    this.drop_path = this.child('drop_path', Dropout());
    this.norm2 = this.child('norm2', new LayerNorm(dim));
    this.mlp = this.child('mlp', new Mlp(dim, Math.floor(dim * mlpRatio)));
    this.qkv = this.child('qkv', swinLinear(dim, 3 * dim));
    this.proj = this.child('proj', swinLinear(dim, dim));
  }

  forward(x: tf.Tensor3D, size: Size): tf.Tensor3D {
    return tf.tidy(() => {
      const [h, w] = size;
      const [b, l, c] = x.shape;
      const [wh, ww] = this.window;
      const map = tf.reshape(x, [b, h, w, c]);
      const qkv = tf.reshape(this.qkv.call<tf.Tensor>(this.norm1.call<tf.Tensor>(map)), [b * h * w, 3, c]);
      // Each half as [3*B, H, W, C/2] (q, k, v stacked along the batch). Rank <= 4 throughout: the wasm
      // backend transposes 5-D tensors on a generic path ~20x slower than 4-D ones (its stock slices were
      // 5-D-slow too; irlens's heap-copy Slice kernel is not).
      const halfQkv = (i: number) => {
        const t = tf.transpose(tf.slice(qkv, [0, 0, (i * c) / 2], [-1, 3, c / 2]), [1, 0, 2]);
        return tf.reshape(t, [3 * b, h, w, c / 2]);
      };
      let xh: tf.Tensor = halfQkv(0);
      let xv: tf.Tensor = halfQkv(1);
      let maskH: tf.Tensor3D | undefined;
      let maskV: tf.Tensor3D | undefined;
      const s = this.shift;
      if (s) {
        xh = roll2(xh, -s[0], -s[1], 1);
        xv = roll2(xv, -s[1], -s[0], 1);
        maskH = shiftedWindowMask(h, w, wh, ww, s[0], s[1]);
        maskV = shiftedWindowMask(h, w, ww, wh, s[1], s[0]);
      }
      let ah: tf.Tensor = this.attns.items[0].call<tf.Tensor4D>(xh, maskH);
      let av: tf.Tensor = this.attns.items[1].call<tf.Tensor4D>(xv, maskV);
      if (s) {
        ah = roll2(ah, s[0], s[1], 1);
        av = roll2(av, s[1], s[0], 1);
      }
      const attn = this.proj.call<tf.Tensor>(tf.concat([ah, av], 3));
      const x1 = tf.add(map, this.drop_path.call<tf.Tensor>(attn)) as tf.Tensor4D;
      const x2 = tf.add(x1, this.drop_path.call<tf.Tensor>(this.mlp.call<tf.Tensor>(this.norm2.call<tf.Tensor4D>(x1))));
      return tf.reshape(x2, [b, l, c]);
    });
  }
}

/** EDT's residual_group: alternating plain and shifted crossed-window blocks. */
function cswinLayer(dim: number, depth: number, heads: number, c: EDTConfig): BasicLayer {
  return new BasicLayer(Array.from({ length: depth }, (_, i) => new CSwinTransformerBlock(dim, heads, c.WINDOW_SIZE, c.SHIFT && i % 2 === 1, c.MLP_RATIO)));
}

/** Residual group of blocks; unlike SwinIR's RSTB there is no conv and no patch (un)embedding. */
class RSTB extends Module {
  readonly residual_group: BasicLayer;
  constructor(dim: number, depth: number, heads: number, c: EDTConfig) {
    super();
    this.residual_group = this.child('residual_group', cswinLayer(dim, depth, heads, c));
  }
  forward(x: tf.Tensor3D, size: Size): tf.Tensor3D {
    return tf.tidy(() => tf.add(this.residual_group.call<tf.Tensor3D>(x, size), x));
  }
}

class SwinBody extends Module {
  readonly patch_embed: PatchEmbed;
  readonly patch_unembed: PatchUnEmbed;
  readonly pos_drop: Lambda;
  readonly layers: ModuleList<RSTB>;
  readonly norm: LayerNorm;
  readonly conv_after_body: Module;

  constructor(c: EDTConfig) {
    super();
    const dim = c.EMBED_DIM;
    this.patch_embed = this.child('patch_embed', new PatchEmbed(dim));
    this.patch_unembed = this.child('patch_unembed', new PatchUnEmbed());
    this.pos_drop = this.child('pos_drop', Dropout());
    this.layers = this.child('layers', new ModuleList(c.DEPTHS.map((depth, i) => new RSTB(dim, depth, c.NUM_HEADS[i], c))));
    this.norm = this.child('norm', new LayerNorm(dim));
    this.conv_after_body = this.child('conv_after_body', residualConv(dim, c.RESI_CONNECTION));
  }

  /** conv_after_body(forward_features(x)) + x on an NHWC map. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [, h, w] = x.shape;
      const size: Size = [h, w];
      let t = this.pos_drop.call<tf.Tensor3D>(this.patch_embed.call<tf.Tensor3D>(x));
      for (const layer of this.layers.items) t = layer.call<tf.Tensor3D>(t, size);
      const feat = this.patch_unembed.call<tf.Tensor4D>(this.norm.call<tf.Tensor3D>(t), size);
      return tf.add(this.conv_after_body.call<tf.Tensor4D>(feat), x);
    });
  }
}

// ------------------------------------------------------------------------------------------------------------
// The network

interface Branch {
  task: TaskSpec;
  /** Official attribute suffix: 'sr_x2', 'dn_g25', 'dr_L' (head_<suffix>, tail_<suffix>). */
  suffix: string;
  head: ModuleList;
  tail: ModuleList;
}

export class EDT extends RestorationModel {
  readonly family = 'edt';
  readonly config: Readonly<EDTConfig>;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly body: SwinBody;
  private readonly branches: Branch[];

  constructor(config: EDTConfig) {
    super();
    validateEDTConfig(config);
    const c: EDTConfig = {
      ...config,
      SHIFT: config.SHIFT ?? true,
      SCALES: [...config.SCALES],
      NOISE_LEVELS: [...config.NOISE_LEVELS],
      RAIN_LEVELS: [...config.RAIN_LEVELS],
      WINDOW_SIZE: [config.WINDOW_SIZE[0], config.WINDOW_SIZE[1]],
      DEPTHS: [...config.DEPTHS],
      NUM_HEADS: [...config.NUM_HEADS],
    };
    this.config = withoutDefaultSwitches(c, { SHIFT: true });
    this.inChannels = c.IN_CHANNEL;
    this.outChannels = c.IN_CHANNEL;
    const specs: { task: TaskSpec; suffix: string }[] = [
      ...c.SCALES.map((s) => ({ task: { name: `sr-x${s}`, kind: 'sr' as const, scale: s, degradation: `sr-x${s}` }, suffix: `sr_x${s}` })),
      ...c.NOISE_LEVELS.map((n) => ({ task: { name: `dn-${n}`, kind: 'dn' as const, scale: 1, degradation: `dn-${n}` }, suffix: `dn_g${n}` })),
      ...c.RAIN_LEVELS.map((r) => ({ task: { name: RAIN_TASK[r], kind: 'dr' as const, scale: 1, degradation: RAIN_TASK[r] }, suffix: `dr_${r}` })),
    ];
    // Registration order = official __init__ order (all heads, body, all tails) = the state_dict order.
    const heads = specs.map((s) => this.child(`head_${s.suffix}`, this.buildHead(s.task.kind === 'sr')));
    this.body = this.child('body', new SwinBody(c));
    const tails = specs.map((s) => this.child(`tail_${s.suffix}`, this.buildTail(s.task)));
    this.branches = specs.map((s, i) => ({ ...s, head: heads[i], tail: tails[i] }));
  }

  private buildHead(sr: boolean): ModuleList {
    const { NUM_FEAT: f, DEPTH: depth, IN_CHANNEL: chl, EMBED_DIM: dim } = this.config;
    const items: Module[] = [new Conv2d(chl, f, 3)];
    for (let i = 0; i < depth; i++) items.push(new ResBlockDown(f * 2 ** i, f * 2 ** (i + 1), !sr));
    items.push(new Conv2d(f * 2 ** depth, dim, 3));
    return new ModuleList(items);
  }

  private buildTail(task: TaskSpec): ModuleList {
    const { NUM_FEAT: f, DEPTH: depth, IN_CHANNEL: chl, EMBED_DIM: dim, UPSAMPLER } = this.config;
    const items: Module[] = [];
    for (let i = depth - 1; i >= 0; i--) {
      const inChl = i === depth - 1 ? dim : f * 2 ** (i + 2);
      items.push(task.kind === 'sr' ? new ResBlockSkip(inChl, f * 2 ** (i + 1)) : new UpResBlock(inChl, f * 2 ** (i + 1)));
    }
    const last = 2 * f; // out_chl of the final stage (i = 0)
    if (task.kind !== 'sr') items.push(new Conv2d(last, chl, 3));
    else if (UPSAMPLER === 'pixelshuffle') items.push(upsample(task.scale, last), new Conv2d(last, chl, 3));
    else items.push(upsampleOneStep(task.scale, last, chl), Identity());
    return new ModuleList(items);
  }

  /** Task branches in the official order: SCALES, NOISE_LEVELS, RAIN_LEVELS. The first is the default. */
  tasks(): TaskSpec[] {
    return this.branches.map((b) => ({ ...b.task }));
  }

  /** The official attribute suffix of a task's branch: 'sr_x2', 'dn_g25', 'dr_L' (hook names head_<suffix>.*). */
  branchName(task?: string): string {
    return this.branch(task).suffix;
  }

  private branch(task?: string): Branch {
    const name = this.task(task).name;
    return this.branches.find((b) => b.task.name === name)!;
  }

  /** Spatial multiple an input must have: lcm(WINDOW_SIZE) for SR, times 2^DEPTH for DN/DR (body at 1/2^DEPTH). */
  inputMultiple(task?: string): number {
    const [wh, ww] = this.config.WINDOW_SIZE;
    const m = lcm(wh, ww);
    return this.task(task).kind === 'sr' ? m : m * 2 ** this.config.DEPTH;
  }

  /** test_sample.py: flip-concat padding to a multiple of lcm(WINDOW_SIZE) (* 2^DEPTH for DN/DR). */
  paddingRule(task?: string): PaddingRule {
    return { multiple: this.inputMultiple(task), mode: 'symmetric' };
  }

  /** The branch's head output (body input), every block and RSTB of the shared body, the branch's tail output. */
  defaultLayers(task?: string): string[] {
    const b = this.branch(task);
    return [
      `head_${b.suffix}.${b.head.items.length - 1}`,
      'body.layers.*.residual_group.blocks.*',
      'body.layers.*',
      `tail_${b.suffix}.${b.tail.items.length - 1}`,
    ];
  }

  override ignoredStateKeys(): RegExp[] {
    return [/(^|\.)attn_mask_[hv]$/];
  }

  forward(x: tf.Tensor4D, task?: string): tf.Tensor4D {
    const b = this.branch(task);
    const c = this.config;
    const [, h, w, ch] = x.shape;
    if (ch !== c.IN_CHANNEL) throw new Error(`edt: input has ${ch} channels, model expects IN_CHANNEL=${c.IN_CHANNEL}`);
    const m = this.inputMultiple(b.task.name);
    if (h % m !== 0 || w % m !== 0)
      throw new Error(`edt: ${b.task.name} input ${h}x${w} is not a multiple of ${m} (pad it, or use restore())`);
    return tf.tidy(() => {
      const mean = c.IN_CHANNEL === 3 ? tf.tensor1d(DIV2K_RGB_MEAN) : tf.scalar(0);
      const lq = tf.mul(tf.sub(x, mean), c.IMAGE_RANGE) as tf.Tensor4D;
      const sr = b.task.kind === 'sr';
      const head = b.head.items;
      const skips: tf.Tensor4D[] = [];
      let f = head[0].call<tf.Tensor4D>(lq);
      for (const blk of head.slice(1, -1)) {
        if (sr) {
          f = blk.call<tf.Tensor4D>(f);
          skips.push(f);
        } else {
          const [down, pre] = blk.call<tf.Tensor4D[]>(f);
          f = down;
          skips.push(pre);
        }
      }
      f = this.body.call<tf.Tensor4D>(head[head.length - 1].call<tf.Tensor4D>(f));
      const tail = b.tail.items;
      const stages = tail.length - (sr ? 2 : 1);
      for (let j = 0; j < stages; j++) f = tail[j].call<tf.Tensor4D>(f, skips[skips.length - 1 - j]);
      let y: tf.Tensor4D;
      if (sr) {
        const s = b.task.scale;
        const lqUp = bilinearResize(lq, h * s, w * s);
        y = tf.add(lqUp, tail[tail.length - 1].call<tf.Tensor4D>(tail[tail.length - 2].call<tf.Tensor4D>(f)));
      } else {
        y = tf.add(lq, tail[tail.length - 1].call<tf.Tensor4D>(f));
      }
      return tf.add(tf.div(y, c.IMAGE_RANGE), mean) as tf.Tensor4D;
    });
  }
}

// ------------------------------------------------------------------------------------------------------------
// Config validation, family and presets

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isIntList = (v: unknown, min: number): v is number[] =>
  Array.isArray(v) && v.every((e) => typeof e === 'number' && Number.isInteger(e) && e >= min);

/** One-line errors for values the official code would reject or crash on. */
export function validateEDTConfig(cfg: Config | EDTConfig): void {
  const c = cfg as Record<string, unknown>;
  const fail = (key: string, expected: string): never => {
    throw new Error(`edt config: ${key}=${JSON.stringify(c[key])} is invalid (expected ${expected})`);
  };
  for (const k of ['IN_CHANNEL', 'DEPTH', 'IMAGE_SIZE', 'NUM_FEAT', 'EMBED_DIM']) if (!isPosInt(c[k])) fail(k, 'a positive integer');
  const ws = c.WINDOW_SIZE;
  if (!(Array.isArray(ws) && ws.length === 2 && ws.every((v) => isPosInt(v) && v >= 2)))
    fail('WINDOW_SIZE', '[height, width] of the horizontal window, integers >= 2, e.g. [6, 24]');
  const [wh, ww] = ws as [number, number];
  if ((c.IMAGE_SIZE as number) % lcm(wh, ww) !== 0) fail('IMAGE_SIZE', `a multiple of lcm(WINDOW_SIZE) = ${lcm(wh, ww)}`);
  const scales = c.SCALES;
  if (!isIntList(scales, 2)) fail('SCALES', 'a list of integer upscaling factors >= 2');
  if (!isIntList(c.NOISE_LEVELS, 1)) fail('NOISE_LEVELS', 'a list of positive integer noise sigmas, e.g. [15, 25, 50]');
  const rain = c.RAIN_LEVELS;
  if (!(Array.isArray(rain) && rain.every((r) => r === 'L' || r === 'H'))) fail('RAIN_LEVELS', "a list of 'L' / 'H'");
  for (const k of ['SCALES', 'NOISE_LEVELS', 'RAIN_LEVELS'])
    if (new Set(c[k] as unknown[]).size !== (c[k] as unknown[]).length) fail(k, 'no repeated entries (one branch each)');
  if ((scales as number[]).length + (c.NOISE_LEVELS as number[]).length + (rain as string[]).length === 0)
    fail('SCALES', 'at least one task branch in SCALES, NOISE_LEVELS or RAIN_LEVELS');
  if (!(typeof c.IMAGE_RANGE === 'number' && c.IMAGE_RANGE > 0)) fail('IMAGE_RANGE', 'a positive number (1 or 255)');
  const depths = c.DEPTHS;
  if (!(isIntList(depths, 1) && depths.length > 0)) fail('DEPTHS', 'a non-empty list of positive integers');
  const heads = c.NUM_HEADS;
  if (!(isIntList(heads, 1) && heads.length === (depths as number[]).length))
    fail('NUM_HEADS', `a list of positive integers, one per entry of DEPTHS (${(depths as number[]).length})`);
  const dim = c.EMBED_DIM as number;
  if (dim % 2 !== 0) fail('EMBED_DIM', 'an even number (the channels split into horizontal and vertical halves)');
  for (const nh of heads as number[]) if ((dim / 2) % nh !== 0) fail('NUM_HEADS', `divisors of EMBED_DIM/2 = ${dim / 2}`);
  if (!(typeof c.MLP_RATIO === 'number' && Math.floor(dim * c.MLP_RATIO) >= 1)) fail('MLP_RATIO', 'a positive number');
  if (c.UPSAMPLER !== 'pixelshuffle' && c.UPSAMPLER !== 'pixelshuffledirect') fail('UPSAMPLER', "'pixelshuffle' or 'pixelshuffledirect'");
  if (c.RESI_CONNECTION !== '1conv' && c.RESI_CONNECTION !== '3conv') fail('RESI_CONNECTION', "'1conv' or '3conv'");
  if (c.SHIFT !== undefined && typeof c.SHIFT !== 'boolean') fail('SHIFT', 'true or false');
  if (c.RESI_CONNECTION === '3conv' && dim < 4) fail('EMBED_DIM', "at least 4 with RESI_CONNECTION '3conv'");
  if (c.UPSAMPLER === 'pixelshuffle')
    for (const s of scales as number[]) if (!((s & (s - 1)) === 0 || s === 3)) fail('SCALES', "2^n or 3 with UPSAMPLER 'pixelshuffle'");
}

// Presets: the configs/*.py model sizes; counts measured on the official Network (tiny ones included).
const T = { NUM_FEAT: 8, DEPTHS: [6, 6, 6, 6], EMBED_DIM: 60, NUM_HEADS: [6, 6, 6, 6], UPSAMPLER: 'pixelshuffledirect' };
const S = { NUM_FEAT: 16, DEPTHS: [6, 6, 6, 6, 6], EMBED_DIM: 120, NUM_HEADS: [6, 6, 6, 6, 6] };
const B = {};
const L = { NUM_FEAT: 64, DEPTHS: Array(12).fill(6), EMBED_DIM: 240, NUM_HEADS: Array(12).fill(8) };
const SR_ONLY = { NOISE_LEVELS: [], RAIN_LEVELS: [] };
const NO_SR = { SCALES: [], NOISE_LEVELS: [], RAIN_LEVELS: [] };

const PRESETS: { name: string; description: string; config: Config; params?: number }[] = [
  ...[
    [2, 916_924],
    [3, 919_099],
    [4, 922_144],
  ].map(([s, params]) => ({
    name: `edt-t-sr-x${s}`,
    description: `EDT-T SR x${s} (configs/SRx${s}_EDTT_*; one-step upsampler)`,
    config: { ...T, ...SR_ONLY, SCALES: [s] },
    params,
  })),
  { name: 'edt-s-sr-x2', description: 'EDT-S SR x2 (configs/SRx2_EDTS_*)', config: { ...S, ...SR_ONLY, SCALES: [2] }, params: 4_230_323 },
  ...[
    [2, 11_479_355],
    [3, 11_663_995],
    [4, 11_627_067],
  ].map(([s, params]) => ({
    name: `edt-b-sr-x${s}`,
    description: `EDT-B SR x${s} (configs/SRx${s}_EDTB_*)`,
    config: { ...B, ...SR_ONLY, SCALES: [s] },
    params,
  })),
  ...[15, 25, 50].map((n) => ({
    name: `edt-b-dn-g${n}`,
    description: `EDT-B colour Gaussian denoising sigma ${n} (configs/DNg${n}_EDTB_*)`,
    config: { ...B, ...NO_SR, NOISE_LEVELS: [n] },
    params: 11_503_163,
  })),
  ...(['L', 'H'] as const).map((r) => ({
    name: `edt-b-${RAIN_TASK[r]}`,
    description: `EDT-B deraining Rain100${r} (configs/DR${r.toLowerCase()}s_EDTB_*)`,
    config: { ...B, ...NO_SR, RAIN_LEVELS: [r] },
    params: 11_503_163,
  })),
  { name: 'edt-l-sr-x2', description: 'EDT-L SR x2 (configs/SRx2_EDTL_*)', config: { ...L, ...SR_ONLY, SCALES: [2] }, params: 39_927_395 },
  {
    name: 'edt-t-sr-x2x3x4',
    description: 'EDT-T multi-task (related tasks) pre-training SR x2/x3/x4 (configs/SRx2x3x4_EDTT_ImageNet200K)',
    config: { ...T, ...SR_ONLY, SCALES: [2, 3, 4], UPSAMPLER: 'pixelshuffle' },
    params: 1_137_537,
  },
  {
    name: 'edt-t-multi',
    description: 'EDT-T unrelated-task pre-training: SR x2/x3/x4 + DN g15/g25/g50 + DR L/H sharing one body (pixelshuffle)',
    config: { ...T, SCALES: [2, 3, 4], NOISE_LEVELS: [15, 25, 50], RAIN_LEVELS: ['L', 'H'], UPSAMPLER: 'pixelshuffle' },
    params: 1_612_132,
  },
  {
    name: 'edt-tiny',
    description: 'tiny SR x2 for tests: NUM_FEAT 4, EMBED_DIM 12, 2 RSTBs of (plain, shifted) blocks, windows 6x24',
    config: { NUM_FEAT: 4, EMBED_DIM: 12, DEPTHS: [2, 2], NUM_HEADS: [2, 2], IMAGE_SIZE: 24, ...SR_ONLY, SCALES: [2] },
    params: 28_511,
  },
  {
    name: 'edt-tiny-multi',
    description: 'tiny multi-task for tests: SR x3 + DN g25 + DR H sharing one body (edt-tiny sizes)',
    config: { NUM_FEAT: 4, EMBED_DIM: 12, DEPTHS: [2, 2], NUM_HEADS: [2, 2], IMAGE_SIZE: 24, SCALES: [3], NOISE_LEVELS: [25], RAIN_LEVELS: ['H'] },
    params: 71_885,
  },
];

/**
 * The paper's ablations (Li et al. 2021, Tables 2-3): window shapes of the shifted crossed local attention
 * (IMAGE_SIZE, which only shapes the mask buffers, rounded up to the new lcm), shift on/off, model sizes T/S/B
 * (the configs' NUM_FEAT / DEPTHS / EMBED_DIM / NUM_HEADS / UPSAMPLER). Windows change no parameter (EDT has
 * no relative position bias); sizes give the official counts of edt-{t,s,b}-sr-x2 on an SR x2 branch.
 */
const windowVariant = (wh: number, ww: number): VariantDef => ({
  description: `crossed windows ${wh}x${ww} (horizontal) and ${ww}x${wh} (vertical)`,
  config: (b) => {
    const m = lcm(wh, ww);
    return { WINDOW_SIZE: [wh, ww], IMAGE_SIZE: Math.ceil((b.IMAGE_SIZE as number) / m) * m };
  },
});
const EDT_VARIANTS: Record<string, VariantDef> = {
  'window-6x24': windowVariant(6, 24),
  'window-12x12': windowVariant(12, 12),
  'window-8x16': windowVariant(8, 16),
  'window-4x16': windowVariant(4, 16),
  shifted: { description: 'shifted crossed windows in odd blocks (official)', config: { SHIFT: true } },
  unshifted: { description: 'no shift: every block uses the plain crossed windows', config: { SHIFT: false } },
  'size-t': { description: 'EDT-T sizes (NUM_FEAT 8, 4x6 blocks, EMBED_DIM 60, one-step upsampler)', config: { ...T } },
  'size-s': { description: 'EDT-S sizes (NUM_FEAT 16, 5x6 blocks, EMBED_DIM 120)', config: { ...S, UPSAMPLER: 'pixelshuffle' } },
  'size-b': {
    description: 'EDT-B sizes (NUM_FEAT 32, 6x6 blocks, EMBED_DIM 180)',
    config: { NUM_FEAT: 32, DEPTHS: [6, 6, 6, 6, 6, 6], EMBED_DIM: 180, NUM_HEADS: [6, 6, 6, 6, 6, 6], UPSAMPLER: 'pixelshuffle' },
  },
};

const EDT_RAIN: Record<string, string> = { 'dr-light': 'L', 'dr-heavy': 'H' };

/** EDT's branch config for training tasks: one branch per task (sr-x<s>, dn-<sigma>, dr-light/heavy). */
function edtBranches(_config: Config, tasks: TaskSpec[]): Config {
  const scales: number[] = [];
  const noise: number[] = [];
  const rain: string[] = [];
  for (const t of tasks) {
    const dn = /^dn-(\d+)$/.exec(t.name);
    if (t.kind === 'sr' && t.name === `sr-x${t.scale}`) scales.push(t.scale);
    else if (dn) noise.push(Number(dn[1]));
    else if (EDT_RAIN[t.name]) rain.push(EDT_RAIN[t.name]);
    else throw new Error(`edt has branches for sr-x<s>, dn-<integer sigma>, dr-light and dr-heavy only, not '${t.name}'`);
  }
  return { SCALES: scales, NOISE_LEVELS: noise, RAIN_LEVELS: rain };
}

registerFamily({
  name: 'edt',
  defaults: EDT_DEFAULTS as unknown as Config,
  validate: validateEDTConfig,
  build: (config) => new EDT(config as unknown as EDTConfig),
  presets: PRESETS.map((p) => ({ name: p.name, description: p.description, config: p.config, officialParams: p.params })),
  // EDT's task parts are its per-branch heads and tails: head_<suffix>, tail_<suffix> (sr_x2, dn_g25, dr_L).
  tasks: {
    headPrefixes: (c) => {
      const suffixes = [
        ...((c.SCALES as number[]) ?? []).map((s) => `sr_x${s}`),
        ...((c.NOISE_LEVELS as number[]) ?? []).map((n) => `dn_g${n}`),
        ...((c.RAIN_LEVELS as string[]) ?? []).map((r) => `dr_${r}`),
      ];
      return suffixes.flatMap((s) => [`head_${s}`, `tail_${s}`]);
    },
    configFor: (c, task) => edtBranches(c, [task]),
    nativeConfigFor: edtBranches,
  },
  // Windows 4x8 instead of edt-tiny's 6x24: with 6x24 the SR x2/x3/x4 mix needs 288 px patches (lcm of 48, 72
  // and 96), larger than the built-in 256 px images; 4x8 keeps the paper's wide windows at a size that fits.
  training: {
    // EDT configs: 500k iterations, 48 px SR inputs, 192 px DN/DR, Adam (0.9, 0.99) lr 2e-4 halved at 250k/400k/450k/475k.
    paper: { steps: 500_000, batch: 32, patch: { lq: 48, same: 192 }, lr: { peak: 2e-4, schedule: 'multistep', minFactor: 0.01 }, optimizer: { kind: 'adam', beta1: 0.9, beta2: 0.99, weightDecay: 0 } },
  },
  study: { tiny: 'edt-tiny', tinyConfig: { WINDOW_SIZE: [4, 8] }, paper: 'edt-b-sr-x2', paperConfig: {}, sr: (s) => `sr-x${s}` },
  variants: EDT_VARIANTS,
});
