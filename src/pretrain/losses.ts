/**
 * Training losses of the studied papers, on NHWC tensors (values in [0,1]).
 *
 *   l1            mean |x - y|                                   (BasicSR L1Loss: Restormer, SwinIR SR, EDT)
 *   charbonnier   mean sqrt((x - y)^2 + eps^2), eps = 1e-3       (MPRNet's CharbonnierLoss)
 *   edge          charbonnier(lap(x), lap(y)), lap = x - G(up(down(G(x))))  (MPRNet's EdgeLoss)
 *   mprnet        sum over the 3 stage outputs of charbonnier + 0.05 * edge  (MPRNet Deblurring/Deraining train.py)
 *
 * Facts from swz30/MPRNet losses.py: G is a depthwise 5x5 conv with the outer product of
 * [.05, .25, .4, .25, .05] after replicate padding of 2; "down" keeps every second pixel from (0, 0), "up" puts
 * those values times 4 back at the same positions with zeros elsewhere. Written here with a 0/1 mask (x * mask *
 * 4 equals the down-then-zero-insert up) so the gradient needs no strided slice or scatter.
 */
import * as tf from '@tensorflow/tfjs';

export type LossName = 'l1' | 'charbonnier' | 'mprnet';
export const LOSS_NAMES: readonly LossName[] = ['l1', 'charbonnier', 'mprnet'];

export const CHARBONNIER_EPS = 1e-3;
/** Weight of the edge loss in MPRNet's total loss. */
export const MPRNET_EDGE_WEIGHT = 0.05;

export function l1Loss(x: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.abs(tf.sub(x, y))) as tf.Scalar);
}

export function charbonnierLoss(x: tf.Tensor, y: tf.Tensor, eps = CHARBONNIER_EPS): tf.Scalar {
  return tf.tidy(() => {
    const d = tf.sub(x, y);
    return tf.mean(tf.sqrt(tf.add(tf.square(d), eps * eps))) as tf.Scalar;
  });
}

const GAUSS_1D = [0.05, 0.25, 0.4, 0.25, 0.05];

/** Replicate padding by `p` on H and W (F.pad mode='replicate'); mirrorPad has no such mode. */
function replicatePad(x: tf.Tensor4D, p: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const top = tf.tile(tf.slice(x, [0, 0, 0, 0], [-1, 1, -1, -1]), [1, p, 1, 1]);
    const bottom = tf.tile(tf.slice(x, [0, h - 1, 0, 0], [-1, 1, -1, -1]), [1, p, 1, 1]);
    const rows = tf.concat([top, x, bottom], 1) as tf.Tensor4D;
    const left = tf.tile(tf.slice(rows, [0, 0, 0, 0], [-1, -1, 1, -1]), [1, 1, p, 1]);
    const right = tf.tile(tf.slice(rows, [0, 0, w - 1, 0], [-1, -1, 1, -1]), [1, 1, p, 1]);
    return tf.concat([left, rows, right], 2) as tf.Tensor4D;
  });
}

/** MPRNet's conv_gauss: replicate pad 2, depthwise 5x5 Gaussian-like kernel per channel. */
function convGauss(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const c = x.shape[3];
    const k2 = GAUSS_1D.flatMap((a) => GAUSS_1D.map((b) => a * b));
    const kernel = tf.tile(tf.tensor4d(k2, [5, 5, 1, 1]), [1, 1, c, 1]) as tf.Tensor4D;
    return tf.depthwiseConv2d(replicatePad(x, 2), kernel, 1, 'valid');
  });
}

/** 1 where both indices are even (the positions `[::2, ::2]` keeps), 0 elsewhere; shape [1, h, w, 1]. */
function evenMask(h: number, w: number): tf.Tensor4D {
  const m = new Float32Array(h * w);
  for (let i = 0; i < h; i += 2) for (let j = 0; j < w; j += 2) m[i * w + j] = 1;
  return tf.tensor4d(m, [1, h, w, 1]);
}

/** MPRNet's laplacian_kernel: x - G(4 * mask * G(x)), the band-pass residual of one pyramid level. */
export function laplacianEdges(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const filtered = convGauss(x);
    const upsampled = tf.mul(filtered, tf.mul(evenMask(h, w), 4)) as tf.Tensor4D;
    return tf.sub(x, convGauss(upsampled));
  });
}

export function edgeLoss(x: tf.Tensor4D, y: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => charbonnierLoss(laplacianEdges(x), laplacianEdges(y)));
}

/** MPRNet's total loss over its stage outputs [stage3, stage2, stage1] against one target. */
export function mprnetLoss(stages: tf.Tensor4D[], target: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const char = tf.addN(stages.map((s) => charbonnierLoss(s, target)));
    const edge = tf.addN(stages.map((s) => edgeLoss(s, target)));
    return tf.add(char, tf.mul(edge, MPRNET_EDGE_WEIGHT)) as tf.Scalar;
  });
}

/** A model output as a loss sees it: the restored image, or MPRNet's stage images (stage 3 first). */
export type LossInput = tf.Tensor4D | tf.Tensor4D[];

/** Evaluates a named loss. 'mprnet' needs stage outputs; the pixel losses take the final image (stage 3). */
export function computeLoss(name: LossName, output: LossInput, target: tf.Tensor4D): tf.Scalar {
  if (name === 'mprnet') {
    if (!Array.isArray(output)) throw new Error("--loss mprnet: the model has no stage outputs (forwardStages); use 'l1' or 'charbonnier'");
    return mprnetLoss(output, target);
  }
  const y = Array.isArray(output) ? output[0] : output;
  return name === 'l1' ? l1Loss(y, target) : charbonnierLoss(y, target);
}

export function parseLossName(text: string, option = '--loss'): LossName {
  if ((LOSS_NAMES as readonly string[]).includes(text)) return text as LossName;
  throw new Error(`${option}: unknown loss '${text}' (expected ${LOSS_NAMES.join(', ')})`);
}
