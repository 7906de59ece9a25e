/**
 * Bad-input suite, hostile checkpoints: pickle bombs, broadcast views, zip bombs and oversized configs, each
 * through `irlens restore` in a child process: exit 1, one clear line, no output file, peak RSS < 1 GB.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/models/checkpoint';
import {
  expectRefusal,
  expectSuccess,
  f32,
  filesIn,
  npyBytes,
  type PickledTensor,
  printTable,
  runChild,
  stateDictPickle,
  tempDir,
  zipArchive,
} from './harness';

const tmp = tempDir('ckpt');
const out = path.join(tmp, 'out');
const input = path.join(tmp, 'x.npy');
afterAll(() => {
  printTable('checkpoints');
  // Every refused case wrote into `out`: nothing (not even a temp file) may be left there.
  const left = filesIn(out);
  fs.rmSync(tmp, { recursive: true, force: true });
  expect(left).toEqual([]);
});
beforeAll(() => {
  fs.mkdirSync(out);
  fs.writeFileSync(input, npyBytes('<f4', [1, 3, 8, 8], f32(new Array(192).fill(0.5))));
});

// refnet-tiny's state_dict (1,323 parameters).
const REFNET: [string, number[]][] = [
  ['conv_first.weight', [8, 3, 3, 3]], ['conv_first.bias', [8]],
  ...[0, 1].flatMap((b): [string, number[]][] => [
    [`body.${b}.pw1.weight`, [16, 8, 1, 1]], [`body.${b}.pw1.bias`, [16]], [`body.${b}.dw.weight`, [16, 1, 3, 3]],
    [`body.${b}.dw.bias`, [16]], [`body.${b}.pw2.weight`, [8, 16, 1, 1]], [`body.${b}.pw2.bias`, [8]],
  ]),
  ['conv_last.weight', [3, 8, 3, 3]], ['conv_last.bias', [3]],
];
const contiguous = (shape: number[]) => shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));

/** A torch.save zip of refnet-tiny weights; `patch` edits the tensor list, `extra` adds archive members. */
function refnetZip(patch: (ts: PickledTensor[]) => PickledTensor[] = (t) => t, extra: Parameters<typeof zipArchive>[0] = []) {
  const tensors = patch(REFNET.map(([name, shape], i) => ({ name, key: String(i), numel: shape.reduce((a, b) => a * b, 1), shape, stride: contiguous(shape) })));
  // Record sizes follow the tensors' shapes (a pid's numel may lie; the record then is what the file really holds).
  const records = [...new Map(tensors.map((t) => [t.key, Math.min(t.numel, t.shape.reduce((a, b) => a * b, 1))])).entries()].map(([key, numel]) => ({
    name: `archive/data/${key}`,
    data: f32(Array.from({ length: numel }, (_, j) => ((j % 7) - 3) * 0.01)),
  }));
  return zipArchive([{ name: 'archive/data.pkl', data: stateDictPickle(tensors) }, ...records, ...extra]);
}

function restoreWith(weights: string, output = path.join(out, 'y.npy')) {
  return runChild(['restore', '--model', 'refnet-tiny', '--weights', weights, '--input', input, '--output', output]);
}

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, bytes);
  return file;
}

const pickleZip = (pkl: Uint8Array, deflate: boolean) => zipArchive([{ name: 'archive/data.pkl', data: pkl, deflate }]);
const repeat = (prefix: number[], unit: number[], n: number, suffix: number[]) => {
  const b = Buffer.alloc(prefix.length + unit.length * n + suffix.length);
  b.set(prefix);
  if (unit.length === 1) b.fill(unit[0], prefix.length, prefix.length + n);
  else for (let i = 0; i < n; i++) b.set(unit, prefix.length + i * unit.length);
  b.set(suffix, prefix.length + unit.length * n);
  return new Uint8Array(b);
};

describe.concurrent('pickle bombs', () => {
  it('300M NONE opcodes (a ~300 KB zip) are refused by the declared data.pkl size', async () => {
    const file = write('none300m.pth', pickleZip(repeat([0x80, 2], [0x4e], 300_000_000, [0x2e]), true));
    expect(fs.statSync(file).size).toBeLessThan(2_000_000);
    expectRefusal('pickle bomb', await restoreWith(file), /declares 300000003 bytes \(limit \d+\); refusing a possible zip bomb/);
  });
  it('18M NONE POP opcodes exceed the opcode limit', async () => {
    const file = write('nonepop.pth', pickleZip(repeat([0x80, 2], [0x4e, 0x30], 9_000_000, [0x2e]), true));
    expectRefusal('pickle bomb', await restoreWith(file), /pickle in archive\/data\.pkl exceeds 16000000 opcodes/);
  });
  it('1.1M EMPTY_DICTs exceed the stack limit', async () => {
    const file = write('dicts.pth', pickleZip(repeat([0x80, 2], [0x7d], 1_100_000, [0x2e]), false));
    expectRefusal('pickle bomb', await restoreWith(file), /exceeds 1000000 stack items/);
  });
  it('1.1M nested MARKs exceed the stack limit', async () => {
    const file = write('marks.pth', pickleZip(repeat([0x80, 2], [0x28], 1_100_000, [0x2e]), false));
    expectRefusal('pickle bomb', await restoreWith(file), /exceeds 1000000 stack items/);
  });
  it('2.1M memoised dicts exceed the memo limit', async () => {
    const file = write('memo.pth', pickleZip(repeat([0x80, 4], [0x7d, 0x94, 0x30], 2_100_000, [0x2e]), true));
    expectRefusal('pickle bomb', await restoreWith(file), /exceeds 2000000 memo entries/);
  });
});

