/**
 * What MODEL_URI can pin of an S3 object: one rule for the CLI (checking a key before uploading),
 * the rollout (building the URI from an event) and the store (the newest model under a prefix).
 * Pure: the rollout Lambda's bundle takes it without the store.
 */

/**
 * True when `s3://bucket/key` names the object unambiguously: the key has no "?" or "#", which a
 * URI reads as the start of its query or fragment. The rollout rejects an upload under any other key.
 */
export function isPinnableKey(key: string): boolean {
  return !/[?#]/.test(key);
}
