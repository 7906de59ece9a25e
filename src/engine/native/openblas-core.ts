/**
 * The OpenBLAS kernel set for this CPU, from its instruction-set flags. OpenBLAS (DYNAMIC_ARCH, as Debian builds
 * it) picks its kernels by CPU model at load time, and a release older than the CPU falls back to generic SSE3
 * ones: Debian's 0.3.21 runs Prescott kernels on Emerald Rapids Xeons (family 6 model 207; measured here, PyTorch's 4096x180x540
 * sgemm on one thread: 35 GFLOP/s with the Prescott kernels, 169 with OPENBLAS_CORETYPE=SkylakeX). The AVX-512
 * and AVX2 kernel sets run on every CPU that has the flags they use, so choosing by flags is never slower.
 */
import * as fs from 'node:fs';

/** 'Cooperlake' (AVX-512 with BF16), 'SkylakeX' (AVX-512), 'Haswell' (AVX2 + FMA), or undefined. */
export function openblasCoreFor(flags: ReadonlySet<string>): string | undefined {
  const avx512 = ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512cd'].every((f) => flags.has(f));
  if (avx512 && flags.has('avx512_bf16')) return 'Cooperlake';
  if (avx512) return 'SkylakeX';
  if (flags.has('avx2') && flags.has('fma')) return 'Haswell';
  return undefined;
}

/** The CPU's flags from /proc/cpuinfo (empty where there is none: the choice is then left to OpenBLAS). */
function cpuFlags(): Set<string> {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    return new Set(line ? line.slice(line.indexOf(':') + 1).trim().split(/\s+/) : []);
  } catch {
    return new Set();
  }
}

/** The OPENBLAS_CORETYPE for this machine: the user's, else openblasCoreFor(this CPU's flags). */
export function openblasCoreType(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const set = env.OPENBLAS_CORETYPE;
  return set !== undefined && set.trim() !== '' ? set : openblasCoreFor(cpuFlags());
}
