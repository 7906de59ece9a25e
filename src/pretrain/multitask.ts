/**
 * Multi-task models: one shared body, one head/tail per task.
 *
 * EDT has native task branches (forward(x, task) with its own heads and tails): it is trained as is, one task
 * per batch. The other families are single-task networks; MultiTaskModel builds one network per task (each
 * with the configuration that task needs, e.g. SwinIR's `upscale`) and TIES their body parameters: every
 * body parameter of task t's network is the same tf.Variable as task 0's (Module.tieParameter). Which parameters
 * are task-specific is a per-family choice: the `tasks` adapter of the family descriptor (src/models/family.ts,
 * filled in each family's file: headPrefixes, configFor, nativeConfigFor).
 *
 * Names: the wrapper's state_dict has the body under the single-task names (encoder_level1.0.attn.qkv.weight)
 * and each task's head under heads.<task>.<single-task name> (heads.sr-x2.conv_first.weight). Hook points are
 * the single-task network's paths for the task being run (body and head alike): model.runWithCache(x, names,
 * task) runs task's network, so CKA layer names match single-task models. namedModules() (hence hookPoints and
 * compilePatterns) lists those paths, but the modules report to their task network, not to the wrapper: capture
 * through the wrapper's runWithCache/runWithHooks methods, not hooks.ts's free functions with the wrapper as root.
 */
import * as tf from '@tensorflow/tfjs';
import type { Module, Parameter } from '../models/module';
import type { HookFn, HookRunOptions } from '../models/hooks';
import { PaddingRule, RestorationModel, TaskKind, TaskSpec } from '../models/model';
import type { TaskAdapter } from '../models/family';
import { Config, createModel, getFamily, hasFamily, listFamilies, registerFamily, resolveSpec } from '../models/registry';
import { parseDegradation, type DegradationKind } from '../degradations';

// ------------------------------------------------------------------------------------------------ tasks

const KIND_OF_DEGRADATION: Record<DegradationKind, TaskKind> = {
  sr: 'sr',
  dn: 'dn',
  dr: 'dr',
  blur: 'deblur',
  jpeg: 'jpeg',
  none: 'restore',
};

/** Task names that are not degradations (paired real data); their kind follows the model zoo's names. */
const NAMED_TASKS: Record<string, TaskKind> = { deblur: 'deblur', derain: 'dr', denoise: 'dn', defocus: 'defocus', restore: 'restore' };

/**
 * A training task from its name: a degradation name ('sr-x2', 'dn-25', 'dr-light', 'blur-motion', 'jpeg-q20')
 * gives kind, scale and the synthetic degradation; other names ('deblur', 'derain', 'real-sr-x4', anything for
 * paired folders) give a task without a degradation, scale from an 'x<N>' suffix or `scale`.
 */
export function describeTask(name: string, scale?: number): TaskSpec {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`--tasks: invalid task name '${name}'`);
  try {
    const d = parseDegradation(name);
    if (scale !== undefined && scale !== d.scale) throw new Error(`--scale ${scale} contradicts task '${name}' (scale ${d.scale})`);
    return { name, kind: KIND_OF_DEGRADATION[d.kind], scale: d.scale, degradation: name };
  } catch (e) {
    if ((e as Error).message.startsWith('--scale')) throw e;
  }
  const m = /-x(\d+)$/.exec(name);
  const s = m ? Number(m[1]) : scale ?? 1;
  if (scale !== undefined && s !== scale) throw new Error(`--scale ${scale} contradicts task '${name}' (scale ${s})`);
  const kind: TaskKind = NAMED_TASKS[name] ?? (name.startsWith('real-sr') ? 'real-sr' : m ? 'sr' : 'restore');
  return { name, kind, scale: s };
}

/**
 * The branch of `model` that trains `task`: the branch of that name if the model has one (EDT, the wrapper),
 * otherwise the default branch when every branch has the task's scale (a single-task network: its branch
 * names only pick test conventions). Throws a one-line error otherwise.
 */
