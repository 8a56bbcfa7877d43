/**
 * The rollout Lambda's log as a contract: one JSON line per outcome of an event, naming the object
 * the event was for. The Lambda writes these lines (`./lambda.ts`); `slipway deploy --cloud --wait`
 * reads them back from CloudWatch Logs to learn what became of its upload, so both sides take the
 * messages and the object field from here.
 */
import type { SkipReason } from './decision.ts';
import { eventField, readableS3EventKey, unquoteEventEtag } from './event.ts';

/** The `message` of each outcome line. */
export const ROLLOUT_LOG_MESSAGES = {
  /** A deployment of the event's model started (`deploymentId`). */
  deployed: 'rollout started',
  /** The decision skipped the event (`reason`: a `SkipReason`, `detail`: why, in words). */
  skipped: 'rollout skipped',
  /** The event is not a valid model upload for this rollout (`reason`); Lambda retries it, in vain. */
  rejected: 'rollout rejected an invalid event',
  /** The invocation failed (`code`, `error`); Lambda retries it, then sends it to the failure queue. */
  failed: 'rollout failed',
} as const;

/** The object an event is for, as every outcome line carries it in its `object` field. */
export interface LoggedObject {
  readonly bucket: string;
  /** The key as S3 stores it (the resolved key where the Lambda resolved one, else made readable). */
  readonly key: string;
  readonly versionId?: string;
  /** ETag without quotes. */
  readonly etag?: string;
}

/**
 * The `object` field of the outcome lines for `event`; undefined when the event names no bucket
 * and key (it is then rejected, and no upload can be matched to it anyway).
 */
export function loggedObjectOf(event: unknown, objectKey?: string): LoggedObject | undefined {
  const bucket = eventField(event, 'detail', 'bucket', 'name');
  const key = eventField(event, 'detail', 'object', 'key');
  if (typeof bucket !== 'string' || typeof key !== 'string') return undefined;
  const versionId = eventField(event, 'detail', 'object', 'version-id');
  const etag = eventField(event, 'detail', 'object', 'etag');
  return {
    bucket,
    key: objectKey ?? readableS3EventKey(key),
    ...(typeof versionId === 'string' && versionId !== '' ? { versionId } : {}),
    ...(typeof etag === 'string' && etag !== '' ? { etag: unquoteEventEtag(etag) } : {}),
  };
}

/** What the log says became of one upload. */
export type LoggedOutcome =
  | { readonly kind: 'deployed'; readonly deploymentId: string }
  | { readonly kind: 'skipped'; readonly reason: SkipReason; readonly detail: string }
  | { readonly kind: 'rejected'; readonly reason: string }
  /** Every invocation so far failed; `attempts` counts them, `code` and `error` are the last one's. */
  | { readonly kind: 'failing'; readonly attempts: number; readonly code?: string; readonly error: string };

/**
 * The outcome the log `messages` (oldest first, any lines: only the rollout's JSON lines count)
 * record for `upload`: the first decided one (deployed, skipped, rejected), else the failures so
 * far, else undefined. A line is for the upload when its object has the same bucket and key and,
 * where the upload has them, the same version id, else the same ETag.
 *
 * A reader that gets the log piece by piece passes what the pieces before said as `previous`:
 * `loggedOutcome(b, upload, loggedOutcome(a, upload))` is `loggedOutcome([...a, ...b], upload)`.
 *
 * @example loggedOutcome(lines, { bucket: 'acme-models', key: 'runs/7/model.tar.gz', versionId: 'v3' })
 */
export function loggedOutcome(
  messages: readonly string[],
  upload: LoggedObject,
  previous?: LoggedOutcome,
): LoggedOutcome | undefined {
  if (previous !== undefined && previous.kind !== 'failing') return previous;
  let failing = previous;
  for (const message of messages) {
    const line = parseLine(message);
    if (line === undefined || !isFor(line.object, upload)) continue;
    switch (line.message) {
      case ROLLOUT_LOG_MESSAGES.deployed:
        if (typeof line.deploymentId === 'string')
          return { kind: 'deployed', deploymentId: line.deploymentId };
        break;
      case ROLLOUT_LOG_MESSAGES.skipped:
        return {
          kind: 'skipped',
          reason: String(line.reason) as SkipReason,
          detail: typeof line.detail === 'string' ? line.detail : '',
        };
      case ROLLOUT_LOG_MESSAGES.rejected:
        return { kind: 'rejected', reason: String(line.reason) };
      case ROLLOUT_LOG_MESSAGES.failed:
        failing = {
          kind: 'failing',
          attempts: (failing?.attempts ?? 0) + 1,
          ...(typeof line.code === 'string' ? { code: line.code } : {}),
          error: errorMessage(line.error),
        };
        break;
    }
  }
  return failing;
}

function parseLine(message: string): Record<string, unknown> | undefined {
  if (!message.trimStart().startsWith('{')) return undefined;
  try {
    const parsed: unknown = JSON.parse(message);
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function isFor(object: unknown, upload: LoggedObject): boolean {
  if (object === null || typeof object !== 'object') return false;
  const logged = object as Partial<Record<keyof LoggedObject, unknown>>;
  if (logged.bucket !== upload.bucket || logged.key !== upload.key) return false;
  if (upload.versionId !== undefined) return logged.versionId === upload.versionId;
  return upload.etag === undefined || logged.etag === undefined || logged.etag === upload.etag;
}

/** Powertools logs an Error as `{ name, message, ... }`; anything else as it came. */
function errorMessage(error: unknown): string {
  if (error !== null && typeof error === 'object' && 'message' in error) return String(error.message);
  return typeof error === 'string' ? error : 'unknown error';
}
