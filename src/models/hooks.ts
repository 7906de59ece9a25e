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
 */
import * as tf from '@tensorflow/tfjs';
import picomatch from 'picomatch';
import { distance } from 'fastest-levenshtein';
import type { Module } from './module';

export type ModuleOutput = tf.Tensor | tf.Tensor[];

/** An intervention: return a replacement tensor, or nothing to leave the output unchanged (pure observer). */
export type HookFn = (t: tf.Tensor, info: { name: string }) => tf.Tensor | void;

interface ActiveContext {
  root: Module;
  visit(path: string, out: ModuleOutput): ModuleOutput;
}

let active: ActiveContext | undefined;

export function currentHookContext(): ActiveContext | undefined {
  return active;
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

function closest(name: string, names: string[], k = 5): string[] {
  return [...names]
    .map((n) => [n, distance(name, n)] as const)
    .sort((a, b) => a[1] - b[1])
    .slice(0, k)
    .map(([n]) => n);
}

/** Compiles patterns and throws one error naming every pattern that matches no hook point. */
export function compilePatterns(root: Module, patterns: string[]): Matcher[] {
  const names = hookPoints(root);
  const bad: string[] = [];
  const matchers = patterns.map((pat) => {
    const base = pat.replace(/:\d+$/, '');
    const m = globMatcher(base);
    if (!names.some(m)) bad.push(`'${pat}' (closest: ${closest(base, names).join(', ')})`);
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

function withContext<T>(ctx: ActiveContext, fn: () => T): T {
  if (active) throw new Error('hooks: a hooked run is already active (nested runWithHooks/runWithCache)');
  active = ctx;
  try {
    return fn();
  } finally {
    active = undefined;
  }
}

/**
 * Runs `fn` (a forward of `root`) with interventions: for every hook point whose name matches a key of
 * `hooks`, the hook may replace the output. Runs inside tf.tidy: intermediate tensors, including those a hook
 * creates and does not return, are freed; the result of `fn` is kept.
 */
export function runWithHooks<T extends tf.TensorContainer>(
  root: Module,
  hooks: Record<string, HookFn | HookFn[]>,
  fn: () => T,
): T {
  const entries = Object.entries(hooks);
  const matchers = compilePatterns(
    root,
    entries.map(([k]) => k),
  );
  const fns = entries.map(([, f]) => (Array.isArray(f) ? f : [f]));
  const ctx: ActiveContext = {
    root,
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
  return tf.tidy(() => withContext(ctx, fn));
}

/**
 * Runs `fn` and keeps the outputs of the hook points selected by `names` (globs). Returns them in a Map the
 * caller owns and must dispose (disposeCache). If a hook point fires more than once (a shared module), the
 * last output is kept. No gradient tape is involved unless the caller runs this inside tf.grad.
 */
export function runWithCache<T extends tf.TensorContainer>(
  root: Module,
  names: string | string[],
  fn: () => T,
): { output: T; cache: Map<string, tf.Tensor> } {
  const patterns = Array.isArray(names) ? names : [names];
  const matchers = compilePatterns(root, patterns);
  const cache = new Map<string, tf.Tensor>();
  const ctx: ActiveContext = {
    root,
    visit(path, out) {
      for (const [name, t] of elements(path, out)) {
        if (!matchers.some((m) => m(name))) continue;
        cache.get(name)?.dispose();
        cache.set(name, tf.keep(t.clone()));
      }
      return out;
    },
  };
  try {
    const output = tf.tidy(() => withContext(ctx, fn));
    return { output, cache };
  } catch (e) {
    disposeCache(cache);
    throw e;
  }
}

export function disposeCache(cache: Map<string, tf.Tensor>): void {
  for (const t of cache.values()) t.dispose();
  cache.clear();
}
