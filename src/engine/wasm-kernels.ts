/**
 * The wasm training kernels, split by kernel group under src/engine/wasm/ (see wasm/index.ts); this module keeps
 * the original import path.
 */
export * from './wasm';
