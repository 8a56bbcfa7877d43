/**
 * The rollout's event contract: AWS's S3 "Object Created" EventBridge event, validated with a
 * schema, and an evaluator for EventBridge patterns so that the local twin matches events with
 * the very rule definition (`modelUploadEventPattern` in src/names.ts) that infra deploys.
 */
import { z } from 'zod';
import { SlipwayError } from '../errors.ts';
import { isPinnableKey, pinnableVersionId } from '../shared/s3-pin.ts';
import { describeZodIssues } from '../shared/zod-issues.ts';
import { RolloutError } from './errors.ts';

/**
 * True when `event` matches an EventBridge event pattern.
 *
 * Supports what EventBridge calls exact matching (lists of strings, numbers, booleans, null),
 * `prefix`, `suffix`, `exists`, `anything-but` and `equals-ignore-case`; nested objects match
 * nested fields. A list matches when any of its entries matches (and an array field in the event
 * matches when any of its elements does), as in EventBridge. Unsupported operators throw rather
 * than silently match.
 *
 * @example matchesEventPattern(modelUploadEventPattern('acme-models'), event)
 */
export function matchesEventPattern(pattern: object, event: unknown): boolean {
  return matchObject(pattern, event);
}

function matchObject(pattern: object, value: unknown): boolean {
  for (const [field, rule] of Object.entries(pattern) as [string, unknown][]) {
    const fieldValue = isRecord(value) ? value[field] : undefined;
    if (Array.isArray(rule)) {
      if (!matchLeafList(rule, fieldValue)) return false;
    } else if (isRecord(rule)) {
      if (!isRecord(fieldValue) || !matchObject(rule, fieldValue)) return false;
    } else {
      throw new SlipwayError(
        'EVENT_PATTERN_INVALID',
        `event pattern field "${field}" must be a list or an object, got ${JSON.stringify(rule)}`,
      );
    }
  }
  return true;
}

function matchLeafList(leaves: readonly unknown[], value: unknown): boolean {
  const values: readonly unknown[] = Array.isArray(value) ? value : [value];
  return leaves.some((leaf) => {
    // As in EventBridge, `exists` only sees leaf values: an object field does not "exist".
    if (isRecord(leaf) && 'exists' in leaf) return (value !== undefined && !isRecord(value)) === leaf.exists;
    if (value === undefined) return false;
    return values.some((v) => matchLeaf(leaf, v));
  });
}

