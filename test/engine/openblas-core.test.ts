/** OpenBLAS's kernel set chosen from the CPU's flags (src/engine/native/openblas-core.ts). */
import { describe, expect, it } from 'vitest';
import { openblasCoreFor, openblasCoreType } from '../../src/engine/native/openblas-core';

const AVX512 = ['avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512cd'];

describe('OpenBLAS kernel set by CPU flags', () => {
  it('takes the widest kernel set whose instructions the CPU has', () => {
    // Emerald Rapids / Zen 4 (AVX-512 with BF16), Skylake-SP (AVX-512), Zen 2 / Haswell (AVX2 + FMA), older.
    expect(openblasCoreFor(new Set(['sse4_2', 'avx2', 'fma', ...AVX512, 'avx512_bf16']))).toBe('Cooperlake');
    expect(openblasCoreFor(new Set(['avx2', 'fma', ...AVX512]))).toBe('SkylakeX');
    expect(openblasCoreFor(new Set(['avx', 'avx2', 'fma']))).toBe('Haswell');
    // AVX-512 without one of the subsets the SkylakeX kernels use (Knights Landing has no BW/VL/DQ).
    expect(openblasCoreFor(new Set(['avx2', 'fma', 'avx512f', 'avx512cd']))).toBe('Haswell');
    expect(openblasCoreFor(new Set(['sse4_2', 'avx']))).toBeUndefined();
    expect(openblasCoreFor(new Set())).toBeUndefined();
  });

  it("keeps the user's OPENBLAS_CORETYPE", () => {
    expect(openblasCoreType({ OPENBLAS_CORETYPE: 'Haswell' })).toBe('Haswell');
    expect(openblasCoreType({ OPENBLAS_CORETYPE: ' ' })).toBe(openblasCoreType({}));
  });
});
