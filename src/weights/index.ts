/** Weights: the official-checkpoint catalog, the cache and downloads, shipped trained weights, provenance. */
export * from './catalog';
export * from './get';
export * from './hash';
export * from './home';
export * from './provenance';
export { downloadResumable, type DownloadOptions, type DownloadResult } from './download';
export * from './spec';
