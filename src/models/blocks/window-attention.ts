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
import { attentionProbs, fusedPackedWindowAttention, fusedWindowAttention, fusedWindowAttentionAvailable } from '../../engine/wasm/window-attention';
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

/**
 * q, k, v in token layout, [B', N, C] with the heads side by side in the channels: three tensors, or one
 * [B', N, 3C] packed as a qkv projection writes them (the official reshape(B', N, 3, heads, C // heads)).
 */
export type AttentionInput = { qkv: tf.Tensor3D } | { q: tf.Tensor3D; k: tf.Tensor3D; v: tf.Tensor3D };

/** Tokens [.., C] of bw windows x n tokens -> [bw*heads, n, d]; channel j goes to head floor(j / d). */
export function splitHeads(t: tf.Tensor, bw: number, n: number, heads: number): tf.Tensor3D {
  return tf.tidy(() => {
    const d = t.size / (bw * n * heads);
    return tf.reshape(tf.transpose(tf.reshape(t, [bw, n, heads, d]), [0, 2, 1, 3]), [bw * heads, n, d]);
  });
}

/** Per head ([bw, heads, n, d] or [bw*heads, n, d]) -> tokens [bw, n, heads*d] (the inverse of splitHeads). */
function mergeHeads(t: tf.Tensor, bw: number, n: number, heads: number): tf.Tensor3D {
  const d = t.size / (bw * n * heads);
  return tf.reshape(tf.transpose(tf.reshape(t, [bw, heads, n, d]), [0, 2, 1, 3]), [bw, n, heads * d]);
}

/** q, k, v per head, [B'*heads, N, d] each. */
function headsOf(input: AttentionInput, heads: number): [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D] {
  if ('q' in input) {
    const [bw, n] = input.q.shape;
    return [input.q, input.k, input.v].map((t) => splitHeads(t, bw, n, heads)) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
  }
  const [bw, n, c3] = input.qkv.shape;
  const c = c3 / 3;
  // [B'*N, 3, C] -> [3, B'*N, C]: two transposes of rank <= 4; the single rank-5 one ([B', N, 3, heads, d] ->
  // [3, B', heads, N, d]) takes the wasm backend's generic N-D path, ~20x slower. Splitting the leading axis
  // copies three contiguous blocks (splitting the channels would copy B'*N short rows).
  const stacked = tf.transpose(tf.reshape(input.qkv, [bw * n, 3, c]), [1, 0, 2]);
  return tf.split(stacked, 3, 0).map((t) => splitHeads(t, bw, n, heads)) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
}

export interface WindowAttentionOptions {
  heads: number;
  scale: number;
  /** Per-head additive bias [heads, N, N] (SwinIR's relative position bias). */
  bias?: tf.Tensor3D;
  /** Shifted-window mask [nW, N, N] (0 / -100); B' must be a multiple of nW (windows of each image in order). */
  mask?: tf.Tensor3D;
  /** Added to attn @ v, in token layout [B', N, C] (EDT's LePE). */
  extra?: tf.Tensor3D;
}

/** Returns the merged heads [B', N, C]. */
export function windowAttention(taps: AttentionTaps, input: AttentionInput, o: WindowAttentionOptions): tf.Tensor3D {
  return tf.tidy(() => {
    const first = 'q' in input ? input.q : input.qkv;
    const [bw, n] = first.shape;
    const heads = o.heads;
    const root = taps.attn_map.root;
    if (fusedWindowAttentionAvailable() && first.dtype === 'float32' && unwatched(root, [taps.softmax.path, taps.attn_drop.path, taps.attn_map.path])) {
      // Native, and no hook reads or changes the probabilities (attn_drop is an identity in irlens): one kernel
      // computes P v in token layout without keeping P or transposing (engine/wasm/window-attention.ts).
      const pv = 'q' in input
        ? fusedWindowAttention(input.q, input.k, input.v, heads, o.scale, o.bias, o.mask)
        : fusedPackedWindowAttention(input.qkv, heads, o.scale, o.bias, o.mask);
      const out = (o.extra ? tf.add(pv, o.extra) : pv) as tf.Tensor3D;
      // The per-head view exists only in hooked runs (exact transposes, so no bit changes).
      return taps.heads.tap(out, (t) => tf.reshape(splitHeads(t, bw, n, heads), [bw, heads, n, -1]), (t) => mergeHeads(t, bw, n, heads));
    }
    const [q, k, v] = headsOf(input, heads);
    let probs: tf.Tensor;
    if (fusedWindowAttentionAvailable() && q.dtype === 'float32') {
      // Native with watched probabilities: they come from a kernel with the same bits as the fused one, reported
      // at softmax, so that capturing or replaying never changes the output.
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
    const pv = tf.matMul(tf.reshape(reported, [bw * heads, n, n]), v); // [B'*heads, N, d]
    const out = o.extra ? tf.add(pv, splitHeads(o.extra, bw, n, heads)) : pv;
    return mergeHeads(taps.heads.tap(tf.reshape(out, [bw, heads, n, -1])), bw, n, heads);
  });
}
