import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import { Module, Sequential } from '../../src/models/module';
import { Conv2d, PReLU, pixelShuffle, pixelUnshuffle, roll } from '../../src/models/layers';
import { padBottomRight } from '../../src/models/model';
import { disposeCache, hookPoints, resolveHookNames } from '../../src/models/hooks';
import { createModel } from '../../src/models/registry';
import { exportStateDict, loadWeights } from '../../src/models/weights';
import '../../src/models/reference';
import type { RefNet } from '../../src/models/reference';

beforeAll(async () => {
  await initBackend('wasm');
});

const input = () => tf.randomUniform([1, 12, 12, 3], 0, 1, 'float32', 7) as tf.Tensor4D;

describe('module tree', () => {
  it('names parameters like a PyTorch state_dict and counts them', () => {
    const m = createModel('refnet-tiny');
    const keys = m.stateEntries().map(([k]) => k);
    expect(keys).toEqual([
      'conv_first.weight', 'conv_first.bias',
      'body.0.pw1.weight', 'body.0.pw1.bias', 'body.0.dw.weight', 'body.0.dw.bias', 'body.0.pw2.weight', 'body.0.pw2.bias',
      'body.1.pw1.weight', 'body.1.pw1.bias', 'body.1.dw.weight', 'body.1.dw.bias', 'body.1.pw2.weight', 'body.1.pw2.bias',
      'conv_last.weight', 'conv_last.bias',
    ]);
    const sd = exportStateDict(m);
    expect(sd.get('conv_first.weight')!.shape).toEqual([8, 3, 3, 3]); // OIHW
    expect(sd.get('body.0.dw.weight')!.shape).toEqual([16, 1, 3, 3]);
    // 3*8*9+8 + 2*(8*16+16 + 16*9+16 + 16*8+8) + 8*3*9+3
    expect(m.numParameters()).toBe(224 + 2 * (144 + 160 + 136) + 219);
    m.dispose();
  });

  it('shares a module under several paths but counts its parameters once', () => {
    class Shared extends Module {
      readonly act = new PReLU();
      readonly a: Sequential;
      readonly b: Sequential;
      constructor() {
        super();
        this.a = this.child('a', new Sequential([new Conv2d(2, 2, 1), this.act]));
        this.b = this.child('b', new Sequential([new Conv2d(2, 2, 1), this.act]));
      }
      forward(x: tf.Tensor4D) {
        return this.b.call<tf.Tensor4D>(this.a.call<tf.Tensor4D>(x));
      }
    }
    const m = new Shared();
    expect(m.stateEntries().map(([k]) => k)).toEqual(['a.0.weight', 'a.0.bias', 'a.1.weight', 'b.0.weight', 'b.0.bias', 'b.1.weight']);
    expect(m.numParameters()).toBe(2 * 6 + 1);
    expect(m.namedParameters().map(([k]) => k)).toEqual(['a.0.weight', 'a.0.bias', 'a.1.weight', 'b.0.weight', 'b.0.bias']);
    m.dispose();
  });

  it('round-trips weights through PyTorch layout and loads strictly', () => {
    const a = createModel('refnet-tiny', { seed: 1 });
    const b = createModel('refnet-tiny', { seed: 2 });
    const x = input();
    const ya = a.forward(x);
    const rep = loadWeights(b, exportStateDict(a));
    expect(rep.loaded).toBe(16);
    const yb = b.forward(x);
    expect(tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0]).toBe(0);

    const sd = exportStateDict(a);
    sd.delete('conv_last.bias');
    sd.set('extra.weight', { shape: [1], data: new Float32Array(1) });
    sd.set('conv_first.weight', { shape: [8, 3, 5, 5], data: new Float32Array(8 * 75) });
    expect(() => loadWeights(b, sd, { source: 'ckpt.pth' })).toThrow(
      /^ckpt\.pth: shape mismatch: conv_first\.weight: checkpoint \[8,3,5,5\] vs model \[8,3,3,3\]; missing keys: conv_last\.bias; unexpected keys: extra\.weight$/,
    );
    // the failed load changed nothing
    const yb2 = b.forward(x);
    expect(tf.max(tf.abs(tf.sub(ya, yb2))).dataSync()[0]).toBe(0);
    tf.dispose([x, ya, yb, yb2]);
    a.dispose();
    b.dispose();
  });
});

