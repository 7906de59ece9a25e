import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { zipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeNpz, readNpz } from '../../src/io/npz';
import { encodeNpy } from '../../src/io/npy';

const FIX = path.join(__dirname, '..', 'fixtures', 'npz');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-npz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const npy = (n: number) => encodeNpy({ shape: [n, 2], dtype: 'float64', data: Float64Array.from({ length: 2 * n }, (_, i) => i) });

/** Rewrites the uncompressed size of every member, in the local and the central headers. */
function declareSize(zip: Uint8Array, size: number): Uint8Array {
  const out = Uint8Array.from(zip);
  const v = new DataView(out.buffer);
  for (let i = 0; i + 4 <= out.length; i++) {
    const sig = v.getUint32(i, true);
    if (sig === 0x04034b50) v.setUint32(i + 22, size, true);
    if (sig === 0x02014b50) v.setUint32(i + 24, size, true);
  }
  return out;
}

describe('readNpz', () => {
  it('reads numpy.savez (stored) and savez_compressed (deflated) archives in archive order', () => {
    const a = readNpz(path.join(FIX, 'a.npz'));
    expect(a.map((m) => m.name)).toEqual(['conv1', 'block.0']);
    expect(a[0].array.shape).toEqual([12, 3, 2, 2]);
    expect(a[0].array.dtype).toBe('float32');
    const b = readNpz(path.join(FIX, 'b.npz'));
    expect(b.map((m) => [m.name, m.array.shape])).toEqual([['feat', [12, 4]], ['head', [12, 3, 1]]]);
  });

  it('refuses declared sizes the archive cannot hold, before inflating', () => {
    const stored = zipSync({ 'x.npy': [npy(4), { level: 0 }] });
    expect(() => decodeNpz(declareSize(stored, 10_000_000), 'big.npz')).toThrow(/^npz 'big\.npz': member 'x\.npy' declares 10000000 bytes, more than its \d+ stored bytes can hold$/);
    const deflated = zipSync({ 'x.npy': [npy(4), { level: 6 }] });
    expect(() => decodeNpz(declareSize(deflated, 0xfffffff0), 'bomb.npz')).toThrow(/^npz 'bomb\.npz': member 'x\.npy' declares \d+ bytes, more than its \d+ deflated bytes can hold$/);
    // Within the ratio but not what it inflates to.
    expect(() => decodeNpz(declareSize(deflated, 100), 'lie.npz')).toThrow(/^npz 'lie\.npz': /);
    expect(() => decodeNpz(zipSync({ 'x.npy': npy(400) }), 'cap.npz', { maxBytes: 1000 })).toThrow(/^npz 'cap\.npz': member 'x\.npy': the arrays need .* over the limit/);
  });

  it('one-line errors naming the file and member', () => {
    expect(() => decodeNpz(zipSync({ 'notes.txt': new Uint8Array(3) }), 'n.npz')).toThrow(/^npz 'n\.npz': member 'notes\.txt' is not a \.npy array/);
    expect(() => decodeNpz(zipSync({ 'x.npy': new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]) }), 'bad.npz')).toThrow(/^npz 'bad\.npz': member 'x\.npy': not a \.npy file/);
    expect(() => decodeNpz(new Uint8Array(100), 'zero.npz')).toThrow(/^npz 'zero\.npz': not a \.npz archive/);
    expect(() => readNpz(path.join(dir, 'missing.npz'))).toThrow(/^npz '.*missing\.npz': file does not exist$/);
    const f = path.join(dir, 'cut.npz');
    fs.writeFileSync(f, fs.readFileSync(path.join(FIX, 'b.npz')).subarray(0, 500));
    expect(() => readNpz(f)).toThrow(/^npz '.*cut\.npz': /);
  });
});
