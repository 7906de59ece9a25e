/**
 * SwinIR (Liang et al. 2021, JingyunLiang/SwinIR models/network_swinir.py), NHWC.
 *
 * Module names, parameter shapes and the order of the state_dict follow the official code, so official
 * checkpoints load by name and every official module path is a hook point. Token tensors keep the official
 * [B, H*W, C] layout (row-major pixels, channels last: flattening one image gives the same vector as flattening
 * its NHWC map).
 *
 * Facts of the official code this port reproduces (read from network_swinir.py and main_test_swinir.py):
 * - The forward reflect-pads the input bottom/right to a multiple of `window_size` (check_image_size), runs,
 *   and crops the output to H*upscale x W*upscale. The test script pads beforehand with a flipped copy
 *   ('symmetric'), which `restore` reproduces only for inputs that do not fit.
 * - Window size and shift of a block are fixed at construction from `img_size // patch_size` (not from the
 *   runtime size): when min(img_size // patch_size) <= window_size the block uses window = that minimum and no
 *   shift. Odd blocks otherwise shift by window_size // 2. The shift mask is recomputed for the runtime size.
 *   (The official constructor also precomputes a mask for img_size, and so fails when img_size > window_size
 *   is not a multiple of it, e.g. its own defaults 64/7; irlens needs no such mask and accepts those configs.)
 * - Dropout, attention dropout and drop-path are identity modules here (the official eval-mode forward); they
 *   stay in the tree so that hook names match the official named_modules().
 * - Added hook points (no parameters, not in the official tree): every attention has `.heads` (per-head output
 *   before merging, [B*nW, heads, N, head_dim]) and `.attn_map` (softmax probabilities), see
 *   blocks/window-attention.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, ModuleList, Sequential } from './module';
import { BasicLayer, PatchEmbed, PatchUnEmbed, residualConv, Size } from './blocks/swin';
import { Conv2d, DIV2K_RGB_MEAN, Dropout, GELU, HookPoint, Lambda, LayerNorm, LeakyReLU, Linear, nearestUpsample, roll2, swinLinear, TRUNC_NORMAL_02 } from './layers';
import { padBottomRight, PaddingRule, RestorationModel, TaskSpec } from './model';
import { type Config, type FamilyPreset, registerFamily, withoutDefaultSwitches } from './family';
import { shiftedWindowMask, windowPartition, windowReverse } from './blocks/windows';
import { upsample, upsampleOneStep } from './blocks/upsample';
import { windowAttention } from './blocks/window-attention';

export type SwinIRUpsampler = '' | 'pixelshuffle' | 'pixelshuffledirect' | 'nearest+conv';

/** The official SwinIR constructor kwargs (norm_layer: LayerNorm only; use_checkpoint is not a model property). */
export interface SwinIRConfig {
  img_size: number | [number, number];
  patch_size: number;
  in_chans: number;
  embed_dim: number;
  depths: number[];
  num_heads: number[];
  window_size: number;
  mlp_ratio: number;
  qkv_bias: boolean;
  qk_scale: number | null;
  drop_rate: number;
  attn_drop_rate: number;
  drop_path_rate: number;
  norm_layer: 'LayerNorm';
  ape: boolean;
  patch_norm: boolean;
  upscale: number;
  img_range: number;
  upsampler: SwinIRUpsampler;
  resi_connection: '1conv' | '3conv';
  /**
   * Not an official key (every official RSTB adds its input back): false removes the residual connection of
   * each RSTB (the paper's "no residual" RSTB ablation, Table 2); the conv stays.
   */
  rstb_residual: boolean;
}

/** Official defaults of SwinIR.__init__. */
export const SWINIR_DEFAULTS: SwinIRConfig = {
  img_size: 64,
  patch_size: 1,
  in_chans: 3,
  embed_dim: 96,
  depths: [6, 6, 6, 6],
  num_heads: [6, 6, 6, 6],
  window_size: 7,
  mlp_ratio: 4,
  qkv_bias: true,
  qk_scale: null,
  drop_rate: 0,
  attn_drop_rate: 0,
  drop_path_rate: 0.1,
  norm_layer: 'LayerNorm',
  ape: false,
  patch_norm: true,
  upscale: 2,
  img_range: 1,
  upsampler: '',
  resi_connection: '1conv',
  rstb_residual: true,
};

