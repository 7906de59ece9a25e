import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeSafetensors,
  extractStateDict,
  loadStateDict,
  loadStateDictFromBytes,
  parseSafetensors,
  parseTorchCheckpoint,
  readSafetensors,
  readTorchCheckpoint,
  RawTensor,
  StateDict,
  writeSafetensors,
} from '../../src/models/checkpoint';
import { decodeElements, floatToBFloat16Bits, floatToHalfBits } from '../../src/models/checkpoint/tensor';

// Fixtures come from test/fixtures/make_checkpoint_fixtures.py (Debian python3-torch 1.13).
const DIR = path.join(__dirname, '..', 'fixtures', 'checkpoints');
const fixture = (name: string) => path.join(DIR, name);
const fixtureBytes = (name: string) => new Uint8Array(fs.readFileSync(fixture(name)));

interface ExpectedTensor {
  dtype: string;
  shape: number[];
  data: number[];
}
type ExpectedDict = Record<string, ExpectedTensor>;
const expected: Record<string, any> = JSON.parse(fs.readFileSync(fixture('expected.json'), 'utf8'));

function expectTensor(t: RawTensor | undefined, e: ExpectedTensor, key: string): void {
  expect(t, key).toBeDefined();
  expect(t!.dtype, key).toBe(e.dtype);
  expect(t!.shape, key).toEqual(e.shape);
  expect(t!.data.length, key).toBe(e.data.length);
  if (t!.dtype === 'int64') {
    expect(Array.from(t!.data as BigInt64Array), key).toEqual(e.data.map((v) => BigInt(v)));
  } else if (['float32', 'float16', 'bfloat16', 'float64'].includes(t!.dtype)) {
    expect(t!.data, key).toBeInstanceOf(Float32Array);
    // Exact: the expected values are float32 values printed as doubles.
    expect(Array.from(t!.data as Float32Array), key).toEqual(e.data.map((v) => Math.fround(v)));
  } else {
    expect(Array.from(t!.data as Int32Array), key).toEqual(e.data);
  }
}

function expectStateDict(sd: StateDict, e: ExpectedDict): void {
  expect([...sd.keys()]).toEqual(Object.keys(e));
  for (const [k, v] of Object.entries(e)) expectTensor(sd.get(k), v, k);
}

/** Rebuilds a fixture zip with some entries changed (undefined removes one). */
function patchZip(name: string, patch: (entries: Record<string, Uint8Array>) => void): Uint8Array {
  const entries = unzipSync(fixtureBytes(name));
  patch(entries);
  return zipSync(entries, { level: 0 });
}

function replaceBytes(haystack: Uint8Array, from: string, to: string): Uint8Array {
  const text = Buffer.from(haystack).toString('latin1');
  expect(text.includes(from)).toBe(true);
  return new Uint8Array(Buffer.from(text.split(from).join(to), 'latin1'));
}

/** A zip that looks like torch.save output whose data.pkl is the given pickle. */
function zipWithPickle(pkl: Uint8Array): Uint8Array {
  return zipSync({ 'archive/data.pkl': pkl, 'archive/version': strToU8('3\n') }, { level: 0 });
}

