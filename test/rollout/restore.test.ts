import { ECSClient, RegisterTaskDefinitionCommand, UpdateServiceCommand } from '@aws-sdk/client-ecs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PinnedModel, ServiceState } from '../../src/rollout/deploy-target.ts';
import { RolloutError } from '../../src/rollout/errors.ts';
import { handler } from '../../src/rollout/lambda.ts';
import {
  decideRestore,
  isRestoreRequest,
  parseRestoreRequest,
  type RestoreRequest,
} from '../../src/rollout/restore.ts';
import {
  CLUSTER,
  MODELS_BUCKET,
  SERVICE,
  codeDeployFrom,
  commandNames,
  modelEvent,
  simulateEcs,
  taskDefinitionArn,
  type EcsWorld,
} from './fixtures.ts';
import { captureHandlerRuns } from './handler-harness.ts';

const KEY = 'runs/b/model.tar.gz';
const URI = `s3://${MODELS_BUCKET}/${KEY}?versionId=vb`;
const RECORD = {
  etag: '0123456789abcdef0123456789abcdef',
  sequencer: '0062E99A88DC407460',
  eventTime: '2026-11-03T10:00:00Z',
};

function request(overrides: Record<string, unknown> = {}): RestoreRequest {
  return { slipway: 'restore-model', modelUri: URI, record: RECORD, ...overrides };
}

