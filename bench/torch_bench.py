#!/usr/bin/python3
"""PyTorch side of `irlens bench --compare-torch`: times our own PyTorch reference models
(test/fixtures/make_<family>_fixtures.py, built from the official code's facts) on one input.

    /usr/bin/python3 bench/torch_bench.py --preset swinir-sr-x2 --size 64x64 --threads 1 --repeat 3 [--train] [--input x.npy]

Prints one JSON line: {"preset", "mode", "threads", "times_ms": [...], "cpu_ms": [...] (process CPU time, all
threads), "blas": ...}. Forward: no_grad, eval mode.
Training step: L1 loss on the final output, backward, AdamW (lr 1e-4, weight decay 1e-4, as irlens's default
optimiser), timed together. One warm-up run precedes the timed ones.
"""
import argparse
import ctypes
import importlib.util
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = ('restormer', 'mprnet', 'swinir', 'edt')
MODEL_CLASS = {'restormer': 'RestormerNet', 'mprnet': 'MPRNet', 'swinir': 'SwinIR', 'edt': 'EDT'}


def load_family(family):
    path = os.path.join(ROOT, 'test', 'fixtures', f'make_{family}_fixtures.py')
    spec = importlib.util.spec_from_file_location(f'irlens_ref_{family}', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def blas_in_use():
    """The BLAS library torch has loaded (from this process's memory map) and, for OpenBLAS, its kernel core."""
    with open('/proc/self/maps') as fh:
        libs = sorted({line.split()[-1] for line in fh if 'blas' in line.lower() and line.split()[-1].startswith('/')})
    for lib in libs:
        if 'openblas' in lib:
            try:
                core = ctypes.CDLL(lib).openblas_get_corename
                core.restype = ctypes.c_char_p
                return f'OpenBLAS ({core().decode()} kernels) {lib}'
            except (OSError, AttributeError):
                return f'OpenBLAS {lib}'
    return ', '.join(libs) or 'unknown'


def final_output(out):
    # MPRNet returns [stage3, stage2, stage1]; EDT returns one output per branch (one branch here).
    return out[0] if isinstance(out, (list, tuple)) else out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--preset', required=True)
    ap.add_argument('--size', required=True)
    ap.add_argument('--threads', type=int, required=True)
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--train', action='store_true')
    ap.add_argument('--input', help='NCHW float32 .npy input (default: seeded torch.rand)')
    a = ap.parse_args()
    family = a.preset.split('-')[0]
    if family not in FAMILIES:
        sys.exit(f'torch_bench: --preset must start with one of {", ".join(FAMILIES)}, got {a.preset!r}')
    h, w = (int(v) for v in a.size.lower().split('x'))
    mod = load_family(family)
    if a.preset not in mod.PRESETS:
        sys.exit(f'torch_bench: no PyTorch reference preset {a.preset!r} in make_{family}_fixtures.py')
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = getattr(mod, MODEL_CLASS[family])(**mod.PRESETS[a.preset])
    cin = next(p for p in model.parameters() if p.dim() == 4).shape[1]
    gen = torch.Generator().manual_seed(1)
    if a.input:
        import numpy as np
        x = torch.from_numpy(np.load(a.input).astype(np.float32))
        if tuple(x.shape[1:]) != (cin, h, w):
            sys.exit(f'torch_bench: --input {a.input} has shape {tuple(x.shape)}, expected (N, {cin}, {h}, {w})')
    else:
        x = torch.rand(a.batch, cin, h, w, generator=gen)
    call = (lambda t: model([t])) if family == 'edt' else model

    if a.train:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
        with torch.no_grad():
            gt = torch.rand(final_output(call(x)).shape, generator=gen)

        def run():
            opt.zero_grad(set_to_none=True)
            loss = (final_output(call(x)) - gt).abs().mean()
            loss.backward()
            opt.step()
    else:
        model.eval()

        def run():
            with torch.no_grad():
                final_output(call(x))

    run()  # warm-up
    times, cpu = [], []
    for _ in range(a.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)  # all threads of the process
    print(json.dumps({'preset': a.preset, 'mode': 'train' if a.train else 'forward', 'threads': torch.get_num_threads(),
                      'times_ms': times, 'cpu_ms': cpu, 'blas': blas_in_use(), 'torch': torch.__version__}))


if __name__ == '__main__':
    main()
