import { ARTIFACT } from '../names.ts';
import type { ObjectInfo } from './types.ts';

function isModel(object: ObjectInfo): boolean {
  return (object.uri.split('?')[0] ?? '').endsWith(ARTIFACT.tarball);
}

/** A key's tokens: each run of ASCII digits, and each other character on its own. */
const TOKENS = /[0-9]+|[^0-9]/gu;

function isDigitRun(token: string): boolean {
  const first = token.charCodeAt(0);
  return first >= 0x30 && first <= 0x39;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareTokens(a: string, b: string): number {
  const aNumber = isDigitRun(a);
  const bNumber = isDigitRun(b);
  if (aNumber && bNumber) {
    // As numbers of any length: without leading zeros, the longer is the greater.
    const x = a.replace(/^0+/u, '');
    const y = b.replace(/^0+/u, '');
    return x.length - y.length || compareStrings(x, y);
  }
  // A number sorts among other characters where its digits do ('0'-'9' are contiguous).
  return compareStrings(aNumber ? '0' : a, bNumber ? '0' : b);
}

/**
 * Natural order of two keys: runs of digits compare as numbers (`job-9` before `job-10`, timestamps
 * by time, at any length), every other character by UTF-16 code unit, as plain string order does
 * (no locale, so every machine agrees). Keys equal that way (`job-09`, `job-9`) fall back to plain
 * string order, so the order is total. Negative when `a` comes first.
 *
 * @example ['job-10', 'job-9'].sort(compareKeysNaturally) // ['job-9', 'job-10']
 */
export function compareKeysNaturally(a: string, b: string): number {
  const x = a.match(TOKENS) ?? [];
  const y = b.match(TOKENS) ?? [];
  for (let i = 0; i < x.length && i < y.length; i++) {
    const order = compareTokens(x[i]!, y[i]!);
    if (order !== 0) return order;
  }
  return Math.sign(x.length - y.length) || compareStrings(a, b);
}

function isNewer(candidate: ObjectInfo, best: ObjectInfo | undefined): boolean {
  if (!best) return true;
  const a = candidate.lastModified.getTime();
  const b = best.lastModified.getTime();
  return a > b || (a === b && compareKeysNaturally(candidate.uri, best.uri) > 0);
}

/**
 * Picks the newest `model.tar.gz` among listed objects: latest `lastModified`; objects modified in
 * the same instant (S3 keeps it to the second) are ordered by {@link compareKeysNaturally} on their
 * URIs, so `.../job-10/model.tar.gz` beats `.../job-9/model.tar.gz` and timestamped SageMaker job
 * names order by time, whatever the listing order. Undefined when there is no model.
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
