import { DescribeServicesCommand, ECSClient, type Deployment } from '@aws-sdk/client-ecs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeploymentInfo } from '../../src/rollout/deploy-target.ts';
import { EcsDeployTarget } from '../../src/rollout/ecs-target.ts';
import { RolloutError } from '../../src/rollout/errors.ts';
import {
  followDeployment,
  formatStatus,
  rollbackModel,
  rolloutModelEvent,
  rolloutStatus,
  waitUntilSteady,
} from '../../src/rollout/operations.ts';
import {
  CLUSTER,
  MODELS_BUCKET,
  SERVICE,
  modelEvent,
  simulateEcs,
  taskDefinitionArn,
  type EcsWorld,
} from './fixtures.ts';

const ecs = mockClient(ECSClient);
const policy = { modelsBucket: MODELS_BUCKET };
const A = modelEvent({ key: 'runs/a/model.tar.gz', time: '2026-03-01T12:00:00Z', versionId: 'va' });
const B = modelEvent({ key: 'runs/b/model.tar.gz', time: '2026-03-01T13:00:00Z', versionId: 'vb' });
const A_URI = `s3://${MODELS_BUCKET}/runs/a/model.tar.gz?versionId=va`;
const B_URI = `s3://${MODELS_BUCKET}/runs/b/model.tar.gz?versionId=vb`;
let world: EcsWorld;
let target: EcsDeployTarget;

/** Deploy A, let it complete, then deploy B; returns B's deployment id. */
async function deployAThenB(): Promise<string> {
  await rolloutModelEvent(A, target, policy);
  world.deployments = world.deployments.slice(0, 1).map((d) => ({ ...d, rolloutState: 'COMPLETED' }));
  const b = await rolloutModelEvent(B, target, policy);
  if (b.kind !== 'deploy') throw new Error('expected B to deploy');
  return b.result.deploymentId;
}

/** Mutate the simulated deployment list on the n-th poll (1-based). */
function onPoll(n: number, change: (deployments: Deployment[]) => Deployment[]): (d: DeploymentInfo) => void {
  let polls = 0;
  return () => {
    polls += 1;
    if (polls === n) world.deployments = change(world.deployments);
  };
}

beforeEach(() => {
  ecs.reset();
  world = simulateEcs(ecs);
  target = new EcsDeployTarget({
    client: new ECSClient({ region: 'eu-west-1' }),
    cluster: CLUSTER,
    service: SERVICE,
  });
});

afterEach(() => {
  ecs.reset();
});

describe('rolloutStatus', () => {
  it('shows which model each deployment runs and where its rollout stands', async () => {
    const bId = await deployAThenB();

    const status = await rolloutStatus(target);

    expect(status.service).toBe(SERVICE);
    expect(status.deployments.map((d) => [d.id, d.status, d.rolloutState, d.model?.uri])).toEqual([
      [bId, 'PRIMARY', 'IN_PROGRESS', B_URI],
      [world.deployments[1]!.id, 'ACTIVE', 'COMPLETED', A_URI],
    ]);
    expect(formatStatus(status).join('\n')).toMatch(
      new RegExp(
        `PRIMARY ${bId}  IN_PROGRESS[\\s\\S]*model ${B_URI.replace(/[?.]/g, '\\$&')} \\(version vb\\)`,
      ),
    );
  });

  it('reports the no-model state before the first rollout', async () => {
    const status = await rolloutStatus(target);

    expect(status.deployments[0]!.model).toBeUndefined();
    expect(formatStatus(status).join('\n')).toContain('no model (MODEL_URI=none)');
  });
});

