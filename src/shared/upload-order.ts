/**
 * Which uploads are models, and which of two is newer: one rule for the rollout (judging an S3 event
 * against the live model) and the store (the newest `model.tar.gz` under a prefix URI), so that a
 * server started with a prefix serves the model the rollout deployed. Pure: the rollout Lambda's
 * bundle takes it without the store.
 */
import { ARTIFACT } from '../names.ts';
import { isPinnableKey } from './s3-pin.ts';

/**
 * True when an object may be a deployed model: its key ends in `model.tar.gz`, it is not empty, and
 * its key has no "?" or "#" (a MODEL_URI cannot pin one, see {@link isPinnableKey}). The rollout
 * skips or rejects every other upload, so the newest model under a prefix is never one of them.
 */
export function isModelUpload(object: { readonly key: string; readonly size: number }): boolean {
  return object.key.endsWith(ARTIFACT.tarball) && object.size > 0 && isPinnableKey(object.key);
}

/** A key's tokens: each run of ASCII digits, and each other character on its own. */
const TOKENS = /[0-9]+|[^0-9]/gu;

function isDigitRun(token: string): boolean {
  const first = token.charCodeAt(0);
  return first >= 0x30 && first <= 0x39;
}

/** Plain string order by UTF-16 code unit (no locale, so every machine agrees). Negative when `a` comes first. */
export function compareStrings(a: string, b: string): number {
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

/** An upload as both an S3 event and an S3 listing describe it. */
export interface UploadStamp {
  /** Epoch milliseconds: the event time, or the object's last-modified time (S3 keeps both to the second). */
  readonly time: number;
  /** The object's key, or its URI when both sides name objects of one bucket the same way. */
  readonly key: string;
}

/**
 * Orders two uploads: the later time is newer; in the same instant, the key later in
 * {@link compareKeysNaturally} (`job-10` after `job-9`, timestamped job names by time). Upload order
 * within a second is not used: a listing has no sequencer, and S3 orders sequencers only per key.
 * Negative when `a` is older, 0 for the same key at the same time.
 *
 * @example compareUploads({ time: t, key: 'job-10/model.tar.gz' }, { time: t, key: 'job-9/model.tar.gz' }) // > 0
 */
export function compareUploads(a: UploadStamp, b: UploadStamp): number {
  return Math.sign(a.time - b.time) || compareKeysNaturally(a.key, b.key);
}
