import {
  AccessDeniedException,
  ClientException,
  ServerException,
  DeregisterTaskDefinitionCommand,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  ECSClient,
  ListTaskDefinitionsCommand,
  RegisterTaskDefinitionCommand,
  TagResourceCommand,
  UpdateServiceCommand,
  type RegisterTaskDefinitionCommandInput,
  type TaskDefinition,
  type UpdateServiceCommandInput,
} from '@aws-sdk/client-ecs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EcsDeployTarget } from '../../src/rollout/ecs-target.ts';
import { RolloutError } from '../../src/rollout/errors.ts';
import { rolloutModelEvent } from '../../src/rollout/operations.ts';
import {
  CLUSTER,
  FAMILY,
  INITIAL_TAGS,
  codeDeployFrom,
  MODELS_BUCKET,
  SERVICE,
  commandNames,
  initialTaskDefinition,
  modelEvent,
  simulateEcs,
  taskDefinitionArn,
  type EcsWorld,
} from './fixtures.ts';

const ecs = mockClient(ECSClient);
const policy = { modelsBucket: MODELS_BUCKET };
const KEY = 'training/job-1/output/model.tar.gz';
let world: EcsWorld;
let sleeps: number[];
let warnings: string[];

function newTarget(): EcsDeployTarget {
  return new EcsDeployTarget({
    client: new ECSClient({ region: 'eu-west-1' }),
    cluster: CLUSTER,
    service: SERVICE,
    retry: {
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
    },
    onWarning: (message, error) => warnings.push(`${message}: ${(error as Error).name}`),
  });
}

function registrations(): RegisterTaskDefinitionCommandInput[] {
  return ecs.commandCalls(RegisterTaskDefinitionCommand).map((call) => call.args[0].input);
}

function liveModelUri(): string | undefined {
  const live = world.taskDefinitions.get(world.serviceTaskDefinition)!.taskDefinition;
  return live.containerDefinitions![0]!.environment!.find((e) => e.name === 'MODEL_URI')?.value;
}

/** The upload event of model `name`: key runs/<name>/model.tar.gz, version v<name>, at `time`. */
function runEvent(name: string, time: string): Record<string, unknown> {
  return modelEvent({ key: `runs/${name}/model.tar.gz`, time, versionId: `v${name}` });
}

beforeEach(() => {
  ecs.reset();
  sleeps = [];
  warnings = [];
  world = simulateEcs(ecs);
});

afterEach(() => {
  ecs.reset();
});

