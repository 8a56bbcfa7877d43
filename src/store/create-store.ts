import type { Readable } from 'node:stream';
import { FileObjectStore } from './file-store.ts';
import { S3ObjectStore, createS3Client } from './s3-store.ts';
import type { S3StoreOptions } from './s3-store.ts';
import { StoreError } from './errors.ts';
import type { GetOptions, ObjectInfo, ObjectStore, PutOptions, StoreLocation } from './types.ts';
import { parseStoreUri } from './uri.ts';

/** Options of {@link createStore}; they configure the S3 side (file:// needs none). */
export type StoreOptions = S3StoreOptions;

function objectLocation(uri: string): StoreLocation {
  const location = parseStoreUri(uri);
  if (location.scheme === 's3' && (location.key === '' || location.key.endsWith('/'))) {
    throw new StoreError('STORE_BAD_URI', `${uri} names a prefix, not an object (add the object key)`);
  }
  if (location.scheme === 'file' && location.path.endsWith('/')) {
    throw new StoreError('STORE_BAD_URI', `${uri} names a directory, not an object`);
  }
  return location;
}

/**
 * One object store for `s3://` and `file://` URIs, dispatching on the scheme. The S3 client is
 * created lazily, so file-only callers need no AWS configuration.
 *
 * @example const store = createStore({ endpoint: 'http://127.0.0.1:4568' });
 */
export function createStore(options: StoreOptions = {}): ObjectStore {
  const files = new FileObjectStore();
  let s3: S3ObjectStore | undefined;
  const s3Store = (): S3ObjectStore => (s3 ??= new S3ObjectStore(createS3Client(options)));

  return {
    async get(uri: string, getOptions?: GetOptions): Promise<Readable> {
      const location = objectLocation(uri);
      return location.scheme === 's3' ? s3Store().get(location, getOptions) : files.get(location.path);
    },
    async put(
      uri: string,
      body: Readable | Uint8Array | string,
      putOptions?: PutOptions,
    ): Promise<ObjectInfo> {
      const location = objectLocation(uri);
      if (location.scheme === 's3' && location.versionId !== undefined) {
        throw new StoreError('STORE_BAD_URI', `${uri}: cannot write to a specific versionId (S3 assigns it)`);
      }
      return location.scheme === 's3'
        ? s3Store().put(location, body, putOptions)
        : files.put(location.path, body, putOptions);
    },
    async head(uri: string): Promise<ObjectInfo> {
      const location = objectLocation(uri);
      return location.scheme === 's3' ? s3Store().head(location) : files.head(location.path);
    },
    list(prefixUri: string): AsyncIterable<ObjectInfo> {
      const location = parseStoreUri(prefixUri);
      return location.scheme === 's3'
        ? s3Store().list(location.bucket, location.key)
        : files.list(location.path);
    },
    async newestModel(prefixUri: string): Promise<ObjectInfo> {
      const location = parseStoreUri(prefixUri);
      return location.scheme === 's3'
        ? s3Store().newestModel(location.bucket, location.key)
        : files.newestModel(location.path);
    },
  };
}
