/** Ablation and attribution studies: modes, the runner, statistics, evaluation data, LAM and the ERF. */
export * from './modes';
export * from './runner';
export * from './stats';
export * from './data';
export * from './lam';
