/**
 * Restormer (Zamir et al., CVPR 2022), after swz30/Restormer basicsr/models/archs/restormer_arch.py.
 *
 * A 4-level U-shaped transformer whose attention runs across channels (MDTA: per-head channel x channel
 * attention with L2-normalised queries/keys and a learned temperature) and whose feed-forward is a gated
 * depthwise-conv network (GDFN). Level 1 of the decoder and the refinement stage run at 2*dim channels with
 * heads[0]; the output conv adds the input image (or, for dual-pixel defocus, adds skip_conv(patch embedding)
 * before the output conv and no image).
 *
 * Module names follow the official attributes, so state_dict keys are the official ones
 * (`encoder_level1.0.attn.qkv.weight`, `encoder_level1.0.norm1.body.weight`) and every block output is a hook
 * point (`encoder_level2.3`, `latent`, `refinement.0`, `encoder_level1.0.attn`).
 */
import * as tf from '@tensorflow/tfjs';
import { Module, Sequential } from './module';
import { Conv2d, gatedGelu, gelu, HookPoint, LayerNorm, layerNorm, PixelShuffle, PixelUnshuffle } from './layers';
import { PaddingRule, RestorationModel, TaskSpec } from './model';
import { type Config, registerFamily, sameSizeOnly, withoutDefaultSwitches } from './family';
import { channelAttention, channelAttentionApply, channelAttentionAvailable, channelAttentionProbs } from '../engine/wasm/channel-attention';
import { unwatched } from './hook-context';

export type RestormerLayerNormType = 'WithBias' | 'BiasFree';
/** Feed-forward kinds of the paper's ablation (Table 5): gating and depthwise conv on/off. */
export type RestormerFfnType = 'GDFN' | 'FN' | 'DFN' | 'GFN';

/** The official constructor arguments (Restormer.__init__), with the official defaults below. */
export interface RestormerConfig {
  inp_channels: number;
  out_channels: number;
  dim: number;
  num_blocks: [number, number, number, number];
  num_refinement_blocks: number;
  heads: [number, number, number, number];
  ffn_expansion_factor: number;
  bias: boolean;
  LayerNorm_type: RestormerLayerNormType;
  dual_pixel_task: boolean;
  /**
   * Not an official key (the official code always has qkv_dwconv; the paper's MTA ablation removes it): false
   * gives multi-head transposed attention with plain 1x1 q, k, v projections.
   */
  attn_dwconv: boolean;
  /**
   * Not an official key (the official FeedForward is always GDFN): the paper's feed-forward ablation.
   * FN = 1x1 in (dim -> hidden), GELU, 1x1 out; DFN = FN with a depthwise 3x3 after project_in; GFN = GDFN
   * without the depthwise conv (gelu(first half) * second half); hidden = int(dim * ffn_expansion_factor) in all.
   */
  ffn_type: RestormerFfnType;
}

export const RESTORMER_DEFAULTS: RestormerConfig = {
  inp_channels: 3,
  out_channels: 3,
  dim: 48,
  num_blocks: [4, 6, 6, 8],
  num_refinement_blocks: 4,
  heads: [1, 2, 4, 8],
  ffn_expansion_factor: 2.66,
  bias: false,
  LayerNorm_type: 'WithBias',
  dual_pixel_task: false,
  attn_dwconv: true,
  ffn_type: 'GDFN',
};

/** The non-official ablation switches at their defaults (absent from model.config unless turned). */
const ABLATION_SWITCHES: Partial<RestormerConfig> = { attn_dwconv: true, ffn_type: 'GDFN' };

const NORM_EPS = 1e-5;

/**
 * BiasFree_LayerNorm: x / sqrt(var(x) + eps) * w over channels. The variance is mean-centred but the numerator
 * is not, so this is neither LayerNorm without bias nor RMSNorm.
 */
export class BiasFreeLayerNorm extends Module {
  readonly weight: tf.Variable;
  constructor(readonly dim: number) {
    super();
    this.weight = this.param('weight', [dim], { kind: 'constant', value: 1 });
  }
  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight, undefined, { eps: NORM_EPS, centred: false });
  }
}

