/** Pre-training studies: data, losses, optimisation, multi-task models, the trainer and the study. */
export * from './data';
export * from './losses';
export * from './optim';
export * from './multitask';
export * from './train-checkpoint';
export * from './trainer';
export * from './study';