export function resolveBranch(model: RestorationModel, task: TaskSpec): string | undefined {
  const branches = model.tasks();
  if (branches.some((b) => b.name === task.name)) return task.name;
  if (branches.every((b) => b.scale === task.scale)) return undefined;
  throw new Error(
    `model ${model.preset ?? model.family} has no branch for task '${task.name}' (scale ${task.scale}); branches: ` +
      branches.map((b) => `${b.name} (x${b.scale})`).join(', '),
  );
}

// --------------------------------------------------------------------------------------------- adapters

export type { TaskAdapter } from '../models/family';

/** The task adapter (head/body split) of a family: its descriptor's `tasks` (src/models/<family>.ts). */
export function getTaskAdapter(family: string): TaskAdapter {
  const a = hasFamily(family) ? getFamily(family).tasks : undefined;
  if (!a) {
    const split = listFamilies().filter((f) => f.tasks).map((f) => f.name);
    throw new Error(`multi-task: family '${family}' has no head/body split (families: ${split.join(', ')}); EDT models have native task branches`);
  }
  return a;
}

export function hasTaskAdapter(family: string): boolean {
  return hasFamily(family) && getFamily(family).tasks !== undefined;
}

export function isHeadKey(key: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => key === p || key.startsWith(`${p}.`));
}

/** createModel with a task-derived config; a config the family refuses is reported as a task it cannot train. */
function createForTasks(spec: string, config: Config, tasks: TaskSpec[], seed?: number): RestorationModel {
  try {
    return createModel(spec, { config, seed });
  } catch (e) {
    const msg = (e as Error).message;
    if (!/ config: /.test(msg)) throw e;
    throw new Error(`--tasks: ${spec} cannot train ${tasks.map((t) => `'${t.name}'`).join(', ')} (${msg})`);
  }
}

/**
 * A single-task network for `task` built from a preset/family: the model itself when it has a branch for the
 * task, else the family adapter's configuration for it (e.g. swinir-tiny with upscale 1 for 'dn-25').
 */
export function createTaskModel(spec: string, task: TaskSpec, opts: { config?: Config; seed?: number } = {}): RestorationModel {
  const { family, config } = resolveSpec(spec, opts.config);
  const adapter = family.tasks;
  if (adapter?.nativeConfigFor) {
    const model = createForTasks(spec, { ...(opts.config ?? {}), ...adapter.nativeConfigFor(config, [task]) }, [task], opts.seed);
    resolveBranch(model, task);
    return model;
  }
  const model = createModel(spec, opts);
  try {
    resolveBranch(model, task);
    return model;
  } catch (e) {
    if (!adapter) {
      model.dispose();
      throw e;
    }
    model.dispose();
  }
  const adapted = createForTasks(spec, { ...(opts.config ?? {}), ...adapter.configFor(config, task) }, [task], opts.seed);
  resolveBranch(adapted, task);
  return adapted;
}

/**
 * The model of a training run on `tasks`: one network for one task; several tasks: a network with native
 * branches (EDT, with exactly these branches), else a MultiTaskModel (tied body, one head per task); a family
 * without a split is used as is when it has a branch of every task's name.
 */
export function createTrainModel(spec: string, tasks: TaskSpec[], opts: { config?: Config; seed?: number } = {}): RestorationModel {
  if (tasks.length === 1) return createTaskModel(spec, tasks[0], opts);
  const { family, config } = resolveSpec(spec, opts.config);
  const adapter = family.tasks;
  if (adapter?.nativeConfigFor) {
    const model = createForTasks(spec, { ...(opts.config ?? {}), ...adapter.nativeConfigFor(config, tasks) }, tasks, opts.seed);
    tasks.forEach((t) => resolveBranch(model, t));
    return model;
  }
  if (adapter) return createMultiTaskModel(spec, tasks.map((t) => t.name), opts);
  const model = createModel(spec, opts);
  const missing = tasks.filter((t) => !model.tasks().some((b) => b.name === t.name));
  if (missing.length === 0) return model;
  model.dispose();
  return getTaskAdapter(family.name) as never; // throws the one-line error naming the families that can be split
}

