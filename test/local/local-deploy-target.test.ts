import { afterEach, describe, expect, it } from 'vitest';
import { LoadBalancer } from '../../src/local/load-balancer.ts';
import { LocalDeployTarget, followTwinDeployment } from '../../src/local/local-deploy-target.ts';
import { Supervisor } from '../../src/local/supervisor.ts';
import type { Deployment } from '../../src/local/supervisor.ts';
import { RolloutError } from '../../src/rollout/errors.ts';
import { rolloutModelEvent } from '../../src/rollout/operations.ts';
import { MODELS_BUCKET, modelEvent } from '../rollout/fixtures.ts';
import { fakeSpawner } from './helpers.ts';

// s3://m/v<N> serves version N; s3://m/broken crashes at start; a model under v<N>-stuck/ never gets ready.
const spawn = fakeSpawner((uri): Record<string, string> =>
  uri.endsWith('broken')
    ? { FAKE_MODE: 'crash-on-start' }
    : uri.includes('-stuck/')
      ? { FAKE_MODE: 'never-ready' }
      : { FAKE_VERSION: uri.replace(/.*\/v/, '') },
);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function target(readinessTimeoutMs = 15_000): Promise<LocalDeployTarget> {
  const lb = new LoadBalancer({ port: 0, healthIntervalMs: 200 });
  await lb.listen();
  const sup = new Supervisor({
    spawn,
    router: lb,
    desiredCount: 1,
    readinessTimeoutMs,
    drainTimeoutMs: 1_000,
  });
  cleanups.push(async () => {
    await sup.stop();
    await lb.close();
  });
  return new LocalDeployTarget(sup);
}

