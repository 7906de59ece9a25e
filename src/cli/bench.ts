/**
 * `irlens bench`: median time of one forward pass (or, with --train, one training step) of one input, after a
 * warm-up; `--compare-torch` times our own PyTorch reference models against irlens on the same machine.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { forwardBytes, requireMemory } from '../util/memory';
import { computePath, computeThreads, type ComputePath } from '../engine/compute';
import { openblasCoreType } from '../engine/native/openblas-core';
import { npyToTensor, readNpy, writeNpy } from '../io/npy';
import { AdamOptimizer, DEFAULT_OPTIMIZER } from '../pretrain/optim';
import type { RestorationModel } from '../models/model';
import { median, parsePositiveInt, parseSize, startBackend } from './common';
import { addModelOptions, loadModelFromOptions, ModelCliOptions } from './model-options';

export interface BenchResult {
  model: string;
  task: string;
  params: number;
  backend: string;
  compute: ComputePath;
  mode: 'forward' | 'train';
  size: [number, number];
  batch: number;
  repeat: number;
  timesMs: number[];
  /** Process CPU time of each timed run (all threads): on a loaded machine a steadier measure of the work. */
  cpuMs: number[];
  medianMs: number;
  minMs: number;
  peakBytes: number;
  rssBytes: number;
}

interface BenchOptions extends ModelCliOptions {
  size: string;
  batch: number;
  repeat: number;
  json?: boolean;
  train?: boolean;
  inputNpy?: string;
  compareTorch?: boolean;
  compareThreads?: string;
  compareConfigs: string;
  rounds: number;
  python: string;
  markdown?: string;
}

/**
 * One training step as irlens trains (src/pretrain/trainer.ts): L1 loss on the final output, gradients of
 * every parameter, irlens's AdamW update. The target is a fixed random image of the output's shape.
 */
export function trainStep(model: RestorationModel, task: string) {
  const params = model.namedParameters().map(([name, p]) => [name, p.variable] as [string, tf.Variable]);
  const optimizer = new AdamOptimizer(params, DEFAULT_OPTIMIZER);
  let target: tf.Tensor4D | undefined;
  const step = (x: tf.Tensor4D) => {
    target ??= tf.tidy(() => tf.randomUniform(model.forward(x, task).shape, 0, 1, 'float32', 2) as tf.Tensor4D);
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.abs(tf.sub(model.forward(x, task), target!))) as tf.Scalar, params.map(([, v]) => v));
    optimizer.step(new Map(params.filter(([, v]) => grads[v.name] != null).map(([, v]) => [v, grads[v.name]])), 1e-4);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  return { step, dispose: () => target?.dispose() };
}

async function benchOne(opts: BenchOptions, cmd: Command): Promise<BenchResult> {
  const [h, w] = parseSize(opts.size);
  const backend = await startBackend(cmd.optsWithGlobals().backend, opts.json);
  const { model, label } = await loadModelFromOptions(opts);
  const task = model.task(opts.task).name;
  // A floor (16-channel feature maps): refuses sizes that cannot fit before tfjs fails deep inside.
  if (!opts.inputNpy)
    requireMemory(forwardBytes(opts.batch, h, w, model.inChannels, 16), `--size ${h}x${w} --batch ${opts.batch}: a forward of ${label}`,
      'use a smaller --size or --batch, or raise the limit with IRLENS_MAX_MEMORY (e.g. 32G)');
  const x = opts.inputNpy
    ? npyToTensor(readNpy(opts.inputNpy), { name: opts.inputNpy })
    : (tf.randomUniform([opts.batch, h, w, model.inChannels], 0, 1, 'float32', 1) as tf.Tensor4D);
  if (x.shape[3] !== model.inChannels) throw new Error(`--input-npy: ${opts.inputNpy} has ${x.shape[3]} channels, ${label} expects ${model.inChannels}`);
  const trainer = opts.train ? trainStep(model, task) : undefined;
  const run = async () => {
    if (trainer) trainer.step(x);
    else {
      const y = model.restore(x, task);
      await y.data();
      y.dispose();
    }
  };
  await run(); // warm-up: kernel set-up, mask caches, optimiser slots
  const prof = await tf.profile(run);
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < opts.repeat; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  const result: BenchResult = {
    model: label,
    task,
    params: model.numParameters(),
    backend: backend.name,
    compute: computePath(),
    mode: opts.train ? 'train' : 'forward',
    size: [x.shape[1], x.shape[2]],
    batch: x.shape[0],
    repeat: opts.repeat,
    timesMs: times,
    cpuMs: cpu,
    medianMs: median(times),
    minMs: Math.min(...times),
    peakBytes: prof.peakBytes,
    rssBytes: process.memoryUsage().rss,
  };
  trainer?.dispose();
  x.dispose();
  model.dispose();
  return result;
}

