import { StoreError } from '../store/errors.ts';
import type { ObjectInfo, ObjectStore } from '../store/types.ts';
import { unquoteEtag } from '../store/uri.ts';
import { unpackModel } from './unpack.ts';
import type { UnpackOptions } from './unpack.ts';
import type { UnpackedModel } from './types.ts';

/** A model fetched from storage: the unpacked artifact plus the exact object it came from. */
export type FetchedModel = UnpackedModel & { readonly source: ObjectInfo };

/**
 * Downloads and safely unpacks a model: a URI ending in `/` means the newest `model.tar.gz` under
 * that prefix, anything else names the object itself. The download streams straight into the
 * unpacker; `source.uri` pins the exact object (with its versionId when the store has one).
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
  const source = uri.endsWith('/') ? await store.newestModel(uri) : await store.head(uri);
  if (ifMatch !== undefined && source.etag !== undefined && source.etag !== unquoteEtag(ifMatch)) {
    throw new StoreError(
      'STORE_CHANGED',
      `${source.uri}: the object changed: its ETag is ${source.etag}, the deployment pinned ${unquoteEtag(ifMatch)}`,
    );
  }
  // The check above reads metadata; If-Match on the read itself closes the gap until the bytes come.
  const body = await store.get(source.uri, ifMatch === undefined ? {} : { ifMatch });
  const model = await unpackModel(body, unpackOptions);
  return { ...model, source };
}
