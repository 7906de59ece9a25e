/** In-process checks of the bounded readers (the CLI-level cases are in the other files of this folder). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadStateDictFromBytes, parseTorchCheckpoint, PICKLE_LIMITS, scanPickle } from '../../src/models/checkpoint';
import { formatBytes, gramBytes, parseBytes, requireMemory } from '../../src/util/memory';
import { f32, stateDictPickle, zipArchive } from './harness';

const tensor = (name: string, key: string, numel: number, shape: number[], stride: number[]) => ({ name, key, numel, shape, stride });

describe('torch zip reader with an expected map', () => {
  const pkl = stateDictPickle([tensor('a', '0', 4, [2, 2], [2, 1]), tensor('b', '1', 2, [2], [1]), tensor('wide', '2', 1, [3, 4], [0, 0])]);
  const archive = (extra: Parameters<typeof zipArchive>[0] = []) =>
    zipArchive([
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/data/0', data: f32([1, 2, 3, 4]) },
      { name: 'archive/data/1', data: f32([5, 6]) },
      { name: 'archive/data/2', data: f32([7]) },
      ...extra,
    ]);

  it('reads only expected names with expected shapes; the rest come back shape-only and listed', () => {
    const got = loadStateDictFromBytes(archive(), 'e.pth', { expected: new Map([['a', [2, 2]], ['b', [3]]]) });
    expect([...got.stateDict.get('a')!.data]).toEqual([1, 2, 3, 4]);
    expect(got.stateDict.get('b')!.shape).toEqual([2]);
    expect(got.stateDict.get('b')!.data.length).toBe(0);
    expect(got.unread.sort()).toEqual(['b', 'wide']);
  });

  it('materialises a broadcast view only when the model has it', () => {
    const got = loadStateDictFromBytes(archive(), 'e.pth', { expected: new Map([['wide', [3, 4]]]) });
    expect([...got.stateDict.get('wide')!.data]).toEqual(new Array(12).fill(7));
  });

  it('never inflates a member that no wanted tensor uses', () => {
    // A deflated member declaring 4 GiB: inflating it would allocate (or fail on) a 4 GiB buffer.
    const bytes = archive([{ name: 'archive/data/999', data: new Uint8Array(64), deflate: true, declaredSize: 0xffffffff }]);
    expect(() => loadStateDictFromBytes(bytes, 'e.pth', { expected: new Map([['a', [2, 2]]]) })).not.toThrow();
  });

  it('without a model, broadcast views beyond the budget are refused by name', () => {
    const big = stateDictPickle([tensor('bomb', '0', 4, [32768, 32768], [0, 0])]);
    const bytes = zipArchive([{ name: 'archive/data.pkl', data: big }, { name: 'archive/data/0', data: f32([1, 2, 3, 4]) }]);
    expect(() => parseTorchCheckpoint(bytes, 'b.pth')).toThrow(/tensor 'bomb' is a view of \[32768,32768\] \(1073741824 elements\) over storage '0' of 4 elements/);
  });
});

describe('pickle pre-scan', () => {
  const scan = (ops: number[]) => scanPickle(Uint8Array.from(ops), 0, 'p', 'data.pkl');
  it('walks a valid pickle to its STOP', () => {
    const pkl = stateDictPickle([tensor('a', '0', 4, [2, 2], [2, 1])]);
    expect(scanPickle(pkl, 0, 'p', 'data.pkl')).toBe(pkl.length);
  });
  it('refuses truncated arguments and unknown opcodes as corrupt', () => {
    expect(() => scan([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f])).toThrow(/^checkpoint p: corrupt pickle in data\.pkl \(truncated\)$/);
    expect(() => scan([0x80, 2, 0xfe])).toThrow(/unknown opcode 0xfe/);
    expect(() => scan([0x80, 2, 0x4e])).toThrow(/no STOP opcode/);
  });
  it('counts stack items across MARKs', () => {
    const n = PICKLE_LIMITS.maxStack;
    const ops = [0x80, 2, ...new Array(n / 2).fill(0x4e), 0x28, ...new Array(n / 2).fill(0x4e), 0x2e];
    expect(() => scan(ops)).toThrow(/exceeds 1000000 stack items/);
  });
});

describe('memory estimates', () => {
  it('parses and formats sizes, and refuses with the estimate and the remedy', () => {
    expect(parseBytes('512M')).toBe(512 * 2 ** 20);
    expect(parseBytes('8GiB')).toBe(8 * 2 ** 30);
    expect(() => parseBytes('lots')).toThrow(/--max-memory: expected a byte count/);
    expect(formatBytes(gramBytes(40000, 2, 2))).toBe('35.8 GiB');
    expect(() => requireMemory(2 ** 33, 'thing', 'use less', 2 ** 32)).toThrow(/^thing needs about 8 GiB, over the limit of 4 GiB; use less$/);
    expect(() => requireMemory(2 ** 31, 'thing', 'use less', 2 ** 32)).not.toThrow();
  });
});

it('fixtures stay loadable (views within storages are not broadcasts)', () => {
  const dir = path.resolve(__dirname, '../fixtures/checkpoints');
  for (const f of ['bare.pth', 'shared.pth', 'noncontiguous.pth', 'legacy.pth']) {
    expect(() => parseTorchCheckpoint(new Uint8Array(fs.readFileSync(path.join(dir, f))), f)).not.toThrow();
  }
});
