#!/usr/bin/env node
/**
 * `npm install` step for the optional native kernels (native/irlens_native.cc -> build/Release/irlens_native.node).
 *
 * The addon needs a C++ compiler, Node's headers and OpenBLAS (Debian/Ubuntu: `apt install g++ make
 * libopenblas-dev`). When any of it is missing the build is skipped or fails with a one-paragraph message and
 * this script still exits 0: irlens then runs on the wasm kernels (`irlens info` says which path is active).
 * IRLENS_SKIP_NATIVE_BUILD=1 skips the build.
 *
 * oneDNN (Debian/Ubuntu: `apt install libdnnl-dev`) is optional: with its header the KxK convolutions use it
 * (binding.gyp variable with_dnnl, passed as IRLENS_DNNL); when that build or its load fails, the addon is rebuilt
 * without it (im2col + OpenBLAS convs). IRLENS_DNNL=0 leaves it out.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'irlens_native.node');

function note(msg) {
  process.stderr.write(`irlens: ${msg}\n`);
}

function fallback(why) {
  note(`native kernels not built: ${why}`);
  note('running on the wasm kernels instead (slower). To get the native path: apt install g++ make libopenblas-dev, then `npm rebuild irlens` or `node native/build.js`.');
  try {
    fs.rmSync(ADDON, { force: true });
  } catch {
    // nothing to remove
  }
  process.exit(0);
}

/** node-gyp: the one npm runs scripts with, else the copy bundled with npm next to this node. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally
  }
  return candidates.find((c) => c && fs.existsSync(c));
}

function haveOpenBlasHeaders() {
  const dirs = ['/usr/include', '/usr/include/x86_64-linux-gnu', '/usr/include/aarch64-linux-gnu', '/usr/include/openblas', '/usr/local/include', '/opt/homebrew/opt/openblas/include'];
  return dirs.some((d) => fs.existsSync(path.join(d, 'cblas.h')));
}

if (process.env.IRLENS_SKIP_NATIVE_BUILD === '1') fallback('IRLENS_SKIP_NATIVE_BUILD=1');
if (!haveOpenBlasHeaders()) fallback('OpenBLAS headers (cblas.h) not found');
const gyp = nodeGyp();
if (gyp === undefined) fallback('node-gyp not found');

function haveDnnlHeaders() {
  const dirs = ['/usr/include', '/usr/local/include', '/opt/homebrew/include'];
  return dirs.some((d) => fs.existsSync(path.join(d, 'dnnl.hpp')));
}

const args = [gyp, 'rebuild'];
// Offline machines: use the headers of the installed node (Debian's nodejs ships them) instead of a download.
const prefix = path.resolve(path.dirname(process.execPath), '..');
if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);

/** Builds the addon with or without oneDNN; returns why it failed, or undefined when it built and loads. */
function build(withDnnl) {
  const env = { ...process.env, IRLENS_DNNL: withDnnl ? '1' : '0' };
  const run = spawnSync(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (run.status !== 0) {
    const log = `${run.stdout ?? ''}${run.stderr ?? ''}`.trim().split('\n');
    const firstError = log.find((l) => /error|not found|No such file/i.test(l)) ?? log.at(-1) ?? String(run.error);
    return `node-gyp failed (${firstError.trim().slice(0, 200)})`;
  }
  // The libraries must also load at run time (libopenblas.so / libdnnl.so present, same ABI).
  const check = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(ADDON)}).describe()`], { encoding: 'utf8' });
  if (check.status !== 0) return `the built addon does not load (${(check.stderr || '').trim().split('\n')[0]})`;
  return undefined;
}

const wantDnnl = process.env.IRLENS_DNNL !== '0' && haveDnnlHeaders();
let withDnnl = wantDnnl;
let failure = build(wantDnnl);
if (failure !== undefined && wantDnnl) {
  withDnnl = false;
  note(`building with oneDNN failed: ${failure}; building without it (convs on im2col + OpenBLAS)`);
  failure = build(false);
}
if (failure !== undefined) fallback(failure);
note(`native kernels built (${path.relative(ROOT, ADDON)}, ${withDnnl ? 'oneDNN convs' : 'no oneDNN: apt install libdnnl-dev for faster convs'})`);
