/**
 * Backend selection. Order of preference: tfjs-node-gpu (only when it loads AND sees a GPU) -> tfjs-node ->
 * wasm -> cpu. IRLENS_BACKEND=node-gpu|node|wasm|cpu forces one and fails loudly when it cannot load.
 *
 * The native bindings are optionalDependencies: their install downloads libtensorflow, which fails on offline
 * machines, so they are only ever required lazily here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerDilatedConvGradients, registerResizeGradFixes, registerWasmTrainingKernels } from './wasm-kernels';
import { nativeAddon, nativeLibrary } from './native/addon';
import { registerNativeKernels } from './native/kernels';
import { installGradientMemorySavings } from './gradient-memory';

export type BackendName = 'node-gpu' | 'node' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['node-gpu', 'node', 'wasm', 'cpu'];

export interface BackendInfo {
  /** irlens name of the backend. */
  name: BackendName;
  /** tf.getBackend() after selection ('tensorflow', 'wasm', 'cpu'). */
  tfBackend: string;
  /** Human-readable line for CLI outputs and reports. */
  description: string;
  /** Why preferred backends were skipped, for diagnostics. */
  skipped: string[];
  tfjsVersion: string;
}

let current: BackendInfo | undefined;
let pending: Promise<BackendInfo> | undefined;

/**
 * The native packages install even when their libtensorflow download fails, minus the binding. Requiring such a
 * package half-registers kernels (warnings) before it throws, so look for the binding file first.
 */
function nativeBindingInstalled(id: string): boolean {
  let pkgDir: string;
  try {
    pkgDir = path.dirname(require.resolve(`${id}/package.json`));
  } catch {
    return false;
  }
  const lib = path.join(pkgDir, 'lib');
  return (
    fs.existsSync(lib) &&
    fs.readdirSync(lib).some((d) => d.startsWith('napi-v') && fs.existsSync(path.join(lib, d, 'tfjs_binding.node')))
  );
}

function tryRequire(id: string): { ok: true } | { ok: false; error: string } {
  if (!nativeBindingInstalled(id))
    return { ok: false, error: 'not installed with its native binding (its install downloads libtensorflow, which failed or was skipped)' };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(id);
    return { ok: true };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split('\n')[0] };
  }
}

function nodeGpuVisible(): boolean {
  // tfjs-node-gpu silently falls back to its CPU kernels when CUDA is absent; ask TensorFlow for GPU devices.
  const binding = (tf.backend() as unknown as { binding?: { isUsingGpuDevice?: () => boolean } }).binding;
  return typeof binding?.isUsingGpuDevice === 'function' ? binding.isUsingGpuDevice() : false;
}

/**
 * Runs `start` and removes the uncaughtException/unhandledRejection listeners it added. Emscripten's glue in
 * tfjs-backend-wasm installs listeners that rethrow every error from inside its one-line minified bundle, so an
 * uncaught error in a user's script printed ~30 KB of that source instead of the error; irlens never uses
 * emscripten's exit() path those listeners exist for.
 */
async function withoutNewProcessListeners<T>(start: () => Promise<T>): Promise<T> {
  const events = ['uncaughtException', 'unhandledRejection'];
  const listeners = (e: string) => process.listeners(e as 'uncaughtException') as ((...args: unknown[]) => void)[];
  const before = new Map(events.map((e) => [e, new Set(listeners(e))]));
  try {
    return await start();
  } finally {
    for (const e of events) for (const l of listeners(e)) if (!before.get(e)!.has(l)) process.removeListener(e, l);
  }
}