describe('waitUntilSteady', () => {
  it('reads the service again until no rollout is in progress, then gives that status', async () => {
    await deployAThenB();
    const sleeps: number[] = [];
    let reads = 0;
    ecs.on(DescribeServicesCommand).callsFake(() => {
      reads += 1;
      // ECS completes B's rollout by the third read: the old deployment is gone.
      if (reads === 3) {
        world.deployments = world.deployments.slice(0, 1).map((d) => ({ ...d, rolloutState: 'COMPLETED' }));
      }
      return {
        services: [
          {
            serviceName: SERVICE,
            status: 'ACTIVE',
            desiredCount: 2,
            runningCount: 2,
            deployments: world.deployments,
          },
        ],
      };
    });

    const status = await waitUntilSteady(target, {
      intervalMs: 10_000,
      timeoutMs: 60_000,
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
    });

    expect(sleeps).toEqual([10_000, 10_000]);
    expect(status.deployments.map((d) => [d.status, d.rolloutState, d.model?.uri])).toEqual([
      ['PRIMARY', 'COMPLETED', B_URI],
    ]);
  });

  it('gives up at the timeout, naming the rollout still in progress', async () => {
    const bId = await deployAThenB();

    const sleeps: number[] = [];
    const error = await waitUntilSteady(target, {
      intervalMs: 10_000,
      timeoutMs: 25_000,
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RolloutError);
    expect((error as RolloutError).code).toBe('ROLLOUT_FOLLOW_TIMEOUT');
    expect((error as RolloutError).message).toBe(
      `a rollout is still in progress after 25s: deployment ${bId} (${B_URI}, 0/2 tasks running)`,
    );
    // The last wait is cut to the timeout: a look at 25 s, not a give-up at 20 s.
    expect(sleeps).toEqual([10_000, 10_000, 5_000]);
  });
});

describe('followDeployment', () => {
  it('reports completed once ECS marks the rollout COMPLETED', async () => {
    const id = await deployAThenB();

    const result = await followDeployment(target, id, {
      intervalMs: 1,
      onProgress: onPoll(2, (ds) => ds.map((d) => (d.id === id ? { ...d, rolloutState: 'COMPLETED' } : d))),
    });

    expect(result.outcome).toBe('completed');
    expect(result.deployment?.model?.uri).toBe(B_URI);
    // Task definitions are immutable, so following costs one DescribeServices per poll.
    expect(ecs.commandCalls(DescribeServicesCommand).length).toBeGreaterThanOrEqual(3);
  });

  it('reports rolled-back when the circuit breaker fails it and rolls back', async () => {
    const id = await deployAThenB();
    const reason = 'ECS deployment circuit breaker: tasks failed to start.';

    const result = await followDeployment(target, id, {
      intervalMs: 1,
      onProgress: onPoll(1, (ds) => [
        {
          ...ds[1]!,
          id: 'ecs-svc/9000000000000000001',
          status: 'PRIMARY',
          rolloutState: 'IN_PROGRESS',
          rolloutStateReason: 'ECS deployment circuit breaker: rolling back to deploymentId ' + ds[1]!.id,
        },
        { ...ds[0]!, status: 'ACTIVE', rolloutState: 'FAILED', rolloutStateReason: reason },
      ]),
    });

    expect(result).toMatchObject({ deploymentId: id, outcome: 'rolled-back', reason });
  });

  it('reports failed when the deployment fails and nothing rolls it back', async () => {
    const id = await deployAThenB();

    const result = await followDeployment(target, id, {
      intervalMs: 1,
      onProgress: onPoll(1, (ds) =>
        ds.map((d) =>
          d.id === id ? { ...d, rolloutState: 'FAILED', rolloutStateReason: 'tasks failed' } : d,
        ),
      ),
    });

    expect(result).toMatchObject({ outcome: 'failed', reason: 'tasks failed' });
  });

  it('reports superseded when a newer deployment replaces it mid-rollout', async () => {
    const id = await deployAThenB();

    const result = await followDeployment(target, id, {
      intervalMs: 1,
      onProgress: onPoll(1, (ds) => [
        { ...ds[0]!, id: 'ecs-svc/9000000000000000002', status: 'PRIMARY' },
        { ...ds[0]!, status: 'ACTIVE' },
      ]),
    });

    expect(result.outcome).toBe('superseded');
  });

  it('rejects an unknown deployment id with the ids that exist', async () => {
    const error = await followDeployment(target, 'ecs-svc/404', { intervalMs: 1 }).catch((e: unknown) => e);

    expect((error as RolloutError).code).toBe('ROLLOUT_DEPLOYMENT_NOT_FOUND');
    expect((error as RolloutError).message).toContain(world.deployments[0]!.id);
  });

  it('gives up with ROLLOUT_FOLLOW_TIMEOUT when the deployment never settles', async () => {
    const id = await deployAThenB();

    const error = await followDeployment(target, id, { intervalMs: 1, timeoutMs: 5 }).catch(
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(RolloutError);
    expect((error as RolloutError).code).toBe('ROLLOUT_FOLLOW_TIMEOUT');
    expect((error as RolloutError).message).toMatch(/last: IN_PROGRESS, 0\/2 tasks running/);
  });

  it('stops when its signal aborts', async () => {
    const id = await deployAThenB();
    const controller = new AbortController();

    const following = followDeployment(target, id, { intervalMs: 60_000, signal: controller.signal });
    controller.abort(new Error('user pressed Ctrl-C'));

    await expect(following).rejects.toThrow('user pressed Ctrl-C');
  });
});

describe('rollbackModel', () => {
  it('brings back the previous model and a deployment id to follow', async () => {
    await deployAThenB();

    const result = await rollbackModel(target);

    expect(result.model?.uri).toBe(A_URI);
    expect(result.revision).toBe(taskDefinitionArn(6));
    expect((await rolloutStatus(target)).deployments[0]).toMatchObject({
      id: result.deploymentId,
      model: { uri: A_URI },
    });
  });
});
