/**
 * A model as plain data that can cross to a worker thread (structured clone): its family, resolved config and
 * every unique parameter's value in TF.js layout. `rebuildModel` builds the same network from the family
 * descriptor and assigns the values, so the copy computes the same bits as the original.
 *
 * Only a model that its family's `build(config)` reproduces can travel: the rebuilt parameter list must match
 * the original's names and shapes exactly (a multi-task model or a family registered outside src/models does
 * not), which `assertRebuildable` checks without allocating anything.
 */
import * as tf from '@tensorflow/tfjs';
import { getFamily, hasFamily, type Config } from './family';
import type { RestorationModel } from './model';
import { withShapeOnly, withZeroInit } from './module';

export interface TransferredParameter {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface TransferredModel {
  family: string;
  preset?: string;
  config: Config;
  parameters: TransferredParameter[];
}

const WHERE = 'model transfer';

function describe(model: RestorationModel): string {
  return model.preset ?? model.family;
}

/** Names, official shapes and layouts of the unique parameters (known for shape-only builds too). */
function signature(model: RestorationModel): string[] {
  return model.namedParameters().map(([name, p]) => `${name}:${p.torchShape.join('x')}:${p.layout}`);
}

/** Throws a one-line error unless getFamily(model.family).build(model.config) has the same parameters. */
export function assertRebuildable(model: RestorationModel): void {
  if (!hasFamily(model.family)) throw new Error(`${WHERE}: ${describe(model)} is of family '${model.family}', which a worker cannot build (not registered in src/models)`);
  const rebuilt = withShapeOnly(() => getFamily(model.family).build({ ...model.config }));
  const want = signature(model);
  const got = signature(rebuilt);
  const differs = want.length !== got.length || want.some((w, i) => w !== got[i]);
  if (differs)
    throw new Error(
      `${WHERE}: ${describe(model)} is not what its family builds from its config (a multi-task or modified model); it cannot be copied to a worker`,
    );
}

/** Copies the model's parameters out (one Float32Array each, in TF.js layout). */
export function transferModel(model: RestorationModel): TransferredModel {
  assertRebuildable(model);
  return {
    family: model.family,
    ...(model.preset !== undefined ? { preset: model.preset } : {}),
    config: { ...model.config },
    parameters: model.namedParameters().map(([name, p]) => ({
      name,
      shape: [...p.variable.shape],
      data: Float32Array.from(p.variable.dataSync() as Float32Array),
    })),
  };
}

/** Builds the transferred model (no random draws) and assigns its parameters by strict name and shape. */
export function rebuildModel(t: TransferredModel): RestorationModel {
  const model = withZeroInit(() => getFamily(t.family).build({ ...t.config }));
  model.preset = t.preset;
  const params = model.namedParameters();
  const expected = params.map(([name, p]) => `${name}:${p.variable.shape.join('x')}`);
  const given = t.parameters.map((p) => `${p.name}:${p.shape.join('x')}`);
  if (expected.length !== given.length || expected.some((e, i) => e !== given[i])) {
    model.dispose();
    throw new Error(`${WHERE}: the parameters sent for ${t.preset ?? t.family} do not match what its family builds from the config`);
  }
  params.forEach(([, p], i) => {
    const v = t.parameters[i];
    if (v.data.length !== p.size) throw new Error(`${WHERE}: parameter '${v.name}' has ${v.data.length} values, expected ${p.size}`);
    tf.tidy(() => p.variable.assign(tf.tensor(v.data, v.shape, 'float32')));
  });
  return model;
}
