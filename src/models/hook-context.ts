/**
 * The active hook context: the one piece of state that Module.call (module.ts) and the hooked runs (hooks.ts)
 * share. It lives here, below both, so that neither imports the other's types in a circle; `root` is compared
 * by identity only, so it needs no Module type.
 */
import type * as tf from '@tensorflow/tfjs';

/** What a module returns: one tensor, or a list (exposed as hook points `<path>:<i>`). */
export type ModuleOutput = tf.Tensor | tf.Tensor[];

export interface HookContext {
  /** The root module whose forward is being run; modules of other trees ignore the context. */
  root: object;
  /** Reports a module output; returns the output to continue with (a hook may replace it). */
  visit(path: string, out: ModuleOutput): ModuleOutput;
  /** A replayed output for `path` (runWithHooks' replay option): the module's forward is then skipped. */
  replay?(path: string): ModuleOutput | undefined;
  /**
   * Whether this run reads or may change the output of `path` (a hook or capture pattern matches it). A module
   * may compute an unwatched intermediate in a fused kernel that never materialises it; absent: assume yes.
   */
  watches?(path: string): boolean;
}

/** Whether no hooked run of `root` reads or changes the outputs at `paths`: a fused kernel may skip them. */
export function unwatched(root: object, paths: string[]): boolean {
  const ctx = active;
  if (!ctx || ctx.root !== root) return true;
  return ctx.watches !== undefined && !paths.some((p) => ctx.watches!(p));
}

let active: HookContext | undefined;

export function currentHookContext(): HookContext | undefined {
  return active;
}

/** Runs `fn` with `ctx` active; hooked runs do not nest. */
export function withHookContext<T>(ctx: HookContext, fn: () => T): T {
  if (active) throw new Error('hooks: a hooked run is already active (nested runWithHooks/runWithCache)');
  active = ctx;
  try {
    return fn();
  } finally {
    active = undefined;
  }
}
