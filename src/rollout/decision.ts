/**
 * The rollout decision: a pure function of (event, current service state). No I/O here, so the
 * Lambda, the local twin and the tests all get the same answer for the same inputs, and
 * at-least-once delivery is harmless (a redelivered event finds its own model live: duplicate).
 */
import { ARTIFACT, modelUploadEventPattern } from '../names.ts';
import { compareStrings, compareUploads } from '../shared/upload-order.ts';
import type { PinnedModel, ServiceState } from './deploy-target.ts';
import { RolloutError } from './errors.ts';
import {
  eventField,
  matchesEventPattern,
  parseModelEvent,
  type ModelEvent,
  type ParseModelEventOptions,
} from './event.ts';

/** What the rollout is configured to accept. */
export interface RolloutPolicy {
  /** The models bucket; events from any other bucket are rejected. */
  readonly modelsBucket: string;
}

/** Why an event was skipped. */
export type SkipReason = 'duplicate' | 'rolled-back' | 'older-than-live' | 'not-a-model';

/** The outcome of `decideRollout`. */
export type RolloutDecision =
  /** Pin this exact object in a new revision. */
  | { readonly kind: 'deploy'; readonly model: DeployableModel; readonly event: ModelEvent }
  /** Valid event, nothing to do; `detail` says why in words. */
  | {
      readonly kind: 'skip';
      readonly reason: SkipReason;
      readonly detail: string;
      readonly event?: ModelEvent;
    }
  /** The event is not something this rollout should ever have received. */
  | { readonly kind: 'reject'; readonly reason: string };

/** A model a deploy pins: every ordering field present. */
export interface DeployableModel extends PinnedModel {
  readonly bucket: string;
  readonly key: string;
  readonly etag: string;
  readonly sequencer: string;
  readonly eventTime: string;
}

/**
 * Decide what an incoming event means for the service.
 *
 * Order of checks: not an S3 "Object Created" event or another bucket -> reject; key not ending in
 * `model.tar.gz` (or an empty object) -> skip as not a model; malformed event -> reject; same
 * object as the live model -> skip as duplicate; same object as a model the service was rolled
 * back from -> skip; older than the live model -> skip; else deploy.
 * Events for the same key are ordered by S3 sequencer; events across keys by `compareUploads`, the
 * store's rule for the newest model under a prefix: event time, then within one second the key in
 * natural order, so a prefix MODEL_URI and the rollout agree on one winner.
 *
 * @example decideRollout(event, await target.describe(), { modelsBucket: 'acme-models' })
 */
export function decideRollout(
  raw: unknown,
  state: ServiceState,
  policy: RolloutPolicy,
  options: ParseModelEventOptions = {},
): RolloutDecision {
  // Every check below is a slice of the one rule definition infra deploys.
  const pattern = modelUploadEventPattern(policy.modelsBucket);
  if (!matchesEventPattern({ source: pattern.source, 'detail-type': pattern['detail-type'] }, raw)) {
    return {
      kind: 'reject',
      reason: `not an S3 "Object Created" event (source=${describeField(raw, 'source')}, detail-type=${describeField(raw, 'detail-type')})`,
    };
  }
  if (!matchesEventPattern({ detail: { bucket: pattern.detail.bucket } }, raw)) {
    return {
      kind: 'reject',
      reason: `event is for bucket ${describeField(raw, 'detail', 'bucket', 'name')}, but this rollout watches the models bucket "${policy.modelsBucket}"`,
    };
  }
  const rawKey = eventField(raw, 'detail', 'object', 'key');
  if (typeof rawKey === 'string' && !matchesEventPattern(pattern, raw)) {
    return {
      kind: 'skip',
      reason: 'not-a-model',
      detail: `key "${rawKey}" does not end in ${ARTIFACT.tarball}`,
    };
  }

  let event: ModelEvent;
  try {
    event = parseModelEvent(raw, options);
  } catch (err) {
    if (err instanceof RolloutError) return { kind: 'reject', reason: err.message };
    throw err;
  }
  if (event.size === 0) {
    return { kind: 'skip', reason: 'not-a-model', detail: `${event.uri} is empty (0 bytes)`, event };
  }

  const model: DeployableModel = {
    uri: event.uri,
    bucket: event.bucket,
    key: event.key,
    ...(event.versionId === undefined ? {} : { versionId: event.versionId }),
    etag: event.etag,
    sequencer: event.sequencer,
    eventTime: event.time,
  };
  const live = state.model;
  const order = live === undefined ? undefined : compareToLive(model, live);
  if (order === 'duplicate') {
    return { kind: 'skip', reason: 'duplicate', detail: `${event.uri} is already the live model`, event };
  }
  // A redelivered (or late) event of a model that failed and was rolled back would deploy it
  // again, fail again, and roll back again.
  if (state.rolledBack?.some((pinned) => sameObject(model, pinned))) {
    return {
      kind: 'skip',
      reason: 'rolled-back',
      detail: `${event.uri} (sequencer ${event.sequencer}) was deployed before and the service was rolled back from it; upload the model again to retry it`,
      event,
    };
  }
  // First deployment: the service is created in the no-model state (MODEL_URI = `none`): tasks run,
  // report ready and answer 503 to predictions. The first model event always deploys from there.
  // We chose this over creating the service with desired count 0 because a count of 0 fights
  // autoscaling's minimum capacity, and the first real deployment would then scale up from nothing
  // without a healthy baseline for the circuit breaker and the ALB health check to verify against
  // (and nothing to roll back to); in the no-model state the infrastructure itself is deployed
  // and health-checked before any model exists.
  if (live === undefined) return { kind: 'deploy', model, event };
  if (order === 'older') {
    return {
      kind: 'skip',
      reason: 'older-than-live',
      detail: `${event.uri} (${event.time}) is older than the live model ${live.uri}${live.eventTime ? ` (${live.eventTime})` : ''}`,
      event,
    };
  }
  return { kind: 'deploy', model, event };
}