// --------------------------------------------------------------------------------------- compare-torch

interface CompareConfig {
  preset: string;
  size: string;
  /** Training-step patch (smaller than the forward size for the big models, to keep runs short). */
  trainSize: string;
}

/** The four default configs of issue 12 (128x128 outputs) and the tiny presets. */
const DEFAULT_CONFIGS: CompareConfig[] = [
  { preset: 'restormer', size: '128x128', trainSize: '64x64' },
  { preset: 'mprnet-deblur', size: '128x128', trainSize: '64x64' },
  { preset: 'swinir-sr-x2', size: '64x64', trainSize: '48x48' },
  { preset: 'edt-b-sr-x2', size: '72x72', trainSize: '48x48' },
];
const TINY_CONFIGS: CompareConfig[] = [
  { preset: 'restormer-tiny', size: '64x64', trainSize: '64x64' },
  { preset: 'mprnet-tiny', size: '64x64', trainSize: '64x64' },
  { preset: 'swinir-tiny', size: '64x64', trainSize: '64x64' },
  { preset: 'edt-tiny', size: '48x48', trainSize: '48x48' },
];

/**
 * The environment of both benchmark children at `threads` threads. Both run the same OpenBLAS with the best
 * kernels for this CPU's flags (openblasCoreFor; a machine-wide OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is dropped):
 * left to its own model list, Debian's OpenBLAS 0.3.21 runs PyTorch's GEMMs on generic SSE3 kernels on Emerald
 * Rapids, 5x slower, which would flatter irlens. OMP/OpenBLAS/MKL thread counts are pinned: torch.set_num_threads
 * does not reach Debian's pthread OpenBLAS, whose GEMMs otherwise use every core (measured: a "1-thread" PyTorch forward of
 * restormer 128x128 used 5.1 s of CPU in 2.5 s).
 */
function childEnv(threads: number): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const core = openblasCoreType(env);
  if (core !== undefined) env.OPENBLAS_CORETYPE = core;
  for (const v of ['OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS']) env[v] = String(threads);
  return env;
}