/** conv_before_upsample width of the official code (num_feat). */
const NUM_FEAT = 64;


class Mlp extends Module {
  readonly fc1: Linear;
  readonly act: Lambda;
  readonly fc2: Linear;
  readonly drop: Lambda;
  constructor(dim: number, hidden: number) {
    super();
    this.fc1 = this.child('fc1', swinLinear(dim, hidden));
    this.act = this.child('act', GELU());
    this.fc2 = this.child('fc2', swinLinear(hidden, dim));
    this.drop = this.child('drop', Dropout());
  }
  forward(x: tf.Tensor): tf.Tensor {
    const h = this.drop.call<tf.Tensor>(this.act.call<tf.Tensor>(this.fc1.call<tf.Tensor>(x)));
    return this.drop.call<tf.Tensor>(this.fc2.call<tf.Tensor>(h));
  }
}

/** The official relative_position_index of a ws x ws window, [N*N] row-major: (dh+ws-1)*(2ws-1) + (dw+ws-1). */
export function relativePositionIndex(ws: number): Int32Array {
  const n = ws * ws;
  const idx = new Int32Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const dh = Math.floor(i / ws) - Math.floor(j / ws);
      const dw = (i % ws) - (j % ws);
      idx[i * n + j] = (dh + ws - 1) * (2 * ws - 1) + (dw + ws - 1);
    }
  return idx;
}

/** relativePositionIndex per window size (the bias lookup reads it on every forward). */
const indexCache = new Map<number, Int32Array>();
function cachedRelativePositionIndex(ws: number): Int32Array {
  let idx = indexCache.get(ws);
  if (!idx) indexCache.set(ws, (idx = relativePositionIndex(ws)));
  return idx;
}

class WindowAttention extends Module {
  readonly relative_position_bias_table: tf.Variable;
  readonly qkv: Linear;
  readonly attn_drop: Lambda;
  readonly proj: Linear;
  readonly proj_drop: Lambda;
  readonly softmax: Lambda;
  readonly attn_map: HookPoint;
  readonly heads: HookPoint;
  readonly scale: number;

  constructor(
    readonly dim: number,
    readonly windowSize: number,
    readonly numHeads: number,
    qkvBias: boolean,
    qkScale: number | null,
  ) {
    super();
    // Python's `qk_scale or head_dim ** -0.5`: None and 0 both fall back to the default.
    this.scale = qkScale || Math.floor(dim / numHeads) ** -0.5;
    const t = (2 * windowSize - 1) ** 2;
    this.relative_position_bias_table = this.param('relative_position_bias_table', [t, numHeads], TRUNC_NORMAL_02);
    this.qkv = this.child('qkv', swinLinear(dim, dim * 3, qkvBias));
    this.attn_drop = this.child('attn_drop', Dropout());
    this.proj = this.child('proj', swinLinear(dim, dim));
    this.proj_drop = this.child('proj_drop', Dropout());
    this.softmax = this.child('softmax', new Lambda('Softmax', (x) => tf.softmax(x, -1)));
    this.attn_map = this.child('attn_map', new HookPoint('attention probabilities [B*nW, heads, N, N]'));
    this.heads = this.child('heads', new HookPoint('per-head output before proj [B*nW, heads, N, head_dim]'));
  }

  /** [heads, N, N] bias from the table, like table[relative_position_index].permute(2, 0, 1). */
  private relativeBias(): tf.Tensor3D {
    const ws = this.windowSize;
    const n = ws * ws;
    // A gather: its gradient (UnsortedSegmentSum, src/engine/wasm/segment-sum.ts) sums [N*N, heads] rows. The
    // one-hot matMul used before kept a 3.7 MB one-hot per block on the tape (133 MB for SwinIR-M at ws 8).
    const bias = tf.gather(this.relative_position_bias_table, tf.tensor1d(cachedRelativePositionIndex(ws), 'int32')); // [N*N, heads]
    return tf.transpose(tf.reshape(bias, [n, n, this.numHeads]), [2, 0, 1]);
  }