async function activate(name: BackendName): Promise<string | undefined> {
  switch (name) {
    case 'node-gpu': {
      const r = tryRequire('@tensorflow/tfjs-node-gpu');
      if (!r.ok) return `@tensorflow/tfjs-node-gpu did not load: ${r.error}`;
      if (!(await tf.setBackend('tensorflow'))) return 'tfjs-node-gpu loaded but its backend failed to start';
      if (!nodeGpuVisible()) return 'tfjs-node-gpu loaded but TensorFlow sees no GPU';
      return undefined;
    }
    case 'node': {
      const r = tryRequire('@tensorflow/tfjs-node');
      if (!r.ok) return `@tensorflow/tfjs-node did not load: ${r.error}`;
      if (!(await tf.setBackend('tensorflow'))) return 'tfjs-node loaded but its backend failed to start';
      return undefined;
    }
    case 'wasm': {
      registerWasmTrainingKernels();
      registerNativeKernels(); // heavy ops on the native addon when it is built (else the wasm kernels stay)
      const started = await withoutNewProcessListeners(() => tf.setBackend('wasm'));
      return started ? undefined : 'the wasm backend failed to start';
    }
    case 'cpu':
      // The stock cpu resize gradients ignore halfPixelCenters (PyTorch's align_corners=False) and tfjs refuses
      // dilated conv gradients everywhere: use irlens's exact versions so cpu stays a valid reference.
      registerResizeGradFixes('cpu');
      registerDilatedConvGradients();
      return (await tf.setBackend('cpu')) ? undefined : 'the cpu backend failed to start';
  }
}

function describe(name: BackendName): string {
  switch (name) {
    case 'node-gpu':
      return 'tfjs-node-gpu (CUDA)';
    case 'node':
      return 'tfjs-node (libtensorflow, CPU)';
    case 'wasm': {
      const native = nativeAddon()?.describe();
      return native
        ? `wasm + native kernels (${nativeLibrary()}, ${native.threads} thread${native.threads === 1 ? '' : 's'}) + irlens training kernels`
        : 'wasm (SIMD, single thread) + irlens training kernels';
    }
    case 'cpu':
      return 'cpu (pure JS, slow; reference numbers only)';
  }
}

/** Parses IRLENS_BACKEND (or an explicit request) into a backend name; throws a one-line error otherwise. */
export function parseBackendName(value: string, source = 'IRLENS_BACKEND'): BackendName {
  const v = value.trim().toLowerCase();
  if ((BACKEND_NAMES as readonly string[]).includes(v)) return v as BackendName;
  throw new Error(`${source}: unknown backend '${value}', expected one of ${BACKEND_NAMES.join(', ')}`);
}

/**
 * Selects and initialises the backend once per process. `requested` (or IRLENS_BACKEND) forces a backend;
 * otherwise the first of node-gpu, node, wasm, cpu that starts is used.
 */
export async function initBackend(requested?: BackendName | string): Promise<BackendInfo> {
  const env = process.env.IRLENS_BACKEND;
  const wanted =
    requested !== undefined
      ? parseBackendName(requested, 'backend')
      : env !== undefined && env !== ''
        ? parseBackendName(env)
        : undefined;
  if (current && (wanted === undefined || wanted === current.name)) return current;
  if (pending && wanted === undefined) return pending;
  pending = (async () => {
    const order: BackendName[] = wanted ? [wanted] : [...BACKEND_NAMES];
    const skipped: string[] = [];
    for (const name of order) {
      const why = await activate(name);
      if (why === undefined) {
        await tf.ready();
        installGradientMemorySavings();
        current = {
          name,
          tfBackend: tf.getBackend(),
          description: describe(name),
          skipped,
          tfjsVersion: tf.version.tfjs,
        };
        return current;
      }
      if (wanted) throw new Error(`backend '${wanted}' cannot be used: ${why}`);
      skipped.push(`${name}: ${why}`);
    }
    throw new Error(`no TF.js backend could start (${skipped.join('; ')})`);
  })();
  try {
    return await pending;
  } finally {
    pending = undefined;
  }
}

/** The backend in use, or undefined before initBackend(). */
export function backendInfo(): BackendInfo | undefined {
  return current;
}