/** The official LayerNorm wrapper: the norm proper lives under `body` (keys `norm1.body.weight`). */
export class RestormerLayerNorm extends Module {
  readonly body: Module;
  constructor(dim: number, type: RestormerLayerNormType) {
    super();
    // WithBias_LayerNorm is exactly nn.LayerNorm over the channel axis (biased variance, eps 1e-5).
    this.body = this.child('body', type === 'BiasFree' ? new BiasFreeLayerNorm(dim) : new LayerNorm(dim, NORM_EPS, true));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    // NHWC already has channels last: the official to_3d/to_4d round trip is the identity here.
    return this.body.call<tf.Tensor4D>(x);
  }
}

/**
 * Gated-Dconv Feed-Forward Network: project_in -> depthwise 3x3 -> gelu(first half) * second half -> project_out.
 * The ablation kinds (ffn_type) keep the module names: FN and DFN project to `hidden` channels and apply GELU;
 * GFN and FN have no dwconv.
 */
export class FeedForward extends Module {
  readonly hidden: number;
  readonly project_in: Conv2d;
  readonly dwconv?: Conv2d;
  readonly project_out: Conv2d;
  readonly gated: boolean;
  constructor(dim: number, expansion: number, bias: boolean, type: RestormerFfnType = 'GDFN') {
    super();
    this.hidden = Math.trunc(dim * expansion); // Python int(dim*ffn_expansion_factor)
    this.gated = type === 'GDFN' || type === 'GFN';
    const inner = this.gated ? 2 * this.hidden : this.hidden;
    this.project_in = this.child('project_in', new Conv2d(dim, inner, 1, { bias }));
    if (type === 'GDFN' || type === 'DFN') this.dwconv = this.child('dwconv', new Conv2d(inner, inner, 3, { groups: inner, bias }));
    this.project_out = this.child('project_out', new Conv2d(this.hidden, dim, 1, { bias }));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.project_in.call<tf.Tensor4D>(x);
      if (this.dwconv) h = this.dwconv.call<tf.Tensor4D>(h);
      if (!this.gated) return this.project_out.call<tf.Tensor4D>(gelu(h) as tf.Tensor4D);
      return this.project_out.call<tf.Tensor4D>(gatedGelu(h) as tf.Tensor4D);
    });
  }
}

/**
 * Multi-Dconv Head Transposed Attention. For each head the attention map is (C/heads) x (C/heads):
 * softmax(normalize(q) normalize(k)^T * temperature) over tokens, applied to v.
 *
 * Heads are laid out as [b*heads, hw, ch] (tokens x channels), so that with one head (level 1, the largest maps)
 * splitting and merging heads are plain reshapes. Every product is a same-rank batched matmul without transpose
 * flags (broadcasting BatchMatMul has broken gradients in TF.js; transposed operands leave XNNPACK on wasm).
 *
 * Hook points: `attn_map` the softmax probabilities [B, heads, C/heads, C/heads]; `heads` the per-head output
 * attn @ v in the official layout [B, heads, C/heads, H*W] (channel head*C/heads + i of project_out's input),
 * before the heads are merged and projected.
 */
