/**
 * Bad-input suite, inputs and options: sizes that would not fit, non-finite and empty arrays, config keys that
 * are not config, and the raw-message cases of issue 9 section 4, each through the CLI in a child process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../src/models';
import { createModel } from '../../src/models/registry';
import { saveModel } from '../../src/weights/spec';
import { errorLines, expectRefusal, expectSuccess, f32, filesIn, npyBytes, pngHeaderOnly, printTable, runChild, tempDir } from './harness';

const tmp = tempDir('inputs');
const out = path.join(tmp, 'out');
const good = path.join(tmp, 'good.npy');
afterAll(() => {
  printTable('inputs');
  const left = filesIn(out);
  fs.rmSync(tmp, { recursive: true, force: true });
  expect(left).toEqual([]);
});
beforeAll(() => {
  fs.mkdirSync(out);
  fs.writeFileSync(good, npyBytes('<f4', [1, 3, 8, 8], f32(new Array(192).fill(0.5))));
});

function write(name: string, bytes: Uint8Array | string): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, bytes);
  return file;
}
const restore = (inputFile: string, ...more: string[]) =>
  runChild(['restore', '--model', 'refnet-tiny', '--input', inputFile, '--output', path.join(out, 'y.npy'), ...more]);

describe.concurrent('sizes', () => {
  it('a 16000x16000 PNG header is refused before decoding', async () => {
    const file = write('big.png', pngHeaderOnly(16000, 16000));
    expect(fs.statSync(file).size).toBeLessThan(100_000);
    const r = await runChild(['restore', '--model', 'refnet-tiny', '--input', file, '--output', path.join(out, 'y.png')]);
    expectRefusal('sizes', r, /image '.*big\.png' \(16000x16000, 3 channels, decoded to float32\) needs about 5\.72 GiB, over the limit of 4 GiB; .*IRLENS_MAX_MEMORY/);
  });
  it('cka of two 40000-row .npy files is refused with the Gram estimate', async () => {
    const a = write('a.npy', npyBytes('<f4', [40000, 2], f32(new Array(80000).fill(0.25))));
    const b = write('b.npy', npyBytes('<f4', [40000, 2], f32(new Array(80000).fill(0.5))));
    expectRefusal('sizes', await runChild(['cka', a, b]), /cka of 40000 rows .* needs about 35\.8 GiB, .*use fewer rows/);
  });
  it('bench --size 20000x20000 is refused with an estimate', async () => {
    const r = await runChild(['bench', '--model', 'refnet-tiny', '--size', '20000x20000', '--repeat', '1']);
    expectRefusal('sizes', r, /--size 20000x20000 --batch 1: a forward of refnet-tiny needs about [\d.]+ GiB, .*smaller --size/);
  });
});

describe.concurrent('non-finite, empty and out-of-range inputs', () => {
  it('a NaN pixel in a .npy input is refused with its index', async () => {
    const v = new Array(192).fill(0.5);
    v[1 * 64 + 2 * 8 + 3] = NaN;
    expectRefusal('non-finite', await restore(write('nan.npy', npyBytes('<f4', [1, 3, 8, 8], f32(v)))), /--input '.*nan\.npy': value NaN at index \(0, 1, 2, 3\) \(values must be finite\)/);
  });
  it('an Infinity in a float64 .npy input is refused', async () => {
    const v = new Float64Array(192).fill(0.5);
    v[5] = -Infinity;
    expectRefusal('non-finite', await restore(write('inf.npy', npyBytes('<f8', [3, 8, 8], new Uint8Array(v.buffer)))), /value -Infinity at index \(0, 0, 5\)/);
  });
  it('NaN weights in an irlens checkpoint are refused with the tensor name', async () => {
    const model = createModel('refnet-tiny');
    const file = path.join(tmp, 'nan.safetensors');
    saveModel(model, file);
    model.dispose();
    // Patch conv_first.bias's first float to NaN in place (find it through the header).
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString()) as Record<string, { data_offsets: number[] }>;
    bytes.writeFloatLE(NaN, 8 + n + header['conv_first.bias'].data_offsets[0]);
    fs.writeFileSync(file, bytes);
    const r = await runChild(['restore', '--model', file, '--input', good, '--output', path.join(out, 'y.npy')]);
    expectRefusal('non-finite', r, /model '.*nan\.safetensors': tensor 'conv_first\.bias' has NaN at index 0 \(weights must be finite\)/);
  });
  it('a forward that overflows names the first hook point that went non-finite', async () => {
    const r = await restore(write('huge.npy', npyBytes('<f4', [1, 3, 8, 8], f32(new Array(192).fill(3e38)))));
    expectRefusal('non-finite', r, /the forward produced NaN\/Infinity, first at hook point 'conv_first'/);
  });
  it('an empty (1,3,0,0) array is refused', async () => {
    expectRefusal('empty', await restore(write('empty.npy', npyBytes('<f4', [1, 3, 0, 0], new Uint8Array(0)))), /array of shape \(1, 3, 0, 0\) is empty/);
  });
  it('a (1,3,0,1e20) header is refused', async () => {
    const r = await restore(write('e20.npy', npyBytes('<f4', [1, 3, 0, '100000000000000000000'], new Uint8Array(0))));
    expectRefusal('empty', r, /shape \(1, 3, 0, 100000000000000000000\) has a dimension too large to index/);
  });
  it('values outside [0,1] warn once and still run', async () => {
    const v = Array.from({ length: 192 }, (_, i) => (i % 3) - 0.5);
    const y = path.join(tmp, 'range-out.npy');
    const r = await runChild(['restore', '--model', 'refnet-tiny', '--input', write('range.npy', npyBytes('<f4', [1, 3, 8, 8], f32(v))), '--output', y]);
    expectSuccess('range warning', r);
    expect(r.stderr.split('\n').filter((l) => l.includes('outside [0,1]'))).toHaveLength(1);
  });
});

describe.concurrent('config keys that are not config', () => {
  for (const key of ['constructor', '__proto__', 'toString']) {
    it(`--config '{"${key}": ...}' is refused`, async () => {
      const r = await restore(good, '--config', `{"${key}": {"dim": 4}}`);
      expectRefusal('config keys', r, new RegExp(`config: unknown key '${key}' for refnet`));
    });
  }
});

describe.concurrent('errors that say what to do', () => {
  it('a 1x1 input to restormer names the minimum size', async () => {
    const r = await runChild(['restore', '--model', 'restormer-tiny@random', '--input', write('one.npy', npyBytes('<f4', [1, 3, 1, 1], f32([0.5, 0.5, 0.5]))), '--output', path.join(out, 'y.npy')]);
    expectRefusal('messages', r, /input of 1x1 pixels is too small: .*at least 2 pixels per side/);
  });
  it('a uint8 .npy names the option and the fix', async () => {
    expectRefusal('messages', await restore(write('u8.npy', npyBytes('|u1', [1, 3, 2, 2], new Uint8Array(12)))), /--input '.*u8\.npy': expected a float32 or float64 array, got uint8 \(save it with arr\.astype\(np\.float32\)\)/);
  });
  it('a rank-2 .npy names the option', async () => {
    expectRefusal('messages', await restore(write('r2.npy', npyBytes('<f4', [8, 8], f32(new Array(64).fill(0.5))))), /--input '.*r2\.npy': expected shape \(N,C,H,W\) or \(C,H,W\), got \(8, 8\)/);
  });
  it('a truncated safetensors file is called that, not a plain pickle', async () => {
    const model = createModel('refnet-tiny');
    const file = path.join(tmp, 'cut.safetensors');
    saveModel(model, file);
    model.dispose();
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, 100));
    const r = await runChild(['restore', '--model', 'refnet-tiny', '--weights', file, '--input', good, '--output', path.join(out, 'y.npy')]);
    expectRefusal('messages', r, /checkpoint .*cut\.safetensors: truncated safetensors file \(header declares \d+ bytes, the file has 92/);
  });
  it('an output path that is a directory', async () => {
    const dir = path.join(out, 'adir.npy');
    fs.mkdirSync(dir);
    const r = await runChild(['restore', '--model', 'refnet-tiny', '--input', good, '--output', dir]);
    fs.rmdirSync(dir); // must be empty: no temp file left inside or beside it
    expectRefusal('messages', r, /cannot write '.*adir\.npy': it is a directory/);
  });
  it('an output path whose parent is a file', async () => {
    const r = await runChild(['restore', '--model', 'refnet-tiny', '--input', good, '--output', path.join(good, 'y.npy')]);
    expectRefusal('messages', r, /cannot write '.*good\.npy\/y\.npy': a parent path is a file, not a directory/);
  });
  it('the CLI never prints a stack or bundle source for an error', async () => {
    const r = await restore(path.join(tmp, 'missing.npy'));
    expect(errorLines(r.stderr)).toHaveLength(1);
    expectRefusal('messages', r, /--input: file '.*missing\.npy' does not exist/);
  });
});