describe('EcsDeployTarget deploying a model event', () => {
  it('sends exactly DescribeServices, DescribeTaskDefinition, ListTaskDefinitions, RegisterTaskDefinition, DescribeServices, UpdateService, TagResource', async () => {
    const outcome = await rolloutModelEvent(modelEvent(), newTarget(), policy);

    expect(outcome.kind).toBe('deploy');
    expect(commandNames(ecs)).toEqual([
      'DescribeServicesCommand',
      'DescribeTaskDefinitionCommand',
      'ListTaskDefinitionsCommand',
      'RegisterTaskDefinitionCommand',
      'DescribeServicesCommand',
      'UpdateServiceCommand',
      'TagResourceCommand',
    ]);
    expect(ecs.commandCalls(DescribeServicesCommand)[0]!.args[0].input).toStrictEqual({
      cluster: CLUSTER,
      services: [SERVICE],
    });
    expect(ecs.commandCalls(DescribeTaskDefinitionCommand)[0]!.args[0].input).toStrictEqual({
      taskDefinition: taskDefinitionArn(5),
      include: ['TAGS'],
    });
  });

  it('registers a revision equal to the current one except for the model environment', async () => {
    await rolloutModelEvent(modelEvent(), newTarget(), policy);

    // Built by hand from the fixture: drop what ECS computes, keep everything else, change only
    // the inference container's environment.
    const old = initialTaskDefinition();
    const expected: Record<string, unknown> = { ...old };
    for (const readOnly of [
      'taskDefinitionArn',
      'revision',
      'status',
      'requiresAttributes',
      'compatibilities',
      'registeredAt',
      'registeredBy',
    ]) {
      delete expected[readOnly];
    }
    expected.containerDefinitions = [
      {
        ...old.containerDefinitions![0],
        environment: [
          { name: 'PORT', value: '8080' },
          {
            name: 'MODEL_URI',
            value: `s3://${MODELS_BUCKET}/${KEY}?versionId=IYV3p45BT0ac8hjHg1houSdS1a.Mro8e`,
          },
          { name: 'SLIPWAY_WORKERS', value: '2' },
          { name: 'MODEL_VERSION', value: 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e' },
          { name: 'SLIPWAY_MODEL_ETAG', value: 'b1946ac92492d2347c6235b4d2611184' },
          { name: 'SLIPWAY_MODEL_SEQUENCER', value: '617f08299329d189' },
          { name: 'SLIPWAY_MODEL_EVENT_TIME', value: '2021-11-12T00:00:00Z' },
        ],
      },
      old.containerDefinitions![1],
    ];
    // The aws:cloudformation:* tag is AWS's own; RegisterTaskDefinition would refuse it. The
    // rollout records the revision the service ran when this one was registered.
    expected.tags = [
      ...INITIAL_TAGS.filter((tag) => tag.key === 'project'),
      { key: 'slipway:base-revision', value: '5' },
    ];

    expect(registrations()).toStrictEqual([expected]);
  });

  it('switches the service to the new revision with forceNewDeployment and reports its deployment id', async () => {
    const outcome = await rolloutModelEvent(modelEvent(), newTarget(), policy);

    expect(ecs.commandCalls(UpdateServiceCommand).map((c) => c.args[0].input)).toStrictEqual([
      { cluster: CLUSTER, service: SERVICE, taskDefinition: taskDefinitionArn(6), forceNewDeployment: true },
    ]);
    expect(outcome.kind === 'deploy' && outcome.result).toEqual({
      deploymentId: world.deployments[0]!.id,
      revision: taskDefinitionArn(6),
      previousRevision: taskDefinitionArn(5),
      model: expect.objectContaining({ uri: liveModelUri() }),
    });
  });

  it('replaces an existing model pin in place and drops ordering fields the new model lacks', async () => {
    await rolloutModelEvent(modelEvent({ versionId: null, etag: 'aaa-2' }), newTarget(), policy);
    await newTarget().deploy({ uri: 's3://elsewhere/manual/model.tar.gz' });

    const second = registrations()[1]!;
    expect(second.containerDefinitions![0]!.environment).toStrictEqual([
      { name: 'PORT', value: '8080' },
      { name: 'MODEL_URI', value: 's3://elsewhere/manual/model.tar.gz' },
      { name: 'SLIPWAY_WORKERS', value: '2' },
    ]);
    expect(liveModelUri()).toBe('s3://elsewhere/manual/model.tar.gz');
  });

  it('deploys the same event delivered 5 times exactly once', async () => {
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await rolloutModelEvent(modelEvent(), newTarget(), policy));

    expect(results.map((r) => (r.kind === 'skip' ? r.decision.reason : r.kind))).toEqual([
      'deploy',
      'duplicate',
      'duplicate',
      'duplicate',
      'duplicate',
    ]);
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(1);
    expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(1);
  });

  it('deploys the same event delivered 5 times at once exactly once', async () => {
    const target = newTarget();

    const results = await Promise.all(
      Array.from({ length: 5 }, () => rolloutModelEvent(modelEvent(), target, policy)),
    );

    expect(results.filter((r) => r.kind === 'deploy')).toHaveLength(1);
    expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(1);
  });

  it('skips an older event that arrives after a newer one', async () => {
    const newer = modelEvent({ key: 'runs/b/model.tar.gz', time: '2026-03-01T12:00:05Z' });
    const older = modelEvent({ key: 'runs/a/model.tar.gz', time: '2026-03-01T12:00:01Z' });

    await rolloutModelEvent(newer, newTarget(), policy);
    const late = await rolloutModelEvent(older, newTarget(), policy);

    expect(late.kind === 'skip' && late.decision.reason).toBe('older-than-live');
    expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(1);
    expect(liveModelUri()).toMatch(/runs\/b\/model\.tar\.gz/);
  });

  it('does not deploy again a model the circuit breaker rolled back from when its event comes late', async () => {
    const a = modelEvent({ key: 'runs/a/model.tar.gz', time: '2026-03-01T12:00:01Z', versionId: 'va' });
    const b = modelEvent({ key: 'runs/b/model.tar.gz', time: '2026-03-01T13:00:00Z', versionId: 'vb' });
    await rolloutModelEvent(a, newTarget(), policy);
    await rolloutModelEvent(b, newTarget(), policy);
    // b's tasks never became healthy: the circuit breaker put the service back on revision 6.
    world.serviceTaskDefinition = taskDefinitionArn(6);
    ecs.resetHistory();

    const late = await rolloutModelEvent(b, newTarget(), policy);

    expect(late.kind === 'skip' && late.decision.reason).toBe('rolled-back');
    expect(ecs.commandCalls(ListTaskDefinitionsCommand)[0]!.args[0].input).toStrictEqual({
      familyPrefix: FAMILY,
      status: 'ACTIVE',
      sort: 'DESC',
    });
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(0);
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/a/model.tar.gz?versionId=va`);

    const fixed = modelEvent({ key: 'runs/b/model.tar.gz', time: '2026-03-01T14:00:00Z', versionId: 'vb2' });
    expect((await rolloutModelEvent(fixed, newTarget(), policy)).kind).toBe('deploy');
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/b/model.tar.gz?versionId=vb2`);
  });

  it('does not deploy again a model rolled back from just before a code deploy when its event comes late', async () => {
    const a = runEvent('a', '2026-03-01T12:00:01Z');
    const b = runEvent('b', '2026-03-01T13:00:00Z');
    await rolloutModelEvent(a, newTarget(), policy);
    await rolloutModelEvent(b, newTarget(), policy);
    world.serviceTaskDefinition = taskDefinitionArn(6);
    // The code deploy (revision 8) keeps a; b's revision 7 is now older than the live one.
    codeDeployFrom(world, 6);

    const late = await rolloutModelEvent(b, newTarget(), policy);

    expect(late.kind === 'skip' && late.decision.reason).toBe('rolled-back');
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(2);
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/a/model.tar.gz?versionId=va`);
  });

  it('does not deploy again a model the service left before the live one was deployed, when its newer event comes late', async () => {
    const a = runEvent('a', '2026-03-01T12:00:00Z');
    const x = runEvent('x', '2026-03-01T13:00:00Z');
    const c = runEvent('c', '2026-03-01T12:30:00Z');
    await rolloutModelEvent(a, newTarget(), policy);
    await rolloutModelEvent(x, newTarget(), policy);
    world.serviceTaskDefinition = taskDefinitionArn(6);
    // c's event came after x's rollback (a retry), and is newer than a: revision 8, base 6.
    await rolloutModelEvent(c, newTarget(), policy);
    ecs.resetHistory();

    const late = await rolloutModelEvent(x, newTarget(), policy);

    expect(late.kind === 'skip' && late.decision.reason).toBe('rolled-back');
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(0);
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/c/model.tar.gz?versionId=vc`);
  });

  it('reads no older revision for the rolled-back models when the live one records the revision right below it', async () => {
    const a = runEvent('a', '2026-03-01T12:00:00Z');
    const b = runEvent('b', '2026-03-01T13:00:00Z');
    await rolloutModelEvent(a, newTarget(), policy);
    await rolloutModelEvent(b, newTarget(), policy);
    ecs.resetHistory();

    expect((await newTarget().describe()).rolledBack).toEqual([]);
    expect(commandNames(ecs)).toEqual([
      'DescribeServicesCommand',
      'DescribeTaskDefinitionCommand',
      'ListTaskDefinitionsCommand',
    ]);
  });

  it.each([
    ['the older event starts first', 0],
    ['the newer event starts first', 1],
  ])('lets the newer of two concurrent events for two keys win when %s', async (_name, newerFirst) => {
    const events = [
      modelEvent({ key: 'runs/a/model.tar.gz', time: '2026-03-01T12:00:01Z', sequencer: '0A' }),
      modelEvent({ key: 'runs/b/model.tar.gz', time: '2026-03-01T12:00:02Z', sequencer: '0B' }),
    ];
    if (newerFirst) events.reverse();
    // Two Lambda instances: the first registers its revision, then stalls until the second has
    // finished its whole rollout, so its re-check finds the service moved.
    let releaseFirst!: () => void;
    holdRecheck(new Promise<void>((resolve) => (releaseFirst = resolve)));

    const first = rolloutModelEvent(events[0], newTarget(), policy);
    await waitFor(() => ecs.commandCalls(DescribeServicesCommand).length === 2);
    const second = await rolloutModelEvent(events[1], newTarget(), policy);
    releaseFirst();
    const firstOutcome = await first;

    expect(second.kind).toBe('deploy');
    expect(liveModelUri()).toMatch(/runs\/b\/model\.tar\.gz/);
    if (newerFirst) {
      // The newer one lost the race to the service, re-read the state and deployed over it.
      expect(firstOutcome.kind).toBe('deploy');
      expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(2);
    } else {
      expect(firstOutcome.kind === 'skip' && firstOutcome.decision.reason).toBe('older-than-live');
      expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(1);
    }
    // The loser's stale revision was deregistered so rollback never picks it.
    expect(ecs.commandCalls(DeregisterTaskDefinitionCommand)).toHaveLength(1);
  });

  it('cannot close the window between the last re-check and UpdateService: there the last switch wins, even the older model (why the Lambda reserves concurrency 1)', async () => {
    const newer = modelEvent({ key: 'runs/b/model.tar.gz', time: '2026-03-01T12:00:02Z', versionId: 'vb' });
    const older = modelEvent({ key: 'runs/a/model.tar.gz', time: '2026-03-01T12:00:01Z', versionId: 'va' });
    // Two Lambda instances, each held at its UpdateService until both have passed their re-check.
    const instances = [heldBeforeSwitch(), heldBeforeSwitch()];
    const rollouts = [
      rolloutModelEvent(newer, instances[0]!.target, policy),
      rolloutModelEvent(older, instances[1]!.target, policy),
    ];
    await Promise.all(instances.map((i) => i.reached));

    instances[0]!.release();
    const first = await rollouts[0]!;
    instances[1]!.release();
    const second = await rollouts[1]!;

    // Both invocations succeed, so nothing retries the newer model; the older one is live.
    expect([first.kind, second.kind]).toEqual(['deploy', 'deploy']);
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/a/model.tar.gz?versionId=va`);
  });

  it('fails with a clear error when no container carries MODEL_URI, registering nothing', async () => {
    const bare: TaskDefinition = initialTaskDefinition();
    bare.containerDefinitions![0]!.environment = [{ name: 'PORT', value: '8080' }];
    ecs.reset();
    world = simulateEcs(ecs, bare);

    const error = await rolloutModelEvent(modelEvent(), newTarget(), policy).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RolloutError);
    expect((error as RolloutError).code).toBe('ROLLOUT_NO_MODEL_CONTAINER');
    expect((error as RolloutError).message).toMatch(
      /no container with a MODEL_URI.*inference, otel-collector/,
    );
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(0);
  });

  it('retries throttled calls with growing backoff, then succeeds', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    ecs
      .on(RegisterTaskDefinitionCommand)
      .rejectsOnce(throttled)
      .rejectsOnce(throttled)
      .callsFake((input: RegisterTaskDefinitionCommandInput) => {
        world.lastRevision += 1;
        const taskDefinition = { ...input, taskDefinitionArn: taskDefinitionArn(world.lastRevision) };
        world.taskDefinitions.set(taskDefinition.taskDefinitionArn, { taskDefinition, tags: [] });
        return { taskDefinition };
      });

    const outcome = await rolloutModelEvent(modelEvent(), newTarget(), policy);

    expect(outcome.kind).toBe('deploy');
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
    expect(sleeps[0]).toBeLessThanOrEqual(250);
    expect(sleeps[1]).toBeLessThanOrEqual(500);
    expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(1);
  });

  it('reports throttling that outlasts every retry as ROLLOUT_THROTTLED, never as success', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    ecs.on(UpdateServiceCommand).rejects(throttled);

    const error = await rolloutModelEvent(modelEvent(), newTarget(), policy).catch((e: unknown) => e);

    expect((error as RolloutError).code).toBe('ROLLOUT_THROTTLED');
    expect((error as RolloutError).retryable).toBe(true);
    expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(5);
  });

  it('reports access denied at once, naming the action', async () => {
    ecs.on(RegisterTaskDefinitionCommand).rejects(
      new AccessDeniedException({
        message:
          'User: arn:aws:sts::123456789012:assumed-role/rollout/fn is not authorized to perform: ecs:RegisterTaskDefinition',
        $metadata: { httpStatusCode: 400 },
      }),
    );

    const error = await rolloutModelEvent(modelEvent(), newTarget(), policy).catch((e: unknown) => e);

    expect((error as RolloutError).code).toBe('ROLLOUT_ACCESS_DENIED');
    expect((error as RolloutError).message).toMatch(/ecs:RegisterTaskDefinition was denied/);
    expect(ecs.commandCalls(RegisterTaskDefinitionCommand)).toHaveLength(1);
    expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(0);
    expect(sleeps).toHaveLength(0);
  });

  it('retries ECS server errors, then reports other failures with the ECS message', async () => {
    ecs
      .on(DescribeServicesCommand)
      .rejectsOnce(new ServerException({ message: 'internal error', $metadata: { httpStatusCode: 500 } }))
      .rejects(new ClientException({ message: 'Cluster identifier is not valid', $metadata: {} }));

    const error = await newTarget()
      .describe()
      .catch((e: unknown) => e);

    expect(sleeps).toHaveLength(1);
    expect((error as RolloutError).code).toBe('ROLLOUT_AWS');
    expect((error as RolloutError).message).toBe(
      'ecs:DescribeServices failed (ClientException: Cluster identifier is not valid)',
    );
  });

  it('refuses to be built without a cluster or service', () => {
    expect(
      () =>
        new EcsDeployTarget({
          client: new ECSClient({ region: 'eu-west-1' }),
          cluster: ' ',
          service: SERVICE,
        }),
    ).toThrow(/SLIPWAY_CLUSTER/);
  });

  it('reports a missing service with the failure ECS gives', async () => {
    ecs.on(DescribeServicesCommand).resolves({
      services: [],
      failures: [
        { arn: `arn:aws:ecs:eu-west-1:123456789012:service/${CLUSTER}/${SERVICE}`, reason: 'MISSING' },
      ],
    });

    const error = await newTarget()
      .describe()
      .catch((e: unknown) => e);

    expect((error as RolloutError).code).toBe('ROLLOUT_SERVICE_NOT_FOUND');
    expect((error as RolloutError).message).toMatch(/MISSING.*SLIPWAY_CLUSTER and SLIPWAY_SERVICE/);
  });
});

describe('EcsDeployTarget when switching the service fails', () => {
  const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
  const denied = new AccessDeniedException({
    message:
      'User: arn:aws:sts::123456789012:assumed-role/rollout/fn is not authorized to perform: ecs:UpdateService',
    $metadata: { httpStatusCode: 400 },
  });

  /** Make UpdateService fail with `error` until the returned function is called. */
  function failUpdates(error: Error): () => void {
    let failing = true;
    const update = ecs.on(UpdateServiceCommand);
    const healthy = simulateUpdate();
    update.callsFake((input: UpdateServiceCommandInput) => {
      if (failing) throw error;
      return healthy(input);
    });
    return () => (failing = false);
  }

  /** UpdateService as the simulation does it, for tests that replace it for a while. */
  function simulateUpdate(): (input: UpdateServiceCommandInput) => unknown {
    let counter = 100;
    return (input) => {
      counter += 1;
      world.serviceTaskDefinition = input.taskDefinition!;
      world.deployments = [
        {
          id: `ecs-svc/${counter}`,
          status: 'PRIMARY',
          taskDefinition: input.taskDefinition,
          rolloutState: 'IN_PROGRESS',
        },
        ...world.deployments.map((d) => ({ ...d, status: 'ACTIVE' })),
      ];
      return { service: { serviceName: SERVICE, deployments: structuredClone(world.deployments) } };
    };
  }

  it('deregisters the new revision when UpdateService stays throttled, so the retried event deploys', async () => {
    const recover = failUpdates(throttled);

    const error = await rolloutModelEvent(modelEvent(), newTarget(), policy).catch((e: unknown) => e);

    expect((error as RolloutError).code).toBe('ROLLOUT_THROTTLED');
    expect(ecs.commandCalls(DeregisterTaskDefinitionCommand).map((c) => c.args[0].input)).toStrictEqual([
      { taskDefinition: taskDefinitionArn(6) },
    ]);
    expect(world.taskDefinitions.get(taskDefinitionArn(6))!.taskDefinition.status).toBe('INACTIVE');

    recover();
    const retried = await rolloutModelEvent(modelEvent(), newTarget(), policy);

    expect(retried.kind).toBe('deploy');
    expect(world.serviceTaskDefinition).toBe(taskDefinitionArn(7));
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/${KEY}?versionId=IYV3p45BT0ac8hjHg1houSdS1a.Mro8e`);
  });

  it('rethrows the access-denied error, not the clean-up one, and still deploys on retry when deregistering failed too', async () => {
    const recover = failUpdates(denied);
    ecs
      .on(DeregisterTaskDefinitionCommand)
      .rejects(
        new AccessDeniedException({ message: 'not authorized: ecs:DeregisterTaskDefinition', $metadata: {} }),
      );

    const error = await rolloutModelEvent(modelEvent(), newTarget(), policy).catch((e: unknown) => e);

    expect((error as RolloutError).code).toBe('ROLLOUT_ACCESS_DENIED');
    expect((error as RolloutError).message).toMatch(/ecs:UpdateService was denied/);
    expect(warnings).toEqual([
      `could not deregister ${taskDefinitionArn(6)}, which the service never ran: RolloutError`,
    ]);
    // Revision 6 is still ACTIVE and newer than the live one, but the service never ran it.
    expect((await newTarget().describe()).rolledBack).toEqual([]);

    recover();
    const retried = await rolloutModelEvent(modelEvent(), newTarget(), policy);

    expect(retried.kind).toBe('deploy');
    expect(world.serviceTaskDefinition).toBe(taskDefinitionArn(7));
  });

  it('deregisters the new revision when the service moved meanwhile, and re-decides even if that fails', async () => {
    ecs.on(DeregisterTaskDefinitionCommand).rejects(throttled);
    let calls = 0;
    ecs.on(DescribeServicesCommand).callsFake(() => {
      // The re-check (second call) finds that someone switched the service to revision 4.
      if (++calls === 2) world.serviceTaskDefinition = taskDefinitionArn(4);
      return {
        services: [{ serviceName: SERVICE, status: 'ACTIVE', taskDefinition: world.serviceTaskDefinition }],
        failures: [],
      };
    });
    world.taskDefinitions.set(taskDefinitionArn(4), {
      taskDefinition: { ...initialTaskDefinition(), revision: 4, taskDefinitionArn: taskDefinitionArn(4) },
      tags: [],
    });
    ecs.on(UpdateServiceCommand).callsFake(simulateUpdate());

    const outcome = await rolloutModelEvent(modelEvent(), newTarget(), policy);

    expect(outcome.kind).toBe('deploy');
    expect(ecs.commandCalls(DeregisterTaskDefinitionCommand)[0]!.args[0].input).toStrictEqual({
      taskDefinition: taskDefinitionArn(6),
    });
    expect(warnings).toHaveLength(1);
    expect(world.serviceTaskDefinition).toBe(taskDefinitionArn(7));
  });

  it('deploys on retry when the previous attempt died between registering the revision and switching to it', async () => {
    // The first attempt (a Lambda that timed out) never gets past its re-check.
    holdRecheck(new Promise(() => {}));
    ecs.on(UpdateServiceCommand).callsFake(simulateUpdate());
    void rolloutModelEvent(modelEvent(), newTarget(), policy);
    await waitFor(() => ecs.commandCalls(DescribeServicesCommand).length === 2);
    expect(world.taskDefinitions.get(taskDefinitionArn(6))!.taskDefinition.status).toBe('ACTIVE');

    const retried = await rolloutModelEvent(modelEvent(), newTarget(), policy);

    expect(retried.kind).toBe('deploy');
    expect(world.serviceTaskDefinition).toBe(taskDefinitionArn(7));
  });

  it('keeps a deployment that started when tagging its revision fails, and reports the failure', async () => {
    ecs
      .on(TagResourceCommand)
      .rejects(new AccessDeniedException({ message: 'not authorized: ecs:TagResource', $metadata: {} }));

    const outcome = await rolloutModelEvent(modelEvent(), newTarget(), policy);

    expect(outcome.kind).toBe('deploy');
    expect(world.serviceTaskDefinition).toBe(taskDefinitionArn(6));
    expect(ecs.commandCalls(DeregisterTaskDefinitionCommand)).toHaveLength(0);
    expect(warnings).toEqual([
      `could not tag ${taskDefinitionArn(6)} with its deployment ${world.deployments[0]!.id}: RolloutError`,
    ]);
  });

  it('still counts as rolled back a newer revision that carries none of the rollout tags (registered by hand)', async () => {
    const b = modelEvent({ key: 'runs/b/model.tar.gz', versionId: 'vb' });
    world.taskDefinitions.set(taskDefinitionArn(6), {
      taskDefinition: {
        ...initialTaskDefinition(),
        revision: 6,
        taskDefinitionArn: taskDefinitionArn(6),
        containerDefinitions: [
          {
            ...initialTaskDefinition().containerDefinitions![0]!,
            environment: [
              { name: 'MODEL_URI', value: `s3://${MODELS_BUCKET}/runs/b/model.tar.gz?versionId=vb` },
            ],
          },
        ],
      },
      tags: INITIAL_TAGS,
    });

    const late = await rolloutModelEvent(b, newTarget(), policy);

    expect(late.kind === 'skip' && late.decision.reason).toBe('rolled-back');
  });
});

