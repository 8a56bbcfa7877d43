/**
 * Which object an S3 EventBridge event names, when its key could be read two ways.
 *
 * S3's notifications to SQS, SNS and Lambda URL-encode the key (`red flower.jpg` arrives as
 * `red+flower.jpg`); for its EventBridge events AWS documents no encoding, and events seen in the
 * wild carry characters such notifications encode (a literal `:`). The decision decodes the key;
 * where decoding changes it, the Lambda asks S3 which reading names the uploaded object (the one
 * with the event's ETag) before deciding. Keys that read the same both ways, the normal case,
 * cost nothing.
 */
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { pinnableVersionId } from '../shared/s3-pin.ts';
import { RolloutError } from './errors.ts';
import { decodeS3EventKey, eventField, unquoteEventEtag } from './event.ts';

/** One object as HEAD saw it; undefined when there is no such object (or no such version of it). */
export type HeadObject = (object: {
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
}) => Promise<{ readonly etag: string | undefined } | undefined>;

/**
 * The key of the object an event names, as S3 stores it, when the event's key reads differently
 * URL-decoded and as it came; undefined when there is nothing to resolve (the readings agree, or
 * the event lacks the fields to tell, and the decision judges it as it is).
 *
 * Tries the decoded key first (S3's notification encoding), then the raw one, and takes the first
 * whose HEAD (of the event's version, if any) has the event's ETag. Throws
 * `ROLLOUT_EVENT_INVALID` when neither does.
 *
 * @example await resolveObjectKey(event, headWithS3(new S3Client({})))
 */
export async function resolveObjectKey(event: unknown, head: HeadObject): Promise<string | undefined> {
  const object = eventField(event, 'detail', 'object');
  const bucket = eventField(event, 'detail', 'bucket', 'name');
  const raw = eventField(object, 'key');
  const etag = eventField(object, 'etag');
  const version = eventField(object, 'version-id');
  if (typeof bucket !== 'string' || typeof raw !== 'string' || typeof etag !== 'string') return undefined;

  let decoded: string | undefined;
  try {
    decoded = decodeS3EventKey(raw);
  } catch {
    decoded = undefined; // not valid URL encoding: only the raw reading is left
  }
  if (decoded === raw) return undefined;

  const versionId = pinnableVersionId(typeof version === 'string' ? version : undefined);
  const wanted = unquoteEventEtag(etag);
  const seen: string[] = [];
  for (const key of decoded === undefined ? [raw] : [decoded, raw]) {
    const found = await head({ bucket, key, ...(versionId === undefined ? {} : { versionId }) });
    if (found !== undefined && found.etag !== undefined && unquoteEventEtag(found.etag) === wanted)
      return key;
    seen.push(`"${key}" (${found === undefined ? 'no such object' : `ETag ${found.etag ?? 'none'}`})`);
  }
  throw new RolloutError(
    'ROLLOUT_EVENT_INVALID',
    `the event's key "${raw}" names no object with ETag ${wanted}${versionId ? ` and version ${versionId}` : ''} in bucket ${bucket}: tried ${seen.join(' and ')}`,
  );
}

/** A {@link HeadObject} backed by S3: 404 (and, for a version id, 400) is "no such object". */
export function headWithS3(client: S3Client): HeadObject {
  return async ({ bucket, key, versionId }) => {
    try {
      const out = await client.send(
        new HeadObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(versionId === undefined ? {} : { VersionId: versionId }),
        }),
      );
      return { etag: out.ETag };
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      // A version id of another key's object is no version of this key.
      if (status === 404 || (status === 400 && versionId !== undefined)) return undefined;
      const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      throw status === 403
        ? new RolloutError(
            'ROLLOUT_ACCESS_DENIED',
            `s3:HeadObject on s3://${bucket}/${key} was denied (${detail}); grant read on the models bucket to the role running the rollout`,
            { cause: err },
          )
        : new RolloutError('ROLLOUT_AWS', `s3:HeadObject on s3://${bucket}/${key} failed (${detail})`, {
            cause: err,
            retryable: true,
          });
    }
  };
}