export class Attention extends Module {
  readonly temperature: tf.Variable;
  readonly qkv: Conv2d;
  readonly qkv_dwconv?: Conv2d;
  readonly project_out: Conv2d;
  readonly attn_map: HookPoint;
  readonly heads: HookPoint;
  constructor(
    readonly dim: number,
    readonly numHeads: number,
    bias: boolean,
    dwconv = true,
  ) {
    super();
    this.temperature = this.param('temperature', [numHeads, 1, 1], { kind: 'constant', value: 1 });
    this.qkv = this.child('qkv', new Conv2d(dim, 3 * dim, 1, { bias }));
    // attn_dwconv false (MTA, the paper's ablation): q, k, v straight from the 1x1 projection.
    if (dwconv) this.qkv_dwconv = this.child('qkv_dwconv', new Conv2d(3 * dim, 3 * dim, 3, { groups: 3 * dim, bias }));
    this.project_out = this.child('project_out', new Conv2d(dim, dim, 1, { bias }));
    this.attn_map = this.child('attn_map', new HookPoint('channel attention probabilities [B, heads, C/heads, C/heads]'));
    this.heads = this.child('heads', new HookPoint('per-head output attn @ v before project_out [B, heads, C/heads, H*W]'));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const heads = this.numHeads;
      const ch = c / heads;
      const hw = h * w;
      const bh = b * heads;
      // Channel index = head * ch + i (einops 'b (head c) h w'): split the last axis as [heads, ch].
      const splitHeads = (t: tf.Tensor): tf.Tensor3D =>
        heads === 1
          ? tf.reshape(t, [b, hw, ch])
          : tf.reshape(tf.transpose(tf.reshape(t, [b, hw, heads, ch]), [0, 2, 1, 3]), [bh, hw, ch]);
      const projected = this.qkv.call<tf.Tensor4D>(x);
      const qkv = this.qkv_dwconv ? this.qkv_dwconv.call<tf.Tensor4D>(projected) : projected;
      if (channelAttentionAvailable() && qkv.dtype === 'float32') {
        // Native: one kernel from the packed qkv to the merged heads (engine/wasm/channel-attention.ts), or, when a
        // hook reads or changes attn_map, the probabilities and the output kernels, which give the same bits.
        const out = unwatched(this.attn_map.root, [this.attn_map.path])
          ? channelAttention(qkv, this.temperature, heads)
          : channelAttentionApply(qkv, this.attn_map.tap(channelAttentionProbs(qkv, this.temperature, heads)), heads);
        // [B, H, W, C] <-> the official per-head layout [B, heads, C/heads, H*W] (hooked runs only).
        const merged = this.heads.tap(
          out,
          (t) => tf.transpose(tf.reshape(t, [b, hw, heads, ch]), [0, 2, 3, 1]),
          (t) => tf.reshape(tf.transpose(t, [0, 3, 1, 2]), [b, h, w, c]) as tf.Tensor4D,
        );
        return this.project_out.call<tf.Tensor4D>(merged);
      }
      const [q, k, v] = tf.split(qkv, 3, -1).map(splitHeads);
      // normalize(q) normalize(k)^T computed as (q^T k) scaled by 1/||q_i|| (rows) and 1/||k_j|| (columns): the
      // same numbers up to float rounding, without dividing the full-size q and k. Token sums as a matmul with
      // ones, because wasm reduces a non-last axis slowly.
      const ones = tf.ones([bh, 1, hw]) as tf.Tensor3D;
      const invNorm = (t: tf.Tensor3D) => tf.div(1, tf.maximum(tf.sqrt(tf.matMul(ones, tf.square(t) as tf.Tensor3D)), 1e-12)); // [bh, 1, ch]
      const cosine = tf.mul(tf.mul(tf.matMul(tf.transpose(q, [0, 2, 1]), k), tf.reshape(invNorm(q), [bh, ch, 1])), invNorm(k));
      const attn = this.attn_map.tap(tf.softmax(tf.mul(tf.reshape(cosine, [b, heads, ch, ch]), this.temperature)));
      // Official out[i, t] = sum_j attn[i, j] v[j, t] (channels x tokens); tokens x channels: v @ attn^T.
      // The heads hook point shows it in the official layout [B, heads, C/heads, H*W] (hooked runs only).
      const out = this.heads.tap(
        tf.matMul(v, tf.transpose(tf.reshape(attn, [bh, ch, ch]), [0, 2, 1])) as tf.Tensor3D,
        (t) => tf.transpose(tf.reshape(t, [b, heads, hw, ch]), [0, 1, 3, 2]),
        (t) => tf.reshape(tf.transpose(t, [0, 1, 3, 2]), [bh, hw, ch]) as tf.Tensor3D,
      );
      const merged =
        heads === 1 ? tf.reshape(out, [b, h, w, c]) : tf.reshape(tf.transpose(tf.reshape(out, [b, heads, hw, ch]), [0, 2, 1, 3]), [b, h, w, c]);
      return this.project_out.call<tf.Tensor4D>(merged as tf.Tensor4D);
    });
  }
}

export class TransformerBlock extends Module {
  readonly norm1: RestormerLayerNorm;
  readonly attn: Attention;
  readonly norm2: RestormerLayerNorm;
  readonly ffn: FeedForward;
  constructor(dim: number, heads: number, expansion: number, bias: boolean, norm: RestormerLayerNormType, attnDwconv = true, ffnType: RestormerFfnType = 'GDFN') {
    super();
    this.norm1 = this.child('norm1', new RestormerLayerNorm(dim, norm));
    this.attn = this.child('attn', new Attention(dim, heads, bias, attnDwconv));
    this.norm2 = this.child('norm2', new RestormerLayerNorm(dim, norm));
    this.ffn = this.child('ffn', new FeedForward(dim, expansion, bias, ffnType));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const y = tf.add(x, this.attn.call<tf.Tensor4D>(this.norm1.call<tf.Tensor4D>(x)));
      return tf.add(y, this.ffn.call<tf.Tensor4D>(this.norm2.call<tf.Tensor4D>(y)));
    });
  }
}

