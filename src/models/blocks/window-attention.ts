/**
 * The multi-head attention inside windows that SwinIR's WindowAttention and EDT's crossed-window halves share:
 * per window and head, softmax(q k^T * scale + bias + mask) v (+ EDT's LePE term), heads merged channel-wise
 * (channel j belongs to head floor(j / headDim), like the official view(..., heads, C // heads)).
 *
 * Hook points (children of the attention module, no parameters):
 *   <attn>.attn_map  the attention probabilities after softmax and attn_drop, [B', heads, N, N]
 *   <attn>.heads     the per-head output before the heads are merged and projected, [B', heads, N, headDim]
 *                    (B' = batch * windows, N = tokens per window); zeroing head h here equals zeroing channels
 *                    h*headDim .. (h+1)*headDim-1 of the merged tensor that proj reads.
 */
import * as tf from '@tensorflow/tfjs';
import { attentionProbs, fusedWindowAttention, fusedWindowAttentionAvailable } from '../../engine/wasm/window-attention';
import { unwatched } from '../hook-context';
import type { Module } from '../module';
import type { HookPoint } from '../layers';

/** The modules an attention holds around the core (their hook points keep the official names). */
export interface AttentionTaps {
  softmax: Module;
  attn_drop: Module;
  attn_map: HookPoint;
  heads: HookPoint;
}

/** Tokens [.., C] of bw windows x n tokens -> [bw*heads, n, d]; channel j goes to head floor(j / d). */
export function splitHeads(t: tf.Tensor, bw: number, n: number, heads: number): tf.Tensor3D {
  return tf.tidy(() => {
    const d = t.size / (bw * n * heads);
    return tf.reshape(tf.transpose(tf.reshape(t, [bw, n, heads, d]), [0, 2, 1, 3]), [bw * heads, n, d]);
  });
}

export interface WindowAttentionOptions {
  heads: number;
  scale: number;
  /** Per-head additive bias [heads, N, N] (SwinIR's relative position bias). */
  bias?: tf.Tensor3D;
  /** Shifted-window mask [nW, N, N] (0 / -100); B' must be a multiple of nW (windows of each image in order). */
  mask?: tf.Tensor3D;
  /** Added to attn @ v per head, [B'*heads, N, d] (EDT's LePE). */
  extra?: tf.Tensor3D;
}

/** q, k, v: [B'*heads, N, d] (splitHeads). Returns the merged heads [B', N, C]. */
export function windowAttention(taps: AttentionTaps, q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, o: WindowAttentionOptions): tf.Tensor3D {
  return tf.tidy(() => {
    const [bh, n, d] = q.shape;
    const heads = o.heads;
    const bw = bh / heads;
    const finish = (pv: tf.Tensor) => {
      const out = o.extra ? tf.add(pv, o.extra) : pv;
      const perHead = taps.heads.tap(tf.reshape(out, [bw, heads, n, d]));
      return tf.reshape(tf.transpose(perHead, [0, 2, 1, 3]), [bw, n, heads * d]) as tf.Tensor3D;
    };
    let probs: tf.Tensor;
    if (fusedWindowAttentionAvailable() && q.dtype === 'float32') {
      // Native: unless a hooked run reads or changes the probabilities (attn_drop is an identity in irlens), one
      // kernel computes P v without keeping P (engine/wasm/window-attention.ts). Otherwise P comes from a kernel
      // with the same bits, reported at softmax, so that capturing or replaying never changes the output.
      if (unwatched(taps.attn_map.root, [taps.softmax.path, taps.attn_drop.path, taps.attn_map.path])) {
        return finish(fusedWindowAttention(q, k, v, heads, o.scale, o.bias, o.mask));
      }
      probs = taps.softmax.report(tf.reshape(attentionProbs(q, k, heads, o.scale, o.bias, o.mask), [bw, heads, n, n]));
    } else {
      const logits = tf.matMul(tf.mul(q, o.scale), k, false, true); // [B'*heads, N, N]
      let attn: tf.Tensor = tf.reshape(logits, [bw, heads, n, n]);
      if (o.bias) attn = tf.add(attn, o.bias);
      if (o.mask) {
        const nW = o.mask.shape[0];
        attn = tf.reshape(tf.add(tf.reshape(attn, [bw / nW, nW, heads, n, n]), tf.reshape(o.mask, [1, nW, 1, n, n])), [bw, heads, n, n]);
      }
      probs = taps.softmax.call<tf.Tensor>(attn);
    }
    const reported = taps.attn_map.tap(taps.attn_drop.call<tf.Tensor>(probs));
    return finish(tf.matMul(tf.reshape(reported, [bw * heads, n, n]), v)); // [B'*heads, N, d]
  });
}
