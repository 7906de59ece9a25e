/**
 * The module tree: the only window into a model.
 *
 * Like torch.nn.Module, a model is a tree of named modules that own named parameters; a parameter's full name
 * (its path from the root) equals the PyTorch state_dict key of the official implementation, so official
 * checkpoints load by name and analysis layers are named like the papers name them.
 *
 * Every module output is a hook point named by its module path (TransformerLens's HookPoint idea, without
 * wrapping): `Module.call` runs `forward` and then consults the hook context of the root being run (see
 * hooks.ts). Parameters live in TF.js layout (NHWC activations, HWIO conv weights) and are converted to and
 * from PyTorch layout only at the state_dict boundary.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng';
import { currentHookContext, type ModuleOutput } from './hook-context';

/** How a PyTorch tensor maps onto the TF.js variable that stores it. */
export type TorchLayout =
  | 'same' // identical shape and order
  | 'conv' // Conv2d weight OIHW -> HWIO
  | 'depthwise' // depthwise Conv2d weight (C,1,kh,kw) -> [kh,kw,C,1]
  | 'linear' // Linear weight (out,in) -> (in,out)
  | 'convTranspose'; // ConvTranspose2d weight (in,out,kh,kw) -> [kh,kw,out,in]

const TO_TF_PERM: Record<Exclude<TorchLayout, 'same'>, number[]> = {
  conv: [2, 3, 1, 0],
  depthwise: [2, 3, 0, 1],
  linear: [1, 0],
  convTranspose: [2, 3, 1, 0],
};

/** A float tensor in PyTorch layout (row-major), as read from or written to a checkpoint. */
export interface TorchTensor {
  shape: number[];
  data: Float32Array;
}

export class Parameter {
  /** Number of scalars (known without touching the variable, so shape-only parameters have it too). */
  readonly size: number;
  constructor(
    readonly variable: tf.Variable,
    /** Shape of the same tensor in the official PyTorch code. */
    readonly torchShape: number[],
    readonly layout: TorchLayout,
    /** Recorded by a shape-only build: `variable` is a placeholder that throws when used. */
    readonly shapeOnly = false,
  ) {
    this.size = torchShape.reduce((a, b) => a * b, 1);
  }

  /** Copies the value out in PyTorch layout. */
  toTorch(): TorchTensor {
    const data = tf.tidy(() => {
      const v = this.layout === 'same' ? this.variable : tf.transpose(this.variable, inversePerm(TO_TF_PERM[this.layout]));
      return v.dataSync() as Float32Array;
    });
    return { shape: [...this.torchShape], data: Float32Array.from(data) };
  }

  /** Assigns a value given in PyTorch layout; the caller has checked the shape. */
  assignFromTorch(t: TorchTensor): void {
    tf.tidy(() => {
      const src = tf.tensor(t.data, this.torchShape, 'float32');
      this.variable.assign(this.layout === 'same' ? src : tf.transpose(src, TO_TF_PERM[this.layout]));
    });
  }
}

function inversePerm(p: number[]): number[] {
  const inv = new Array<number>(p.length);
  p.forEach((v, i) => (inv[v] = i));
  return inv;
}

/** Converts a PyTorch-layout shape into the TF.js-layout shape for a given layout. */
export function tfShapeOf(torchShape: number[], layout: TorchLayout): number[] {
  return layout === 'same' ? [...torchShape] : TO_TF_PERM[layout].map((i) => torchShape[i]);
}

/** Parameter initialisers, in PyTorch's terms. All draw from the seeded init Rng (see withInitSeed). */
export type Init =
  | { kind: 'uniform'; bound: number }
  | { kind: 'normal'; std: number; truncate?: number }
  | { kind: 'constant'; value: number };

let initRng = new Rng(0);
/** When set, parameters are created as zeros without drawing random numbers. */
let zeroInit = false;
/** When set, parameters are recorded as shapes only: no tensor is allocated (see withShapeOnly). */
let shapeOnly = false;

/** Builds something (usually a model) with parameters drawn from a generator seeded with `seed`. */
export function withInitSeed<T>(seed: number, build: () => T): T {
  const saved = initRng;
  initRng = new Rng(`init:${seed}`);
  try {
    return build();
  } finally {
    initRng = saved;
  }
}

