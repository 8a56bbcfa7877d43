import {
  AccessDeniedException,
  ECSClient,
  RegisterTaskDefinitionCommand,
  TagResourceCommand,
  UpdateServiceCommand,
} from '@aws-sdk/client-ecs';
import { HeadObjectCommand, NotFound, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ENV } from '../../src/names.ts';
import { RolloutError } from '../../src/rollout/errors.ts';
import { handler, readRolloutConfig } from '../../src/rollout/lambda.ts';
import {
  CLUSTER,
  DOCUMENTED_OBJECT_CREATED_EVENT,
  MODELS_BUCKET,
  SERVICE,
  commandNames,
  modelEvent,
  simulateEcs,
  taskDefinitionArn,
  type EcsWorld,
} from './fixtures.ts';
import { captureHandlerRuns } from './handler-harness.ts';

const ecs = mockClient(ECSClient);
const s3 = mockClient(S3Client);
let world: EcsWorld;
const { logLines } = captureHandlerRuns();

beforeEach(() => {
  ecs.reset();
  s3.reset();
  world = simulateEcs(ecs);
});

afterEach(() => {
  ecs.reset();
});

describe('rollout Lambda handler', () => {
  it('reads cluster, service and models bucket from the SLIPWAY_* variables', () => {
    expect(ENV).toMatchObject({
      cluster: 'SLIPWAY_CLUSTER',
      service: 'SLIPWAY_SERVICE',
      modelsBucket: 'SLIPWAY_MODELS_BUCKET',
      container: 'SLIPWAY_CONTAINER',
    });
    expect(readRolloutConfig()).toEqual({
      cluster: CLUSTER,
      service: SERVICE,
      modelsBucket: MODELS_BUCKET,
      container: 'inference',
    });
  });

  it('fails every invocation with one error naming all missing variables', async () => {
    vi.stubEnv(ENV.cluster, '');
    vi.stubEnv(ENV.modelsBucket, '   ');

    const error = await handler(modelEvent()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RolloutError);
    expect((error as RolloutError).code).toBe('ROLLOUT_CONFIG');
    expect((error as RolloutError).message).toBe(
      'missing environment variable(s) SLIPWAY_CLUSTER, SLIPWAY_MODELS_BUCKET',
    );
    expect(ecs.calls()).toHaveLength(0);
  });

  it('deploys a documented-shape event and logs the model URI and deployment id as JSON', async () => {
    const result = await handler(modelEvent());

    const uri = `s3://${MODELS_BUCKET}/training/job-1/output/model.tar.gz?versionId=IYV3p45BT0ac8hjHg1houSdS1a.Mro8e`;
    expect(result).toEqual({
      action: 'deployed',
      modelUri: uri,
      deploymentId: world.deployments[0]!.id,
      revision: taskDefinitionArn(6),
    });
    expect(commandNames(ecs)).toEqual([
      'DescribeServicesCommand',
      'DescribeTaskDefinitionCommand',
      'ListTaskDefinitionsCommand',
      'RegisterTaskDefinitionCommand',
      'DescribeServicesCommand',
      'UpdateServiceCommand',
      'TagResourceCommand',
    ]);
    expect(ecs.commandCalls(UpdateServiceCommand)[0]!.args[0].input).toStrictEqual({
      cluster: CLUSTER,
      service: SERVICE,
      taskDefinition: taskDefinitionArn(6),
      forceNewDeployment: true,
    });
    expect(ecs.commandCalls(TagResourceCommand)[0]!.args[0].input).toStrictEqual({
      resourceArn: taskDefinitionArn(6),
      tags: [{ key: 'slipway:deployment', value: world.deployments[0]!.id }],
    });
    // The key reads the same URL-decoded and raw: nothing to ask S3.
    expect(s3.calls()).toHaveLength(0);
    expect(logLines()).toContainEqual(
      expect.objectContaining({
        level: 'INFO',
        message: 'rollout started',
        service: 'slipway-rollout',
        modelUri: uri,
        deploymentId: world.deployments[0]!.id,
        ecsCluster: CLUSTER,
      }),
    );
  });

  it('turns 5 deliveries of the same event into one deployment', async () => {
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await handler(modelEvent()));

    expect(results.map((r) => r.action)).toEqual(['deployed', 'skipped', 'skipped', 'skipped', 'skipped']);
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(1);
    expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(1);
    expect(logLines().filter((l) => l.message === 'rollout skipped')).toHaveLength(4);
  });

  it('logs and ignores objects that are not models without calling ECS', async () => {
    const result = await handler(modelEvent({ key: 'training/job-1/output/model.tar.gz.partial' }));

    expect(result).toEqual({ action: 'skipped', reason: 'not-a-model' });
    expect(ecs.calls()).toHaveLength(0);
    expect(logLines()).toContainEqual(
      expect.objectContaining({ message: 'rollout skipped', reason: 'not-a-model' }),
    );
  });

  it('logs the key decoded from the event, or as it came when it is not valid URL encoding', async () => {
    await handler(modelEvent({ key: 'runs/red+flower%2B1/model.tar.gz.partial' }));
    await handler(modelEvent({ key: 'runs/100%/model.tar.gz.partial' }));

    expect(
      logLines()
        .filter((l) => l.message === 'rollout skipped')
        .map((l) => l.modelUri),
    ).toEqual([
      `s3://${MODELS_BUCKET}/runs/red flower+1/model.tar.gz.partial`,
      `s3://${MODELS_BUCKET}/runs/100%/model.tar.gz.partial`,
    ]);
  });

  it('names the object of every outcome it logs, which is how deploy --wait finds its upload', async () => {
    const object = {
      bucket: MODELS_BUCKET,
      key: 'training/job-1/output/model.tar.gz',
      versionId: DOCUMENTED_OBJECT_CREATED_EVENT.detail.object['version-id'],
      etag: DOCUMENTED_OBJECT_CREATED_EVENT.detail.object.etag,
    };
    await handler(modelEvent());
    await handler(modelEvent());
    await handler(modelEvent({ size: 'five' as unknown as number })).catch(() => undefined);

    expect(logLines().map((l) => [l.message, l.object])).toEqual([
      ['rollout started', object],
      ['rollout skipped', object],
      ['rollout rejected an invalid event', object],
    ]);
  });

  it('throws on an event from another bucket so it lands in the failure destination', async () => {
    const error = await handler(modelEvent({ bucket: 'not-the-models-bucket' })).catch((e: unknown) => e);

    expect((error as RolloutError).code).toBe('ROLLOUT_EVENT_INVALID');
    expect((error as RolloutError).message).toMatch(/not-the-models-bucket/);
    expect(ecs.calls()).toHaveLength(0);
    expect(logLines()).toContainEqual(expect.objectContaining({ level: 'ERROR' }));
  });

  it('throws when ECS denies access, so the invocation fails and retries apply', async () => {
    ecs
      .on(UpdateServiceCommand)
      .rejects(new AccessDeniedException({ message: 'not authorized: ecs:UpdateService', $metadata: {} }));
    s3.on(HeadObjectCommand).resolves({ ETag: `"${DOCUMENTED_OBJECT_CREATED_EVENT.detail.object.etag}"` });

    const error = await handler(modelEvent({ key: 'training/job+1/output/model.tar.gz' })).catch(
      (e: unknown) => e,
    );

    expect((error as RolloutError).code).toBe('ROLLOUT_ACCESS_DENIED');
    expect(logLines()).toContainEqual(
      expect.objectContaining({
        level: 'ERROR',
        message: 'rollout failed',
        code: 'ROLLOUT_ACCESS_DENIED',
        modelUri: `s3://${MODELS_BUCKET}/training/job 1/output/model.tar.gz`,
        object: expect.objectContaining({ key: 'training/job 1/output/model.tar.gz' }),
      }),
    );
  });
});

