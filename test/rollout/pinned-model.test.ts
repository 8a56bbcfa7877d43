import { describe, expect, it } from 'vitest';
import type { PinnedModel } from '../../src/rollout/deploy-target.ts';
import { modelEnvironment, pinnedModelFromEnvironment } from '../../src/rollout/pinned-model.ts';

describe('the pinned-model environment record', () => {
  it('round-trips a versioned model through environment variables', () => {
    const model: PinnedModel = {
      uri: 's3://models/runs/a b/model.tar.gz?versionId=3%2Fx',
      bucket: 'models',
      key: 'runs/a b/model.tar.gz',
      versionId: '3/x',
      etag: 'd41d8cd98f00b204e9800998ecf8427e-3',
      sequencer: '0064D3901D00059242',
      eventTime: '2026-03-01T12:00:00Z',
    };

    const env = modelEnvironment(model);

    expect(env).toEqual({
      MODEL_URI: model.uri,
      MODEL_VERSION: '3/x',
      SLIPWAY_MODEL_ETAG: model.etag,
      SLIPWAY_MODEL_SEQUENCER: model.sequencer,
      SLIPWAY_MODEL_EVENT_TIME: model.eventTime,
    });
    expect(pinnedModelFromEnvironment(env)).toEqual(model);
  });

  it('writes the ETag as MODEL_VERSION for an unversioned bucket', () => {
    const env = modelEnvironment({ uri: 's3://models/m/model.tar.gz', etag: 'abc-2' });

    expect(env.MODEL_VERSION).toBe('abc-2');
    expect(
      pinnedModelFromEnvironment({ MODEL_URI: 's3://models/m/model.tar.gz', MODEL_VERSION: 'abc-2' }),
    ).toEqual({
      uri: 's3://models/m/model.tar.gz',
      bucket: 'models',
      key: 'm/model.tar.gz',
      etag: 'abc-2',
    });
  });

  it('is the no-model state for MODEL_URI=none, empty or unset', () => {
    expect(modelEnvironment(undefined).MODEL_URI).toBe('none');
    expect(pinnedModelFromEnvironment({ MODEL_URI: 'none' })).toBeUndefined();
    expect(pinnedModelFromEnvironment({ MODEL_URI: '' })).toBeUndefined();
    expect(pinnedModelFromEnvironment({})).toBeUndefined();
  });

  it('keeps a hand-written non-S3 URI without inventing an ordering record', () => {
    expect(pinnedModelFromEnvironment({ MODEL_URI: 'file:///srv/models/model.tar.gz' })).toEqual({
      uri: 'file:///srv/models/model.tar.gz',
    });
  });
});