/** Builds something with all-zero parameters, skipping random draws: for parameter counts and key listings. */
export function withZeroInit<T>(build: () => T): T {
  const saved = zeroInit;
  zeroInit = true;
  try {
    return build();
  } finally {
    zeroInit = saved;
  }
}

/**
 * Builds something whose parameters are shapes only: no tensor is allocated, so parameter counts and key
 * listings of huge configurations take milliseconds. The result cannot run (any use of a parameter's
 * variable throws) and needs no dispose.
 */
export function withShapeOnly<T>(build: () => T): T {
  const saved = shapeOnly;
  shapeOnly = true;
  try {
    return build();
  } finally {
    shapeOnly = saved;
  }
}

/** Stands in for the variable of a shape-only parameter; any use is a one-line error. */
const SHAPE_ONLY_VARIABLE = new Proxy(
  {},
  {
    get(_t, key) {
      throw new Error(`shape-only model: parameters have no values (read '${String(key)}'); build it with createModel`);
    },
  },
) as tf.Variable;

function drawInit(n: number, init: Init): Float32Array {
  const out = new Float32Array(n);
  if (zeroInit) return out;
  switch (init.kind) {
    case 'constant':
      out.fill(init.value);
      break;
    case 'uniform':
      for (let i = 0; i < n; i++) out[i] = (2 * initRng.uniform() - 1) * init.bound;
      break;
    case 'normal': {
      const cut = init.truncate ?? Infinity; // in units of std, like timm's trunc_normal_(std, a=-2, b=2) ~ 2/std
      for (let i = 0; i < n; i++) {
        let z: number;
        do z = initRng.normal();
        while (Math.abs(z) > cut);
        out[i] = z * init.std;
      }
      break;
    }
  }
  return out;
}

export abstract class Module {
  private readonly ownParams = new Map<string, Parameter>();
  private readonly ownChildren = new Map<string, Module>();
  private parent: Module | undefined;
  private localName = '';

  /** Registers a child module under `name` (its state_dict segment) and returns it. */
  protected child<M extends Module>(name: string, m: M): M {
    if (this.ownChildren.has(name) || this.ownParams.has(name)) throw new Error(`duplicate member '${name}'`);
    this.ownChildren.set(name, m);
    // A shared module (MPRNet's one PReLU) keeps the path of its first registration, like named_modules().
    if (m.parent === undefined && (m as Module) !== this) {
      m.parent = this;
      m.localName = name;
    }
    return m;
  }

  /** Creates a trainable parameter. `torchShape` is the official shape; the variable uses TF.js layout. */
  protected param(name: string, torchShape: number[], init: Init, layout: TorchLayout = 'same'): tf.Variable {
    if (this.ownChildren.has(name) || this.ownParams.has(name)) throw new Error(`duplicate member '${name}'`);
    if (!torchShape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`parameter '${name}': invalid shape [${torchShape}]`);
    if (shapeOnly) {
      this.ownParams.set(name, new Parameter(SHAPE_ONLY_VARIABLE, [...torchShape], layout, true));
      return SHAPE_ONLY_VARIABLE;
    }
    const shape = tfShapeOf(torchShape, layout);
    const n = shape.reduce((a, b) => a * b, 1);
    const initial = tf.tensor(drawInit(n, init), shape, 'float32');
    const v = tf.variable(initial, true); // the variable copies: free the initial value
    initial.dispose();
    this.ownParams.set(name, new Parameter(v, [...torchShape], layout));
    return v;
  }

  /** Dotted path from the root ('' for the root). */
  get path(): string {
    if (!this.parent) return '';
    const p = this.parent.path;
    return p === '' ? this.localName : `${p}.${this.localName}`;
  }

  get root(): Module {
    let m: Module = this;
    while (m.parent) m = m.parent;
    return m;
  }

  children(): [string, Module][] {
    return [...this.ownChildren];
  }

