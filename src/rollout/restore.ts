/**
 * Putting back the model a failed code deploy took from the service.
 *
 * deploy.yml pins the live model in the template it deploys (`-c initialModelUri`). When that
 * deploy fails, CloudFormation rolls the service back to the task definition of the last stack
 * update that succeeded, which pins the model that was live *then*: every model the rollout has
 * deployed since is gone from the service. So deploy.yml reads the live model before it deploys
 * and, after a rollback, sends the rollout function a restore request for it
 * (`scripts/restore-live-model.ts`); the function pins it again, one at a time with the upload
 * events it handles.
 *
 * A restore is not an upload: it skips none of the upload rules for models the service was rolled
 * back from (the failed code deploy made the live model one of them). It only stops when the model
 * is already live, or when the live model is newer (an upload that rolled out after the record
 * was read).
 */
import { z } from 'zod';
import { ARTIFACT } from '../names.ts';
import { describeZodIssues } from '../shared/zod-issues.ts';
import { compareToLive, type DeployableModel } from './decision.ts';
import type { PinnedModel, ServiceState } from './deploy-target.ts';
import { RolloutError } from './errors.ts';
import { parseS3ModelUri } from './event.ts';
import { ModelRecordSchema } from './pinned-model.ts';

/**
 * The `message` of the rollout function's log line for each restore outcome. They differ from the
 * upload outcomes (`ROLLOUT_LOG_MESSAGES`) and carry no `object`, so `deploy --wait` never takes
 * one for an upload's.
 */
export const RESTORE_LOG_MESSAGES = {
  /** A deployment of the restored model started (`deploymentId`). */
  restored: 'restore started',
  /** The model (or a newer one) is live (`reason`, `detail`). */
  skipped: 'restore skipped',
  /** The request was malformed or the deploy failed (`code`, `error`). */
  failed: 'restore failed',
} as const;

/** How far ahead of this clock a restored model's upload time may be (S3's and ours differ a little). */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** The value of the `slipway` field that makes an invocation a restore request. */
export const RESTORE_REQUEST_KIND = 'restore-model';

/** The restore request deploy.yml sends the rollout function (a direct invocation, not an event). */
const RestoreRequestSchema = z.strictObject({
  slipway: z.literal(RESTORE_REQUEST_KIND),
  /** MODEL_URI as the live revision had it: `s3://<models bucket>/<key>[?versionId=<id>]`. */
  modelUri: z.string().min(1),
  /** Its ordering record, as `scripts/live-model-uri.ts --record` prints it. */
  record: ModelRecordSchema.optional(),
  /** Why, for the function's log (the workflow run that asks). */
  reason: z.string().max(1000).optional(),
});

/** A restore request (see `RestoreRequestSchema`). */
export type RestoreRequest = z.input<typeof RestoreRequestSchema>;

/** A parsed restore request: the model to pin again. */
export interface ParsedRestoreRequest {
  readonly model: PinnedModel;
  readonly reason?: string;
}

/**
 * Whether an invocation is meant as a restore request: an object with a `slipway` field. S3
 * events have none; a malformed request is then refused by `parseRestoreRequest` with its own
 * words, not judged as an event.
 */
export function isRestoreRequest(raw: unknown): boolean {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw) && 'slipway' in raw;
}

/**
 * Validate a restore request for a rollout that watches `modelsBucket`. Throws
 * `RolloutError('ROLLOUT_EVENT_INVALID')` naming every problem.
 *
 * @example parseRestoreRequest({ slipway: 'restore-model', modelUri: 's3://acme-models/runs/7/model.tar.gz' }, 'acme-models')
 */
export function parseRestoreRequest(
  raw: unknown,
  modelsBucket: string,
  now: Date = new Date(),
): ParsedRestoreRequest {
  const parsed = RestoreRequestSchema.safeParse(raw);
  if (!parsed.success) {
    throw invalid(describeZodIssues(parsed.error, 'request'));
  }
  const { modelUri, record, reason } = parsed.data;
  const object = parseS3ModelUri(modelUri);
  if (object === undefined) {
    throw invalid(`modelUri: ${JSON.stringify(modelUri)} is not an s3://bucket/key[?versionId=id] URI`);
  }
  if (object.bucket !== modelsBucket) {
    throw invalid(
      `modelUri: ${modelUri} is in bucket "${object.bucket}", but this rollout watches the models bucket "${modelsBucket}"`,
    );
  }
  if (object.key !== ARTIFACT.tarball && !object.key.endsWith(`/${ARTIFACT.tarball}`)) {
    throw invalid(`modelUri: ${modelUri} does not name a ${ARTIFACT.tarball}`);
  }
  // The record orders every later upload against the model: one from the future would have each
  // of them skipped as older than the live model.
  if (record?.eventTime !== undefined && Date.parse(record.eventTime) > now.getTime() + MAX_CLOCK_SKEW_MS) {
    throw invalid(
      `record.eventTime: ${record.eventTime} is in the future; it is the time of the model's upload`,
    );
  }
  return {
    model: { uri: modelUri, ...object, ...record },
    ...(reason === undefined ? {} : { reason }),
  };
}

/** What a restore does against the service's current state. */
export type RestoreDecision =
  | { readonly kind: 'deploy' }
  | { readonly kind: 'skip'; readonly reason: 'already-live' | 'newer-live'; readonly detail: string };

/**
 * Deploy the model again unless it is live (same URI and, where both are known, same ETag) or the
 * live model is newer by the rollout's own order (both ordering records known).
 */
export function decideRestore(model: PinnedModel, state: ServiceState): RestoreDecision {
  const live = state.model;
  if (live === undefined) return { kind: 'deploy' };
  const order = isDeployable(model) ? compareToLive(model, live) : undefined;
  const sameEtag = live.etag === undefined || model.etag === undefined || live.etag === model.etag;
  if ((live.uri === model.uri && sameEtag) || order === 'duplicate') {
    return { kind: 'skip', reason: 'already-live', detail: `${model.uri} is already the live model` };
  }
  if (order === 'older') {
    return {
      kind: 'skip',
      reason: 'newer-live',
      detail: `the live model ${live.uri}${live.eventTime ? ` (${live.eventTime})` : ''} is newer than ${model.uri} (${model.eventTime}): an upload rolled out after the restored model was read`,
    };
  }
  return { kind: 'deploy' };
}

function isDeployable(model: PinnedModel): model is DeployableModel {
  return (
    model.bucket !== undefined &&
    model.key !== undefined &&
    model.etag !== undefined &&
    model.sequencer !== undefined &&
    model.eventTime !== undefined
  );
}

function invalid(problem: string): RolloutError {
  return new RolloutError('ROLLOUT_EVENT_INVALID', `not a valid restore request: ${problem}`);
}
