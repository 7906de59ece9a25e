import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeNpy, encodeNpy, npyToTensor, readNpy, tensorToNpy, writeNpy, type NpyArray } from '../../src/io/npy';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'io');
const fixture = (name: string) => path.join(FIXTURES, name);
let tmp: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-npy-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Mirrors ramp() of make_io_fixtures.py: offset + scale * i, then cast (float32 rounding via Math.fround). */
function ramp(n: number, scale: number, offset: number, f32 = true): number[] {
  return Array.from({ length: n }, (_, i) => (f32 ? Math.fround(offset + scale * i) : offset + scale * i));
}

describe('reading .npy files written by NumPy', () => {
  it('float32 of ranks 0, 1, 3, 4 and an empty array', () => {
    const scalar = readNpy(fixture('f32_scalar.npy'));
    expect(scalar.shape).toEqual([]);
    expect(Array.from(scalar.data as Float32Array)).toEqual([2.5]);
    const v = readNpy(fixture('f32_1d.npy'));
    expect([v.shape, v.dtype]).toEqual([[5], 'float32']);
    expect(Array.from(v.data as Float32Array)).toEqual(ramp(5, 0.25, -1));
    const chw = readNpy(fixture('f32_chw.npy'));
    expect(chw.shape).toEqual([3, 4, 5]);
    expect(Array.from(chw.data as Float32Array)).toEqual(ramp(60, 0.5, 1));
    const nchw = readNpy(fixture('f32_nchw.npy'));
    expect(nchw.shape).toEqual([2, 3, 4, 5]);
    expect(nchw.data).toBeInstanceOf(Float32Array);
    expect(Array.from(nchw.data as Float32Array)).toEqual(ramp(120, 0.01, 0));
    const empty = readNpy(fixture('f32_empty.npy'));
    expect(empty.shape).toEqual([0, 3]);
    expect(empty.data.length).toBe(0);
  });

  it('float64, uint8, int32 and int64 beyond 2^53', () => {
    const f64 = readNpy(fixture('f64_2d.npy'));
    expect([f64.shape, f64.dtype]).toEqual([[3, 4], 'float64']);
    expect(Array.from(f64.data as Float64Array)).toEqual(ramp(12, 1 / 3, 0.125, false));
    const u8 = readNpy(fixture('u8_3d.npy'));
    expect([u8.shape, u8.dtype]).toEqual([[2, 3, 4], 'uint8']);
    expect(Array.from(u8.data as Uint8Array)).toEqual(Array.from({ length: 24 }, (_, i) => (i * 11) % 256));
    const i4 = readNpy(fixture('i4_2d.npy'));
    expect([i4.shape, i4.dtype]).toEqual([[4, 3], 'int32']);
    expect(Array.from(i4.data as Int32Array)).toEqual(ramp(12, -1000, 7, false));
    const i8 = readNpy(fixture('i8_1d.npy'));
    expect(i8.dtype).toBe('int64');
    expect(Array.from(i8.data as BigInt64Array)).toEqual([0n, -1n, 2n ** 40n + 3n, -(2n ** 62n), 2n ** 62n + 5n]);
  });

  it('format versions 2.0 and 3.0, and Fortran order transposed to C order', () => {
    for (const name of ['f32_v2.npy', 'f32_v3.npy']) {
      const a = readNpy(fixture(name));
      expect(a.shape).toEqual([2, 3]);
      expect(Array.from(a.data as Float32Array)).toEqual(ramp(6, 1.5, 0));
    }
    const f = readNpy(fixture('f32_fortran.npy'));
    expect(f.shape).toEqual([3, 4, 5]);
    expect(Array.from(f.data as Float32Array)).toEqual(ramp(60, 1, 0));
  });

  it('rejects big-endian, truncated, missing and non-npy inputs with one-line messages', () => {
    expect(() => readNpy(fixture('f32_bigendian.npy'))).toThrow(/^npy '.*f32_bigendian\.npy': unsupported dtype '>f4'.*big-endian/);
    const bytes = fs.readFileSync(fixture('f32_nchw.npy'));
    expect(() => decodeNpy(bytes.subarray(0, bytes.length - 4), 'cut.npy')).toThrow(/^npy 'cut\.npy': truncated data/);
    expect(() => readNpy(path.join(tmp, 'nope.npy'))).toThrow(/does not exist/);
    expect(() => decodeNpy(new Uint8Array(20))).toThrow(/not a \.npy file/);
    const messages = [() => readNpy(fixture('f32_bigendian.npy')), () => decodeNpy(new Uint8Array(3))].map((f) => {
      try {
        f();
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    });
    for (const m of messages) expect(m).toMatch(/^npy '[^']*': [^\n]+$/);
  });
});

describe('writeNpy / readNpy round trips', () => {
  const cases: NpyArray[] = [
    { shape: [], dtype: 'float32', data: Float32Array.from([3.25]) },
    { shape: [7], dtype: 'float32', data: Float32Array.from(ramp(7, 0.1, -0.3)) },
    { shape: [2, 3, 4, 5], dtype: 'float32', data: Float32Array.from(ramp(120, 1e-3, 0)) },
    { shape: [2, 1, 2, 1, 3], dtype: 'float64', data: Float64Array.from(ramp(12, Math.PI, 1e-300, false)) },
    { shape: [4, 4], dtype: 'uint8', data: Uint8Array.from({ length: 16 }, (_, i) => i * 16) },
    { shape: [3, 2], dtype: 'int32', data: Int32Array.from([-2147483648, -1, 0, 1, 2147483647, 5]) },
    { shape: [2, 2], dtype: 'int64', data: BigInt64Array.from([-(2n ** 63n), 0n, 2n ** 53n + 1n, 2n ** 63n - 1n]) },
    { shape: [0, 5], dtype: 'float32', data: new Float32Array(0) },
  ];

  it.each(cases.map((c) => [c.dtype, c.shape.join('x') || 'scalar', c] as const))('%s %s', (_d, _s, arr) => {
    const file = path.join(tmp, `${arr.dtype}_${arr.shape.length}.npy`);
    writeNpy(file, arr);
    const back = readNpy(file);
    expect(back.shape).toEqual(arr.shape);
    expect(back.dtype).toBe(arr.dtype);
    expect(back.data).toEqual(arr.data);
    // numpy >= 1.14 layout: preamble + header padded to 64 bytes, header ends in '\n'.
    const bytes = fs.readFileSync(file);
    const dataStart = 10 + bytes.readUInt16LE(8);
    expect(dataStart % 64).toBe(0);
    expect(bytes[dataStart - 1]).toBe(0x0a);
  });

  it('writes the header numpy writes', () => {
    const bytes = encodeNpy({ shape: [3], dtype: 'float32', data: new Float32Array(3) });
    const header = Buffer.from(bytes.subarray(10, 10 + (bytes[8] | (bytes[9] << 8)))).toString('latin1');
    expect(header.trimEnd()).toBe("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }");
    const reference = fs.readFileSync(fixture('f32_1d.npy'));
    const written = encodeNpy(readNpy(fixture('f32_1d.npy')));
    expect(Buffer.from(written).equals(reference)).toBe(true); // byte-identical to numpy.save
  });

  it('validates dtype, data type and shape', () => {
    expect(() => encodeNpy({ shape: [2], dtype: 'float64', data: new Float32Array(2) })).toThrow(/does not match/);
    expect(() => encodeNpy({ shape: [3], dtype: 'float32', data: new Float32Array(2) })).toThrow(/holds 3 values/);
  });
});

describe('PyTorch layout converters', () => {
  it('npyToTensor turns NCHW into NHWC like numpy transpose(0, 2, 3, 1)', () => {
    const nchw = readNpy(fixture('f32_nchw.npy'));
    const nhwc = readNpy(fixture('f32_nhwc.npy'));
    const t = npyToTensor(nchw);
    expect(t.shape).toEqual([2, 4, 5, 3]);
    expect(Array.from(t.dataSync())).toEqual(Array.from(nhwc.data as Float32Array));
    t.dispose();
  });

  it('CHW gets N = 1; float64 is accepted; uint8 and rank 2 are rejected', () => {
    const chw = readNpy(fixture('f32_chw.npy'));
    const t = npyToTensor(chw);
    expect(t.shape).toEqual([1, 4, 5, 3]);
    // element (c=2, h=1, w=3) of CHW lands at [0, 1, 3, 2]
    expect(t.dataSync()[(1 * 5 + 3) * 3 + 2]).toBe((chw.data as Float32Array)[(2 * 4 + 1) * 5 + 3]);
    t.dispose();
    const f64 = npyToTensor({ shape: [1, 1, 1, 2], dtype: 'float64', data: Float64Array.from([0.5, 0.25]) });
    expect(Array.from(f64.dataSync())).toEqual([0.5, 0.25]);
    f64.dispose();
    expect(() => npyToTensor(readNpy(fixture('u8_3d.npy')))).toThrow(/float32 or float64/);
    expect(() => npyToTensor(readNpy(fixture('f64_2d.npy')))).toThrow(/\(N,C,H,W\) or \(C,H,W\)/);
  });

  it('tensorToNpy inverts npyToTensor for NCHW and CHW', () => {
    const nchw = readNpy(fixture('f32_nchw.npy'));
    const t = npyToTensor(nchw);
    const back = tensorToNpy(t, 'NCHW');
    expect(back.shape).toEqual([2, 3, 4, 5]);
    expect(back.data).toEqual(nchw.data);
    expect(() => tensorToNpy(t, 'CHW')).toThrow(/single image/);
    t.dispose();
    const chw = readNpy(fixture('f32_chw.npy'));
    const t1 = npyToTensor(chw);
    const chwBack = tensorToNpy(t1, 'CHW');
    expect(chwBack.shape).toEqual([3, 4, 5]);
    expect(chwBack.data).toEqual(chw.data);
    t1.dispose();
  });

  it('keeps tf.memory().numTensors flat', () => {
    const nchw = readNpy(fixture('f32_nchw.npy'));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      const t = npyToTensor(nchw);
      tensorToNpy(t);
      t.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
