import { describe, expect, it } from 'vitest';
import { NO_MODEL_URI } from '../../src/names.ts';
import { liveModelRecord, liveModelUri } from '../../scripts/live-model-uri.ts';

function status(deployments: unknown[]): unknown {
  return { stack: 'Slipway', service: { service: 'inference', deployments } };
}

describe('liveModelUri', () => {
  it('returns the model the PRIMARY deployment pins, not a draining one', () => {
    const uri = 's3://acme-models/jobs/j2/output/model.tar.gz?versionId=v2';
    expect(
      liveModelUri(
        status([
          { status: 'PRIMARY', model: { uri } },
          { status: 'ACTIVE', model: { uri: 's3://acme-models/jobs/j1/output/model.tar.gz' } },
        ]),
      ),
    ).toBe(uri);
  });

  it('returns none in the no-model state', () => {
    expect(liveModelUri(status([{ status: 'PRIMARY' }]))).toBe(NO_MODEL_URI);
  });

  it('refuses a service in the middle of a rollout, whose new model may still be rolled back', () => {
    const deployments = [
      {
        id: 'ecs-svc/2',
        status: 'PRIMARY',
        rolloutState: 'IN_PROGRESS',
        model: { uri: 's3://m/b/model.tar.gz' },
      },
      {
        id: 'ecs-svc/1',
        status: 'ACTIVE',
        rolloutState: 'COMPLETED',
        model: { uri: 's3://m/a/model.tar.gz' },
      },
    ];
    expect(() => liveModelUri(status(deployments))).toThrow(
      'the service is in the middle of a rollout (PRIMARY deployment ecs-svc/2 is IN_PROGRESS)',
    );
    expect(() => liveModelRecord(status(deployments))).toThrow(/middle of a rollout/);
    deployments[0]!.rolloutState = 'COMPLETED';
    expect(liveModelUri(status(deployments.slice(0, 1)))).toBe('s3://m/b/model.tar.gz');
  });

  it('refuses output that is not a status document, so a failed lookup stops the deploy', () => {
    expect(() => liveModelUri({ error: 'AccessDenied' })).toThrow(/slipway status/);
    expect(() => liveModelUri(status([{ status: 'ACTIVE' }]))).toThrow(/no PRIMARY/);
  });
});

describe('liveModelRecord', () => {
  it('returns the ordering record the rollout keeps with the live model, as JSON for cdk context', () => {
    const model = {
      uri: 's3://acme-models/jobs/j2/output/model.tar.gz',
      etag: '0123456789abcdef0123456789abcdef',
      sequencer: '0062E99A88DC407460',
      eventTime: '2026-11-27T10:00:00.000Z',
      bucket: 'acme-models',
    };
    expect(JSON.parse(liveModelRecord(status([{ status: 'PRIMARY', model }])))).toEqual({
      etag: model.etag,
      sequencer: model.sequencer,
      eventTime: model.eventTime,
    });
  });

  it('returns {} for a model pinned without a record, and in the no-model state', () => {
    expect(liveModelRecord(status([{ status: 'PRIMARY', model: { uri: 's3://b/k/model.tar.gz' } }]))).toBe(
      '{}',
    );
    expect(liveModelRecord(status([{ status: 'PRIMARY' }]))).toBe('{}');
  });
});
