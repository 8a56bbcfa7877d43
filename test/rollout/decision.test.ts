import { describe, expect, it } from 'vitest';
import { compareSequencers, decideRollout, type RolloutDecision } from '../../src/rollout/decision.ts';
import type { PinnedModel, ServiceState } from '../../src/rollout/deploy-target.ts';
import { isModelUpload } from '../../src/shared/upload-order.ts';
import { pickNewestModel } from '../../src/store/index.ts';
import { MODELS_BUCKET, modelEvent, type ModelEventOverrides } from './fixtures.ts';

const policy = { modelsBucket: MODELS_BUCKET };
const KEY = 'training/job-1/output/model.tar.gz';

function stateWith(model: PinnedModel | undefined): ServiceState {
  return { revision: 'arn:aws:ecs:eu-west-1:123456789012:task-definition/Inference:7', model };
}

/** The model a deploy of `overrides` pins: what a live revision records after that deploy. */
function liveAfter(overrides: ModelEventOverrides): PinnedModel {
  const decision = decideRollout(modelEvent(overrides), stateWith(undefined), policy);
  if (decision.kind !== 'deploy') throw new Error(`expected deploy, got ${decision.kind}`);
  return decision.model;
}

function kindAndReason(decision: RolloutDecision): string {
  return decision.kind === 'deploy' ? 'deploy' : `${decision.kind}:${decision.reason}`;
}

