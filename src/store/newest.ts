import { compareUploads, isModelUpload } from '../shared/upload-order.ts';
import type { ObjectInfo } from './types.ts';

function isModel(object: ObjectInfo): boolean {
  // Without the versionId query; a file URI escapes "?" and "#" in names, an S3 URI keeps "#".
  return isModelUpload({ key: object.uri.split('?')[0] ?? '', size: object.size });
}

function isNewer(candidate: ObjectInfo, best: ObjectInfo | undefined): boolean {
  if (!best) return true;
  const stamp = (object: ObjectInfo) => ({ time: object.lastModified.getTime(), key: object.uri });
  return compareUploads(stamp(candidate), stamp(best)) > 0;
}

/**
 * Picks the newest model among listed objects by the rollout's rules: of the objects `isModelUpload`
 * accepts (a non-empty `model.tar.gz` whose key a MODEL_URI can pin), by `compareUploads`:
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
