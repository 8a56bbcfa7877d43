export * from './types.ts';
export * from './errors.ts';
export * from './uri.ts';
export * from './newest.ts';
export * from './file-store.ts';
export * from './s3-store.ts';
export * from './create-store.ts';
