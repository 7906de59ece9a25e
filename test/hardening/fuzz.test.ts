/**
 * Property tests of the file readers (fast-check, seeded): random mutations of valid .npy, safetensors, torch
 * zip and legacy (pickle) files either load or fail with a one-line Error of the reader's own kind, never a
 * RangeError/TypeError from deep inside, within a time and memory bound per case.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeNpy, encodeNpy } from '../../src/io/npy';
import { CheckpointError, encodeSafetensors, loadStateDictFromBytes, parseSafetensors, parseTorchCheckpoint } from '../../src/models/checkpoint';

const FIXTURES = path.resolve(__dirname, '../fixtures/checkpoints');
const RUNS = 300;
const MS_PER_CASE = 2000;
const RSS_GROWTH_MB = 512;

/** One mutation: flip bytes, overwrite a 1/4/8-byte field with an extreme value, truncate, insert or delete. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('field' as const),
    at: fc.nat(),
    width: fc.constantFrom(1, 2, 4, 8),
    value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x7fffffff, 0xffffffff, 2 ** 40, 2 ** 53 - 1),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(src: Uint8Array, muts: Mutation[]): Uint8Array {
  let b = Buffer.from(src);
  for (const m of muts) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === 'flip') b[at] = m.value;
    else if (m.kind === 'field') {
      const bytes = Buffer.alloc(8);
      bytes.writeBigUInt64LE(BigInt(m.value));
      bytes.copy(b, at, 0, Math.min(m.width, b.length - at));
    } else if (m.kind === 'truncate') b = b.subarray(0, at);
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    else b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
  }
  return new Uint8Array(b);
}

/**
 * Runs `load` on mutations of `valid`: it may succeed, or throw an Error (not a RangeError/TypeError) whose
 * one-line message matches `clear`; each case within MS_PER_CASE and the RSS growth bound.
 */
function fuzz(valid: Uint8Array, load: (bytes: Uint8Array) => unknown, clear: RegExp, seed: number) {
  const rss0 = process.memoryUsage().rss;
  let failures = 0;
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (muts) => {
      const bytes = mutate(valid, muts);
      const t0 = performance.now();
      try {
        load(bytes);
      } catch (e) {
        failures++;
        expect(e).toBeInstanceOf(Error);
        expect((e as Error).name).not.toMatch(/RangeError|TypeError/);
        expect((e as Error).message).toMatch(clear);
        expect((e as Error).message).not.toMatch(/\n/);
      }
      expect(performance.now() - t0).toBeLessThan(MS_PER_CASE);
      expect((process.memoryUsage().rss - rss0) / 2 ** 20).toBeLessThan(RSS_GROWTH_MB);
    }),
    { seed, numRuns: RUNS },
  );
  return failures;
}

describe('reader fuzzing', () => {
  it('.npy', () => {
    const valid = encodeNpy({ shape: [2, 3, 4], dtype: 'float32', data: Float32Array.from({ length: 24 }, (_, i) => i / 24) });
    const failures = fuzz(valid, (b) => decodeNpy(b, 'f.npy'), /^npy 'f\.npy': /, 1);
    expect(failures).toBeGreaterThan(RUNS / 10); // the mutations do reach the checks
  });

  it('safetensors', () => {
    const t = (n: number) => ({ shape: [n], dtype: 'float32' as const, data: Float32Array.from({ length: n }, (_, i) => i) });
    const valid = encodeSafetensors(new Map([['a', t(4)], ['b.weight', t(6)]]), { 'irlens.family': 'refnet' });
    const failures = fuzz(valid, (b) => parseSafetensors(b, 'f.st'), /^checkpoint f\.st: /, 2);
    expect(failures).toBeGreaterThan(RUNS / 10);
  });

  it('torch zip (data.pkl + storages)', () => {
    const valid = new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'bare.pth')));
    const failures = fuzz(valid, (b) => loadStateDictFromBytes(b, 'z.pth'), /^checkpoint z\.pth: /, 3);
    expect(failures).toBeGreaterThan(RUNS / 10);
  });

  it('legacy torch.save (raw pickles)', () => {
    const valid = new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'legacy.pth')));
    const failures = fuzz(valid, (b) => parseTorchCheckpoint(b, 'l.pth'), /^checkpoint l\.pth: /, 4);
    expect(failures).toBeGreaterThan(RUNS / 10);
  });

  it('the zip reader only throws CheckpointError on mutated archives', () => {
    const valid = new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'shared.pth')));
    fuzz(valid, (b) => {
      try {
        parseTorchCheckpoint(b, 's.pth');
      } catch (e) {
        if (!(e instanceof CheckpointError)) throw new Error(`not a CheckpointError: ${String(e)}`.split('\n')[0]);
        throw e;
      }
    }, /^checkpoint s\.pth: /, 5);
  });
});