/** OverlapPatchEmbed: a 3x3 conv without bias (the official code never passes `bias` on to it). */
export class OverlapPatchEmbed extends Module {
  readonly proj: Conv2d;
  constructor(inChannels: number, dim: number) {
    super();
    this.proj = this.child('proj', new Conv2d(inChannels, dim, 3, { bias: false }));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return this.proj.call<tf.Tensor4D>(x);
  }
}

/** Downsample: body = [conv3x3 n -> n/2 (no bias), PixelUnshuffle(2)]; Upsample: [conv3x3 n -> 2n, PixelShuffle(2)]. */
class Resample extends Module {
  readonly body: Sequential;
  constructor(n: number, down: boolean) {
    super();
    const conv = new Conv2d(n, down ? Math.floor(n / 2) : 2 * n, 3, { bias: false });
    this.body = this.child('body', new Sequential([conv, down ? PixelUnshuffle(2) : PixelShuffle(2)]));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return this.body.call<tf.Tensor4D>(x);
  }
}

const TASKS: Record<string, TaskSpec> = {
  deblur: { name: 'deblur', kind: 'deblur', scale: 1 },
  // Rain13K / Rain100H/L are not produced by any synthetic degradation of ours.
  derain: { name: 'derain', kind: 'dr', scale: 1 },
  defocus: { name: 'defocus', kind: 'defocus', scale: 1 },
  'dn-15': { name: 'dn-15', kind: 'dn', scale: 1, degradation: 'dn-15' },
  'dn-25': { name: 'dn-25', kind: 'dn', scale: 1, degradation: 'dn-25' },
  'dn-50': { name: 'dn-50', kind: 'dn', scale: 1, degradation: 'dn-50' },
  // Real noise (SIDD/DND, real_denoising.pth; same config as the colour Gaussian models).
  denoise: { name: 'denoise', kind: 'dn', scale: 1 },
};

/** Task lists of the published presets, default first. */
const PRESET_TASKS: Record<string, string[]> = {
  restormer: ['deblur', 'derain', 'defocus'],
  'restormer-deblur': ['deblur', 'derain', 'defocus'],
  'restormer-derain': ['derain', 'deblur', 'defocus'],
  'restormer-denoise': ['dn-25', 'dn-15', 'dn-50', 'denoise'],
  'restormer-denoise-gray': ['dn-25', 'dn-15', 'dn-50'],
  'restormer-defocus-dp': ['defocus'],
  // The tiny preset is for tests and small training studies: every single-image task.
  'restormer-tiny': ['deblur', 'derain', 'defocus', 'dn-25', 'dn-15', 'dn-50', 'denoise'],
};

/** Tasks of a configuration built without a preset, following the official pairing of norm type and task. */
function configTasks(c: RestormerConfig): string[] {
  if (c.LayerNorm_type === 'BiasFree') return c.inp_channels === 3 ? PRESET_TASKS['restormer-denoise'] : PRESET_TASKS['restormer-denoise-gray'];
  return PRESET_TASKS.restormer;
}

const stage = (n: number, dim: number, heads: number, c: RestormerConfig) =>
  new Sequential(Array.from({ length: n }, () => new TransformerBlock(dim, heads, c.ffn_expansion_factor, c.bias, c.LayerNorm_type, c.attn_dwconv, c.ffn_type)));

export class Restormer extends RestorationModel {
  readonly family = 'restormer';
  readonly config: Readonly<RestormerConfig>;
  readonly inChannels: number;
  readonly outChannels: number;

  readonly patch_embed: OverlapPatchEmbed;
  readonly encoder_level1: Sequential;
  readonly down1_2: Resample;
  readonly encoder_level2: Sequential;
  readonly down2_3: Resample;
  readonly encoder_level3: Sequential;
  readonly down3_4: Resample;
  readonly latent: Sequential;
  readonly up4_3: Resample;
  readonly reduce_chan_level3: Conv2d;
  readonly decoder_level3: Sequential;
  readonly up3_2: Resample;
  readonly reduce_chan_level2: Conv2d;
  readonly decoder_level2: Sequential;
  readonly up2_1: Resample;
  readonly decoder_level1: Sequential;
  readonly refinement: Sequential;
  readonly skip_conv?: Conv2d;
  readonly output: Conv2d;