describe('rollout Lambda handler, for a key that reads differently URL-decoded and raw', () => {
  const ETAG = DOCUMENTED_OBJECT_CREATED_EVENT.detail.object.etag;
  const VERSION = DOCUMENTED_OBJECT_CREATED_EVENT.detail.object['version-id'];
  const notFound = () => new NotFound({ message: 'NotFound', $metadata: { httpStatusCode: 404 } });
  const heads = () => s3.commandCalls(HeadObjectCommand).map((call) => call.args[0].input);
  const pinned = () => {
    const live = world.taskDefinitions.get(world.serviceTaskDefinition)!.taskDefinition;
    return live.containerDefinitions![0]!.environment!.find((e) => e.name === 'MODEL_URI')?.value;
  };

  it("deploys the decoded key when S3 holds the event's object under it (S3 notification encoding)", async () => {
    s3.on(HeadObjectCommand).resolves({ ETag: `"${ETAG}"` });

    const result = await handler(modelEvent({ key: 'runs/red+flower%2B1/model.tar.gz' }));

    expect(heads()).toStrictEqual([
      { Bucket: MODELS_BUCKET, Key: 'runs/red flower+1/model.tar.gz', VersionId: VERSION },
    ]);
    const uri = `s3://${MODELS_BUCKET}/runs/red flower+1/model.tar.gz?versionId=${VERSION}`;
    expect(result).toMatchObject({ action: 'deployed', modelUri: uri });
    expect(pinned()).toBe(uri);
  });

  it('deploys the raw key when there is no object under the decoded one (a key that came unencoded)', async () => {
    s3.on(HeadObjectCommand).rejects(notFound());
    s3.on(HeadObjectCommand, { Key: 'runs/c++/model.tar.gz' }).resolves({ ETag: `"${ETAG}"` });

    const result = await handler(modelEvent({ key: 'runs/c++/model.tar.gz' }));

    expect(heads()).toStrictEqual([
      { Bucket: MODELS_BUCKET, Key: 'runs/c  /model.tar.gz', VersionId: VERSION },
      { Bucket: MODELS_BUCKET, Key: 'runs/c++/model.tar.gz', VersionId: VERSION },
    ]);
    expect(result).toMatchObject({ action: 'deployed' });
    expect(pinned()).toBe(`s3://${MODELS_BUCKET}/runs/c++/model.tar.gz?versionId=${VERSION}`);
  });

  it('deploys the raw key when the decoded key holds another object (no versions: by ETag)', async () => {
    s3.on(HeadObjectCommand).resolves({ ETag: '"another-object"' });
    s3.on(HeadObjectCommand, { Key: 'runs/a+b/model.tar.gz' }).resolves({ ETag: `"${ETAG}"` });

    await handler(modelEvent({ key: 'runs/a+b/model.tar.gz', versionId: null }));

    expect(heads()).toStrictEqual([
      { Bucket: MODELS_BUCKET, Key: 'runs/a b/model.tar.gz' },
      { Bucket: MODELS_BUCKET, Key: 'runs/a+b/model.tar.gz' },
    ]);
    expect(pinned()).toBe(`s3://${MODELS_BUCKET}/runs/a+b/model.tar.gz`);
  });

  it('heads the current object for the "null" version of a bucket whose versioning is suspended', async () => {
    s3.on(HeadObjectCommand).resolves({ ETag: `"${ETAG}"` });

    await handler(modelEvent({ key: 'runs/a+b/model.tar.gz', versionId: 'null' }));

    expect(heads()).toStrictEqual([{ Bucket: MODELS_BUCKET, Key: 'runs/a b/model.tar.gz' }]);
    expect(pinned()).toBe(`s3://${MODELS_BUCKET}/runs/a b/model.tar.gz`);
  });

  it('deploys a raw key that is not valid URL encoding, which it used to reject', async () => {
    s3.on(HeadObjectCommand).resolves({ ETag: `"${ETAG}"` });

    const result = await handler(modelEvent({ key: 'runs/100%/model.tar.gz' }));

    expect(heads()).toStrictEqual([
      { Bucket: MODELS_BUCKET, Key: 'runs/100%/model.tar.gz', VersionId: VERSION },
    ]);
    expect(result).toMatchObject({ action: 'deployed' });
    expect(pinned()).toBe(`s3://${MODELS_BUCKET}/runs/100%/model.tar.gz?versionId=${VERSION}`);
  });

  it('rejects the event, naming both readings, when neither holds its object', async () => {
    s3.on(HeadObjectCommand).rejects(notFound());

    const error = await handler(modelEvent({ key: 'runs/a+b/model.tar.gz' })).catch((e: unknown) => e);

    expect((error as RolloutError).code).toBe('ROLLOUT_EVENT_INVALID');
    expect((error as RolloutError).message).toBe(
      `the event's key "runs/a+b/model.tar.gz" names no object with ETag ${ETAG} and version ${VERSION} in bucket ${MODELS_BUCKET}: ` +
        'tried "runs/a b/model.tar.gz" (no such object) and "runs/a+b/model.tar.gz" (no such object)',
    );
    expect(ecs.calls()).toHaveLength(0);
    expect(logLines()).toContainEqual(
      expect.objectContaining({ level: 'ERROR', message: 'rollout failed', code: 'ROLLOUT_EVENT_INVALID' }),
    );
  });

  it('fails without deciding when S3 denies the HEAD, so the retries and the failure queue apply', async () => {
    s3.on(HeadObjectCommand).rejects(
      new S3ServiceException({
        name: 'Forbidden',
        $fault: 'client',
        message: 'Forbidden',
        $metadata: { httpStatusCode: 403 },
      }),
    );

    const error = await handler(modelEvent({ key: 'runs/a+b/model.tar.gz' })).catch((e: unknown) => e);

    expect((error as RolloutError).code).toBe('ROLLOUT_ACCESS_DENIED');
    expect((error as RolloutError).message).toMatch(
      /s3:HeadObject on s3:\/\/.*\/runs\/a b\/model\.tar\.gz was denied/,
    );
    expect(ecs.calls()).toHaveLength(0);
  });

  it('asks S3 nothing for an event from another bucket, and rejects it as before', async () => {
    const error = await handler(modelEvent({ bucket: 'elsewhere', key: 'runs/a+b/model.tar.gz' })).catch(
      (e: unknown) => e,
    );

    expect((error as RolloutError).code).toBe('ROLLOUT_EVENT_INVALID');
    expect(s3.calls()).toHaveLength(0);
  });
});
