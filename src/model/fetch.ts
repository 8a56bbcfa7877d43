import type { Readable } from 'node:stream';
import { StoreError, isStoreError } from '../store/errors.ts';
import type { ObjectInfo, ObjectStore } from '../store/types.ts';
import { unquoteEtag } from '../store/uri.ts';
import { unpackModel } from './unpack.ts';
import type { UnpackOptions } from './unpack.ts';
import type { UnpackedModel } from './types.ts';

/** A model fetched from storage: the unpacked artifact plus the exact object it came from. */
export type FetchedModel = UnpackedModel & { readonly source: ObjectInfo };

/** Resolve-then-read attempts while an unpinned object keeps being overwritten between the two. */
const CHANGED_ATTEMPTS = 3;

/**
 * Downloads and safely unpacks a model: a URI ending in `/` means the newest `model.tar.gz` under
 * that prefix, anything else names the object itself. The download streams straight into the
 * unpacker; `source.uri` pins the exact object (with its versionId when the store has one).
 *
 * The read carries If-Match with the ETag the metadata came with, so `source` always describes
 * the bytes unpacked. An object overwritten in between is resolved again (an unpinned URI means
 * whatever is there now), up to 3 times; with `ifMatch` it fails with STORE_CHANGED instead.
 *
 * @example const model = await fetchModel(createStore(), 's3://acme-models/mnist/');
 */
export async function fetchModel(
  store: ObjectStore,
  uri: string,
  options: UnpackOptions & {
    /**
     * The ETag the object must have (the rollout pins it in SLIPWAY_MODEL_ETAG): an object
     * overwritten since is refused with STORE_CHANGED rather than served under the old pin.
     */
    readonly ifMatch?: string;
  } = {},
): Promise<FetchedModel> {
  const { ifMatch, ...unpackOptions } = options;
  for (let attempt = 1; ; attempt++) {
    const source = uri.endsWith('/') ? await store.newestModel(uri) : await store.head(uri);
    if (ifMatch !== undefined && source.etag !== undefined && source.etag !== unquoteEtag(ifMatch)) {
      throw new StoreError(
        'STORE_CHANGED',
        `${source.uri}: the object changed: its ETag is ${source.etag}, the deployment pinned ${unquoteEtag(ifMatch)}`,
      );
    }
    const expected = ifMatch ?? source.etag;
    let body: Readable;
    try {
      body = await store.get(source.uri, expected === undefined ? {} : { ifMatch: expected });
    } catch (err) {
      if (ifMatch !== undefined || !isStoreError(err, 'STORE_CHANGED')) throw err;
      if (attempt < CHANGED_ATTEMPTS) continue;
      throw new StoreError(
        'STORE_CHANGED',
        `${source.uri} changed between reading its metadata and its bytes ${CHANGED_ATTEMPTS} times in a row; try again once uploads to it have stopped`,
        { cause: err },
      );
    }
    const model = await unpackModel(body, unpackOptions);
    return { ...model, source };
  }
}
