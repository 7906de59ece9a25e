/** Pre-training studies: degradations, data, losses, optimisation, multi-task models and the trainer. */
export * from './degradations';
export * from './data';
export * from './losses';
export * from './optim';
export * from './multitask';
export * from './train-checkpoint';
export * from './trainer';
export * from './study';
export * from './study-report';