  constructor(config: Readonly<Config>) {
    super();
    const c = { ...ABLATION_SWITCHES, ...(config as unknown as RestormerConfig) };
    this.config = withoutDefaultSwitches(c, ABLATION_SWITCHES);
    this.inChannels = c.inp_channels;
    this.outChannels = c.out_channels;
    const d = c.dim;
    const [n1, n2, n3, n4] = c.num_blocks;
    const [h1, h2, h3, h4] = c.heads;
    // Registration order = the official attribute order = state_dict order.
    this.patch_embed = this.child('patch_embed', new OverlapPatchEmbed(c.inp_channels, d));
    this.encoder_level1 = this.child('encoder_level1', stage(n1, d, h1, c));
    this.down1_2 = this.child('down1_2', new Resample(d, true));
    this.encoder_level2 = this.child('encoder_level2', stage(n2, 2 * d, h2, c));
    this.down2_3 = this.child('down2_3', new Resample(2 * d, true));
    this.encoder_level3 = this.child('encoder_level3', stage(n3, 4 * d, h3, c));
    this.down3_4 = this.child('down3_4', new Resample(4 * d, true));
    this.latent = this.child('latent', stage(n4, 8 * d, h4, c));
    this.up4_3 = this.child('up4_3', new Resample(8 * d, false));
    this.reduce_chan_level3 = this.child('reduce_chan_level3', new Conv2d(8 * d, 4 * d, 1, { bias: c.bias }));
    this.decoder_level3 = this.child('decoder_level3', stage(n3, 4 * d, h3, c));
    this.up3_2 = this.child('up3_2', new Resample(4 * d, false));
    this.reduce_chan_level2 = this.child('reduce_chan_level2', new Conv2d(4 * d, 2 * d, 1, { bias: c.bias }));
    this.decoder_level2 = this.child('decoder_level2', stage(n2, 2 * d, h2, c));
    this.up2_1 = this.child('up2_1', new Resample(2 * d, false));
    // No channel reduction at level 1: decoder_level1 and refinement run at 2*dim with heads[0].
    this.decoder_level1 = this.child('decoder_level1', stage(n1, 2 * d, h1, c));
    this.refinement = this.child('refinement', stage(c.num_refinement_blocks, 2 * d, h1, c));
    if (c.dual_pixel_task) this.skip_conv = this.child('skip_conv', new Conv2d(d, 2 * d, 1, { bias: c.bias }));
    this.output = this.child('output', new Conv2d(2 * d, c.out_channels, 3, { bias: c.bias }));
  }

  tasks(): TaskSpec[] {
    // A dual-pixel network takes stacked L/R views: defocus is its only task, whatever preset it was built from.
    const names = this.config.dual_pixel_task ? ['defocus'] : (PRESET_TASKS[this.preset ?? ''] ?? configTasks(this.config));
    return names.map((n) => TASKS[n]);
  }

  forward(x: tf.Tensor4D, task?: string): tf.Tensor4D {
    this.task(task);
    const [, h, w, ch] = x.shape;
    if (ch !== this.inChannels) throw new Error(`restormer forward: expected ${this.inChannels} input channels, got ${ch}`);
    if (h % 8 !== 0 || w % 8 !== 0)
      throw new Error(`restormer forward: input ${h}x${w} is not a multiple of 8 (restore() pads like the official test scripts)`);
    return tf.tidy(() => {
      const inpEnc1 = this.patch_embed.call<tf.Tensor4D>(x);
      const enc1 = this.encoder_level1.call<tf.Tensor4D>(inpEnc1);
      const enc2 = this.encoder_level2.call<tf.Tensor4D>(this.down1_2.call<tf.Tensor4D>(enc1));
      const enc3 = this.encoder_level3.call<tf.Tensor4D>(this.down2_3.call<tf.Tensor4D>(enc2));
      const latent = this.latent.call<tf.Tensor4D>(this.down3_4.call<tf.Tensor4D>(enc3));

      const cat = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.concat([a, b], -1);
      const dec3In = this.reduce_chan_level3.call<tf.Tensor4D>(cat(this.up4_3.call<tf.Tensor4D>(latent), enc3));
      const dec3 = this.decoder_level3.call<tf.Tensor4D>(dec3In);
      const dec2In = this.reduce_chan_level2.call<tf.Tensor4D>(cat(this.up3_2.call<tf.Tensor4D>(dec3), enc2));
      const dec2 = this.decoder_level2.call<tf.Tensor4D>(dec2In);
      const dec1 = this.decoder_level1.call<tf.Tensor4D>(cat(this.up2_1.call<tf.Tensor4D>(dec2), enc1));
      const refined = this.refinement.call<tf.Tensor4D>(dec1);

      if (this.skip_conv) return this.output.call<tf.Tensor4D>(tf.add(refined, this.skip_conv.call<tf.Tensor4D>(inpEnc1)));
      return tf.add(this.output.call<tf.Tensor4D>(refined), x);
    });
  }

