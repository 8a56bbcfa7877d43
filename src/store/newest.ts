import { ARTIFACT } from '../names.ts';
import { compareUploads } from '../shared/upload-order.ts';
import type { ObjectInfo } from './types.ts';

function isModel(object: ObjectInfo): boolean {
  return (object.uri.split('?')[0] ?? '').endsWith(ARTIFACT.tarball);
}

function isNewer(candidate: ObjectInfo, best: ObjectInfo | undefined): boolean {
  if (!best) return true;
  const stamp = (object: ObjectInfo) => ({ time: object.lastModified.getTime(), key: object.uri });
  return compareUploads(stamp(candidate), stamp(best)) > 0;
}

/**
 * Picks the newest `model.tar.gz` among listed objects by the rollout's rule, `compareUploads`:
 * latest `lastModified`; objects modified in the same instant (S3 keeps it to the second) are ordered
 * by their URIs in natural order, so `.../job-10/model.tar.gz` beats `.../job-9/model.tar.gz` and
 * timestamped SageMaker job names order by time, whatever the listing order. Undefined when there is
 * no model.
 */
export function pickNewestModel(objects: Iterable<ObjectInfo>): ObjectInfo | undefined {
  let best: ObjectInfo | undefined;
  for (const object of objects) if (isModel(object) && isNewer(object, best)) best = object;
  return best;
}

/** {@link pickNewestModel} over a listing stream, holding one object in memory, not the whole listing. */
export async function pickNewestModelFrom(
  objects: AsyncIterable<ObjectInfo>,
): Promise<ObjectInfo | undefined> {
  let best: ObjectInfo | undefined;
  for await (const object of objects) if (isModel(object) && isNewer(object, best)) best = object;
  return best;
}
