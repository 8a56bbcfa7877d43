import type { ObjectInfo, ObjectStore } from '../store/types.ts';
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
  options: UnpackOptions = {},
): Promise<FetchedModel> {
  const source = uri.endsWith('/') ? await store.newestModel(uri) : await store.head(uri);
  const body = await store.get(source.uri);
  const model = await unpackModel(body, options);
  return { ...model, source };
}