  /** All modules with their paths, each module once (first path wins), the root first, like named_modules(). */
  namedModules(prefix = ''): [string, Module][] {
    const seen = new Set<Module>();
    const out: [string, Module][] = [];
    const walk = (m: Module, p: string) => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([p, m]);
      for (const [n, c] of m.ownChildren) walk(c, p === '' ? n : `${p}.${n}`);
    };
    walk(this, prefix);
    return out;
  }

  /**
   * Every parameter under every path it is reachable by, like state_dict(): a shared parameter appears
   * once per path (MPRNet's PReLU under 55 keys).
   */
  stateEntries(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [n, p] of this.ownParams) out.push([prefix === '' ? n : `${prefix}.${n}`, p]);
    for (const [n, c] of this.ownChildren) out.push(...c.stateEntries(prefix === '' ? n : `${prefix}.${n}`));
    return out;
  }

  /** Unique parameters with their first path, like named_parameters(). */
  namedParameters(): [string, Parameter][] {
    const seen = new Set<Parameter>();
    return this.stateEntries().filter(([, p]) => (seen.has(p) ? false : (seen.add(p), true)));
  }

  /** Trainable variables (unique), for optimizers and tf.variableGrads. */
  variables(): tf.Variable[] {
    return this.namedParameters().map(([, p]) => p.variable);
  }

  /** Number of scalar parameters, counting shared ones once (PyTorch's sum(p.numel() for p in parameters())). */
  numParameters(): number {
    return this.namedParameters().reduce((s, [, p]) => s + p.size, 0);
  }

  /**
   * Parameter tying (multi-task models, src/pretrain/multitask.ts): makes this module's own parameter `name`
   * the given `shared` Parameter, so two module trees train one tf.Variable. Fields of this module that held the
   * old variable are pointed at the shared one (layers read `this.weight` etc.), and the old variable is freed.
   */
  tieParameter(name: string, shared: Parameter): void {
    const old = this.ownParams.get(name);
    if (!old) throw new Error(`tieParameter: module '${this.path}' has no parameter '${name}'`);
    if (old === shared) return;
    if (old.layout !== shared.layout || old.torchShape.join(',') !== shared.torchShape.join(','))
      throw new Error(`tieParameter: '${this.path}.${name}' is [${old.torchShape}], the shared parameter [${shared.torchShape}]`);
    this.ownParams.set(name, shared);
    const fields = this as unknown as Record<string, unknown>;
    for (const key of Object.keys(fields)) if (fields[key] === old.variable) fields[key] = shared.variable;
    if (!old.shapeOnly) old.variable.dispose();
  }

  /** Frees every variable of the tree. The module is unusable afterwards. */
  dispose(): void {
    for (const [, p] of this.namedParameters()) if (!p.shapeOnly) p.variable.dispose();
  }

  /**
   * Runs the module: forward, then the hooks of the active hook context for this module's path.
   * Architectures call children through `call`, never `forward`, so that every output is a hook point.
   */
  call<O extends ModuleOutput>(...args: unknown[]): O {
    const ctx = currentHookContext();
    if (!ctx || ctx.root !== this.root) return this.forward(...args) as O;
    const path = this.path;
    // A replayed module (runWithHooks' replay option) returns the output recorded in an earlier run unrun.
    const out = (ctx.replay?.(path) ?? this.forward(...args)) as O;
    return ctx.visit(path, out) as O;
  }

  /**
   * Reports `out`, computed elsewhere (a fused kernel), as this module's output without running its forward:
   * hooks see and may replace it, and a replayed run returns the recorded output instead, as with call().
   */
  report<O extends ModuleOutput>(out: O): O {
    const ctx = currentHookContext();
    if (!ctx || ctx.root !== this.root) return out;
    const replayed = ctx.replay?.(this.path) as O | undefined;
    return ctx.visit(this.path, replayed ?? out) as O;
  }

  abstract forward(...args: unknown[]): ModuleOutput;
}

/** Children named 0..n-1 run in order, like nn.Sequential. */
export class Sequential extends Module {
  readonly items: Module[];
  constructor(items: Module[]) {
    super();
    this.items = items.map((m, i) => this.child(String(i), m));
  }
  forward(x: tf.Tensor): tf.Tensor {
    let y = x;
    for (const m of this.items) y = m.call<tf.Tensor>(y);
    return y;
  }
}

/** Children named 0..n-1 with no forward of their own, like nn.ModuleList. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.child(String(i), m));
  }
  forward(): never {
    throw new Error(`ModuleList '${this.path}' has no forward; call its items`);
  }
}
