/**
 * Hook points: capture and intervention by module path.
 *
 * A hook context is active while a forward runs under runWithCache/runWithHooks. Module.call reports every
 * output to it (visit). A module returning a list of tensors (e.g. MPRNet's encoders) exposes each element as
 * `<path>:<i>`.
 *
 * Name patterns are exact paths or globs in which `*` matches within one dotted segment and `**` across
 * segments (`encoder_level1.*`, `layers.*.residual_group.blocks.*`, `**`). A pattern that matches no module is
 * an error listing the closest names, so a typo never silently captures nothing.
 *
 * Attention modules also expose hook points inside their forward (HookPoint, no parameters): `<attn>.heads`,
 * the per-head output before the heads are merged and projected, and `<attn>.attn_map`, the softmax
 * probabilities (layouts: blocks/window-attention.ts for SwinIR/EDT, restormer.ts Attention for MDTA).
 *
 * Fast ablations: runWithCache also returns the order in which module forwards completed and how often each
 * fired; replayablePaths + replayFromCache turn an unablated run into a `replay` map, and runWithHooks(...,
 * { replay }) then skips those modules' forwards, running only what follows the intervened point.
 */
import * as tf from '@tensorflow/tfjs';
import picomatch from 'picomatch';
import { closestNames } from '../util/closest';
import { type HookContext, type ModuleOutput, withHookContext } from './hook-context';
import type { Module } from './module';

export type { ModuleOutput } from './hook-context';

/** An intervention: return a replacement tensor, or nothing to leave the output unchanged (pure observer). */
export type HookFn = (t: tf.Tensor, info: { name: string }) => tf.Tensor | void;

/** Module outputs of an earlier run of the same input, by module path (see HookRunOptions.replay). */
export type ReplayMap = Map<string, ModuleOutput> | Record<string, ModuleOutput>;

export interface HookRunOptions {
  /**
   * Modules whose forward is skipped: each returns (a clone of) the given tensor, captured in an earlier,
   * unablated run of the same input. Only replay modules that complete before the first intervened hook point
   * and are not its ancestors (replayablePaths picks them from runWithCache's `order`), and that run once per
   * forward: a module that fires again in the run (MPRNet's per-patch stage-1 modules, shared modules) is refused.
   * The caller keeps ownership of the tensors.
   */
  replay?: ReplayMap;
}

/** The hook point names of a model: every module path except the root's, in registration order. */
export function hookPoints(root: Module): string[] {
  return root
    .namedModules()
    .map(([p]) => p)
    .filter((p) => p !== '');
}

type Matcher = (name: string) => boolean;

function globMatcher(pattern: string): Matcher {
  // Dots are segment separators: map them onto picomatch's '/'. A ':i' list-element suffix stays literal.
  const m = picomatch(pattern.split('.').join('/'), { dot: true, nonegate: true });
  return (name) => m(name.split('.').join('/'));
}

/** Compiles patterns and throws one error naming every pattern that matches no hook point. */
export function compilePatterns(root: Module, patterns: string[]): Matcher[] {
  const names = hookPoints(root);
  const bad: string[] = [];
  const matchers = patterns.map((pat) => {
    const base = pat.replace(/:\d+$/, '');
    const m = globMatcher(base);
    if (!names.some(m)) bad.push(`'${pat}' (closest: ${closestNames(base, names).join(', ')})`);
    // A plain path also selects every element of a list output; `path:i` selects one element.
    return pat === base ? (n: string) => m(n.replace(/:\d+$/, '')) : (n: string) => n === pat || globMatcher(pat)(n);
  });
  if (bad.length) throw new Error(`unknown hook point ${bad.join('; ')}`);
  return matchers;
}

/** Resolves patterns to the concrete hook point names they select, in model order. */
export function resolveHookNames(root: Module, patterns: string[]): string[] {
  const ms = compilePatterns(root, patterns);
  return hookPoints(root).filter((n) => ms.some((m) => m(n)));
}

function elements(path: string, out: ModuleOutput): [string, tf.Tensor][] {
  return Array.isArray(out) ? out.map((t, i) => [`${path}:${i}`, t]) : [[path, out]];
}

/** Replay lookup for one run: each path once (a second call of a replayed module is an error). */
function replayLookup(replay: ReplayMap | undefined, root: Module): HookContext['replay'] {
  if (!replay) return undefined;
  const map = replay instanceof Map ? replay : new Map(Object.entries(replay));
  if (map.size === 0) return undefined;
  const known = new Set(hookPoints(root));
  for (const path of map.keys())
    if (!known.has(path)) throw new Error(`replay: unknown module path '${path}' (closest: ${closestNames(path, known).join(', ')})`);
  const used = new Set<string>();
  return (path) => {
    const out = map.get(path);
    if (out === undefined) return undefined;
    if (used.has(path))
      throw new Error(`replay: module '${path}' runs more than once per forward (a per-patch or shared module); it cannot be replayed`);
    used.add(path);
    // A clone inside the run's tidy: the caller's tensor stays the caller's, the clone is freed with the run.
    return Array.isArray(out) ? out.map((t) => t.clone()) : out.clone();
  };
}