describe('LocalDeployTarget.follow', () => {
  it('follows a rollout to completed, and a broken one after it to rolled-back', async () => {
    const t = await target();
    const first = await t.deploy({ uri: 's3://m/v1' });
    const progress: string[] = [];
    const done = await t.follow(first.deploymentId, {
      intervalMs: 20,
      onProgress: (d) => progress.push(d.rolloutState),
    });
    expect(done).toMatchObject({ deploymentId: first.deploymentId, outcome: 'completed' });
    expect(progress.at(-1)).toBe('COMPLETED');

    const broken = await t.deploy({ uri: 's3://m/broken' });
    const failed = await t.follow(broken.deploymentId, { intervalMs: 20 });
    expect(failed.outcome).toBe('rolled-back');
    expect(failed.reason).toMatch(new RegExp(`rolled back to ${first.deploymentId}`));
    expect((await t.describe()).model?.uri).toBe('s3://m/v1');
  });

  it('says failed, not rolled-back, when the first deployment fails and there is nothing to go back to', async () => {
    const t = await target();
    const broken = await t.deploy({ uri: 's3://m/broken' });
    const failed = await t.follow(broken.deploymentId, { intervalMs: 20 });
    expect(failed.outcome).toBe('failed');
    expect(failed.reason).toMatch(/no earlier deployment to keep/);
  });

  it('refuses a deployment id it never had', async () => {
    const t = await target();
    const error = await t.follow('twin-404', { intervalMs: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RolloutError);
    expect(error).toMatchObject({ code: 'ROLLOUT_DEPLOYMENT_NOT_FOUND' });
  });
});

describe('LocalDeployTarget.describe', () => {
  it('lists the models the service was rolled back from, by the circuit breaker and by hand', async () => {
    const t = await target();
    const settle = async (p: Promise<{ deploymentId: string }>) =>
      t.follow((await p).deploymentId, { intervalMs: 20 });
    await settle(t.deploy({ uri: 's3://m/v1' }));
    expect((await t.describe()).rolledBack).toEqual([]);

    expect((await settle(t.deploy({ uri: 's3://m/broken' }))).outcome).toBe('rolled-back');
    expect((await t.describe()).rolledBack).toEqual([{ uri: 's3://m/broken' }]);

    await settle(t.deploy({ uri: 's3://m/v2' }));
    expect((await settle(t.rollback())).outcome).toBe('completed');
    const state = await t.describe();
    expect(state.model).toEqual({ uri: 's3://m/v1' });
    expect(state.rolledBack).toEqual([{ uri: 's3://m/v2' }, { uri: 's3://m/broken' }]);
  });
});

describe('rolloutModelEvent on the twin', () => {
  /** The event of an upload under `<name>/` in second `second` of a minute. */
  const upload = (name: string, second: number): Record<string, unknown> =>
    modelEvent({
      key: `${name}/output/model.tar.gz`,
      versionId: null,
      etag: `etag-${name}`,
      sequencer: `0${second}`,
      time: `2026-03-01T12:00:0${second}Z`,
    });

  it('skips a redelivered event of an upload a rollback superseded before it started, as ECS does', async () => {
    const t = await target(4_000);
    const roll = (event: unknown) => rolloutModelEvent(event, t, { modelsBucket: MODELS_BUCKET });
    const deployed = async (event: unknown): Promise<string> => {
      const outcome = await roll(event);
      if (outcome.kind !== 'deploy') throw new Error(`expected a deploy, got ${outcome.kind}`);
      return outcome.result.deploymentId;
    };
    const expectSkipped = async (...late: unknown[]): Promise<void> => {
      for (const event of late) {
        const outcome = await roll(event);
        expect(outcome.kind === 'skip' && outcome.decision.reason).toBe('rolled-back');
      }
    };
    const v1 = upload('v1', 1);
    const stuck = upload('v2-stuck', 2);
    const v4 = upload('v4', 4);
    expect((await t.follow(await deployed(v1), { intervalMs: 20 })).outcome).toBe('completed');
    await deployed(stuck);
    const queued = await deployed(v4);

    const back = await t.rollback();
    expect(back.model?.key).toBe('v1/output/model.tar.gz');
    expect((await t.follow(queued, { intervalMs: 20 })).outcome).toBe('superseded');
    expect((await t.follow(back.deploymentId, { intervalMs: 20 })).outcome).toBe('completed');
    await expectSkipped(v4, stuck);
    expect((await t.describe()).rolledBack?.map((m) => m.key)).toEqual([
      'v4/output/model.tar.gz',
      'v2-stuck/output/model.tar.gz',
    ]);

    // An upload older than v4 but newer than v1, delivered late, rolls out from v1; v4 stays left.
    const v3 = upload('v3', 3);
    expect((await t.follow(await deployed(v3), { intervalMs: 20 })).outcome).toBe('completed');
    await expectSkipped(v4, stuck);
  });
});

describe('followTwinDeployment', () => {
  const deployment = (over: Partial<Deployment>): Deployment => ({
    id: 'd-2',
    revision: 'slipway-inference:2',
    status: 'PRIMARY',
    rolloutState: 'IN_PROGRESS',
    rolloutStateReason: '',
    model: { uri: 's3://m/v2' },
    modelUri: 's3://m/v2',
    desiredCount: 1,
    runningCount: 0,
    failedTasks: 0,
    createdAt: new Date(0).toISOString(),
    updatedAt: new Date(0).toISOString(),
    ...over,
  });
  /** A reader that returns each snapshot in turn, then keeps returning the last. */
  const reads = (...snapshots: (Deployment | undefined)[]) => {
    let i = 0;
    return () => Promise.resolve(snapshots[Math.min(i++, snapshots.length - 1)]);
  };

  it('calls a COMPLETED deployment that is no longer PRIMARY superseded, and so one that left the list', async () => {
    const done = deployment({ rolloutState: 'COMPLETED', status: 'ACTIVE' });
    expect(await followTwinDeployment('d-2', reads(done), 'none', { intervalMs: 1 })).toMatchObject({
      outcome: 'superseded',
    });
    const gone = reads(deployment({}), undefined);
    expect(await followTwinDeployment('d-2', gone, 'none', { intervalMs: 1 })).toEqual({
      deploymentId: 'd-2',
      outcome: 'superseded',
    });
  });

  it('decides rolled-back from the deployment rolledBackTo, not from its reason text', async () => {
    const failed = deployment({
      rolloutState: 'FAILED',
      rolloutStateReason: 'rolled back to d-1 (said the text)',
    });
    const result = await followTwinDeployment('d-2', reads(failed), 'none', { intervalMs: 1 });
    expect(result.outcome).toBe('failed');
    const rolledBack = deployment({ rolloutState: 'FAILED', rolledBackTo: 'd-1' });
    expect((await followTwinDeployment('d-2', reads(rolledBack), 'none', { intervalMs: 1 })).outcome).toBe(
      'rolled-back',
    );
  });

  it('gives up with a retryable timeout, and stops at once when aborted', async () => {
    const stuck = reads(deployment({}));
    const timeout = await followTwinDeployment('d-2', stuck, 'none', { intervalMs: 1, timeoutMs: 10 }).catch(
      (e: unknown) => e,
    );
    expect(timeout).toMatchObject({ code: 'ROLLOUT_FOLLOW_TIMEOUT', retryable: true });
    expect((timeout as Error).message).toMatch(
      /did not settle within 0s \(last: IN_PROGRESS, 0\/1 tasks running\)/,
    );

    const controller = new AbortController();
    const following = followTwinDeployment('d-2', stuck, 'none', {
      intervalMs: 60_000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error('user pressed Ctrl-C')), 20);
    await expect(following).rejects.toThrow('user pressed Ctrl-C');
  });
});