describe('decideRollout', () => {
  it('deploys the first model from the no-model state, pinning object, version and ordering record', () => {
    const decision = decideRollout(modelEvent(), stateWith(undefined), policy);

    expect(decision.kind).toBe('deploy');
    expect(decision.kind === 'deploy' && decision.model).toEqual({
      uri: `s3://${MODELS_BUCKET}/${KEY}?versionId=IYV3p45BT0ac8hjHg1houSdS1a.Mro8e`,
      bucket: MODELS_BUCKET,
      key: KEY,
      versionId: 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e',
      etag: 'b1946ac92492d2347c6235b4d2611184',
      sequencer: '617f08299329d189',
      eventTime: '2021-11-12T00:00:00Z',
    });
  });

  it('skips the same event as a duplicate once its model is live', () => {
    const live = liveAfter({});

    expect(kindAndReason(decideRollout(modelEvent(), stateWith(live), policy))).toBe('skip:duplicate');
  });

  it('skips a redelivered unversioned upload (same key and ETag) as a duplicate', () => {
    const live = liveAfter({ versionId: null });

    expect(kindAndReason(decideRollout(modelEvent({ versionId: null }), stateWith(live), policy))).toBe(
      'skip:duplicate',
    );
  });

  it('orders two uploads of the same key by sequencer, not by arrival', () => {
    const older = { versionId: 'v1', sequencer: '617f08299329d189', etag: 'aaa' };
    const newer = { versionId: 'v2', sequencer: '617f0829a329d100', etag: 'bbb' };

    expect(kindAndReason(decideRollout(modelEvent(older), stateWith(liveAfter(newer)), policy))).toBe(
      'skip:older-than-live',
    );
    expect(kindAndReason(decideRollout(modelEvent(newer), stateWith(liveAfter(older)), policy))).toBe(
      'deploy',
    );
  });

  describe('after a rollback', () => {
    const live = liveAfter({ key: 'runs/a/model.tar.gz', versionId: 'va', time: '2026-01-01T00:00:01Z' });
    const failed = { key: 'runs/b/model.tar.gz', versionId: 'vb', time: '2026-01-01T00:00:05Z' };
    const rolledBack = (overrides: ModelEventOverrides): ServiceState => ({
      ...stateWith(live),
      rolledBack: [liveAfter(overrides)],
    });

    it('skips a late delivery of the event of a model the service was rolled back from', () => {
      const decision = decideRollout(modelEvent(failed), rolledBack(failed), policy);

      expect(kindAndReason(decision)).toBe('skip:rolled-back');
      expect(decision.kind === 'skip' && decision.detail).toMatch(
        /runs\/b\/model\.tar\.gz\?versionId=vb .*rolled back from it; upload the model again/,
      );
    });

    it('deploys a new version of the same key', () => {
      const again = { ...failed, versionId: 'vb2', sequencer: '617f0829a329d100' };

      expect(kindAndReason(decideRollout(modelEvent(again), rolledBack(failed), policy))).toBe('deploy');
    });

    it('in an unversioned bucket, skips the same ETag and sequencer but deploys an identical re-upload', () => {
      const unversioned = { ...failed, versionId: null, etag: 'bbb', sequencer: '0B' };
      const reupload = { ...unversioned, sequencer: '0C', time: '2026-01-01T00:00:09Z' };

      expect(kindAndReason(decideRollout(modelEvent(unversioned), rolledBack(unversioned), policy))).toBe(
        'skip:rolled-back',
      );
      expect(kindAndReason(decideRollout(modelEvent(reupload), rolledBack(unversioned), policy))).toBe(
        'deploy',
      );
    });

    it('deploys other models, and calls a rolled-back model that is live again a duplicate', () => {
      const other = { key: 'runs/c/model.tar.gz', versionId: 'vc', time: '2026-01-01T00:00:09Z' };
      const liveAgain: ServiceState = { ...stateWith(liveAfter(failed)), rolledBack: [liveAfter(failed)] };

      expect(kindAndReason(decideRollout(modelEvent(other), rolledBack(failed), policy))).toBe('deploy');
      expect(kindAndReason(decideRollout(modelEvent(failed), liveAgain, policy))).toBe('skip:duplicate');
    });

    it('skips it from the no-model state too (the first model failed)', () => {
      const state: ServiceState = { ...stateWith(undefined), rolledBack: [liveAfter(failed)] };

      expect(kindAndReason(decideRollout(modelEvent(failed), state, policy))).toBe('skip:rolled-back');
    });
  });

  it('compares sequencers of different lengths as numbers', () => {
    expect(compareSequencers('0064D3901D00059242', '617f08299329d189')).toBeGreaterThan(0);
    expect(compareSequencers('617f08299329d189', '0064D3901D00059242')).toBeLessThan(0);
    expect(compareSequencers('FF', '0100')).toBeLessThan(0);
    expect(compareSequencers('00ff', 'FF')).toBe(0);
  });

  it('uses the sequencer even when the event time says otherwise for the same key', () => {
    const live = liveAfter({ versionId: null, etag: 'aaa', sequencer: '0A', time: '2026-01-01T00:00:05Z' });
    const event = modelEvent({ versionId: null, etag: 'bbb', sequencer: '0B', time: '2026-01-01T00:00:04Z' });

    expect(kindAndReason(decideRollout(event, stateWith(live), policy))).toBe('deploy');
  });

  it('orders different keys by event time', () => {
    const live = liveAfter({ key: 'runs/b/model.tar.gz', time: '2026-01-01T00:00:10Z' });

    const older = modelEvent({ key: 'runs/a/model.tar.gz', time: '2026-01-01T00:00:09Z' });
    const newer = modelEvent({ key: 'runs/c/model.tar.gz', time: '2026-01-01T00:00:11Z' });
    expect(kindAndReason(decideRollout(older, stateWith(live), policy))).toBe('skip:older-than-live');
    expect(kindAndReason(decideRollout(newer, stateWith(live), policy))).toBe('deploy');
  });

  it('breaks a same-second tie between two keys the same way whichever is live', () => {
    const a = { key: 'runs/a/model.tar.gz', sequencer: '0100', time: '2026-01-01T00:00:10Z' };
    const b = { key: 'runs/b/model.tar.gz', sequencer: '0200', time: '2026-01-01T00:00:10Z' };

    expect(kindAndReason(decideRollout(modelEvent(b), stateWith(liveAfter(a)), policy))).toBe('deploy');
    expect(kindAndReason(decideRollout(modelEvent(a), stateWith(liveAfter(b)), policy))).toBe(
      'skip:older-than-live',
    );
  });

  // A server started with a prefix MODEL_URI serves the store's newest model under it: the rollout
  // must deploy that one too, though S3 keeps both times to the second and lists no sequencer.
  it.each([[['job-10', 'job-9']], [['job-9', 'job-10']]])(
    'deploys the model the store lists as newest when %j are uploaded in that order in one second',
    (jobs) => {
      const time = '2026-01-01T00:00:10Z';
      const keys = jobs.map((job) => `training/${job}/output/model.tar.gz`);
      let live: PinnedModel | undefined;
      keys.forEach((key, i) => {
        const decision = decideRollout(
          modelEvent({ key, time, sequencer: `0${i + 1}00` }),
          stateWith(live),
          policy,
        );
        if (decision.kind === 'deploy') live = decision.model;
      });

      const newest = pickNewestModel(
        keys.map((key) => ({ uri: `s3://${MODELS_BUCKET}/${key}`, size: 1, lastModified: new Date(time) })),
      );
      expect(live?.key).toBe('training/job-10/output/model.tar.gz');
      expect(newest?.uri).toBe(`s3://${MODELS_BUCKET}/${live?.key}`);
    },
  );

  it.each([
    ['training/job-2/output/model.tar.gz', 10, true],
    ['training/job-2/output/model.tar.gz', 0, false],
    ['training/job#2/output/model.tar.gz', 10, false],
    ['training/job?2/output/model.tar.gz', 10, false],
    ['training/job-2/output/notes.txt', 10, false],
  ])('deploys %s of %i bytes exactly when the store counts it as a model (%s)', (key, size, model) => {
    const decision = decideRollout(modelEvent({ key, size }), stateWith(undefined), policy);

    expect(decision.kind === 'deploy').toBe(model);
    expect(isModelUpload({ key, size })).toBe(model);
  });

  it('treats a live model without an ordering record (pinned by hand) as older than any event', () => {
    const live: PinnedModel = { uri: `s3://${MODELS_BUCKET}/manual/model.tar.gz` };

    expect(kindAndReason(decideRollout(modelEvent(), stateWith(live), policy))).toBe('deploy');
  });

  it.each([
    ['models/model.tar.gz.bak'],
    ['model.tar.gz/weights.bin'],
    ['models/model.tar.gz.tmp-upload'],
    ['notes/readme.md'],
  ])('skips %s as not a model', (key) => {
    expect(kindAndReason(decideRollout(modelEvent({ key }), stateWith(undefined), policy))).toBe(
      'skip:not-a-model',
    );
  });

  it('skips an empty model.tar.gz as not a model', () => {
    expect(kindAndReason(decideRollout(modelEvent({ size: 0 }), stateWith(undefined), policy))).toBe(
      'skip:not-a-model',
    );
  });

  it('rejects an event from another bucket, naming both buckets', () => {
    const decision = decideRollout(modelEvent({ bucket: 'other-bucket' }), stateWith(undefined), policy);

    expect(decision.kind).toBe('reject');
    expect(decision.kind === 'reject' && decision.reason).toMatch(/"other-bucket".*"acme-slipway-models"/);
  });

  it('rejects an event with another detail-type', () => {
    const decision = decideRollout(
      modelEvent({ detailType: 'Object Deleted' }),
      stateWith(undefined),
      policy,
    );

    expect(decision.kind === 'reject' && decision.reason).toMatch(/detail-type="Object Deleted"/);
  });

  it('rejects a model upload with missing fields, listing them', () => {
    const raw = modelEvent() as { detail: { object: Record<string, unknown> } };
    delete raw.detail.object.etag;
    delete raw.detail.object.sequencer;

    const decision = decideRollout(raw, stateWith(undefined), policy);

    expect(decision.kind === 'reject' && decision.reason).toMatch(
      /detail\.object\.etag.*detail\.object\.sequencer/,
    );
  });

  it.each([[null], [undefined], ['a string'], [[]], [{}]])('rejects %j as not an S3 event', (raw) => {
    expect(decideRollout(raw, stateWith(undefined), policy).kind).toBe('reject');
  });
});