/** Head keys of a single-task model (its family's adapter), for freezing and fine-tuning. */
export function headKeysOf(model: RestorationModel): string[] {
  const prefixes = getTaskAdapter(model.family).headPrefixes(model.config as Config);
  return model.stateEntries().map(([k]) => k).filter((k) => isHeadKey(k, prefixes));
}

// ------------------------------------------------------------------------------------------- the wrapper

export interface MultiTaskConfig {
  /** Preset or family name of the single-task networks. */
  model: string;
  /** Official hyper-parameters overriding the preset (shared by every task's network). */
  config: Config;
  /** Task names (degradation names or named tasks), the first is the default branch. */
  tasks: string[];
}

/** Walks module children by a dotted path. */
function moduleAt(root: RestorationModel, path: string) {
  let m: { children(): [string, unknown][] } = root;
  for (const seg of path.split('.')) {
    const next = m.children().find(([n]) => n === seg);
    if (!next) throw new Error(`multi-task: no module '${path}'`);
    m = next[1] as typeof m;
  }
  return m as unknown as { tieParameter(name: string, p: Parameter): void };
}

export class MultiTaskModel extends RestorationModel {
  readonly family = 'multitask';
  readonly config: Readonly<MultiTaskConfig>;
  readonly inChannels: number;
  readonly outChannels: number;
  /** Family of the per-task networks. */
  readonly baseFamily: string;
  readonly headPrefixes: readonly string[];
  private readonly specs: TaskSpec[];
  private readonly nets = new Map<string, RestorationModel>();
  private readonly branches = new Map<string, string | undefined>();

  constructor(config: Readonly<Config>) {
    super();
    const c = config as unknown as MultiTaskConfig;
    this.config = c;
    const { family, preset, config: base } = resolveSpec(c.model, c.config);
    this.baseFamily = family.name;
    const adapter = getTaskAdapter(family.name);
    this.headPrefixes = adapter.headPrefixes(base);
    this.specs = c.tasks.map((t) => describeTask(t));
    const built: RestorationModel[] = [];
    try {
      for (const task of this.specs) {
        const net = family.build(resolveSpec(c.model, { ...c.config, ...adapter.configFor(base, task) }).config);
        net.preset = preset?.name;
        built.push(net);
        this.nets.set(task.name, net);
        this.branches.set(task.name, resolveBranch(net, task));
      }
      const body = new Map(built[0].stateEntries().filter(([k]) => !this.isHead(k)));
      for (const net of built.slice(1)) {
        for (const [k, p] of net.stateEntries()) {
          if (this.isHead(k)) continue;
          const shared = body.get(k);
          if (!shared) throw new Error(`multi-task: body parameter '${k}' of task networks differs`);
          const dot = k.lastIndexOf('.');
          const owner = dot < 0 ? net : moduleAt(net, k.slice(0, dot));
          if (p !== shared) owner.tieParameter(k.slice(dot + 1), shared);
        }
      }
    } catch (e) {
      for (const n of built) n.dispose();
      throw e;
    }
    this.inChannels = built[0].inChannels;
    this.outChannels = built[0].outChannels;
  }

  private isHead(key: string): boolean {
    return isHeadKey(key, this.headPrefixes);
  }

  tasks(): TaskSpec[] {
    return this.specs.map((s) => ({ ...s }));
  }

  /** The single-task network that runs `task` (body shared with the others). */
  taskNetwork(task?: string): RestorationModel {
    return this.nets.get(this.task(task).name)!;
  }

  /** The branch name passed to the task network's forward (usually its default branch). */
  private branch(task?: string): string | undefined {
    return this.branches.get(this.task(task).name);
  }

  forward(x: tf.Tensor4D, task?: string): tf.Tensor4D {
    return this.taskNetwork(task).forward(x, this.branch(task));
  }

