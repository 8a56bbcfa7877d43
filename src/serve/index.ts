export * from './app.ts';
export * from './server.ts';
export * from './config.ts';
export * from './cpu.ts';
export * from './errors.ts';
export * from './batching.ts';
export * from './tensor-codec.ts';
export * from './model-host.ts';
