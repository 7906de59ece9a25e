/**
 * Seeded, serialisable random numbers. Every stochastic step in irlens (crops, noise, rain, bootstrap,
 * subsampling) draws from an Rng so that runs are reproducible and training can resume mid-stream.
 * seedrandom's Alea generator exposes its state, which checkpoints store.
 */
import seedrandom from 'seedrandom';

export type RngState = seedrandom.State.Alea;

export class Rng {
  private gen: seedrandom.StatefulPRNG<seedrandom.State.Alea>;
  private spareNormal: number | undefined;

  constructor(seed: number | string, state?: RngState) {
    this.gen = state
      ? seedrandom.alea('', { state: { ...state } })
      : seedrandom.alea(String(seed), { state: true });
  }

  /** Uniform in [0,1) with 53 bits. */
  uniform(): number {
    return this.gen.double();
  }

  /** Integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo));
  }

  /** Standard normal (Marsaglia polar method). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const s = this.spareNormal;
      this.spareNormal = undefined;
      return s;
    }
    let u: number, v: number, s: number;
    do {
      u = 2 * this.uniform() - 1;
      v = 2 * this.uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.spareNormal = v * f;
    return u * f;
  }

  /** Fisher-Yates permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** A child generator with an independent stream, derived deterministically from this one. */
  fork(label: string): Rng {
    return new Rng(`${label}:${this.uniform()}`);
  }

  /** Serialisable state (the pending spare normal is dropped by design: resume draws fresh pairs). */
  state(): RngState {
    this.spareNormal = undefined;
    return this.gen.state();
  }
}
