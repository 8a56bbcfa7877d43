export * from './errors.ts';
export * from './paths.ts';
export * from './hyperparameters.ts';
export * from './training-env.ts';
export * from './run-job.ts';
export * from './job-name.ts';
export * from './input-mode.ts';