  /** MPRNet-style stage outputs, when the task networks have them. */
  forwardStages(x: tf.Tensor4D, task?: string): tf.Tensor4D[] {
    const net = this.taskNetwork(task) as RestorationModel & { forwardStages?: (x: tf.Tensor4D, t?: string) => tf.Tensor4D[] };
    if (typeof net.forwardStages !== 'function') throw new Error(`multi-task: ${this.baseFamily} has no stage outputs`);
    return net.forwardStages(x, this.branch(task));
  }

  paddingRule(task?: string): PaddingRule {
    return this.taskNetwork(task).paddingRule(this.branch(task));
  }

  defaultLayers(task?: string): string[] {
    return this.taskNetwork(task).defaultLayers(this.branch(task));
  }

  override ignoredStateKeys(): RegExp[] {
    return [...this.nets.values()][0].ignoredStateKeys();
  }

  override runWithCache(x: tf.Tensor4D, names: string | string[], task?: string) {
    return this.taskNetwork(task).runWithCache(x, names, this.branch(task));
  }

  override runWithHooks(x: tf.Tensor4D, hooks: Record<string, HookFn | HookFn[]>, task?: string, opts: HookRunOptions = {}): tf.Tensor4D {
    return this.taskNetwork(task).runWithHooks(x, hooks, this.branch(task), opts);
  }

  /** Body under single-task names, then each task's head under heads.<task>.<name>. */
  override stateEntries(prefix = ''): [string, Parameter][] {
    const join = (k: string) => (prefix === '' ? k : `${prefix}.${k}`);
    const nets = [...this.nets];
    const out: [string, Parameter][] = nets[0][1]
      .stateEntries()
      .filter(([k]) => !this.isHead(k))
      .map(([k, p]) => [join(k), p]);
    for (const [task, net] of nets)
      for (const [k, p] of net.stateEntries()) if (this.isHead(k)) out.push([join(`heads.${task}.${k}`), p]);
    return out;
  }

  /**
   * The task networks' modules under their single-task paths (union over tasks, first occurrence wins), so
   * hook-point globs validate against the names runWithCache/runWithHooks(x, names, task) use.
   */
  override namedModules(prefix = ''): [string, Module][] {
    const seen = new Set<string>();
    const out: [string, Module][] = [];
    for (const net of this.nets.values())
      for (const [p, m] of net.namedModules(prefix)) {
        if (p === prefix || seen.has(p)) continue;
        seen.add(p);
        out.push([p, m]);
      }
    return [[prefix, this], ...out];
  }

  /** Variables a batch of `task` trains (its network: shared body + its head). */
  taskVariables(task?: string): tf.Variable[] {
    return this.taskNetwork(task).variables();
  }
}

registerFamily({
  name: 'multitask',
  defaults: { model: 'refnet-tiny', config: {}, tasks: ['dn-25'] },
  build: (config) => new MultiTaskModel(config),
  validate(c) {
    if (typeof c.model !== 'string' || c.model === '') throw new Error('config: multitask model must be a preset or family name');
    if (typeof c.config !== 'object' || c.config === null || Array.isArray(c.config)) throw new Error('config: multitask config must be an object');
    const tasks = c.tasks;
    if (!Array.isArray(tasks) || tasks.length === 0 || !tasks.every((t) => typeof t === 'string'))
      throw new Error('config: multitask tasks must be a non-empty list of task names');
    if (new Set(tasks).size !== tasks.length) throw new Error(`config: multitask tasks repeat a name (${tasks.join(', ')})`);
    const { family } = resolveSpec(c.model, c.config as Config);
    if (family.name === 'multitask') throw new Error('config: multitask of multitask');
    getTaskAdapter(family.name);
    getFamily(family.name);
  },
});

/** Builds a MultiTaskModel with seeded initialisation (body drawn first, with task 0's network). */
export function createMultiTaskModel(model: string, tasks: string[], opts: { config?: Config; seed?: number } = {}): MultiTaskModel {
  return createModel('multitask', { config: { model, config: opts.config ?? {}, tasks }, seed: opts.seed }) as MultiTaskModel;
}
