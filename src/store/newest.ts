import { ARTIFACT } from '../names.ts';
import type { ObjectInfo } from './types.ts';

function isModel(object: ObjectInfo): boolean {
  return (object.uri.split('?')[0] ?? '').endsWith(ARTIFACT.tarball);
}

function isNewer(candidate: ObjectInfo, best: ObjectInfo | undefined): boolean {
  if (!best) return true;
  const a = candidate.lastModified.getTime();
  const b = best.lastModified.getTime();
  return a > b || (a === b && candidate.uri > best.uri);
}

/**
 * Picks the newest `model.tar.gz` among listed objects: latest `lastModified`, ties broken by the
 * lexically greatest URI (SageMaker job names usually end in a timestamp). Undefined when none.
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