  /** x: [B*nW, N, C] windows; mask: [nW, N, N] (0 / -100) for shifted windows. Hook points: blocks/window-attention.ts. */
  forward(x: tf.Tensor3D, mask?: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      // qkv [B*nW, N, 3C] goes to the attention as it is: q, k, v side by side (blocks/window-attention.ts).
      const qkv = this.qkv.call<tf.Tensor3D>(x);
      const merged = windowAttention(this, { qkv }, { heads: this.numHeads, scale: this.scale, bias: this.relativeBias(), mask });
      return this.proj_drop.call<tf.Tensor3D>(this.proj.call<tf.Tensor>(merged));
    });
  }
}

class SwinTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: WindowAttention;
  readonly drop_path: Lambda;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  /** Window and shift after the official construction-time rule (see the file comment). */
  readonly windowSize: number;
  readonly shiftSize: number;

  constructor(dim: number, inputResolution: Size, heads: number, windowSize: number, shiftSize: number, c: SwinIRConfig) {
    super();
    const minRes = Math.min(...inputResolution);
    if (minRes <= windowSize) {
      this.windowSize = minRes;
      this.shiftSize = 0;
    } else {
      this.windowSize = windowSize;
      this.shiftSize = shiftSize;
    }
    this.norm1 = this.child('norm1', new LayerNorm(dim));
    this.attn = this.child('attn', new WindowAttention(dim, this.windowSize, heads, c.qkv_bias, c.qk_scale));
    this.drop_path = this.child('drop_path', Dropout('DropPath'));
    this.norm2 = this.child('norm2', new LayerNorm(dim));
    this.mlp = this.child('mlp', new Mlp(dim, Math.floor(dim * c.mlp_ratio)));
  }

  /** x: tokens [B, H*W, C] of an H x W map. */
  forward(x: tf.Tensor3D, size: Size): tf.Tensor3D {
    return tf.tidy(() => {
      const [h, w] = size;
      const [b, l, c] = x.shape;
      const ws = this.windowSize;
      const s = this.shiftSize;
      if (h % ws !== 0 || w % ws !== 0)
        throw new Error(`swinir: block '${this.path}' cannot split a ${h}x${w} map into ${ws}x${ws} windows`);
      let map: tf.Tensor = tf.reshape(this.norm1.call<tf.Tensor>(x), [b, h, w, c]);
      if (s > 0) map = roll2(map, -s, -s);
      const windows = windowPartition(map as tf.Tensor4D, ws, ws);
      const mask = s > 0 ? shiftedWindowMask(h, w, ws, ws, s, s) : undefined;
      let y: tf.Tensor = windowReverse(this.attn.call<tf.Tensor>(windows, mask), ws, ws, h, w);
      if (s > 0) y = roll2(y, s, s);
      const x1 = tf.add(x, this.drop_path.call<tf.Tensor>(tf.reshape(y, [b, l, c])));
      return tf.add(x1, this.drop_path.call<tf.Tensor>(this.mlp.call<tf.Tensor>(this.norm2.call<tf.Tensor>(x1)))) as tf.Tensor3D;
    });
  }
}


/** SwinIR's residual_group: alternating unshifted and shifted (ws/2) window blocks. */
function swinLayer(dim: number, inputResolution: Size, depth: number, heads: number, c: SwinIRConfig): BasicLayer {
  const ws = c.window_size;
  return new BasicLayer(
    Array.from({ length: depth }, (_, i) => new SwinTransformerBlock(dim, inputResolution, heads, ws, i % 2 === 0 ? 0 : Math.floor(ws / 2), c)),
  );
}

/** Residual Swin Transformer Block. */
class RSTB extends Module {
  readonly residual_group: BasicLayer;
  readonly conv: Module;
  readonly patch_embed: PatchEmbed;
  readonly patch_unembed: PatchUnEmbed;
  readonly residual: boolean;
  constructor(dim: number, inputResolution: Size, depth: number, heads: number, c: SwinIRConfig) {
    super();
    this.residual = c.rstb_residual;
    this.residual_group = this.child('residual_group', swinLayer(dim, inputResolution, depth, heads, c));
    this.conv = this.child('conv', residualConv(dim, c.resi_connection));
    this.patch_embed = this.child('patch_embed', new PatchEmbed(dim, false));
    this.patch_unembed = this.child('patch_unembed', new PatchUnEmbed());
  }
  forward(x: tf.Tensor3D, size: Size): tf.Tensor3D {
    return tf.tidy(() => {
      const body = this.patch_unembed.call<tf.Tensor4D>(this.residual_group.call<tf.Tensor3D>(x, size), size);
      const out = this.patch_embed.call<tf.Tensor3D>(this.conv.call<tf.Tensor4D>(body));
      return this.residual ? tf.add(out, x) : out;
    });
  }
}

