/** `irlens layers MODEL`: every hook point with its output shape and layout, default CKA layers marked. */
import { Command } from 'commander';
import { createModel, LAYOUT_TEXT, layerInfo } from '../models';
import { loadModelSpec, parseConfigJson } from '../weights/spec';
import { parseSize, startBackend } from './common';

export function layersCommand(): Command {
  return new Command('layers')
    .description('list every hook point of a model with its output shape and layout; * marks the default CKA layers')
    .argument('<model>', 'preset or family name, PRESET@weights.pth, or an irlens .safetensors checkpoint')
    .option('--task <name>', 'task branch (default: the model\'s first; `irlens models` lists each preset\'s tasks)')
    .option('--size <HxW>', 'model input size, the low-resolution size for SR (default: the smallest valid side >= 32)')
    .option('--config <json>', 'official hyper-parameters overriding the preset, as JSON')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nLayouts: NHWC image (B,H,W,C); tokens (B,L,C) with L = H*W in raster order; per-head attention ' +
        '(B*nW,heads,N,N) and per-head outputs (B*nW,heads,N,head_dim); windows (B*nW,h,w,C) and window tokens (B*nW,N,C) inside window attention.\n' +
        'Names are hook points for runWithCache/runWithHooks and globs for `cka --layers-a/--layers-b`.\n',
    )
    .action(async (spec: string, opts: { task?: string; size?: string; config?: string; json?: boolean }, cmd: Command) => {
      const size = opts.size === undefined ? undefined : parseSize(opts.size);
      await startBackend(cmd.optsWithGlobals().backend, true);
      const config = parseConfigJson(opts.config);
      // Shapes do not depend on the weights: a bare preset or family is built untrained (no weights file needed);
      // PRESET@weights and checkpoints load, since a checkpoint's config lives in its metadata.
      const bare = !spec.includes('@') && !/[\\/]|\.(pth|pt|safetensors|ckpt)$/i.test(spec);
      const { model, label } = bare ? { model: createModel(spec, { config }), label: spec } : await loadModelSpec(spec, { config });
      try {
        const info = layerInfo(model, { task: opts.task, size });
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ model: label, ...info }, null, 2)}\n`);
          return;
        }
        const tasks = info.tasks.map((t) => (t === info.task ? `${t} (this listing)` : t)).join(', ');
        const [h, w, c] = info.input;
        const lines = [
          `${label} (${info.family}), task ${info.task}; tasks: ${tasks}`,
          `input 1x${h}x${w}x${c} (zeros) -> output [${info.output.join(', ')}]; default CKA layers (*): ${info.defaultGlobs.join(' ')}`,
        ];
        const width = Math.max(...info.layers.map((l) => l.name.length));
        for (const l of info.layers) {
          const shape = l.shape ? `[${l.shape.join(', ')}]` : '—';
          const layout = l.layout ? LAYOUT_TEXT[l.layout] : `not run for task ${info.task}`;
          lines.push(`${l.defaultLayer ? '*' : ' '} ${l.name.padEnd(width)}  ${shape.padEnd(22)}  ${layout}${l.description ? ` — ${l.description}` : ''}${l.calls > 1 ? ` (runs ${l.calls}x; first shown)` : ''}`);
        }
        const n = info.layers.filter((l) => l.defaultLayer && l.shape).length;
        lines.push(`${info.layers.length} hook points, ${n} default CKA layers`);
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        model.dispose();
      }
    });
}