describe.concurrent('broadcast views', () => {
  const broadcast = (name: string) => (ts: PickledTensor[]) => [...ts, { name, key: 'b', numel: 4, shape: [32768, 32768], stride: [0, 0] }];
  it('a (2^15, 2^15) stride-0 view of 4 floats under a model name is refused by shape, never materialised', async () => {
    const file = write('bcast1.pth', refnetZip((ts) => broadcast('conv_first.weight')(ts.filter((t) => t.name !== 'conv_first.weight'))));
    expectRefusal('broadcast view', await restoreWith(file), /shape mismatch: conv_first\.weight: checkpoint \[32768,32768\] vs model \[8,3,3,3\]/);
  });
  it('the same view under an unknown name is an unexpected key', async () => {
    const file = write('bcast2.pth', refnetZip(broadcast('evil')));
    expectRefusal('broadcast view', await restoreWith(file), /unexpected keys: evil/);
  });
  it('a broadcast bias the model really has loads', async () => {
    const file = write('bcast3.pth', refnetZip((ts) => ts.map((t) => (t.name === 'conv_first.bias' ? { ...t, key: 'one', numel: 1, stride: [0] } : t))));
    const y = path.join(tmp, 'bcast3.npy');
    expectSuccess('broadcast view', await restoreWith(file, y));
    expect(fs.existsSync(y)).toBe(true);
  });
});

describe.concurrent('zip bombs', () => {
  it('an unused 200 MB member (deflated to ~200 KB) is never inflated', async () => {
    const file = write('unused.pth', refnetZip(undefined, [{ name: 'archive/data/999', data: new Uint8Array(200_000_000), deflate: true }]));
    const y = path.join(tmp, 'unused.npy');
    const r = await restoreWith(file, y);
    expectSuccess('zip bomb', r);
    expect(fs.existsSync(y)).toBe(true);
  });
  it('a used record declaring 1 GB for a 96-float storage is refused before inflating', async () => {
    const file = write('declared.pth', refnetZip(undefined, []).slice(0)); // rebuilt below with a lying record
    const tensors = REFNET.map(([name, shape], i) => ({ name, key: String(i), numel: shape.reduce((a, b) => a * b, 1), shape, stride: contiguous(shape) }));
    const members = tensors.map((t) => ({
      name: `archive/data/${t.key}`,
      data: new Uint8Array(t.numel * 4),
      deflate: true,
      declaredSize: t.key === '0' ? 1_000_000_000 : undefined,
    }));
    fs.writeFileSync(file, zipArchive([{ name: 'archive/data.pkl', data: stateDictPickle(tensors) }, ...members]));
    expectRefusal('zip bomb', await restoreWith(file), /storage record 'archive\/data\/0' declares 1000000000 bytes but its storage needs 864; refusing a possible zip bomb/);
  });
  it('a storage claiming 2^28 elements over a 4-byte record is refused', async () => {
    const file = write('numel.pth', refnetZip((ts) => ts.map((t) => (t.name === 'conv_first.bias' ? { ...t, key: 'big', numel: 2 ** 28 } : t))));
    expectRefusal('zip bomb', await restoreWith(file), /missing storage record 'archive\/data\/big'|storage record 'archive\/data\/big' has \d+ bytes, expected 1073741824/);
  });
});

describe.concurrent('configs that ask for huge models', () => {
  it('an irlens checkpoint whose irlens.config says dim 30000 is refused before building', async () => {
    const file = path.join(tmp, 'huge.safetensors');
    writeSafetensors(file, new Map([['conv_first.bias', { shape: [1], dtype: 'float32', data: Float32Array.from([0]) }]]), {
      'irlens.family': 'refnet',
      'irlens.preset': '',
      'irlens.config': JSON.stringify({ dim: 30000 }),
    });
    const r = await runChild(['restore', '--model', file, '--input', input, '--output', path.join(out, 'y.npy')]);
    expectRefusal('config size', r, /parameters \(~[\d.]+ GB\); the limit is 100M \(raise it with --max-params/);
  });
  it("--config '{\"dim\":30000}' is refused before building", async () => {
    const r = await runChild(['restore', '--model', 'refnet-tiny', '--config', '{"dim":30000}', '--input', input, '--output', path.join(out, 'y.npy')]);
    expectRefusal('config size', r, /the limit is 100M/);
  });
  it('--max-params lowers the limit', async () => {
    const r = await runChild(['restore', '--model', 'refnet-tiny', '--max-params', '1000', '--input', input, '--output', path.join(out, 'y.npy')]);
    expectRefusal('config size', r, /1\.3k parameters .*the limit is 1k/);
  });
});