function toPair(v: number | [number, number]): Size {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

export class SwinIR extends RestorationModel {
  readonly family = 'swinir';
  readonly config: Readonly<SwinIRConfig>;
  readonly inChannels: number;
  readonly outChannels: number;

  readonly absolute_pos_embed?: tf.Variable;
  readonly conv_first: Conv2d;
  readonly patch_embed: PatchEmbed;
  readonly patch_unembed: PatchUnEmbed;
  readonly pos_drop: Lambda;
  readonly layers: ModuleList<RSTB>;
  readonly norm: LayerNorm;
  readonly conv_after_body: Module;
  readonly conv_before_upsample?: Sequential;
  readonly upsample?: Sequential;
  readonly conv_up1?: Conv2d;
  readonly conv_up2?: Conv2d;
  readonly conv_hr?: Conv2d;
  readonly conv_last?: Conv2d;
  readonly lrelu?: Lambda;
  /** Construction-time token grid (img_size // patch_size); decides the window rule and the ape shape. */
  readonly patchesResolution: Size;

  constructor(config: SwinIRConfig) {
    super();
    validateSwinIRConfig(config);
    const c: SwinIRConfig = { ...config, rstb_residual: config.rstb_residual ?? true, depths: [...config.depths], num_heads: [...config.num_heads] };
    this.config = withoutDefaultSwitches(c, { rstb_residual: true });
    this.inChannels = c.in_chans;
    this.outChannels = c.in_chans;
    const dim = c.embed_dim;
    const [ih, iw] = toPair(c.img_size);
    this.patchesResolution = [Math.floor(ih / c.patch_size), Math.floor(iw / c.patch_size)];
    const [ph, pw] = this.patchesResolution;

    // Registration order = official __init__ order, so that stateEntries() follows the official state_dict.
    if (c.ape) this.absolute_pos_embed = this.param('absolute_pos_embed', [1, ph * pw, dim], TRUNC_NORMAL_02);
    this.conv_first = this.child('conv_first', new Conv2d(c.in_chans, dim, 3));
    this.patch_embed = this.child('patch_embed', new PatchEmbed(dim, c.patch_norm));
    this.patch_unembed = this.child('patch_unembed', new PatchUnEmbed());
    this.pos_drop = this.child('pos_drop', Dropout());
    this.layers = this.child(
      'layers',
      new ModuleList(c.depths.map((depth, i) => new RSTB(dim, this.patchesResolution, depth, c.num_heads[i], c))),
    );
    this.norm = this.child('norm', new LayerNorm(dim));
    this.conv_after_body = this.child('conv_after_body', residualConv(dim, c.resi_connection));

    const out = c.in_chans;
    switch (c.upsampler) {
      case 'pixelshuffle':
        this.conv_before_upsample = this.child('conv_before_upsample', new Sequential([new Conv2d(dim, NUM_FEAT, 3), LeakyReLU()]));
        this.upsample = this.child('upsample', upsample(c.upscale, NUM_FEAT));
        this.conv_last = this.child('conv_last', new Conv2d(NUM_FEAT, out, 3));
        break;
      case 'pixelshuffledirect':
        this.upsample = this.child('upsample', upsampleOneStep(c.upscale, dim, out));
        break;
      case 'nearest+conv':
        this.conv_before_upsample = this.child('conv_before_upsample', new Sequential([new Conv2d(dim, NUM_FEAT, 3), LeakyReLU()]));
        this.conv_up1 = this.child('conv_up1', new Conv2d(NUM_FEAT, NUM_FEAT, 3));
        this.conv_up2 = this.child('conv_up2', new Conv2d(NUM_FEAT, NUM_FEAT, 3));
        this.conv_hr = this.child('conv_hr', new Conv2d(NUM_FEAT, NUM_FEAT, 3));
        this.conv_last = this.child('conv_last', new Conv2d(NUM_FEAT, out, 3));
        this.lrelu = this.child('lrelu', LeakyReLU(0.2));
        break;
      default:
        this.conv_last = this.child('conv_last', new Conv2d(dim, out, 3));
    }
  }

  /** Output/input size ratio: `upscale` for the SR heads, 1 for denoising/JPEG (upsampler ''). */
  get scale(): number {
    return this.config.upsampler === '' ? 1 : this.config.upscale;
  }

  /**
   * Task branches (one network, several names): SR heads -> 'sr-x<s>' (bicubic, synthetic) or 'real-sr-x4'
   * (nearest+conv, real-world degradations); upsampler '' -> JPEG qualities when img_range is 255 (the official
   * JPEG setting: window 7, img_range 255), Gaussian noise levels otherwise.
   */
  tasks(): TaskSpec[] {
    const c = this.config;
    const s = this.scale;
    if (c.upsampler === 'nearest+conv') return [{ name: `real-sr-x${s}`, kind: 'real-sr', scale: s }];
    if (c.upsampler !== '') return [{ name: `sr-x${s}`, kind: 'sr', scale: s, degradation: `sr-x${s}` }];
    if (c.img_range === 255)
      return [40, 10, 20, 30].map((q) => ({ name: `jpeg-q${q}`, kind: 'jpeg' as const, scale: 1, degradation: `jpeg-q${q}` }));
    return [25, 15, 50].map((n) => ({ name: `dn-${n}`, kind: 'dn' as const, scale: 1, degradation: `dn-${n}` }));
  }

  /** main_test_swinir.py pads with a flipped copy to a multiple of the window size. */
  paddingRule(): PaddingRule {
    return { multiple: this.config.window_size, mode: 'symmetric' };
  }

  /** RSTB outputs and every Swin block inside them (token tensors [B, H*W, C]). */
  defaultLayers(): string[] {
    return ['layers.*', 'layers.*.residual_group.blocks.*'];
  }

  override ignoredStateKeys(): RegExp[] {
    return [/(^|\.)relative_position_index$/, /(^|\.)attn_mask$/];
  }

  /** forward_features: conv_first output (NHWC) -> tokens -> RSTBs -> norm -> NHWC. */
  private forwardFeatures(x: tf.Tensor4D): tf.Tensor4D {
    const [, h, w] = x.shape;
    const size: Size = [h, w];
    let t = this.patch_embed.call<tf.Tensor3D>(x);
    if (this.absolute_pos_embed) {
      const [ph, pw] = this.patchesResolution;
      if (h * w !== ph * pw)
        throw new Error(`swinir: ape=true needs a ${ph}x${pw} token map (img_size), got ${h}x${w} after padding`);
      t = tf.add(t, this.absolute_pos_embed);
    }
    t = this.pos_drop.call<tf.Tensor3D>(t);
    for (const layer of this.layers.items) t = layer.call<tf.Tensor3D>(t, size);
    return this.patch_unembed.call<tf.Tensor4D>(this.norm.call<tf.Tensor3D>(t), size);
  }

  forward(x: tf.Tensor4D, task?: string): tf.Tensor4D {
    this.task(task);
    const c = this.config;
    const [, h, w, ch] = x.shape;
    if (ch !== c.in_chans) throw new Error(`swinir: input has ${ch} channels, model expects in_chans=${c.in_chans}`);
    return tf.tidy(() => {
      // check_image_size: reflect padding to a multiple of window_size.
      const ws = c.window_size;
      const padded = padBottomRight(x, (ws - (h % ws)) % ws, (ws - (w % ws)) % ws, 'reflect');
      const mean = c.in_chans === 3 ? tf.tensor1d(DIV2K_RGB_MEAN) : tf.scalar(0);
      const input = tf.mul(tf.sub(padded, mean), c.img_range) as tf.Tensor4D;
      const head = this.conv_first.call<tf.Tensor4D>(input);
      const deep = tf.add(this.conv_after_body.call<tf.Tensor4D>(this.forwardFeatures(head)), head) as tf.Tensor4D;
      let y: tf.Tensor4D;
      switch (c.upsampler) {
        case 'pixelshuffle':
          y = this.conv_last!.call(this.upsample!.call(this.conv_before_upsample!.call(deep)));
          break;
        case 'pixelshuffledirect':
          y = this.upsample!.call(deep);
          break;
        case 'nearest+conv': {
          const lrelu = this.lrelu!;
          let f = this.conv_before_upsample!.call<tf.Tensor4D>(deep);
          f = lrelu.call(this.conv_up1!.call(nearestUpsample(f, 2)));
          f = lrelu.call(this.conv_up2!.call(nearestUpsample(f, 2)));
          y = this.conv_last!.call(lrelu.call(this.conv_hr!.call(f)));
          break;
        }
        default:
          y = tf.add(input, this.conv_last!.call<tf.Tensor4D>(deep));
      }
      const outImg = tf.add(tf.div(y, c.img_range), mean) as tf.Tensor4D;
      // x[:, :, :H*upscale, :W*upscale] (Python slicing clips to the actual size).
      const [, oh, ow] = outImg.shape;
      const size = [Math.min(oh, h * c.upscale), Math.min(ow, w * c.upscale)];
      return size[0] === oh && size[1] === ow ? outImg : tf.slice(outImg, [0, 0, 0, 0], [-1, size[0], size[1], -1]);
    });
  }
}

const UPSAMPLERS: SwinIRUpsampler[] = ['', 'pixelshuffle', 'pixelshuffledirect', 'nearest+conv'];

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isRate = (v: unknown) => typeof v === 'number' && v >= 0 && v < 1;

/** One-line errors for nonsense values; mirrors what the official constructor/forward would reject or crash on. */
export function validateSwinIRConfig(cfg: Config | SwinIRConfig): void {
  const c = cfg as Record<string, unknown>;
  const fail = (key: string, expected: string) => {
    throw new Error(`swinir config: ${key}=${JSON.stringify(c[key])} is invalid (expected ${expected})`);
  };
  const imgSize = c.img_size;
  if (!(isPosInt(imgSize) || (Array.isArray(imgSize) && imgSize.length === 2 && imgSize.every(isPosInt))))
    fail('img_size', 'a positive integer or [height, width]');
  for (const k of ['patch_size', 'in_chans', 'embed_dim', 'window_size', 'upscale']) if (!isPosInt(c[k])) fail(k, 'a positive integer');
  const depths = c.depths as unknown;
  const heads = c.num_heads as unknown;
  if (!Array.isArray(depths) || depths.length === 0 || !depths.every(isPosInt)) fail('depths', 'a non-empty list of positive integers');
  if (!Array.isArray(heads) || !heads.every(isPosInt) || heads.length !== (depths as number[]).length)
    fail('num_heads', `a list of positive integers, one per entry of depths (${(depths as number[]).length})`);
  for (const nh of heads as number[]) if ((c.embed_dim as number) % nh !== 0) fail('num_heads', `divisors of embed_dim=${c.embed_dim}`);
  const [ih, iw] = toPair(imgSize as number | [number, number]);
  if (ih < (c.patch_size as number) || iw < (c.patch_size as number)) fail('patch_size', `at most img_size (${ih}x${iw})`);
  if (!(typeof c.mlp_ratio === 'number' && c.mlp_ratio > 0)) fail('mlp_ratio', 'a positive number');
  if (typeof c.qkv_bias !== 'boolean') fail('qkv_bias', 'true or false');
  if (!(c.qk_scale === null || (typeof c.qk_scale === 'number' && c.qk_scale >= 0))) fail('qk_scale', 'null or a non-negative number');
  for (const k of ['drop_rate', 'attn_drop_rate', 'drop_path_rate']) if (!isRate(c[k])) fail(k, 'a rate in [0, 1)');
  if (c.norm_layer !== 'LayerNorm') fail('norm_layer', "'LayerNorm' (the only norm layer SwinIR uses)");
  if (typeof c.ape !== 'boolean') fail('ape', 'true or false');
  if (typeof c.patch_norm !== 'boolean') fail('patch_norm', 'true or false');
  if (!(typeof c.img_range === 'number' && c.img_range > 0)) fail('img_range', 'a positive number (1 or 255)');
  if (!UPSAMPLERS.includes(c.upsampler as SwinIRUpsampler)) fail('upsampler', UPSAMPLERS.map((u) => `'${u}'`).join(', '));
  if (c.resi_connection !== '1conv' && c.resi_connection !== '3conv') fail('resi_connection', "'1conv' or '3conv'");
  if (c.rstb_residual !== undefined && typeof c.rstb_residual !== 'boolean') fail('rstb_residual', 'true or false');
  if (c.resi_connection === '3conv' && (c.embed_dim as number) < 4) fail('embed_dim', 'at least 4 with 3conv');
  const up = c.upscale as number;
  if (c.upsampler === 'pixelshuffle' && !((up & (up - 1)) === 0 || up === 3)) fail('upscale', "2^n or 3 with upsampler 'pixelshuffle'");
  if (c.upsampler === 'nearest+conv' && up !== 4) fail('upscale', "4 with upsampler 'nearest+conv' (the only scale it supports)");
}

// Presets: the configurations of main_test_swinir.py define_model(); counts measured on the official code.
const PRESETS: FamilyPreset[] = [];
const M = { embed_dim: 180, depths: [6, 6, 6, 6, 6, 6], num_heads: [6, 6, 6, 6, 6, 6], mlp_ratio: 2, window_size: 8 };

const CLASSICAL: Record<number, number> = { 2: 11_752_487, 3: 11_937_127, 4: 11_900_199, 8: 12_047_911 };
for (const [s, params] of Object.entries(CLASSICAL))
  PRESETS.push({
    name: `swinir-sr-x${s}`,
      description: `classical SR x${s}, SwinIR-M (DF2K s64w8; the DIV2K s48w8 weights load too)`,
    config: { ...M, img_size: 64, upscale: Number(s), upsampler: 'pixelshuffle', resi_connection: '1conv' },
    officialParams: params,
  });

const LIGHT: Record<number, number> = { 2: 910_152, 3: 918_267, 4: 929_628 };
for (const [s, params] of Object.entries(LIGHT))
  PRESETS.push({
    name: `swinir-light-sr-x${s}`,
      description: `lightweight SR x${s}, SwinIR-S (DIV2K s64w8)`,
    config: { img_size: 64, window_size: 8, embed_dim: 60, depths: [6, 6, 6, 6], num_heads: [6, 6, 6, 6], mlp_ratio: 2, upscale: Number(s), upsampler: 'pixelshuffledirect' },
    officialParams: params,
  });

PRESETS.push({
  name: 'swinir-real-sr-x4',
  description: 'real-world SR x4, SwinIR-M (BSRGAN degradations, GAN; checkpoint key params_ema)',
  config: { ...M, img_size: 64, upscale: 4, upsampler: 'nearest+conv', resi_connection: '1conv' },
  officialParams: 11_715_559,
});

PRESETS.push({
  name: 'swinir-real-sr-x4-l',
  description: 'real-world SR x4, SwinIR-L (3conv; checkpoint key params_ema)',
  config: {
    img_size: 64,
    window_size: 8,
    embed_dim: 240,
    depths: [6, 6, 6, 6, 6, 6, 6, 6, 6],
    num_heads: [8, 8, 8, 8, 8, 8, 8, 8, 8],
    mlp_ratio: 2,
    upscale: 4,
    upsampler: 'nearest+conv',
    resi_connection: '3conv',
  },
  officialParams: 28_013_059,
});

const RESTORE = [
  { name: 'swinir-dn-gray', desc: 'grayscale Gaussian denoising (sigma 15/25/50 checkpoints)', in_chans: 1, jpeg: false, params: 11_497_681 },
  { name: 'swinir-dn', desc: 'colour Gaussian denoising (sigma 15/25/50 checkpoints)', in_chans: 3, jpeg: false, params: 11_504_163 },
  { name: 'swinir-jpeg-gray', desc: 'grayscale JPEG artifact removal (q10/20/30/40 checkpoints)', in_chans: 1, jpeg: true, params: 11_485_585 },
  { name: 'swinir-jpeg', desc: 'colour JPEG artifact removal (q10/20/30/40 checkpoints)', in_chans: 3, jpeg: true, params: 11_492_067 },
];
for (const r of RESTORE)
  PRESETS.push({
    name: r.name,
      description: `${r.desc}, SwinIR-M`,
    config: {
      ...M,
      in_chans: r.in_chans,
      upscale: 1,
      upsampler: '',
      resi_connection: '1conv',
      ...(r.jpeg ? { img_size: 126, window_size: 7, img_range: 255 } : { img_size: 128, window_size: 8, img_range: 1 }),
    },
    officialParams: r.params,
  });

PRESETS.push({
  name: 'swinir-tiny',
  description: 'tiny classical SR x2 for tests: embed 12, 2 RSTBs of 2 blocks (unshifted + shifted), window 8',
  config: { img_size: 64, window_size: 8, embed_dim: 12, depths: [2, 2], num_heads: [2, 2], mlp_ratio: 2, upscale: 2, upsampler: 'pixelshuffle' },
});

registerFamily({
  name: 'swinir',
  defaults: SWINIR_DEFAULTS as unknown as Config,
  validate: validateSwinIRConfig,
  build: (config) => new SwinIR(config as unknown as SwinIRConfig),
  presets: PRESETS,
  // conv_first and the reconstruction (conv_before_upsample, upsample, conv_last; conv_up1/2, conv_hr for
  // nearest+conv) are the per-task parts; each task's network gets its own upscale (SR) or upsampler '' (same size).
  tasks: {
    headPrefixes: () => ['conv_first', 'conv_before_upsample', 'upsample', 'conv_up1', 'conv_up2', 'conv_hr', 'conv_last'],
    configFor(c, task) {
      if (task.scale === 1) return { upsampler: '', upscale: 1 };
      const up = c.upsampler === '' ? 'pixelshuffle' : (c.upsampler as string);
      return { upsampler: up, upscale: task.scale };
    },
  },
  training: {
    // Classical SR: 500k iterations, batch 32 of 48 px (x2: 96 GT), Adam lr 2e-4 halved at 250k/400k/450k/475k.
    paper: { steps: 500_000, batch: 32, patch: { lq: 48, same: 128 }, lr: { peak: 2e-4, schedule: 'multistep', minFactor: 0.01 }, optimizer: { kind: 'adam', beta1: 0.9, beta2: 0.99, weightDecay: 0 } },
  },
  study: { tiny: 'swinir-tiny', tinyConfig: {}, paper: 'swinir-sr-x2', paperConfig: {}, sr: (s) => `sr-x${s}` },
  // The paper's ablations (Liang et al. 2021, Fig. 3 and Table 2): RSTB design, number of RSTBs and of layers
  // per RSTB (relative to the studied preset's width and heads), window size. resi_connection, depths,
  // num_heads and window_size are official switches; rstb_residual is not.
  variants: {
    'resi-none': { description: 'RSTB without its residual connection (1conv kept)', config: { resi_connection: '1conv', rstb_residual: false } },
    'resi-1conv': { description: 'RSTB residual with one 3x3 conv (official)', config: { resi_connection: '1conv', rstb_residual: true } },
    'resi-3conv': { description: 'RSTB residual with 3x3 -> 1x1 -> 3x3 convs at dim/4 (official 3conv)', config: { resi_connection: '3conv', rstb_residual: true } },
    ...Object.fromEntries(
      [2, 4, 6, 8].map((n) => [
        `rstb-${n}`,
        {
          description: `${n} RSTBs, each with the preset's first RSTB depth and heads`,
          config: (b: Readonly<Config>) => ({ depths: Array(n).fill((b.depths as number[])[0]), num_heads: Array(n).fill((b.num_heads as number[])[0]) }),
        },
      ]),
    ),
    ...Object.fromEntries(
      [2, 4, 6, 8].map((n) => [
        `layers-${n}`,
        { description: `${n} Swin layers in every RSTB`, config: (b: Readonly<Config>) => ({ depths: (b.depths as number[]).map(() => n) }) },
      ]),
    ),
    'window-7': { description: 'window size 7 (the JPEG models)', config: { window_size: 7 } },
    'window-8': { description: 'window size 8 (the SR and denoising models)', config: { window_size: 8 } },
  },
});