describe('EcsDeployTarget rollback', () => {
  /** Model a live on revision 6; b deployed (7) and rolled back to 6 by the circuit breaker; c (8). */
  async function deployAThenFailedBThenC(): Promise<void> {
    const [a, b, c] = ['a', 'b', 'c'].map((name, hour) =>
      modelEvent({
        key: `runs/${name}/model.tar.gz`,
        time: `2026-03-01T1${hour + 2}:00:00Z`,
        versionId: `v${name}`,
      }),
    );
    await rolloutModelEvent(a, newTarget(), policy);
    await rolloutModelEvent(b, newTarget(), policy);
    // b's tasks never became healthy: the circuit breaker put the service back on revision 6.
    world.serviceTaskDefinition = taskDefinitionArn(6);
    await rolloutModelEvent(c, newTarget(), policy);
  }

  it('restores the previous revision and with it the previous model URI', async () => {
    const first = modelEvent({ key: 'runs/a/model.tar.gz', time: '2026-03-01T12:00:01Z', versionId: 'va' });
    const second = modelEvent({ key: 'runs/b/model.tar.gz', time: '2026-03-01T13:00:00Z', versionId: 'vb' });
    await rolloutModelEvent(first, newTarget(), policy);
    await rolloutModelEvent(second, newTarget(), policy);
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/b/model.tar.gz?versionId=vb`);

    const result = await newTarget().rollback();

    expect(ecs.commandCalls(UpdateServiceCommand).at(-1)!.args[0].input).toStrictEqual({
      cluster: CLUSTER,
      service: SERVICE,
      taskDefinition: taskDefinitionArn(6),
      forceNewDeployment: true,
    });
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/a/model.tar.gz?versionId=va`);
    expect(result.model?.uri).toBe(liveModelUri());
    expect(result.previousRevision).toBe(taskDefinitionArn(7));
    expect(result.deploymentId).toBe(world.deployments[0]!.id);
  });

  it('goes back to the last model that ran, not to one the circuit breaker rolled back from (as the twin does)', async () => {
    // The twin's counterpart: test/local/local-deploy-target.test.ts, v1 / broken / v2 / rollback.
    await deployAThenFailedBThenC();
    expect(world.serviceTaskDefinition).toBe(taskDefinitionArn(8));

    const result = await newTarget().rollback();

    expect(result.revision).toBe(taskDefinitionArn(6));
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/a/model.tar.gz?versionId=va`);
    expect((await newTarget().describe()).rolledBack?.map((m) => m.key)).toEqual([
      'runs/c/model.tar.gz',
      'runs/b/model.tar.gz',
    ]);
  });

  it('goes on further back on a second rollback: A, B, C deployed, back to B, then to A (as the twin does)', async () => {
    // The twin's counterpart: test/local/supervisor.test.ts, "walks further back on a second rollback".
    for (const [hour, name] of ['a', 'b', 'c'].entries()) {
      const event = modelEvent({
        key: `runs/${name}/model.tar.gz`,
        time: `2026-03-01T1${hour}:00:00Z`,
        versionId: `v${name}`,
      });
      await rolloutModelEvent(event, newTarget(), policy);
    }

    expect((await newTarget().rollback()).revision).toBe(taskDefinitionArn(7));
    expect((await newTarget().rollback()).revision).toBe(taskDefinitionArn(6));

    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/a/model.tar.gz?versionId=va`);
    const error = await newTarget()
      .rollback()
      .catch((e: unknown) => e);
    expect((error as RolloutError).code).toBe('ROLLOUT_NO_PREVIOUS_MODEL');
  });

  it('goes on along the chain from a revision with no base record (a code deploy by CloudFormation)', async () => {
    await deployAThenFailedBThenC();
    // A code deploy: revision 9 keeps model c and carries only the stack's tags.
    const eight = world.taskDefinitions.get(taskDefinitionArn(8))!;
    world.taskDefinitions.set(taskDefinitionArn(9), {
      taskDefinition: { ...eight.taskDefinition, revision: 9, taskDefinitionArn: taskDefinitionArn(9) },
      tags: INITIAL_TAGS,
    });
    world.lastRevision = 9;
    world.serviceTaskDefinition = taskDefinitionArn(9);

    const result = await newTarget().rollback();

    // 9 -> 8 (no record: the newest older revision that pins its model c) -> 6 (8's base), past b's 7.
    expect(result.revision).toBe(taskDefinitionArn(6));
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/a/model.tar.gz?versionId=va`);
  });

  it('passes over a model the circuit breaker rejected just before a code deploy, to the model before the live one', async () => {
    // z live on 6, a on 7; b (8) rolled back to 7 by the circuit breaker; then a code deploy (9) keeps a.
    const [z, a, b] = ['z', 'a', 'b'].map((name, hour) => runEvent(name, `2026-03-01T1${hour}:00:00Z`));
    for (const event of [z, a, b]) await rolloutModelEvent(event, newTarget(), policy);
    world.serviceTaskDefinition = taskDefinitionArn(7);
    expect(codeDeployFrom(world, 7)).toBe(9);

    const result = await newTarget().rollback();

    // 9 has no base record: it replaced 7, the newest older revision that pins its model a, so
    // b's revision 8 (between the two) is passed over, and 7's base 6 is the way back.
    expect(result.revision).toBe(taskDefinitionArn(6));
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/z/model.tar.gz?versionId=vz`);
    expect(ecs.commandCalls(UpdateServiceCommand).at(-1)!.args[0].input).toStrictEqual({
      cluster: CLUSTER,
      service: SERVICE,
      taskDefinition: taskDefinitionArn(6),
      forceNewDeployment: true,
    });
  });

  it('goes back through a code deploy revision to the model before it, after a later model', async () => {
    // a live on 6; b (7) rolled back; code deploy 8 keeps a; c deployed from 8 (9).
    const [a, b, c] = ['a', 'b', 'c'].map((name, hour) => runEvent(name, `2026-03-01T1${hour}:00:00Z`));
    await rolloutModelEvent(a, newTarget(), policy);
    await rolloutModelEvent(b, newTarget(), policy);
    world.serviceTaskDefinition = taskDefinitionArn(6);
    codeDeployFrom(world, 6);
    await rolloutModelEvent(c, newTarget(), policy);

    const first = await newTarget().rollback();
    const second = await newTarget()
      .rollback()
      .catch((e: unknown) => e);

    expect(first.revision).toBe(taskDefinitionArn(8));
    expect(first.model?.key).toBe('runs/a/model.tar.gz');
    // From 8 (a, no record) the way back is 6 (a), whose base 5 pins no model: nothing is left,
    // and b (7) is never the answer.
    expect((second as RolloutError).code).toBe('ROLLOUT_NO_PREVIOUS_MODEL');
    expect(world.serviceTaskDefinition).toBe(taskDefinitionArn(8));
  });

  it('passes over a revision the service never ran (its switch failed and it could not be deregistered)', async () => {
    const a = runEvent('a', '2026-03-01T12:00:00Z');
    await rolloutModelEvent(a, newTarget(), policy);
    // Revision 7 pins b and records base 6, but no deployment ever switched to it.
    const six = world.taskDefinitions.get(taskDefinitionArn(6))!;
    const bUri = `s3://${MODELS_BUCKET}/runs/b/model.tar.gz?versionId=vb`;
    const withModel = (uri: string, revision: number): TaskDefinition => ({
      ...six.taskDefinition,
      revision,
      taskDefinitionArn: taskDefinitionArn(revision),
      containerDefinitions: six.taskDefinition.containerDefinitions!.map((c) =>
        c.name === 'inference' ? { ...c, environment: [{ name: 'MODEL_URI', value: uri }] } : c,
      ),
    });
    world.taskDefinitions.set(taskDefinitionArn(7), {
      taskDefinition: withModel(bUri, 7),
      tags: [{ key: 'slipway:base-revision', value: '6' }],
    });
    // Revision 8: a model pinned by hand (aws ecs register-task-definition), no rollout tags.
    world.taskDefinitions.set(taskDefinitionArn(8), {
      taskDefinition: withModel(`s3://${MODELS_BUCKET}/hand/model.tar.gz`, 8),
      tags: [],
    });
    world.lastRevision = 8;
    world.serviceTaskDefinition = taskDefinitionArn(8);

    const result = await newTarget().rollback();

    expect(result.revision).toBe(taskDefinitionArn(6));
    expect(result.model?.key).toBe('runs/a/model.tar.gz');
  });

  it('lists no further page of revisions once it has found the one to go back to', async () => {
    for (const [hour, name] of ['a', 'b', 'c', 'd'].entries()) {
      await rolloutModelEvent(runEvent(name, `2026-03-01T1${hour}:00:00Z`), newTarget(), policy);
    }
    // Revisions 9 (d, live) and 8 (c) on the first page, then 7 and 6, then 5.
    world.listPageSize = 2;
    ecs.resetHistory();

    const result = await newTarget().rollback();

    expect(result.revision).toBe(taskDefinitionArn(8));
    expect(ecs.commandCalls(ListTaskDefinitionsCommand).map((call) => call.args[0].input)).toStrictEqual([
      { familyPrefix: FAMILY, status: 'ACTIVE', sort: 'DESC' },
    ]);
  });

  it('walks a way back that spans pages, listing each page once and none past the revision it goes to', async () => {
    // As above: z live on 6, a on 7; b (8) rolled back to 7; a code deploy (9) keeps a. One a page.
    const [z, a, b] = ['z', 'a', 'b'].map((name, hour) => runEvent(name, `2026-03-01T1${hour}:00:00Z`));
    for (const event of [z, a, b]) await rolloutModelEvent(event, newTarget(), policy);
    world.serviceTaskDefinition = taskDefinitionArn(7);
    codeDeployFrom(world, 7);
    world.listPageSize = 1;
    ecs.resetHistory();

    const result = await newTarget().rollback();

    // 9 -> 7 (the newest older revision that pins a, past 8) -> 6 (7's base): revision 5 is not listed.
    expect(result.revision).toBe(taskDefinitionArn(6));
    expect(ecs.commandCalls(ListTaskDefinitionsCommand).map((call) => call.args[0].input.nextToken)).toEqual([
      undefined,
      '1',
      '2',
      '3',
    ]);
  });

  it('never rolls back to the no-model state', async () => {
    await rolloutModelEvent(modelEvent(), newTarget(), policy);

    const error = await newTarget()
      .rollback()
      .catch((e: unknown) => e);

    expect((error as RolloutError).code).toBe('ROLLOUT_NO_PREVIOUS_MODEL');
    expect((error as RolloutError).message).toContain(FAMILY);
    expect(ecs.commandCalls(UpdateServiceCommand)).toHaveLength(1);
  });

  it('skips earlier revisions that pin the same model as the current one', async () => {
    const a = modelEvent({ key: 'runs/a/model.tar.gz', time: '2026-03-01T12:00:01Z', versionId: 'va' });
    const b = modelEvent({ key: 'runs/b/model.tar.gz', time: '2026-03-01T13:00:00Z', versionId: 'vb' });
    await rolloutModelEvent(a, newTarget(), policy);
    await rolloutModelEvent(b, newTarget(), policy);
    // Revision 8: a config-only change (more memory) that kept model b, made outside the rollout.
    const seven = world.taskDefinitions.get(taskDefinitionArn(7))!;
    const eight = {
      ...seven.taskDefinition,
      memory: '4096',
      revision: 8,
      taskDefinitionArn: taskDefinitionArn(8),
    };
    world.taskDefinitions.set(taskDefinitionArn(8), { taskDefinition: eight, tags: seven.tags });
    world.lastRevision = 8;
    world.serviceTaskDefinition = taskDefinitionArn(8);

    const result = await newTarget().rollback();

    expect(result.revision).toBe(taskDefinitionArn(6));
    expect(liveModelUri()).toBe(`s3://${MODELS_BUCKET}/runs/a/model.tar.gz?versionId=va`);
  });
});