const u32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];
const binunicode = (s: string) => [0x58, ...u32(Buffer.byteLength(s)), ...Buffer.from(s)];

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-ckpt-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('torch.save zip checkpoints', () => {
  it('reads a bare state_dict with float32 and int64 (num_batches_tracked) entries', async () => {
    const r = await loadStateDict(fixture('bare.pth'));
    expect(r.format).toBe('torch-zip');
    expect(r.source).toBe('(root)');
    expect(r.metadata).toBeUndefined();
    expectStateDict(r.stateDict, expected['bare.pth']);
    expect(r.stateDict.get('bn.num_batches_tracked')!.data).toBeInstanceOf(BigInt64Array);
  });

  it("unwraps {'params': sd}", async () => {
    const r = await loadStateDict(fixture('params.pth'));
    expect(r.source).toBe('params');
    expectStateDict(r.stateDict, expected['params.pth']);
  });

  it("prefers 'params_ema' over 'params' unless a key is given", async () => {
    const ema = await loadStateDict(fixture('params_ema.pth'));
    expect(ema.source).toBe('params_ema');
    expectStateDict(ema.stateDict, expected['params_ema.pth']);
    const plain = await loadStateDict(fixture('params_ema.pth'), { key: 'params' });
    expect(plain.source).toBe('params');
    expectStateDict(plain.stateDict, expected['params_ema.pth#params']);
    await expect(loadStateDict(fixture('params_ema.pth'), { key: 'ema' })).rejects.toThrow(
      /params_ema\.pth: no key 'ema' \(top-level keys: params_ema, params\)/,
    );
  });

  it("reads MPRNet-style {'epoch', 'state_dict' with 'module.' keys, 'optimizer'} as plain data", async () => {
    const r = await loadStateDict(fixture('mprnet_style.pth'));
    expect(r.source).toBe('state_dict');
    expectStateDict(r.stateDict, expected['mprnet_style.pth']);

    const { object, format } = await readTorchCheckpoint(fixture('mprnet_style.pth'));
    expect(format).toBe('torch-zip');
    const top = object as Map<string, any>;
    expect(top).toBeInstanceOf(Map);
    expect(top.get('epoch')).toBe(3);
    expect([...top.get('state_dict').keys()][0]).toBe('module.conv1.weight');
    const opt = top.get('optimizer') as Map<string, any>;
    const exp = expected['mprnet_style.pth#optimizer'];
    const state0 = opt.get('state').get(0) as Map<string, RawTensor>;
    for (const [k, v] of Object.entries(exp.state0 as ExpectedDict)) expectTensor(state0.get(k), v, k);
    const group = opt.get('param_groups')[0] as Map<string, unknown>;
    for (const [k, v] of Object.entries(exp.param_groups[0] as Record<string, unknown>)) expect(group.get(k), k).toEqual(v);
  });

  it('converts float16/bfloat16/float64 to Float32Array and keeps integer and bool dtypes', async () => {
    const r = await loadStateDict(fixture('dtypes.pth'));
    expectStateDict(r.stateDict, expected['dtypes.pth']);
    const sd = r.stateDict;
    expect(sd.get('i32')!.data).toBeInstanceOf(Int32Array);
    expect(sd.get('i16')!.data).toBeInstanceOf(Int16Array);
    expect(sd.get('i8')!.data).toBeInstanceOf(Int8Array);
    expect(sd.get('u8')!.data).toBeInstanceOf(Uint8Array);
    expect(sd.get('bool')!.data).toBeInstanceOf(Uint8Array);
    expect(sd.get('scalar')!.shape).toEqual([]);
    expect(sd.get('empty')!.shape).toEqual([0, 3]);
  });

  it('resolves shared storages: one PReLU under many keys and several views of one storage', async () => {
    const r = await loadStateDict(fixture('shared.pth'));
    expectStateDict(r.stateDict, expected['shared.pth']);
    const { object } = await readTorchCheckpoint(fixture('shared.pth'));
    const names = [...(object as Map<string, unknown>).keys()].filter((k) => k.endsWith('.act.weight'));
    expect(names).toHaveLength(5);
    // The archive holds the shared parameter once.
    const storages = Object.keys(unzipSync(fixtureBytes('shared.pth'))).filter((n) => n.includes('/data/'));
    expect(storages).toHaveLength(2);
  });

  it('materialises non-contiguous views (transpose, permute, slices with offset, stride 0) row-major', async () => {
    const r = await loadStateDict(fixture('noncontiguous.pth'));
    expectStateDict(r.stateDict, expected['noncontiguous.pth']);
  });

  it('detects the format by content, not by extension', async () => {
    const disguised = path.join(tmp, 'really-a-pth.safetensors');
    fs.copyFileSync(fixture('params.pth'), disguised);
    const r = await loadStateDict(disguised);
    expect(r.format).toBe('torch-zip');
    expectStateDict(r.stateDict, expected['params.pth']);
  });

  it('reads archives whatever their top-level folder is called', () => {
    // torch.save(path) names the folder after the file ('bare/'); torch.save(buffer) uses 'archive/'.
    expect(Object.keys(unzipSync(fixtureBytes('bare.pth')))).toContain('bare/data.pkl');
    const renamed = zipSync(
      Object.fromEntries(Object.entries(unzipSync(fixtureBytes('bare.pth'))).map(([k, v]) => [k.replace(/^[^/]+\//, 'my_model/'), v])),
      { level: 0 },
    );
    expectStateDict(loadStateDictFromBytes(renamed, 'renamed.pth').stateDict, expected['bare.pth']);
  });
});

describe('legacy (non-zip) torch.save checkpoints', () => {
  it('reads every dtype, shared storages and strided views', async () => {
    const r = await loadStateDict(fixture('legacy.pth'));
    expect(r.format).toBe('torch-legacy');
    expect(r.source).toBe('state_dict');
    expectStateDict(r.stateDict, expected['legacy.pth']);
    const { object } = await readTorchCheckpoint(fixture('legacy.pth'));
    expect((object as Map<string, unknown>).get('epoch')).toBe(9);
  });

  it('reports truncation in one line', () => {
    const bytes = fixtureBytes('legacy.pth');
    expect(() => loadStateDictFromBytes(bytes.subarray(0, bytes.length - 10), 'cut.pth')).toThrow(
      /^checkpoint cut\.pth: storage '\d+' is truncated$/,
    );
    expect(() => loadStateDictFromBytes(bytes.subarray(0, 400), 'cut.pth')).toThrow(/^checkpoint cut\.pth: corrupt pickle in object pickle \(/);
  });
});

describe('unpickling never executes code', () => {
  const refusal = (file: string, name: string) =>
    `checkpoint ${file}: refusing to load global '${name}' (only tensor/storage/OrderedDict globals are allowed)`;

  it('refuses the os.system archive written by the fixture script', async () => {
    await expect(loadStateDict(fixture('malicious.pth'))).rejects.toThrow(refusal(fixture('malicious.pth'), 'os.system'));
    await expect(readTorchCheckpoint(fixture('malicious.pth'))).rejects.toThrow(/refusing to load global 'os\.system'/);
  });

  it('refuses STACK_GLOBAL builtins.eval (protocol 4) and INST subprocess.Popen', () => {
    // PROTO 4, 'builtins', 'eval', STACK_GLOBAL, ('1+1',), REDUCE, STOP
    const evalPkl = Uint8Array.from([0x80, 4, ...binunicode('builtins'), ...binunicode('eval'), 0x93, ...binunicode('1+1'), 0x85, 0x52, 0x2e]);
    expect(() => loadStateDictFromBytes(zipWithPickle(evalPkl), 'eval.pth')).toThrow(refusal('eval.pth', 'builtins.eval'));
    // Protocol 0: MARK, 'ls', INST subprocess Popen, STOP
    const instPkl = new Uint8Array(Buffer.from("(S'ls'\nisubprocess\nPopen\n.", 'latin1'));
    expect(() => loadStateDictFromBytes(zipWithPickle(instPkl), 'inst.pth')).toThrow(refusal('inst.pth', 'subprocess.Popen'));
  });

  it('refuses a forbidden global hidden after valid tensors, in both formats', () => {
    const zipped = patchZip('bare.pth', (e) => {
      const name = Object.keys(e).find((n) => n.endsWith('data.pkl'))!;
      e[name] = replaceBytes(e[name], 'collections\nOrderedDict\n', 'posix\nsystem\n');
    });
    expect(() => loadStateDictFromBytes(zipped, 'z.pth')).toThrow(refusal('z.pth', 'posix.system'));
    const legacy = replaceBytes(fixtureBytes('legacy.pth'), 'collections\nOrderedDict\n', 'nt\nsystem\n');
    expect(() => loadStateDictFromBytes(legacy, 'l.pth')).toThrow(refusal('l.pth', 'nt.system'));
  });
});

describe('hand-built hostile pickles', () => {
  const GLOBAL = (mod: string, name: string) => [0x63, ...Buffer.from(`${mod}\n${name}\n`)];
  const MARK = 0x28, TUPLE = 0x74, TUPLE1 = 0x85, REDUCE = 0x52, BINPERSID = 0x51, STOP = 0x2e;
  /** _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 2), 0, (2,), (1,), False, OrderedDict()) */
  const tensorOps = [
    ...GLOBAL('torch._utils', '_rebuild_tensor_v2'),
    MARK,
    ...[MARK, ...binunicode('storage'), ...GLOBAL('torch', 'FloatStorage'), ...binunicode('0'), ...binunicode('cpu'), 0x4b, 2, TUPLE, BINPERSID],
    ...[0x4b, 0, 0x4b, 2, TUPLE1, 0x4b, 1, TUPLE1, 0x89, ...GLOBAL('collections', 'OrderedDict'), 0x29, REDUCE],
    TUPLE,
    REDUCE,
  ];
  const archive = (ops: number[]) =>
    zipSync({ 'archive/data.pkl': Uint8Array.from([0x80, 2, ...ops, STOP]), 'archive/data/0': new Uint8Array(Float32Array.from([3, 4]).buffer) }, { level: 0 });

  it('the hand-built tensor pickle itself loads', async () => {
    const { object } = parseTorchCheckpoint(archive(tensorOps), 'ok.pth');
    expect(object).toEqual({ shape: [2], dtype: 'float32', data: Float32Array.from([3, 4]) });
  });

  it('BUILD cannot reshape a tensor after its bounds check', () => {
    // tensor, then {'shape': (9,)} BUILD
    const ops = [...tensorOps, 0x7d, ...binunicode('shape'), 0x4b, 9, TUPLE1, 0x73, 0x62];
    expect(() => parseTorchCheckpoint(archive(ops), 'b.pth')).toThrow(/^checkpoint b\.pth: corrupt pickle in archive\/data\.pkl \(.*read only/);
  });

  it('other persistent ids (pickled module source) are refused', () => {
    const ops = [MARK, ...binunicode('module'), ...binunicode('Net'), TUPLE, BINPERSID];
    expect(() => parseTorchCheckpoint(archive(ops), 'm.pth')).toThrow(/^checkpoint m\.pth: unsupported persistent id 'module' \(expected a storage\)$/);
  });
});

describe('one-line errors', () => {
  const oneLine = (fn: () => unknown, pattern: RegExp) => {
    let message = '';
    try {
      fn();
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(pattern);
    expect(message).not.toContain('\n');
  };

  it('not a checkpoint', async () => {
    const text = path.join(tmp, 'notes.pth');
    fs.writeFileSync(text, 'just some text, definitely not a checkpoint\n');
    await expect(loadStateDict(text)).rejects.toThrow(/notes\.pth: not a checkpoint; expected a torch\.save zip archive/);
    // A plain pickle (no torch framing) is named as such.
    oneLine(() => loadStateDictFromBytes(Uint8Array.from([0x80, 2, 0x7d, 0x2e]), 'p.pkl'), /p\.pkl: not a checkpoint \(it is a plain pickle/);
    await expect(loadStateDict(path.join(tmp, 'missing.pth'))).rejects.toThrow(/missing\.pth: cannot read file \(ENOENT\)/);
  });

  it('truncated or corrupt zip', () => {
    const bytes = fixtureBytes('params.pth');
    oneLine(() => loadStateDictFromBytes(bytes.subarray(0, bytes.length >> 1), 'half.pth'), /^checkpoint half\.pth: truncated or corrupt zip archive \(/);
  });

  it('missing data.pkl', () => {
    const noPickle = patchZip('bare.pth', (e) => {
      for (const k of Object.keys(e)) if (k.endsWith('data.pkl')) delete e[k];
    });
    oneLine(() => loadStateDictFromBytes(noPickle, 'np.pth'), /^checkpoint np\.pth: zip archive has no <name>\/data\.pkl/);
  });

  it('missing storage record', () => {
    const noStorage = patchZip('bare.pth', (e) => {
      for (const k of Object.keys(e)) if (k.endsWith('/data/0')) delete e[k];
    });
    oneLine(() => loadStateDictFromBytes(noStorage, 'ns.pth'), /^checkpoint ns\.pth: missing storage record 'bare\/data\/0'$/);
    const short = patchZip('bare.pth', (e) => {
      const k = Object.keys(e).find((n) => n.endsWith('/data/0'))!;
      e[k] = e[k].subarray(0, 7);
    });
    oneLine(() => loadStateDictFromBytes(short, 'sh.pth'), /storage record 'bare\/data\/0' has 7 bytes, expected \d+/);
  });

  it('unknown storage dtype', () => {
    const complex = patchZip('bare.pth', (e) => {
      const name = Object.keys(e).find((n) => n.endsWith('data.pkl'))!;
      e[name] = replaceBytes(e[name], 'torch\nFloatStorage\n', 'torch\nComplexFloatStorage\n');
    });
    oneLine(() => loadStateDictFromBytes(complex, 'c.pth'), /^checkpoint c\.pth: unsupported storage type 'torch\.ComplexFloatStorage'/);
  });

  it('view out of bounds of its storage', () => {
    // Claim the conv1.weight storage holds fewer elements than its view needs.
    const lying = patchZip('bare.pth', (e) => {
      const k = Object.keys(e).find((n) => n.endsWith('/data/0'))!;
      e[k] = e[k].subarray(0, e[k].length - 4);
      const name = Object.keys(e).find((n) => n.endsWith('data.pkl'))!;
      // numel 108 is pickled as BININT1 0x6c right before TUPLE of the persistent id
      const text = Buffer.from(e[name]).toString('latin1');
      const at = text.indexOf('cpu');
      const bytes = new Uint8Array(e[name]);
      const numelAt = text.indexOf('K\x6c', at);
      bytes[numelAt + 1] = 107;
      e[name] = bytes;
    });
    oneLine(() => loadStateDictFromBytes(lying, 'oob.pth'), /^checkpoint oob\.pth: tensor view \[4,3,3,3\] .* exceeds storage '0' \(107 elements\)$/);
  });

  it('state dict extraction problems', () => {
    oneLine(() => extractStateDict([1, 2], { file: 'x' }), /^checkpoint x: top-level object is a list, expected a dict$/);
    oneLine(
      () => extractStateDict(new Map<string, unknown>([['epoch', 3], ['net', new Map()]]), { file: 'x' }),
      /entry 'epoch' of '\(root\)' is a number, not a tensor \(top-level keys: epoch, net; pass a key\)/,
    );
    const t: RawTensor = { shape: [1], dtype: 'float32', data: new Float32Array(1) };
    oneLine(
      () => extractStateDict(new Map([['module.a', t], ['a', t]])),
      /key 'a' appears twice after stripping 'module\.'/,
    );
    // Plain objects work as well as Maps.
    expect([...extractStateDict({ model: { 'module.w': t } }).stateDict.keys()]).toEqual(['w']);
  });
});

describe('safetensors', () => {
  it('reads a file written by an independent (Python) writer, metadata included', () => {
    const { tensors, metadata } = readSafetensors(fixture('python_written.safetensors'));
    expect(metadata).toEqual({ format: 'pt', note: 'hand-written' });
    const e = expected['python_written.safetensors'] as ExpectedDict;
    expect(new Set(tensors.keys())).toEqual(new Set(Object.keys(e)));
    for (const [k, v] of Object.entries(e)) expectTensor(tensors.get(k), v, k);
  });

  it('round-trips every dtype and the metadata through writeSafetensors (atomic) and loadStateDict', async () => {
    const src = (await loadStateDict(fixture('dtypes.pth'))).stateDict;
    const file = path.join(tmp, 'out', 'dtypes.safetensors');
    writeSafetensors(file, src, { format: 'pt', 'irlens.family': 'restormer' });
    expect(fs.readdirSync(path.dirname(file))).toEqual(['dtypes.safetensors']); // no temp file left
    const back = await loadStateDict(file);
    expect(back.format).toBe('safetensors');
    expect(back.metadata).toEqual({ format: 'pt', 'irlens.family': 'restormer' });
    expect(new Set(back.stateDict.keys())).toEqual(new Set(src.keys()));
    for (const [k, t] of src) {
      const b = back.stateDict.get(k)!;
      expect(b.dtype, k).toBe(t.dtype);
      expect(b.shape, k).toEqual(t.shape);
      expect(b.data, k).toEqual(t.data);
    }
  });

  it('follows the spec byte for byte: LE u64 size, padded JSON header, sorted keys, F32 data', () => {
    const w: RawTensor = { shape: [2, 2], dtype: 'float32', data: Float32Array.from([1, -2, 3.5, 0.25]) };
    const b: RawTensor = { shape: [3], dtype: 'uint8', data: Uint8Array.from([7, 8, 9]) };
    const h: RawTensor = { shape: [1], dtype: 'float16', data: Float32Array.from([1.5]) };
    const bytes = encodeSafetensors(new Map([['z.weight', w], ['a.mask', b], ['m.half', h]]), { format: 'pt' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const headerText = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
    expect(headerText.trimEnd().length).toBeGreaterThan(n - 8);
    const header = JSON.parse(headerText);
    expect(Object.keys(header)).toEqual(['__metadata__', 'a.mask', 'm.half', 'z.weight']);
    expect(header.__metadata__).toEqual({ format: 'pt' });
    // Widest dtype first so every tensor is aligned to its element size.
    expect(header['z.weight']).toEqual({ dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] });
    expect(header['m.half']).toEqual({ dtype: 'F16', shape: [1], data_offsets: [16, 18] });
    expect(header['a.mask']).toEqual({ dtype: 'U8', shape: [3], data_offsets: [18, 21] });
    expect(bytes.length).toBe(8 + n + 21);
    const data = bytes.slice(8 + n);
    expect(Array.from(new Float32Array(data.buffer, 0, 4))).toEqual([1, -2, 3.5, 0.25]);
    expect(Array.from(new Uint16Array(data.buffer.slice(16, 18)))).toEqual([0x3e00]);
    expect(Array.from(data.subarray(18))).toEqual([7, 8, 9]);
  });

  it('casts floats on request and leaves no reserved names or bad shapes through', () => {
    const t: RawTensor = { shape: [2], dtype: 'float32', data: Float32Array.from([0.1, 65504]) };
    const half = parseSafetensors(encodeSafetensors(new Map([['t', t]]), {}, { floatDType: 'float16' })).tensors.get('t')!;
    expect(half.dtype).toBe('float16');
    expect(Array.from(half.data as Float32Array)).toEqual([0.0999755859375, 65504]);
    expect(() => encodeSafetensors(new Map([['__metadata__', t]]))).toThrow(/reserved/);
    expect(() => encodeSafetensors(new Map([['t', { ...t, shape: [3] }]]))).toThrow(/has shape \[3\] but 2 elements/);
    expect(() => writeSafetensors(path.join(tmp, 'bad.safetensors'), new Map([['t', { ...t, shape: [3] }]]))).toThrow(
      /^safetensors .*bad\.safetensors: tensor 't'/,
    );
  });

  it('rejects malformed files with one-line errors', () => {
    const good = encodeSafetensors(new Map([['t', { shape: [2], dtype: 'float32', data: Float32Array.from([1, 2]) } as RawTensor]]));
    const n = Number(new DataView(good.buffer).getBigUint64(0, true));
    const withHeader = (header: object, dataBytes: number) => {
      let json = Buffer.from(JSON.stringify(header));
      const out = new Uint8Array(8 + json.length + dataBytes);
      new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
      out.set(json, 8);
      return out;
    };
    expect(() => parseSafetensors(good.subarray(0, good.length - 1), 'cut')).toThrow(/^checkpoint cut: tensor 't' data \[0, 8\) lies past the end/);
    expect(() => parseSafetensors(good.subarray(0, 8 + n - 4), 'cut')).toThrow(/header size \d+ exceeds the file/);
    expect(() => parseSafetensors(withHeader({ t: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, 2), 'f8')).toThrow(
      /^checkpoint f8: unknown dtype 'F8_E4M3' for tensor 't'/,
    );
    expect(() => parseSafetensors(withHeader({ t: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), 'hole')).toThrow(
      /data starts at 4, expected 0 \(overlap or hole\)/,
    );
    expect(() => parseSafetensors(withHeader({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), 'sz')).toThrow(
      /has 8 data bytes, its dtype and shape need 12/,
    );
    expect(() => parseSafetensors(withHeader({ __metadata__: { a: 1 } }, 0), 'meta')).toThrow(/__metadata__ value of 'a' is not a string/);
    const proto = parseSafetensors(withHeader({ __metadata__: { ['__proto__']: 'x' } }, 0));
    expect(Object.getPrototypeOf(proto.metadata)).toBe(Object.prototype);
    expect(Object.keys(proto.metadata)).toEqual(['__proto__']);
  });
});

describe('float conversions', () => {
  it('float16 and bfloat16 encode/decode round-trip every finite bit pattern', () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const bytes = new Uint8Array(bits.buffer);
    const half = decodeElements(bytes, 0, 65536, 'float16') as Float32Array;
    const bf = decodeElements(bytes, 0, 65536, 'bfloat16') as Float32Array;
    const wrong: string[] = [];
    for (let i = 0; i < 65536; i++) {
      if (!Number.isNaN(half[i]) && floatToHalfBits(half[i]) !== i) wrong.push(`f16 ${i}`);
      if (!Number.isNaN(bf[i]) && floatToBFloat16Bits(bf[i]) !== i) wrong.push(`bf16 ${i}`);
    }
    expect(wrong).toEqual([]);
  });

  it('rounds to nearest even like PyTorch', () => {
    expect(floatToHalfBits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(floatToHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    expect(floatToHalfBits(65520)).toBe(0x7c00); // overflows to inf
    expect(floatToHalfBits(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal
    expect(floatToHalfBits(1.5 * 2 ** -25)).toBe(1);
    expect(floatToBFloat16Bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(floatToBFloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });
});

it('parseTorchCheckpoint refuses safetensors bytes with a clear message', () => {
  expect(() => parseTorchCheckpoint(fixtureBytes('python_written.safetensors'), 's')).toThrow(
    /^checkpoint s: is a safetensors file, not a torch\.save file$/,
  );
});

it('reads nn.Parameter, torch.device, torch.Size and plain Python data as data', async () => {
  const { object } = await readTorchCheckpoint(fixture('misc.pth'));
  const top = object as Map<string, any>;
  expectTensor(top.get('param'), expected['misc.pth'].param, 'param');
  expect(top.get('device')).toBe('cuda:0');
  expect(top.get('size')).toEqual([2, 3]);
  const data = top.get('data') as Map<string, unknown>;
  expect(data.get('ints')).toEqual([0, -1, -(2 ** 31), 2 ** 31, 2 ** 40]);
  expect(data.get('pair')).toEqual([0.5, null]);
  expect(data.get('flag')).toBe(true);
  expect(data.get('name')).toBe('x');
});
