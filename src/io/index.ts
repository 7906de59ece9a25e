/** irlens image I/O: image files, .npy, the built-in image set and folder datasets. */
export type { ImageF32 } from './types';
export * from './image';
export * from './npy';
export * from './folder';
export * from './builtin';