describe('hooks', () => {
  it('lists hook points and resolves globs', () => {
    const m = createModel('refnet-tiny');
    expect(hookPoints(m)).toContain('body.1.dw');
    expect(resolveHookNames(m, ['body.*'])).toEqual(['body.0', 'body.1']);
    expect(resolveHookNames(m, ['body.*.dw'])).toEqual(['body.0.dw', 'body.1.dw']);
    expect(resolveHookNames(m, ['body.**'])).toContain('body.1.pw2');
    m.dispose();
  });

  it('rejects unknown hook names with close matches', () => {
    const m = createModel('refnet-tiny');
    const x = input();
    expect(() => m.runWithCache(x, ['body.0.dww'])).toThrow(/unknown hook point 'body\.0\.dww' \(closest: body\.0\.dw/);
    expect(() => m.runWithHooks(x, { 'bodyy.*': (t) => t })).toThrow(/unknown hook point 'bodyy\.\*'/);
    x.dispose();
    m.dispose();
  });

  it('captures module outputs equal to a manual forward', () => {
    const m = createModel('refnet-tiny') as RefNet;
    const x = input();
    const { output, cache } = m.runWithCache(x, ['conv_first', 'body.*']);
    expect([...cache.keys()]).toEqual(['conv_first', 'body.0', 'body.1']);
    const manual = tf.tidy(() => m.body.items[0].forward(m.conv_first.forward(x)));
    expect(tf.max(tf.abs(tf.sub(manual, cache.get('body.0')!))).dataSync()[0]).toBe(0);
    const direct = m.forward(x);
    expect(tf.max(tf.abs(tf.sub(direct, output))).dataSync()[0]).toBe(0);
    tf.dispose([manual, direct, output, x]);
    disposeCache(cache);
    m.dispose();
  });

  it('replaces outputs (zero ablation) and observes without changing', () => {
    const m = createModel('refnet-tiny') as RefNet;
    const x = input();
    const seen: string[] = [];
    const observed = m.runWithHooks(x, { 'body.*': (t, { name }) => void seen.push(`${name}:${t.shape}`) });
    const plain = m.forward(x);
    expect(seen).toEqual(['body.0:1,12,12,8', 'body.1:1,12,12,8']);
    expect(tf.max(tf.abs(tf.sub(observed, plain))).dataSync()[0]).toBe(0);
    // Zeroing the last block's output leaves conv_last(0) = its bias, plus the input image.
    const ablated = m.runWithHooks(x, { 'body.1': (t) => tf.zerosLike(t) });
    const expected = tf.tidy(() => tf.add(x, m.conv_last.forward(tf.zeros([1, 12, 12, 8]))));
    expect(tf.max(tf.abs(tf.sub(ablated, expected))).dataSync()[0]).toBeLessThan(1e-6);
    expect(() => m.runWithHooks(x, { 'body.0': () => tf.zeros([1, 2, 2, 8]) })).toThrow(/changed the shape of body\.0/);
    tf.dispose([observed, plain, ablated, expected, x]);
    m.dispose();
  });

  it('does not leak tensors over 100 captures and keeps no gradient tape', () => {
    const m = createModel('refnet-tiny');
    const x = input();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      const { output, cache } = m.runWithCache(x, ['body.*', 'conv_last']);
      output.dispose();
      disposeCache(cache);
      const y = m.runWithHooks(x, { 'body.0': (t) => tf.mul(t, 0.5) });
      y.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    expect((tf.engine().state as unknown as { activeTape: unknown }).activeTape ?? null).toBeNull();
    x.dispose();
    m.dispose();
  });

  it('keeps gradients flowing through hooked forwards', () => {
    const m = createModel('refnet-tiny');
    const x = input();
    const { value, grads } = tf.variableGrads(
      () => tf.mean(tf.abs(m.runWithHooks(x, { 'body.0': (t) => tf.mul(t, 2) }))) as tf.Scalar,
      m.variables(),
    );
    expect(Object.keys(grads).length).toBe(16);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    tf.dispose([value, x, ...Object.values(grads)]);
    m.dispose();
  });
});

describe('layout helpers', () => {
  it('pixelShuffle follows PyTorch channel order and unshuffle inverts it', () => {
    const r = 2;
    const c = 3;
    const x = tf.range(0, 2 * 2 * c * r * r).reshape([1, 2, 2, c * r * r]) as tf.Tensor4D;
    const y = pixelShuffle(x, r);
    const xv = x.arraySync()[0];
    const yv = y.arraySync()[0];
    for (let h = 0; h < 2; h++)
      for (let w = 0; w < 2; w++)
        for (let ch = 0; ch < c; ch++)
          for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) expect(yv[h * r + i][w * r + j][ch]).toBe(xv[h][w][ch * r * r + i * r + j]);
    const back = pixelUnshuffle(y, r);
    expect(back.arraySync()).toEqual(x.arraySync());
    tf.dispose([x, y, back]);
  });

  it('roll matches torch.roll and padBottomRight matches reflect / flip-concat', () => {
    const x = tf.range(0, 5).reshape([1, 5, 1, 1]);
    expect(Array.from(roll(x, -2, 1).dataSync())).toEqual([2, 3, 4, 0, 1]);
    expect(Array.from(roll(x, 1, 1).dataSync())).toEqual([4, 0, 1, 2, 3]);
    const x4 = x as tf.Tensor4D;
    expect(Array.from(padBottomRight(x4, 3, 0, 'reflect').dataSync())).toEqual([0, 1, 2, 3, 4, 3, 2, 1]);
    expect(Array.from(padBottomRight(x4, 3, 0, 'symmetric').dataSync())).toEqual([0, 1, 2, 3, 4, 4, 3, 2]);
    // longer than the image: flip-concat repeats, like concatenating flipped copies
    expect(Array.from(padBottomRight(x4, 7, 0, 'symmetric').dataSync())).toEqual([0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 1]);
    x.dispose();
  });
});

describe('lifetime', () => {
  it('frees every tensor of a model on dispose', () => {
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) createModel('refnet-tiny', { seed: i }).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
