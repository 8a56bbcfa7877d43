import { describe, expect, it } from 'vitest';
import { ROLLOUT_LOG_MESSAGES, loggedObjectOf, loggedOutcome } from '../../src/rollout/outcome-log.ts';
import { MODELS_BUCKET, modelEvent } from './fixtures.ts';

const KEY = 'runs/c/model.tar.gz';
const upload = { bucket: MODELS_BUCKET, key: KEY, versionId: 'vc', etag: 'etag-c' };

/** A log line as Powertools writes it for the rollout, for `object`. */
function line(message: string, object: object, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ level: 'INFO', message, service: 'slipway-rollout', object, ...fields });
}

describe('loggedOutcome', () => {
  it('finds the skip of the uploaded version among other objects, versions and Lambda platform lines', () => {
    const messages = [
      'START RequestId: 1f0c Version: $LATEST',
      line(ROLLOUT_LOG_MESSAGES.deployed, { ...upload, versionId: 'vb' }, { deploymentId: 'ecs-svc/1' }),
      line(
        ROLLOUT_LOG_MESSAGES.deployed,
        { ...upload, key: 'runs/d/model.tar.gz' },
        { deploymentId: 'ecs-svc/2' },
      ),
      line(ROLLOUT_LOG_MESSAGES.skipped, upload, { reason: 'older-than-live', detail: 'c is older than d' }),
      'END RequestId: 1f0c',
    ];

    expect(loggedOutcome(messages, upload)).toEqual({
      kind: 'skipped',
      reason: 'older-than-live',
      detail: 'c is older than d',
    });
  });

  it('tells uploads to one key of a bucket without versions apart by their ETag', () => {
    const unversioned = { bucket: MODELS_BUCKET, key: KEY, etag: 'etag-2' };
    const messages = [
      line(
        ROLLOUT_LOG_MESSAGES.skipped,
        { ...unversioned, etag: 'etag-1' },
        { reason: 'duplicate', detail: '' },
      ),
      line(ROLLOUT_LOG_MESSAGES.deployed, unversioned, { deploymentId: 'ecs-svc/7' }),
    ];

    expect(loggedOutcome(messages, unversioned)).toEqual({ kind: 'deployed', deploymentId: 'ecs-svc/7' });
  });

  it('reports a rejected event with its reason', () => {
    const messages = [
      line(ROLLOUT_LOG_MESSAGES.rejected, upload, { reason: 'detail.object.size is missing' }),
    ];

    expect(loggedOutcome(messages, upload)).toEqual({
      kind: 'rejected',
      reason: 'detail.object.size is missing',
    });
  });

  it('counts failed attempts with the last code and error, until an attempt decides', () => {
    const failed = (code: string, message: string): string =>
      line(ROLLOUT_LOG_MESSAGES.failed, upload, { code, error: { name: 'RolloutError', message } });
    const twice = [failed('ROLLOUT_THROTTLED', 'slow down'), failed('ROLLOUT_ACCESS_DENIED', 'denied')];

    expect(loggedOutcome(twice, upload)).toEqual({
      kind: 'failing',
      attempts: 2,
      code: 'ROLLOUT_ACCESS_DENIED',
      error: 'denied',
    });
    expect(
      loggedOutcome(
        [...twice, line(ROLLOUT_LOG_MESSAGES.deployed, upload, { deploymentId: 'ecs-svc/9' })],
        upload,
      ),
    ).toEqual({ kind: 'deployed', deploymentId: 'ecs-svc/9' });
  });

  it('carries on from what earlier lines said: failures add up, and a decided outcome stands', () => {
    const failed = line(ROLLOUT_LOG_MESSAGES.failed, upload, {
      code: 'ROLLOUT_THROTTLED',
      error: 'slow down',
    });
    const skipped = line(ROLLOUT_LOG_MESSAGES.skipped, upload, { reason: 'duplicate', detail: 'live' });
    const deployed = line(ROLLOUT_LOG_MESSAGES.deployed, upload, { deploymentId: 'ecs-svc/9' });

    expect(loggedOutcome([failed], upload, loggedOutcome([failed], upload))).toEqual({
      kind: 'failing',
      attempts: 2,
      code: 'ROLLOUT_THROTTLED',
      error: 'slow down',
    });
    expect(loggedOutcome([deployed], upload, loggedOutcome([skipped], upload))).toEqual({
      kind: 'skipped',
      reason: 'duplicate',
      detail: 'live',
    });
  });

  it('finds nothing in lines for no object or for malformed JSON', () => {
    const messages = [
      JSON.stringify({ message: ROLLOUT_LOG_MESSAGES.skipped, reason: 'not-a-model' }),
      '{"message": "rollout skipped", "object": ',
    ];

    expect(loggedOutcome(messages, upload)).toBeUndefined();
  });
});

describe('loggedObjectOf', () => {
  it('names the resolved key, the version id and the unquoted ETag of an event', () => {
    const event = modelEvent({ key: 'runs/a%2Bb/model.tar.gz', versionId: 'v1', etag: '"abc"' });

    expect(loggedObjectOf(event, 'runs/a+b/model.tar.gz')).toEqual({
      bucket: MODELS_BUCKET,
      key: 'runs/a+b/model.tar.gz',
      versionId: 'v1',
      etag: 'abc',
    });
    expect(loggedObjectOf(modelEvent({ key: KEY, versionId: null }))).toEqual({
      bucket: MODELS_BUCKET,
      key: KEY,
      etag: 'b1946ac92492d2347c6235b4d2611184',
    });
    expect(loggedObjectOf({ detail: {} })).toBeUndefined();
  });
});
