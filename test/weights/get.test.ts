/**
 * `weights get` against a loopback HTTP server (127.0.0.1 only): download, resume after a cut connection,
 * checksum, strict-load and HTTP failures (one-line errors, nothing left in the cache), mirrors, folder-only and
 * offline sources, and PRESET@NAME resolving through the cache.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend';
import '../../src/models';
import { loadModelSpec } from '../../src/weights/spec';
import {
  cachedWeightsPath,
  describeWeights,
  getOfficialWeights,
  partialDownloadPath,
  registerOfficialWeights,
  sha256Bytes,
  type OfficialCatalogEntry,
} from '../../src/weights';
import { runCli } from '../cli/run-cli';
import { startFileServer, type FileServer } from './server';

const FIX = path.join(__dirname, '..', 'fixtures', 'swinir');
const TINY = new Uint8Array(fs.readFileSync(path.join(FIX, 'tiny.pth')));
const LIGHT = new Uint8Array(fs.readFileSync(path.join(FIX, 'tiny-light.pth')));

let server: FileServer;
let home: string;

function entry(over: Partial<OfficialCatalogEntry> = {}): OfficialCatalogEntry {
  return {
    name: 'test-swinir-tiny',
    family: 'swinir',
    file: 'tiny.pth',
    preset: 'swinir-tiny',
    task: 'sr-x2',
    source: `${server.base}/release`,
    url: `${server.base}/files/tiny.pth`,
    sha256: sha256Bytes(TINY),
    ...over,
  };
}

/** Every file under the cache's weights/ and partial/ folders. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => path.join(d.parentPath ?? d.path, d.name));
}

async function failure(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (err: Error) => err,
  );
  expect(e, 'expected a rejection').toBeInstanceOf(Error);
  const msg = (e as Error).message;
  expect(msg).not.toContain('\n');
  return msg;
}

beforeAll(async () => {
  await initBackend('wasm');
  server = await startFileServer({ '/files/tiny.pth': TINY, '/files/tiny-light.pth': LIGHT, '/mirror/tiny.pth': TINY });
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-weights-'));
  server.requests.length = 0;
});

describe('getOfficialWeights', () => {
  it('downloads, verifies by sha256 and strict load, and moves the file into the cache', async () => {
    const before = tf.memory().numTensors;
    const got = await getOfficialWeights(entry(), { home });
    expect(tf.memory().numTensors).toBe(before);
    expect(got.downloaded).toBe(true);
    expect(got.file).toBe(cachedWeightsPath('swinir', 'tiny.pth', home));
    expect(new Uint8Array(fs.readFileSync(got.file))).toEqual(TINY);
    expect(got.sha256).toBe(sha256Bytes(TINY));
    expect(filesUnder(path.join(home, 'partial'))).toEqual([]);
    const again = await getOfficialWeights(entry(), { home });
    expect(again.downloaded).toBe(false);
    expect(server.requests).toHaveLength(1); // the second call is served from the cache
  });

  it('resumes a cut download with a Range request', async () => {
    const cut = Math.floor(TINY.length * 0.4);
    server.cutNext('/files/tiny.pth', cut);
    const msg = await failure(getOfficialWeights(entry(), { home }));
    expect(msg).toMatch(/^weights test-swinir-tiny: download from http:\/\/127\.0\.0\.1:\d+\/files\/tiny\.pth interrupted after \d+ of \d+ bytes .*run the same command again to resume/);
    expect(fs.existsSync(cachedWeightsPath('swinir', 'tiny.pth', home))).toBe(false);
    const partial = partialDownloadPath('swinir', 'tiny.pth', home);
    const have = fs.statSync(partial).size;
    expect(have).toBeGreaterThan(0);
    expect(have).toBeLessThan(TINY.length);
    const got = await getOfficialWeights(entry(), { home });
    expect(server.requests.at(-1)).toEqual({ path: '/files/tiny.pth', range: `bytes=${have}-` });
    expect(new Uint8Array(fs.readFileSync(got.file))).toEqual(TINY);
    expect(fs.existsSync(partial)).toBe(false);
  });

  it('rejects a checksum mismatch and leaves no file', async () => {
    const msg = await failure(getOfficialWeights(entry({ sha256: '0'.repeat(64) }), { home }));
    expect(msg).toMatch(/^weights test-swinir-tiny: sha256 [0-9a-f]{64} does not match the catalog's 0{64}; the download from .* was removed$/);
    expect(filesUnder(home)).toEqual([]);
  });

  it('rejects a file that does not strictly load into its preset and leaves no file', async () => {
    const before = tf.memory().numTensors;
    const msg = await failure(getOfficialWeights(entry({ file: 'tiny-light.pth', url: `${server.base}/files/tiny-light.pth`, sha256: undefined }), { home }));
    expect(msg).toMatch(/^weights test-swinir-tiny: the file does not load into swinir-tiny \(.*(shape mismatch|missing keys).*\); the download .* was removed$/);
    expect(filesUnder(home)).toEqual([]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('reports an HTTP 404 in one line and leaves no file', async () => {
    const msg = await failure(getOfficialWeights(entry({ url: `${server.base}/files/missing.pth` }), { home }));
    expect(msg).toMatch(/^weights test-swinir-tiny: HTTP 404 .*from http:\/\/127\.0\.0\.1:\d+\/files\/missing\.pth; or download it by hand into .*tiny\.pth$/);
    expect(filesUnder(home)).toEqual([]);
  });

  it('fetches <mirror>/<file name> when a mirror is set, also for folder-only sources', async () => {
    const got = await getOfficialWeights(entry({ url: undefined }), { home, mirror: `${server.base}/mirror/` });
    expect(server.requests).toEqual([{ path: '/mirror/tiny.pth' }]);
    expect(new Uint8Array(fs.readFileSync(got.file))).toEqual(TINY);
  });

  it('names the source and the exact path to drop the file into for folder-only and offline cases', async () => {
    const dest = cachedWeightsPath('swinir', 'tiny.pth', home);
    const folder = await failure(getOfficialWeights(entry({ url: undefined }), { home, mirror: '' }));
    expect(folder).toBe(
      `weights test-swinir-tiny: ${server.base}/release offers no direct download; download tiny.pth there and put it at ${dest} (or set IRLENS_WEIGHTS_MIRROR=<base URL>)`,
    );
    const offline = await failure(getOfficialWeights(entry(), { home, offline: true }));
    expect(offline).toBe(`weights test-swinir-tiny: offline; download ${server.base}/files/tiny.pth and put it at ${dest}`);
    expect(server.requests).toEqual([]);
    // A file dropped there by hand is used as is.
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, TINY);
    expect((await getOfficialWeights(entry({ url: undefined }), { home, mirror: '' })).downloaded).toBe(false);
  });
});

describe('PRESET@NAME', () => {
  it('downloads on first use, then loads from the cache, with official provenance', async () => {
    registerOfficialWeights(entry({ name: 'test-preset-at-name' }));
    const before = tf.memory().numTensors;
    const a = await loadModelSpec('swinir-tiny@test-preset-at-name', { download: { home } });
    expect(a.provenance).toMatchObject({ source: 'official', name: 'test-preset-at-name', file: cachedWeightsPath('swinir', 'tiny.pth', home), sha256: sha256Bytes(TINY) });
    expect(describeWeights(a)).toMatchObject({ source: 'official', sha256: sha256Bytes(TINY) });
    expect(describeWeights(a).warning).toBeUndefined();
    a.model.dispose();
    const b = await loadModelSpec('swinir-tiny@test-preset-at-name', { download: { home } });
    b.model.dispose();
    expect(server.requests).toHaveLength(1);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gives a one-line error for a name that is neither a file nor in the catalog', async () => {
    const msg = await failure(loadModelSpec('swinir-tiny@001_classicalSR_DF2K_s64w8_SwinIR-M_x9'));
    expect(msg).toMatch(/^weights '001_classicalSR_DF2K_s64w8_SwinIR-M_x9': no such file, and not a name in the weights catalog \(closest: 001_classicalSR_DF2K_s64w8_SwinIR-M_x[2348]/);
  });
});

describe('irlens weights', () => {
  it('lists official checkpoints with preset, task, file and URL', async () => {
    const r = await runCli('weights', 'list', 'SwinIR-M_x2', '--json');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { name: string; preset: string; task: string; url: string | null; kind: string }[];
    expect(rows.find((x) => x.name === '001_classicalSR_DF2K_s64w8_SwinIR-M_x2')).toMatchObject({
      kind: 'official',
      preset: 'swinir-sr-x2',
      task: 'sr-x2',
      url: 'https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth',
    });
    const all = JSON.parse((await runCli('weights', 'list', '--json')).stdout) as { family: string; kind: string }[];
    for (const f of ['restormer', 'mprnet', 'swinir', 'edt']) expect(all.some((x) => x.kind === 'official' && x.family === f)).toBe(true);
  });

  it('get: one-line errors for unknown names and folder-only sources, exit code 1', async () => {
    const prev = process.env.IRLENS_HOME;
    process.env.IRLENS_HOME = home;
    try {
      const unknown = await runCli('weights', 'get', 'no-such-weights');
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/^irlens: error: weights 'no-such-weights': not in the catalog \(closest: .*\)\n$/);
      const drive = await runCli('weights', 'get', 'mprnet-model_deblurring');
      expect(drive.code).toBe(1);
      expect(drive.stderr).toBe(
        `irlens: error: weights mprnet-model_deblurring: https://drive.google.com/file/d/1QwQUVbk6YVOJViCsOKYNykCsdJSVGRtb/view offers no direct download; download model_deblurring.pth there and put it at ${path.join(home, 'weights', 'mprnet', 'model_deblurring.pth')} (or set IRLENS_WEIGHTS_MIRROR=<base URL>)\n`,
      );
    } finally {
      if (prev === undefined) delete process.env.IRLENS_HOME;
      else process.env.IRLENS_HOME = prev;
    }
  });
});
