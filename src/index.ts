/**
 * irlens library API.
 *
 *   import * as irlens from 'irlens';
 *   await irlens.initBackend();
 *   const model = irlens.createModel('restormer-tiny');
 *   const { output, cache } = model.runWithCache(x, ['encoder_level1.*', 'latent']);
 */
export * from './engine/backend';
export * from './models';
export * from './models/checkpoint';
export * from './io';
export * from './analysis/gram';
export * from './analysis/hsic';
export * from './analysis/cka';
export * from './analysis/minibatch-cka';
export * from './analysis/features';
export * from './analysis/metrics';
export * from './analysis/similarity';
export * from './analysis/report';
export * from './pretrain';
export { Rng } from './util/rng';
export { IRLENS_VERSION, PACKAGE_ROOT } from './version';