  /** Every official test script (and demo.py) reflect-pads bottom/right to a multiple of 8, then crops. */
  paddingRule(): PaddingRule {
    return { multiple: 8, mode: 'reflect' };
  }

  /** Each transformer block's output, level by level through the U, then the output conv. */
  defaultLayers(): string[] {
    const c = this.config;
    const [n1, n2, n3, n4] = c.num_blocks;
    const stages: [string, number][] = [
      ['encoder_level1', n1],
      ['encoder_level2', n2],
      ['encoder_level3', n3],
      ['latent', n4],
      ['decoder_level3', n3],
      ['decoder_level2', n2],
      ['decoder_level1', n1],
      ['refinement', c.num_refinement_blocks],
    ];
    return [...stages.filter(([, n]) => n > 0).map(([s]) => `${s}.*`), 'output'];
  }
}

function validate(c: Config): void {
  const bad = (k: string, what: string) => new Error(`config: restormer ${k} must be ${what}, got ${JSON.stringify(c[k])}`);
  const isInt = (v: unknown, min: number) => Number.isInteger(v) && (v as number) >= min;
  for (const k of ['inp_channels', 'out_channels'] as const) if (!isInt(c[k], 1)) throw bad(k, 'an integer >= 1');
  if (!isInt(c.dim, 2) || (c.dim as number) % 2 !== 0) throw bad('dim', 'an even integer >= 2 (Downsample halves it)');
  const quad = (k: string, min: number) => {
    const v = c[k];
    if (!Array.isArray(v) || v.length !== 4 || !v.every((e) => isInt(e, min))) throw bad(k, `a list of 4 integers >= ${min}`);
  };
  quad('num_blocks', 0);
  quad('heads', 1);
  if (!isInt(c.num_refinement_blocks, 0)) throw bad('num_refinement_blocks', 'an integer >= 0');
  const f = c.ffn_expansion_factor;
  if (typeof f !== 'number' || !Number.isFinite(f) || Math.trunc((c.dim as number) * f) < 1)
    throw bad('ffn_expansion_factor', 'a number with int(dim * factor) >= 1');
  if (typeof c.bias !== 'boolean') throw bad('bias', 'true or false');
  if (typeof c.dual_pixel_task !== 'boolean') throw bad('dual_pixel_task', 'true or false');
  if (c.LayerNorm_type !== 'WithBias' && c.LayerNorm_type !== 'BiasFree') throw bad('LayerNorm_type', "'WithBias' or 'BiasFree'");
  if (typeof c.attn_dwconv !== 'boolean') throw bad('attn_dwconv', 'true or false');
  if (!['GDFN', 'FN', 'DFN', 'GFN'].includes(c.ffn_type as string)) throw bad('ffn_type', "'GDFN', 'FN', 'DFN' or 'GFN'");
  const d = c.dim as number;
  const heads = c.heads as number[];
  // Every stage that uses heads[i], with its width: level 1 also runs at 2*dim (decoder_level1, refinement).
  const uses: [number, number][] = [
    [0, d],
    [0, 2 * d],
    [1, 2 * d],
    [2, 4 * d],
    [3, 8 * d],
  ];
  for (const [i, width] of uses)
    if (width % heads[i] !== 0) throw new Error(`config: restormer heads[${i}]=${heads[i]} does not divide the ${width} channels it attends over`);
  if (!c.dual_pixel_task && c.inp_channels !== c.out_channels)
    throw new Error(`config: restormer out_channels (${c.out_channels}) must equal inp_channels (${c.inp_channels}): the output adds the input image unless dual_pixel_task`);
}

