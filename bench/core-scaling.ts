/**
 * What N cores of this machine give at most: the throughput of one compute-bound kernel (sgemm 1024^3, the
 * native matMul) and one memory-bound kernel (add of two 16M-float arrays) run
 *   - alone on one thread,
 *   - alone on N threads (the native kernels' own threading),
 *   - as N independent one-thread workers at the same time (no sharing at all inside the process),
 * and the same sgemm in PyTorch (1 thread, N threads, N processes) when /usr/bin/python3 has torch.
 * If N one-thread workers together do not reach N times one worker's throughput, no threading of a kernel can:
 * the cores share execution units or memory bandwidth (e.g. vCPUs that are SMT siblings on the host).
 *
 *   npx tsx bench/core-scaling.ts [--threads N] [--seconds S]
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/engine/backend';
import { computePath, setComputeThreads } from '../src/engine/compute';

interface Rates {
  gflops: number;
  gbps: number;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name}: expected a positive number, got '${process.argv[i + 1]}'`);
  return v;
}

/** Runs `step` for about `seconds` after one warm-up; returns steps per second. */
function rate(step: () => void, seconds: number): number {
  step();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < seconds * 1000) {
    step();
    n++;
  }
  return n / ((performance.now() - t0) / 1000);
}

async function measure(threads: number, seconds: number): Promise<Rates> {
  await initBackend('wasm');
  setComputeThreads(threads);
  const a = tf.randomNormal([1024, 1024], 0, 1, 'float32', 1);
  const b = tf.randomNormal([1024, 1024], 0, 1, 'float32', 2);
  const x = tf.randomNormal([16 * 2 ** 20], 0, 1, 'float32', 3);
  const y = tf.randomNormal([16 * 2 ** 20], 0, 1, 'float32', 4);
  // The wasm backend (and the native kernels on its heap) run each kernel synchronously inside the op call, so
  // the op's return means the work is done; reading the result back would add a serial copy to every step.
  const sync = (t: tf.Tensor) => t.dispose();
  const mm = rate(() => sync(tf.matMul(a, b)), seconds / 2);
  const add = rate(() => sync(tf.add(x, y)), seconds / 2);
  [a, b, x, y].forEach((t) => t.dispose());
  // add reads two arrays and writes one: 3 x 64 MiB per step
  return { gflops: (mm * 2 * 1024 ** 3) / 1e9, gbps: (add * 3 * 16 * 2 ** 20 * 4) / 1e9 };
}

async function concurrentWorkers(n: number, seconds: number): Promise<Rates[]> {
  const execArgv = __filename.endsWith('.ts') ? ['--require', require.resolve('tsx/cjs')] : [];
  return Promise.all(
    Array.from({ length: n }, () => new Promise<Rates>((resolve, reject) => {
      const w = new Worker(__filename, { workerData: { seconds }, execArgv });
      w.once('message', (r: Rates) => resolve(r));
      w.once('error', reject);
    })),
  );
}

const TORCH = `
import sys, time, torch
torch.set_num_threads(int(sys.argv[1])); s = float(sys.argv[2])
a = torch.randn(1024, 1024); b = torch.randn(1024, 1024); a @ b
t0 = time.perf_counter(); n = 0
while time.perf_counter() - t0 < s: a @ b; n += 1
print(2 * 1024 ** 3 * n / (time.perf_counter() - t0) / 1e9)
`;

function torchRun(threads: number, seconds: number): Promise<number> {
  return new Promise((resolve, reject) => {
    // torch.set_num_threads does not reach Debian's pthread OpenBLAS: pin its pool too (as --compare-torch does).
    const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
    const p = spawn('/usr/bin/python3', ['-c', TORCH, String(threads), String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`torch: ${err.trim().split('\n').pop()}`))));
  });
}

function torchAvailable(): boolean {
  return fs.existsSync('/usr/bin/python3') && fs.readdirSync('/usr/lib/python3/dist-packages').includes('torch');
}

async function main(): Promise<void> {
  const n = arg('--threads', os.cpus().length);
  const seconds = arg('--seconds', 6);
  const one = await measure(1, seconds);
  const many = await measure(n, seconds);
  const workers = await concurrentWorkers(n, seconds);
  const sum = (k: keyof Rates) => workers.reduce((s, r) => s + r[k], 0);
  const row = (what: string, gf: number, gb: number | undefined) =>
    `| ${what} | ${gf.toFixed(1)} | ${(gf / one.gflops).toFixed(2)} | ${gb === undefined ? '' : gb.toFixed(1)} | ${gb === undefined ? '' : (gb / one.gbps).toFixed(2)} |`;
  const lines = [
    `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), load average ${os.loadavg()[0].toFixed(1)}; ${computePath().description.replace(/ on \d+ threads?/, '')}`,
    '',
    '| run | sgemm 1024^3 GFLOP/s | x one thread | add 16M GB/s | x one thread |',
    '|---|---|---|---|---|',
    row('irlens, 1 thread', one.gflops, one.gbps),
    row(`irlens, ${n} threads`, many.gflops, many.gbps),
    row(`irlens, ${n} one-thread workers at once (sum)`, sum('gflops'), sum('gbps')),
  ];
  if (torchAvailable()) {
    const t1 = await torchRun(1, seconds);
    const tn = await torchRun(n, seconds);
    const tp = (await Promise.all(Array.from({ length: n }, () => torchRun(1, seconds)))).reduce((s, v) => s + v, 0);
    lines.push(
      `| PyTorch, 1 thread | ${t1.toFixed(1)} | ${(t1 / t1).toFixed(2)} | | |`,
      `| PyTorch, ${n} threads | ${tn.toFixed(1)} | ${(tn / t1).toFixed(2)} | | |`,
      `| PyTorch, ${n} one-thread processes at once (sum) | ${tp.toFixed(1)} | ${(tp / t1).toFixed(2)} | | |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (isMainThread) {
  main().catch((e) => {
    process.stderr.write(`core-scaling: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
} else {
  measure(1, (workerData as { seconds: number }).seconds).then((r) => parentPort!.postMessage(r));
}
