/**
 * Token plumbing shared by SwinIR and EDT's body (official names patch_embed / patch_unembed / conv_after_body).
 * patch_size is 1 in every configuration, so PatchEmbed only flattens (and normalises) and PatchUnEmbed reshapes.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, ModuleList, Sequential } from '../module';
import { Conv2d, LayerNorm, LeakyReLU } from '../layers';

export type Size = [number, number];

/** [B,H,W,C] -> [B,H*W,C], then LayerNorm when patch_norm is on. */
export class PatchEmbed extends Module {
  readonly norm?: LayerNorm;
  constructor(dim: number, withNorm = true) {
    super();
    if (withNorm) this.norm = this.child('norm', new LayerNorm(dim));
  }
  forward(x: tf.Tensor4D): tf.Tensor3D {
    const [b, h, w, c] = x.shape;
    const t = tf.reshape(x, [b, h * w, c]) as tf.Tensor3D;
    return this.norm ? this.norm.call<tf.Tensor3D>(t) : t;
  }
}

/** [B,H*W,C] -> [B,H,W,C]. */
export class PatchUnEmbed extends Module {
  forward(x: tf.Tensor3D, size: Size): tf.Tensor4D {
    const [b, , c] = x.shape;
    return tf.reshape(x, [b, size[0], size[1], c]);
  }
}

/** resi_connection: '1conv' = 3x3; '3conv' = 3x3 -> LReLU(0.2) -> 1x1 -> LReLU(0.2) -> 3x3 at dim/4. */
export function residualConv(dim: number, kind: '1conv' | '3conv'): Module {
  if (kind === '1conv') return new Conv2d(dim, dim, 3);
  const q = Math.floor(dim / 4);
  return new Sequential([new Conv2d(dim, q, 3), LeakyReLU(0.2), new Conv2d(q, q, 1), LeakyReLU(0.2), new Conv2d(q, dim, 3)]);
}

/** BasicLayer without downsample (neither SwinIR nor EDT uses PatchMerging): `blocks.N` run in order on tokens. */
export class BasicLayer extends Module {
  readonly blocks: ModuleList<Module>;
  constructor(blocks: Module[]) {
    super();
    this.blocks = this.child('blocks', new ModuleList(blocks));
  }
  forward(x: tf.Tensor3D, size: Size): tf.Tensor3D {
    let y = x;
    for (const blk of this.blocks.items) y = blk.call<tf.Tensor3D>(y, size);
    return y;
  }
}