/**
 * Runs `fn` (a forward of `root`) with interventions: for every hook point whose name matches a key of
 * `hooks`, the hook may replace the output. Runs inside tf.tidy: intermediate tensors, including those a hook
 * creates and does not return, are freed; the result of `fn` is kept. `opts.replay` skips modules whose
 * outputs are known from an earlier run (see HookRunOptions).
 */
export function runWithHooks<T extends tf.TensorContainer>(
  root: Module,
  hooks: Record<string, HookFn | HookFn[]>,
  fn: () => T,
  opts: HookRunOptions = {},
): T {
  const entries = Object.entries(hooks);
  const matchers = compilePatterns(
    root,
    entries.map(([k]) => k),
  );
  const fns = entries.map(([, f]) => (Array.isArray(f) ? f : [f]));
  const ctx: HookContext = {
    root,
    replay: replayLookup(opts.replay, root),
    watches: (path) => matchers.some((m) => m(path)),
    visit(path, out) {
      const els = elements(path, out).map(([name, t]) => {
        let cur = t;
        matchers.forEach((m, i) => {
          if (!m(name)) return;
          for (const f of fns[i]) {
            const r = f(cur, { name });
            if (r !== undefined) {
              if (!(r instanceof tf.Tensor)) throw new Error(`hook '${entries[i][0]}' returned a non-tensor for ${name}`);
              if (!tf.util.arraysEqual(r.shape, cur.shape))
                throw new Error(`hook '${entries[i][0]}' changed the shape of ${name} from [${cur.shape}] to [${r.shape}]`);
              cur = r;
            }
          }
        });
        return cur;
      });
      return Array.isArray(out) ? els : els[0];
    },
  };
  return tf.tidy(() => withHookContext(ctx, fn));
}

export interface CacheRun<T> {
  output: T;
  /** Captured outputs by hook point name (list outputs as `<path>:<i>`); the caller disposes them (disposeCache). */
  cache: Map<string, tf.Tensor>;
  /** Every module path in the order its forward completed (first completion), for picking replayable modules. */
  order: string[];
  /** How many times each module path fired in the forward (more than 1: per-patch or shared modules). */
  calls: Map<string, number>;
}

/**
 * Runs `fn` and keeps the outputs of the hook points selected by `names` (globs). Returns them in a Map the
 * caller owns and must dispose (disposeCache). If a hook point fires more than once (a shared module), the
 * last output is kept. No gradient tape is involved unless the caller runs this inside tf.grad.
 */
export function runWithCache<T extends tf.TensorContainer>(root: Module, names: string | string[], fn: () => T): CacheRun<T> {
  const patterns = Array.isArray(names) ? names : [names];
  const matchers = compilePatterns(root, patterns);
  const cache = new Map<string, tf.Tensor>();
  const order: string[] = [];
  const calls = new Map<string, number>();
  const ctx: HookContext = {
    root,
    watches: (path) => matchers.some((m) => m(path)),
    visit(path, out) {
      const n = calls.get(path) ?? 0;
      if (n === 0) order.push(path);
      calls.set(path, n + 1);
      for (const [name, t] of elements(path, out)) {
        if (!matchers.some((m) => m(name))) continue;
        cache.get(name)?.dispose();
        cache.set(name, tf.keep(t.clone()));
      }
      return out;
    },
  };
  try {
    const output = tf.tidy(() => withHookContext(ctx, fn));
    return { output, cache, order, calls };
  } catch (e) {
    disposeCache(cache);
    throw e;
  }
}

export function disposeCache(cache: Map<string, tf.Tensor>): void {
  for (const t of cache.values()) t.dispose();
  cache.clear();
}

const isAncestor = (a: string, b: string) => b.startsWith(`${a}.`);

/**
 * The modules to replay before intervening at `point` (a hook point path): every module that completed
 * before `point` in `order` and fired once (`calls`), keeping only the outermost (a replayed module's children
 * do not run anyway). Ancestors of `point` complete after it, so they are never picked.
 */
export function replayablePaths(order: readonly string[], calls: ReadonlyMap<string, number>, point: string): string[] {
  const base = point.replace(/:\d+$/, '');
  const at = order.indexOf(base);
  if (at < 0) throw new Error(`replay: '${point}' did not run in the recorded forward`);
  const picked = order.slice(0, at).filter((p) => (calls.get(p) ?? 0) === 1 && !isAncestor(p, base));
  return picked.filter((p) => !picked.some((q) => isAncestor(q, p)));
}

/** A replay map from a runWithCache cache: each path's tensor, or its `<path>:<i>` elements as a list. */
export function replayFromCache(cache: ReadonlyMap<string, tf.Tensor>, paths: readonly string[]): Map<string, ModuleOutput> {
  const out = new Map<string, ModuleOutput>();
  for (const p of paths) {
    const t = cache.get(p);
    if (t) {
      out.set(p, t);
      continue;
    }
    const els: tf.Tensor[] = [];
    for (let i = 0; cache.has(`${p}:${i}`); i++) els.push(cache.get(`${p}:${i}`)!);
    if (els.length === 0) throw new Error(`replay: module '${p}' was not captured (add it to the runWithCache names)`);
    out.set(p, els);
  }
  return out;
}