/** A target whose UpdateService waits for `release()`; `reached` resolves when it gets there. */
function heldBeforeSwitch(): { target: EcsDeployTarget; reached: Promise<void>; release: () => void } {
  const client = new ECSClient({ region: 'eu-west-1' });
  let reach!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((resolve) => (reach = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  const held = {
    send: async (command: Parameters<ECSClient['send']>[0]) => {
      if (command instanceof UpdateServiceCommand) {
        reach();
        await released;
      }
      return client.send(command);
    },
  } as unknown as ECSClient;
  return {
    target: new EcsDeployTarget({ client: held, cluster: CLUSTER, service: SERVICE }),
    reached,
    release,
  };
}

/**
 * DescribeServices as the simulation answers it, except that the second call (the first
 * rollout's re-check, just before UpdateService) waits for `hold`.
 */
function holdRecheck(hold: Promise<void>): void {
  ecs.on(DescribeServicesCommand).callsFake(async () => {
    if (ecs.commandCalls(DescribeServicesCommand).length === 2) await hold;
    return {
      services: [
        {
          serviceName: SERVICE,
          status: 'ACTIVE',
          taskDefinition: world.serviceTaskDefinition,
          deployments: structuredClone(world.deployments),
        },
      ],
      failures: [],
    };
  });
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise((resolve) => setImmediate(resolve));
  if (!condition()) throw new Error('condition never became true');
}