function matchLeaf(leaf: unknown, value: unknown): boolean {
  if (leaf === null || typeof leaf !== 'object') return !isRecord(value) && value === leaf;
  const entries = Object.entries(leaf);
  const [operator, operand] = entries[0] ?? [];
  if (entries.length !== 1 || operator === undefined) {
    throw new SlipwayError('EVENT_PATTERN_INVALID', `unsupported event pattern rule ${JSON.stringify(leaf)}`);
  }
  switch (operator) {
    case 'prefix':
      return typeof value === 'string' && typeof operand === 'string' && value.startsWith(operand);
    case 'suffix':
      return typeof value === 'string' && typeof operand === 'string' && value.endsWith(operand);
    case 'equals-ignore-case':
      return (
        typeof value === 'string' &&
        typeof operand === 'string' &&
        value.toLowerCase() === operand.toLowerCase()
      );
    case 'anything-but': {
      if (isRecord(operand)) return !matchLeaf(operand, value);
      const excluded: readonly unknown[] = Array.isArray(operand) ? operand : [operand];
      return !isRecord(value) && !excluded.includes(value);
    }
    default:
      throw new SlipwayError(
        'EVENT_PATTERN_INVALID',
        `unsupported event pattern operator "${operator}" (supported: exact values, prefix, suffix, exists, anything-but, equals-ignore-case)`,
      );
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What S3 reports as the cause of an "Object Created" event. */
export const OBJECT_CREATED_REASONS = [
  'PutObject',
  'POST Object',
  'CopyObject',
  'CompleteMultipartUpload',
] as const;

/**
 * AWS's documented S3 "Object Created" EventBridge event. Fields the rollout does not use and
 * that AWS documents as optional (`source-ip-address`, `event-version`, bucket tags) may be
 * absent; unknown extra fields are allowed, since AWS adds fields over time.
 */
export const S3ObjectCreatedEventSchema = z.object({
  version: z.literal('0'),
  id: z.string().min(1),
  'detail-type': z.literal('Object Created'),
  source: z.literal('aws.s3'),
  account: z.string().min(1),
  time: z.iso.datetime({ offset: true }),
  region: z.string().min(1),
  resources: z.array(z.string()),
  detail: z.object({
    version: z.literal('0'),
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({
      key: z.string().min(1),
      size: z.number().int().nonnegative(),
      etag: z.string().regex(/^"?[^"\s]+"?$/, 'expected an ETag without whitespace'),
      'version-id': z.string().min(1).optional(),
      sequencer: z.string().regex(/^[0-9A-Fa-f]+$/, 'expected a hexadecimal S3 sequencer'),
    }),
    'request-id': z.string(),
    requester: z.string(),
    'source-ip-address': z.string().optional(),
    reason: z.enum(OBJECT_CREATED_REASONS),
  }),
});

/** A validated S3 "Object Created" EventBridge event. */
export type S3ObjectCreatedEvent = z.infer<typeof S3ObjectCreatedEventSchema>;

/** An uploaded object the rollout may deploy, taken from a validated event. */
export interface ModelEvent {
  /** EventBridge event id (differs between redeliveries only if S3 emitted twice). */
  readonly id: string;
  readonly bucket: string;
  /** The object key as S3 stores it: decoded from the event's URL encoding, or as resolved. */
  readonly key: string;
  /** S3 version id; absent for unversioned buckets (and for the `null` version). */
  readonly versionId?: string;
  /** ETag without quotes. */
  readonly etag: string;
  /** S3 sequencer, hex, as in the event. */
  readonly sequencer: string;
  /** Event time, ISO 8601, as in the event. */
  readonly time: string;
  readonly size: number;
  readonly reason: (typeof OBJECT_CREATED_REASONS)[number];
  /** The exact object: `s3://bucket/key`, plus `?versionId=...` for versioned buckets. */
  readonly uri: string;
}

/** Options of `parseModelEvent`. */
export interface ParseModelEventOptions {
  /**
   * The object's key as S3 stores it, when the caller has resolved the event's key (the Lambda
   * does, see `resolveObjectKey`). @default the event's key, URL-decoded
   */
  readonly objectKey?: string;
}

/**
 * Validate an "Object Created" event and extract the object it names. Throws
 * `RolloutError('ROLLOUT_EVENT_INVALID')` listing every missing or malformed field.
 */
export function parseModelEvent(raw: unknown, options: ParseModelEventOptions = {}): ModelEvent {
  const parsed = S3ObjectCreatedEventSchema.safeParse(raw);
  if (!parsed.success) {
    throw new RolloutError(
      'ROLLOUT_EVENT_INVALID',
      `not a valid S3 "Object Created" event: ${describeZodIssues(parsed.error, 'event')}`,
    );
  }
  const { detail, id, time } = parsed.data;
  const bucket = detail.bucket.name;
  const key = options.objectKey ?? decodeS3EventKey(detail.object.key);
  const versionId = pinnableVersionId(detail.object['version-id']);
  return {
    id,
    bucket,
    key,
    ...(versionId === undefined ? {} : { versionId }),
    etag: unquoteEventEtag(detail.object.etag),
    sequencer: detail.object.sequencer,
    time,
    size: detail.object.size,
    reason: detail.reason,
    uri: s3ModelUri(bucket, key, versionId),
  };
}

/**
 * An event's ETag without the quotes S3 may put around it (the store's `unquoteEtag`, which the
 * Lambda's bundle leaves out).
 */
export function unquoteEventEtag(etag: string): string {
  return etag.replace(/^"|"$/g, '');
}

/** The value at `path` in a JSON-like value; undefined where the path leaves objects. */
export function eventField(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const segment of path) {
    if (!isRecord(current)) return undefined;
    current = current[segment];
  }
  return current;
}

/**
 * Decode an object key as S3 writes it into events: URL-encoded with spaces as `+`
 * (`red flower.jpg` arrives as `red+flower.jpg`, a literal `+` as `%2B`).
 */
export function decodeS3EventKey(encoded: string): string {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch (err) {
    throw new RolloutError('ROLLOUT_EVENT_INVALID', `object key "${encoded}" is not valid URL encoding`, {
      cause: err,
    });
  }
}

/**
 * An event's object key for people to read (logs, the twin's status): decoded as
 * {@link decodeS3EventKey} does, or as it came when it is not valid URL encoding.
 */
export function readableS3EventKey(key: string): string {
  try {
    return decodeS3EventKey(key);
  } catch {
    return key;
  }
}

/**
 * The URI that pins one S3 object: `s3://bucket/key` with the key as stored (not percent-encoded)
 * and `?versionId=` (percent-encoded) for versioned buckets.
 */
export function s3ModelUri(bucket: string, key: string, versionId?: string): string {
  if (!isPinnableKey(key)) {
    throw new RolloutError(
      'ROLLOUT_EVENT_INVALID',
      `object key "${key}" contains "?" or "#", which cannot be pinned unambiguously in MODEL_URI; rename the object`,
    );
  }
  const base = `s3://${bucket}/${key}`;
  return versionId === undefined ? base : `${base}?versionId=${encodeURIComponent(versionId)}`;
}

/** Split an `s3://bucket/key[?versionId=v]` URI; undefined for other schemes or malformed URIs. */
export function parseS3ModelUri(
  uri: string,
): { bucket: string; key: string; versionId?: string } | undefined {
  const match = /^s3:\/\/([^/?#]+)\/([^?#]+)(?:\?versionId=([^&#]+))?$/.exec(uri);
  if (!match?.[1] || !match[2]) return undefined;
  let versionId: string | undefined;
  try {
    versionId = match[3] === undefined ? undefined : decodeURIComponent(match[3]);
  } catch {
    return undefined;
  }
  return { bucket: match[1], key: match[2], ...(versionId === undefined ? {} : { versionId }) };
}