const PRESETS: { name: string; description: string; config: Partial<RestormerConfig>; officialParams: number }[] = [
  {
    name: 'restormer',
    description: 'Restormer, WithBias RGB (motion deblurring, deraining, single-image defocus deblurring checkpoints)',
    config: {},
    officialParams: 26_126_644,
  },
  {
    name: 'restormer-deblur',
    description: 'Restormer motion deblurring (GoPro; motion_deblurring.pth)',
    config: {},
    officialParams: 26_126_644,
  },
  {
    name: 'restormer-derain',
    description: 'Restormer deraining (Rain13K; deraining.pth)',
    config: {},
    officialParams: 26_126_644,
  },
  {
    name: 'restormer-denoise',
    description:
      'Restormer colour denoising, BiasFree (gaussian_color_denoising_sigma{15,25,50}/_blind.pth; real_denoising.pth uses the same config)',
    config: { LayerNorm_type: 'BiasFree' },
    officialParams: 26_111_668,
  },
  {
    name: 'restormer-denoise-gray',
    description: 'Restormer grayscale Gaussian denoising, BiasFree, 1 channel (gaussian_gray_denoising_sigma{15,25,50}/_blind.pth)',
    config: { inp_channels: 1, out_channels: 1, LayerNorm_type: 'BiasFree' },
    officialParams: 26_109_076,
  },
  {
    name: 'restormer-defocus-dp',
    description: 'Restormer dual-pixel defocus deblurring (DPDD; L and R views stacked to 6 channels; dual_pixel_defocus_deblurring.pth)',
    config: { inp_channels: 6, dual_pixel_task: true },
    officialParams: 26_132_548,
  },
  {
    name: 'restormer-tiny',
    description: 'Restormer, tiny width for tests and CPU studies (dim 8, one block per stage)',
    config: { dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1, heads: [1, 2, 4, 8] },
    // Measured by instantiating the official definition at this config.
    officialParams: 208_225,
  },
];

registerFamily({
  name: 'restormer',
  defaults: { ...RESTORMER_DEFAULTS } as unknown as Config,
  build: (config) => new Restormer(config),
  validate,
  presets: PRESETS.map((p) => ({ ...p, config: p.config as Config })),
  // patch_embed (3x3 conv image -> features) and output (3x3 conv features -> image) are the per-task parts.
  tasks: { headPrefixes: () => ['patch_embed', 'output'], configFor: sameSizeOnly('restormer') },
  training: {
    // Options/*.yml: 300k iterations, AdamW (0.9, 0.999) wd 1e-4, lr 3e-4 cosine-restarts to 1e-6,
    // batch 8 at patch 128 (fixed-patch equivalent of the progressive schedule's first stage).
    paper: { steps: 300_000, batch: 8, patch: { lq: 64, same: 128 }, lr: { peak: 3e-4, schedule: 'restormer', minFactor: 1e-6 / 3e-4 }, optimizer: { kind: 'adamw', beta1: 0.9, beta2: 0.999, weightDecay: 1e-4 } },
  },
  study: { tiny: 'restormer-tiny', tinyConfig: {}, paper: 'restormer', paperConfig: {}, sr: (s) => `sr-up-x${s}` },
  // The paper's ablations (Zamir et al. 2022, Tables 5-8). Counts for restormer (the full model) are in
  // test/models/variants.test.ts; only num_refinement_blocks is an official switch.
  variants: {
    mdta: { description: 'MDTA: depthwise 3x3 conv on q, k, v (the official attention)', config: { attn_dwconv: true } },
    mta: { description: 'MTA: transposed attention without the depthwise conv on q, k, v', config: { attn_dwconv: false } },
    gdfn: { description: 'GDFN: gated depthwise-conv feed-forward (official)', config: { ffn_type: 'GDFN' } },
    fn: { description: 'FN: plain 1x1-GELU-1x1 feed-forward', config: { ffn_type: 'FN' } },
    dfn: { description: 'DFN: feed-forward with a depthwise 3x3, no gate', config: { ffn_type: 'DFN' } },
    gfn: { description: 'GFN: gated feed-forward without the depthwise conv', config: { ffn_type: 'GFN' } },
    'refine-4': { description: '4 refinement blocks (official)', config: { num_refinement_blocks: 4 } },
    'refine-0': { description: 'no refinement stage', config: { num_refinement_blocks: 0 } },
    'fixed-patch': { description: 'fixed training patch (same steps, batch and patch throughout)', config: {}, training: { progressive: false } },
    progressive: {
      description: "progressive patches: the official 6-stage schedule (patch x1..x3, batch x1..x1/8) scaled to the run's steps",
      config: {},
      training: { progressive: true },
    },
  },
});