/**
 * Whether the event's object is the one a revision pinned: same key and version id, or (in an
 * unversioned bucket) same ETag and, when the revision recorded one, the same sequencer, so an
 * identical re-upload still counts as new.
 */
function sameObject(model: DeployableModel, pinned: PinnedModel): boolean {
  if (pinned.bucket !== model.bucket || pinned.key !== model.key) return false;
  if (model.versionId !== undefined || pinned.versionId !== undefined) {
    return model.versionId === pinned.versionId;
  }
  return (
    pinned.etag === model.etag &&
    (pinned.sequencer === undefined || compareSequencers(pinned.sequencer, model.sequencer) === 0)
  );
}

/** Where an event's model (every ordering field known) stands relative to the live one. */
export function compareToLive(model: DeployableModel, live: PinnedModel): 'duplicate' | 'older' | 'newer' {
  const sameObject = live.bucket === model.bucket && live.key === model.key;
  if (sameObject) {
    if (model.versionId !== undefined && live.versionId !== undefined) {
      if (model.versionId === live.versionId) return 'duplicate';
    } else if (model.versionId === undefined && live.versionId === undefined && live.etag === model.etag) {
      // Same key, same bytes: a redelivery, or a re-upload of identical content; nothing to roll out.
      return 'duplicate';
    }
    if (live.sequencer !== undefined) {
      const bySequencer = compareSequencers(model.sequencer, live.sequencer);
      if (bySequencer === 0) return 'duplicate';
      return bySequencer < 0 ? 'older' : 'newer';
    }
  }
  // A revision pinned by hand (or by the CDK app) carries no ordering record: any event is newer.
  if (live.eventTime === undefined) return 'newer';
  const liveTime = Date.parse(live.eventTime);
  if (Number.isNaN(liveTime)) return 'newer';
  // Across keys the store's rule decides, so the rollout deploys what a prefix MODEL_URI resolves to:
  // event time, then within the second (S3 keeps times to the second) the key in natural order.
  // Sequencers are not used here: S3 orders them only per key, and one key's events were ordered
  // above. A tie is left only for one key whose live pin has a time but no sequencer: newer.
  const order = compareUploads(
    { time: Date.parse(model.eventTime), key: `${model.bucket}/${model.key}` },
    { time: liveTime, key: `${live.bucket ?? ''}/${live.key ?? ''}` },
  );
  return order < 0 ? 'older' : 'newer';
}

/**
 * Compare two S3 sequencers: hex strings of possibly different lengths, compared as numbers
 * (left-pad the shorter with zeros, then compare lexicographically). Negative if `a` is older.
 */
export function compareSequencers(a: string, b: string): number {
  const width = Math.max(a.length, b.length);
  return compareStrings(a.toUpperCase().padStart(width, '0'), b.toUpperCase().padStart(width, '0'));
}

function describeField(value: unknown, ...path: string[]): string {
  const field = eventField(value, ...path);
  return field === undefined ? '(missing)' : JSON.stringify(field);
}