function runJson(cmd: string, args: string[], what: string, threads: number): Record<string, unknown> {
  const r = spawnSync(cmd, args, { env: childEnv(threads), encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = r.stdout ?? '';
  const line = out.includes('{') ? out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1) : '';
  if (r.status !== 0 || line === '') {
    const err = `${r.stderr ?? ''}`.trim().split('\n').filter((l) => l.trim() !== '').at(-1) ?? String(r.error ?? `exit ${r.status}`);
    throw new Error(`bench --compare-torch: ${what} failed: ${err}`);
  }
  return JSON.parse(line) as Record<string, unknown>;
}

const CLI_MAIN = fs.existsSync(path.join(__dirname, 'main.ts')) ? path.join(__dirname, 'main.ts') : path.join(__dirname, 'main.js');

interface ChildTimes {
  times: number[];
  cpu: number[];
}

function irlensChild(c: CompareConfig, size: string, threads: number, train: boolean, input: string, repeat: number): ChildTimes & { path: string } {
  const args = ['--import', 'tsx', CLI_MAIN, '--backend', 'wasm', '--threads', String(threads), 'bench', '--model', c.preset, '--size', size, '--input-npy', input, '--repeat', String(repeat), '--json', '--random-init'];
  if (train) args.push('--train');
  const r = runJson(process.execPath, args, `irlens ${c.preset}`, threads) as unknown as BenchResult;
  return { times: r.timesMs, cpu: r.cpuMs, path: `${r.compute.kind} (${r.compute.description})` };
}

function torchChild(python: string, c: CompareConfig, size: string, threads: number, train: boolean, input: string, repeat: number): ChildTimes & { blas: string } {
  const script = path.resolve(__dirname, '..', '..', 'bench', 'torch_bench.py');
  const args = [script, '--preset', c.preset, '--size', size, '--threads', String(threads), '--repeat', String(repeat), '--input', input];
  if (train) args.push('--train');
  const r = runJson(python, args, `PyTorch ${c.preset}`, threads) as { times_ms: number[]; cpu_ms: number[]; blas: string; torch: string };
  return { times: r.times_ms, cpu: r.cpu_ms, blas: `torch ${r.torch}, ${r.blas}` };
}

interface CompareRow {
  preset: string;
  mode: 'forward' | 'train';
  size: string;
  threads: number;
  irlensMs: number;
  torchMs: number;
  ratio: number;
  /** Medians of process CPU time (all threads) and their ratio. */
  irlensCpuMs: number;
  torchCpuMs: number;
  cpuRatio: number;
}

/** --compare-configs: defaults, tiny, all, or a comma-separated list of their preset names. */
function compareConfigs(text: string): CompareConfig[] {
  const all = [...DEFAULT_CONFIGS, ...TINY_CONFIGS];
  if (text === 'defaults') return DEFAULT_CONFIGS;
  if (text === 'tiny') return TINY_CONFIGS;
  if (text === 'all') return all;
  const picked = text.split(',').map((name) => all.find((c) => c.preset === name.trim()));
  if (picked.some((c) => c === undefined)) {
    throw new Error(`--compare-configs: expected defaults, tiny, all or a list of ${all.map((c) => c.preset).join(', ')}; got '${text}'`);
  }
  return picked as CompareConfig[];
}

function parseThreadList(text: string): number[] {
  const list = text.split(',').map((t) => Number(t.trim()));
  if (list.length === 0 || list.some((t) => !Number.isInteger(t) || t < 1)) {
    throw new Error(`--compare-threads: expected a comma-separated list of positive integers, got '${text}'`);
  }
  return [...new Set(list)];
}

async function compareTorch(opts: BenchOptions): Promise<void> {
  const configs = compareConfigs(opts.compareConfigs);
  if (!fs.existsSync(opts.python)) throw new Error(`--python: ${opts.python} does not exist (Debian: apt install python3-torch)`);
  const threadList = parseThreadList(opts.compareThreads ?? [...new Set([1, computeThreads()])].join(','));
  const modes: ('forward' | 'train')[] = opts.train ? ['forward', 'train'] : ['forward'];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-compare-'));
  const rows: CompareRow[] = [];
  const failures: string[] = [];
  const paths = new Set<string>();
  const blas = new Set<string>();
  const load0 = os.loadavg()[0];
  try {
    for (const c of configs) {
      for (const mode of modes) {
        const size = mode === 'train' ? c.trainSize : c.size;
        const [h, w] = parseSize(size);
        // The same input for both: a seeded uniform NCHW image (3 channels; every compared preset is RGB).
        const input = path.join(tmp, `${c.preset}-${size}.npy`);
        const data = new Float32Array(3 * h * w);
        let s = 12345;
        for (let i = 0; i < data.length; i++) data[i] = (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
        writeNpy(input, { shape: [1, 3, h, w], dtype: 'float32', data });
        for (const threads of threadList) {
          const irl: number[] = [];
          const tor: number[] = [];
          const irlCpu: number[] = [];
          const torCpu: number[] = [];
          // Interleaved rounds: PyTorch, irlens, PyTorch, irlens..., so a load change hits both sides.
          let failed: string | undefined;
          for (let r = 0; r < opts.rounds && failed === undefined; r++) {
            try {
              const t = torchChild(opts.python, c, size, threads, mode === 'train', input, opts.repeat);
              tor.push(...t.times);
              torCpu.push(...t.cpu);
              blas.add(t.blas);
              const i = irlensChild(c, size, threads, mode === 'train', input, opts.repeat);
              irl.push(...i.times);
              irlCpu.push(...i.cpu);
              paths.add(i.path);
            } catch (e) {
              // One config that cannot run (say, a training step that outgrows the wasm heap) is a row of the
              // table with its reason, not the end of the run.
              failed = (e as Error).message.replace(/^bench --compare-torch: /, '');
            }
          }
          if (failed !== undefined) {
            failures.push(`${c.preset} ${mode} ${size} ${threads}t: ${failed}`);
            process.stderr.write(`irlens: ${c.preset} ${mode} ${size} ${threads}t: ${failed}\n`);
            continue;
          }
          const row: CompareRow = {
            preset: c.preset,
            mode,
            size,
            threads,
            irlensMs: median(irl),
            torchMs: median(tor),
            ratio: median(irl) / median(tor),
            irlensCpuMs: median(irlCpu),
            torchCpuMs: median(torCpu),
            cpuRatio: median(irlCpu) / median(torCpu),
          };
          rows.push(row);
          process.stderr.write(`irlens: ${row.preset} ${row.mode} ${row.size} ${row.threads}t: irlens ${row.irlensMs.toFixed(0)} ms, PyTorch ${row.torchMs.toFixed(0)} ms, ratio ${row.ratio.toFixed(2)} (CPU time ${row.cpuRatio.toFixed(2)})\n`);
        }
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const load1 = os.loadavg()[0];
  const table = [
    '| config | mode | input | threads | irlens ms | PyTorch ms | irlens/PyTorch | CPU-time ratio |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.preset} | ${r.mode} | ${r.size} | ${r.threads} | ${r.irlensMs.toFixed(0)} | ${r.torchMs.toFixed(0)} | ${r.ratio.toFixed(2)} | ${r.cpuRatio.toFixed(2)} |`,
    ),
  ];
  const notes = [
    'CPU-time ratio: process CPU time (all threads) irlens/PyTorch; with 1 thread it is the load-independent measure of the work',
    `medians of ${opts.rounds} interleaved rounds x ${opts.repeat} timed runs (after a warm-up) per side; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}`,
    ...[...paths].map((p) => `irlens: ${p}`),
    ...[...blas].map((b) => `PyTorch: ${b}`),
    ...failures.map((f) => `no row: ${f}`),
  ];
  const text = `${table.join('\n')}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
  if (opts.markdown) fs.writeFileSync(opts.markdown, text);
  if (opts.json) process.stdout.write(`${JSON.stringify({ rows, notes, failures }, null, 2)}\n`);
  else process.stdout.write(text);
}

export function benchCommand(): Command {
  const cmd = addModelOptions(new Command('bench'));
  // --compare-torch picks its own models: --model is checked in the action instead.
  const modelOption = cmd.options.find((o) => o.long === '--model');
  if (modelOption) modelOption.mandatory = false;
  return cmd
    .description('time the forward pass (or --train: one training step) of a model, median over --repeat runs after one warm-up; --compare-torch: irlens/PyTorch ratios')
    .option('--size <HxW>', 'input size', '128x128')
    .option('--batch <n>', 'batch size', parsePositiveInt('--batch'), 1)
    .option('--repeat <n>', 'timed runs', parsePositiveInt('--repeat'), 5)
    .option('--train', 'time one training step (forward, backward, AdamW update; L1 loss) instead of a forward')
    .option('--input-npy <file>', 'input image as an NCHW float .npy (instead of a seeded random one)')
    .option('--compare-torch', 'time our PyTorch reference models (test/fixtures) and irlens on the same input and threads, interleaved; prints irlens/PyTorch ratios (with --train: training steps too)')
    .option('--compare-configs <set>', 'with --compare-torch: defaults (the four default configs), tiny, all, or a comma-separated list of their presets', 'all')
    .option('--compare-threads <list>', 'with --compare-torch: thread counts, e.g. 1,2 (default: 1 and all cores)')
    .option('--rounds <n>', 'with --compare-torch: interleaved rounds per side', parsePositiveInt('--rounds'), 2)
    .option('--python <path>', 'with --compare-torch: the Python with torch', '/usr/bin/python3')
    .option('--markdown <file>', 'with --compare-torch: also write the table to this file')
    .option('--json', 'print JSON')
    .action(async (opts: BenchOptions, cmd: Command) => {
      if (opts.compareTorch) {
        if (cmd.getOptionValueSource('repeat') === 'default') opts.repeat = 2;
        return compareTorch(opts);
      }
      if (!opts.model) throw new Error("bench: option '--model <spec>' is required (or use --compare-torch)");
      const result = await benchOne(opts, cmd);
      if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else {
        const [h, w] = result.size;
        process.stdout.write(
          `${result.model} [${result.task}] ${result.batch}x${h}x${w} ${result.mode === 'train' ? 'training step' : 'forward'} on ${result.backend} ` +
            `(${result.compute.kind}, ${result.compute.threads} thread${result.compute.threads === 1 ? '' : 's'}): median ${result.medianMs.toFixed(1)} ms ` +
            `(min ${result.minMs.toFixed(1)}, ${result.repeat} runs), peak tensor memory ${(result.peakBytes / 2 ** 20).toFixed(1)} MiB, ` +
            `rss ${(result.rssBytes / 2 ** 20).toFixed(0)} MiB, ${result.params.toLocaleString('en-US')} params\n`,
        );
      }
    });
}