function invalidMessage(raw: unknown): string {
  try {
    parseRestoreRequest(raw, MODELS_BUCKET);
  } catch (err) {
    expect(err).toBeInstanceOf(RolloutError);
    expect((err as RolloutError).code).toBe('ROLLOUT_EVENT_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected the request to be refused');
}

describe('parseRestoreRequest', () => {
  it('gives the model to pin: the URI, its object and its ordering record', () => {
    expect(parseRestoreRequest(request({ reason: 'deploy run 42' }), MODELS_BUCKET)).toEqual({
      model: { uri: URI, bucket: MODELS_BUCKET, key: KEY, versionId: 'vb', ...RECORD },
      reason: 'deploy run 42',
    });
    expect(parseRestoreRequest(request({ record: {} }), MODELS_BUCKET).model).toEqual({
      uri: URI,
      bucket: MODELS_BUCKET,
      key: KEY,
      versionId: 'vb',
    });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['another kind', { slipway: 'restore' }, 'slipway: Invalid input: expected "restore-model"'],
    ['no URI', { modelUri: undefined }, 'modelUri: Invalid input: expected string, received undefined'],
    ['an unknown field', { model: URI }, 'Unrecognized key: "model"'],
    [
      'a quoted ETag',
      { record: { etag: `"${RECORD.etag}"` } },
      'record.etag: must be an S3 ETag without quotes',
    ],
    [
      'a time that is not ISO 8601',
      { record: { eventTime: 'yesterday' } },
      'record.eventTime: Invalid ISO datetime',
    ],
    ['a URI that is not s3://', { modelUri: 'file:///tmp/model.tar.gz' }, 'is not an s3://bucket/key'],
    [
      'another bucket',
      { modelUri: 's3://other/runs/b/model.tar.gz' },
      'is in bucket "other", but this rollout watches',
    ],
    [
      'no model.tar.gz',
      { modelUri: `s3://${MODELS_BUCKET}/runs/b/model.onnx` },
      'does not name a model.tar.gz',
    ],
  ])('refuses %s, saying what is wrong', (_, overrides, message) => {
    expect(invalidMessage(request(overrides))).toContain(message);
  });

  it('refuses an upload time in the future, which would make every later upload count as older', () => {
    const now = new Date('2026-11-03T10:00:00Z');
    const ahead = (minutes: number): RestoreRequest =>
      request({ record: { ...RECORD, eventTime: new Date(now.getTime() + minutes * 60_000).toISOString() } });
    expect(() => parseRestoreRequest(ahead(60), MODELS_BUCKET, now)).toThrow(
      'not a valid restore request: record.eventTime: 2026-11-03T11:00:00.000Z is in the future',
    );
    // Clocks differ a little.
    expect(parseRestoreRequest(ahead(4), MODELS_BUCKET, now).model.eventTime).toBe(
      '2026-11-03T10:04:00.000Z',
    );
  });

  it('refuses a request that is not an object', () => {
    expect(invalidMessage('restore')).toMatch(/^not a valid restore request: \(request\): /);
  });

  it('tells a restore request from an S3 event by its `slipway` field alone', () => {
    expect(isRestoreRequest(request())).toBe(true);
    expect(isRestoreRequest({ slipway: 'typo' })).toBe(true);
    expect(isRestoreRequest(modelEvent())).toBe(false);
    expect(isRestoreRequest(null)).toBe(false);
    expect(isRestoreRequest([{ slipway: 'restore-model' }])).toBe(false);
  });
});

describe('decideRestore', () => {
  const model: PinnedModel = parseRestoreRequest(request(), MODELS_BUCKET).model;
  const state = (live: PinnedModel | undefined): ServiceState => ({ revision: 'r', model: live });
  /** The pin of another upload, runs/<name>/model.tar.gz (version v<name>), with its full record. */
  const pinOf = (name: string, sequencer: string, eventTime: string): PinnedModel => ({
    uri: `s3://${MODELS_BUCKET}/runs/${name}/model.tar.gz?versionId=v${name}`,
    bucket: MODELS_BUCKET,
    key: `runs/${name}/model.tar.gz`,
    versionId: `v${name}`,
    etag: 'fedcba9876543210fedcba9876543210',
    sequencer,
    eventTime,
  });

  it('deploys over the no-model state and over an older model', () => {
    expect(decideRestore(model, state(undefined))).toEqual({ kind: 'deploy' });
    const older = pinOf('a', '0062E99A88DC400000', '2026-11-02T10:00:00Z');
    expect(decideRestore(model, state(older))).toEqual({ kind: 'deploy' });
    // A model pinned with no record (by hand, or by the CDK app) cannot be newer.
    expect(decideRestore(model, state({ uri: older.uri }))).toEqual({ kind: 'deploy' });
  });

  it('skips a model that is live, by URI and ETag', () => {
    expect(decideRestore(model, state({ ...model }))).toMatchObject({ kind: 'skip', reason: 'already-live' });
    expect(decideRestore(model, state({ uri: URI }))).toMatchObject({ kind: 'skip', reason: 'already-live' });
    // Same key in an unversioned bucket, other bytes: not the model to restore.
    const unversioned = { uri: `s3://${MODELS_BUCKET}/${KEY}`, etag: RECORD.etag };
    expect(
      decideRestore(unversioned, state({ ...unversioned, etag: 'fedcba9876543210fedcba9876543210' })),
    ).toEqual({ kind: 'deploy' });
  });

  it('skips when an upload newer than the model rolled out since', () => {
    const newer = pinOf('c', '0062E99A88DC500000', '2026-11-04T10:00:00Z');
    expect(decideRestore(model, state(newer))).toEqual({
      kind: 'skip',
      reason: 'newer-live',
      detail: `the live model ${newer.uri} (2026-11-04T10:00:00Z) is newer than ${URI} (2026-11-03T10:00:00Z): an upload rolled out after the restored model was read`,
    });
  });
});

describe('the rollout Lambda, asked to restore after a failed code deploy', () => {
  const ecs = mockClient(ECSClient);
  let world: EcsWorld;
  const { logLines } = captureHandlerRuns();

  function environmentOf(revision: number): Record<string, string | undefined> {
    const { taskDefinition } = world.taskDefinitions.get(taskDefinitionArn(revision))!;
    return Object.fromEntries(
      taskDefinition.containerDefinitions![0]!.environment!.map((e) => [e.name!, e.value]),
    );
  }

  beforeEach(() => {
    ecs.reset();
    world = simulateEcs(ecs);
  });

  afterEach(() => {
    ecs.reset();
  });

  /**
   * Revision 5 is the last stack update's (no model); uploads a and b roll out as 6 and 7; a code
   * deploy registers 8 from 7 and fails, and CloudFormation puts the service back on 5.
   */
  async function failedCodeDeploy(): Promise<Record<string, unknown>> {
    const eventB = modelEvent({
      key: KEY,
      versionId: 'vb',
      etag: `"${RECORD.etag}"`,
      sequencer: RECORD.sequencer,
      time: RECORD.eventTime,
    });
    await handler(modelEvent({ key: 'runs/a/model.tar.gz', versionId: 'va', time: '2026-11-02T10:00:00Z' }));
    expect(await handler(eventB)).toMatchObject({ action: 'deployed', revision: taskDefinitionArn(7) });
    expect(codeDeployFrom(world, 7)).toBe(8);
    world.serviceTaskDefinition = taskDefinitionArn(5);
    ecs.resetHistory();
    return eventB;
  }

  it('pins the model again on the revision CloudFormation went back to, where its upload event no longer would', async () => {
    const eventB = await failedCodeDeploy();
    // The upload's own event, redelivered now, is skipped: the service has been rolled back from b.
    expect(await handler(eventB)).toMatchObject({ action: 'skipped', reason: 'rolled-back' });
    ecs.resetHistory();

    const result = await handler(request({ reason: 'deploy.yml run 42' }));

    expect(result).toEqual({
      action: 'deployed',
      modelUri: URI,
      deploymentId: world.deployments[0]!.id,
      revision: taskDefinitionArn(9),
    });
    // The reads of a rollout (the service, its revision, the revisions around it), then its writes.
    expect(commandNames(ecs).slice(-4)).toEqual([
      'RegisterTaskDefinitionCommand',
      'DescribeServicesCommand',
      'UpdateServiceCommand',
      'TagResourceCommand',
    ]);
    expect(commandNames(ecs)[0]).toBe('DescribeServicesCommand');
    // A copy of revision 5 (the image the stack went back to) with b and its record pinned.
    const registered = ecs.commandCalls(RegisterTaskDefinitionCommand)[0]!.args[0].input;
    expect(registered.tags).toEqual(expect.arrayContaining([{ key: 'slipway:base-revision', value: '5' }]));
    expect(registered.containerDefinitions![0]!.image).toBe(
      world.taskDefinitions.get(taskDefinitionArn(5))!.taskDefinition.containerDefinitions![0]!.image,
    );
    expect(environmentOf(9)).toMatchObject({
      MODEL_URI: URI,
      MODEL_VERSION: 'vb',
      SLIPWAY_MODEL_ETAG: RECORD.etag,
      SLIPWAY_MODEL_SEQUENCER: RECORD.sequencer,
      SLIPWAY_MODEL_EVENT_TIME: RECORD.eventTime,
    });
    expect(ecs.commandCalls(UpdateServiceCommand)[0]!.args[0].input).toStrictEqual({
      cluster: CLUSTER,
      service: SERVICE,
      taskDefinition: taskDefinitionArn(9),
      forceNewDeployment: true,
    });
    expect(logLines()).toContainEqual(
      expect.objectContaining({
        level: 'INFO',
        message: 'restore started',
        modelUri: URI,
        deploymentId: world.deployments[0]!.id,
        previousRevision: taskDefinitionArn(5),
        requestReason: 'deploy.yml run 42',
      }),
    );
  });

  it('does nothing when asked again, or when the model is live', async () => {
    await failedCodeDeploy();
    await handler(request());
    ecs.resetHistory();

    expect(await handler(request())).toEqual({ action: 'skipped', reason: 'already-live', modelUri: URI });
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(0);
    expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(0);
    expect(logLines()).toContainEqual(
      expect.objectContaining({ message: 'restore skipped', reason: 'already-live', modelUri: URI }),
    );
  });

  it('refuses a malformed request before it calls ECS, and logs why', async () => {
    const error = await handler(request({ modelUri: 's3://other/runs/b/model.tar.gz' })).catch(
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(RolloutError);
    expect((error as RolloutError).code).toBe('ROLLOUT_EVENT_INVALID');
    expect(ecs.calls()).toHaveLength(0);
    expect(logLines()).toContainEqual(
      expect.objectContaining({ level: 'ERROR', message: 'restore failed', code: 'ROLLOUT_EVENT_INVALID' }),
    );
  });
});
