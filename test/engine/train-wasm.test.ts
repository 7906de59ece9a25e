/**
 * A small conv net with depthwise convs (conv3x3 -> [depthwise 3x3 -> GELU(erf) -> 1x1] x2 -> conv3x3 x2)
 * trains on the wasm backend with Adam: the loss falls and no tensors leak across steps.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/engine/backend';
import { createTinyConvNet, makeTask, trainStep } from '../../bench/train-step';

describe('training on wasm', () => {
  it('a depthwise conv net trains with Adam; numTensors stays flat', async () => {
    const info = await initBackend('wasm');
    expect(info.tfBackend).toBe('wasm');
    const net = createTinyConvNet({ width: 8, blocks: 2 });
    const optimizer = tf.train.adam(1e-2);
    const { x, y } = makeTask(2, 16);
    const losses: number[] = [];
    const counts: number[] = [];
    for (let step = 0; step < 30; step++) {
      losses.push(trainStep(net, optimizer, x, y));
      counts.push(tf.memory().numTensors);
    }
    // Adam adds its slot variables during the first step; after that the count must not move.
    expect(new Set(counts.slice(1)).size, `numTensors per step: ${counts.join(',')}`).toBe(1);
    expect(losses.every(Number.isFinite)).toBe(true);
    const last = losses[losses.length - 1];
    expect(last, `loss ${losses[0]} -> ${last}`).toBeLessThan(0.5 * losses[0]);
    tf.dispose([x, y]);
    optimizer.dispose();
    net.dispose();
  });
});
