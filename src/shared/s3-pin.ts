/**
 * What MODEL_URI can pin of an S3 object, its key and its version: one rule for the CLI (checking a
 * key before uploading), the rollout (the URI it builds from an event) and the store (the objects it
 * reads). Pure: the rollout Lambda's bundle takes it without the store.
 */

/**
 * True when `s3://bucket/key` names the object unambiguously: the key has no "?" or "#", which a
 * URI reads as the start of its query or fragment. The rollout rejects an upload under any other key.
 */
export function isPinnableKey(key: string): boolean {
  return !/[?#]/.test(key);
}

/**
 * The version id that pins an object, or undefined for none. Objects written while versioning is
 * suspended carry the literal version id "null"; the next upload to the key overwrites that version,
 * so it pins nothing, and the key's current object (checked by ETag) stands for it.
 */
export function pinnableVersionId(versionId: string | undefined): string | undefined {
  return versionId === 'null' ? undefined : versionId;
}
