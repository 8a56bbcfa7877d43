import { afterEach, describe, expect, it } from 'vitest';
import { LoadBalancer, MODEL_VERSION_HEADER } from '../../src/local/load-balancer.ts';
import { LocalDeployTarget } from '../../src/local/local-deploy-target.ts';
import { loadGenerator } from '../helpers/load-generator.ts';
import {
  INTERRUPTED_QUEUED_REASON,
  Supervisor,
  announcedPort,
  wasInterrupted,
} from '../../src/local/supervisor.ts';
import type { SupervisorOptions } from '../../src/local/supervisor.ts';
import { fakeSpawner, isAlive, waitFor } from './helpers.ts';

// Model URIs stand for fake behaviours: s3://m/v<N> serves version N, s3://m/broken[N] crashes at start,
// s3://m/stuck stays up but never gets ready, s3://m/silent serves but never says on which port.
const spawn = fakeSpawner((uri): Record<string, string> =>
  /\/broken\d*$/.test(uri)
    ? { FAKE_MODE: 'crash-on-start' }
    : uri.endsWith('silent')
      ? { FAKE_MODE: 'silent' }
      : uri.endsWith('unloadable')
        ? { FAKE_MODE: 'load-failed' }
        : uri.endsWith('stuck')
          ? { FAKE_MODE: 'never-ready' }
          : { FAKE_VERSION: uri.replace(/.*\/v/, '') },
);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(
  extra: Partial<SupervisorOptions> = {},
): Promise<{ lb: LoadBalancer; sup: Supervisor; logs: string[] }> {
  const lb = new LoadBalancer({ port: 0, healthIntervalMs: 200 });
  await lb.listen();
  const logs: string[] = [];
  const sup = new Supervisor({
    spawn,
    router: lb,
    desiredCount: 2,
    readinessTimeoutMs: 15_000,
    drainTimeoutMs: 2_000,
    log: (m) => logs.push(m),
    ...extra,
  });
  cleanups.push(async () => {
    await sup.stop();
    await lb.close();
  });
  return { lb, sup, logs };
}

describe('Supervisor', () => {
  it('rolls out a new model under load with no failed request, then serves only the new version', async () => {
    const { lb, sup } = await setup();
    const first = await sup.deploy('s3://m/v1');
    expect(first.rolloutState).toBe('COMPLETED');
    const oldPids = sup.pids();
    expect(oldPids).toHaveLength(2);

    const load = loadGenerator(() => fetch(`${lb.url}/invocations`, { method: 'POST', body: '{}' }));
    await new Promise((r) => setTimeout(r, 300));
    const second = await sup.deploy('s3://m/v2');
    // Requests still in flight at this instant may have been routed before the switch.
    const afterSwitch = load.count() + 3;
    await new Promise((r) => setTimeout(r, 300));
    const results = await load.stop();

    expect(second).toMatchObject({ status: 'PRIMARY', rolloutState: 'COMPLETED', modelVersion: '2' });
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(new Set(results.map((r) => r.version))).toEqual(new Set(['1', '2']));
    expect(results.at(-1)?.version).toBe('2');
    expect(results.slice(afterSwitch).length).toBeGreaterThan(0);
    expect(results.slice(afterSwitch).filter((r) => r.version !== '2')).toEqual([]);
    await waitFor(() => oldPids.every((pid) => !isAlive(pid)));
    expect(sup.deployments().map((d) => d.status)).toEqual(['PRIMARY', 'INACTIVE']);
    expect(sup.tasks().every((t) => t.modelVersion === '2')).toBe(true);
  });

  it('trips the circuit breaker on a model whose tasks die, keeps the old tasks serving, and says why', async () => {
    const { lb, sup } = await setup();
    const first = await sup.deploy('s3://m/v1');
    const oldPids = sup.pids();
    const failed = await sup.deploy('s3://m/broken');
    expect(failed.rolloutState).toBe('FAILED');
    expect(failed.status).toBe('INACTIVE');
    expect(failed.rolledBackTo).toBe(first.id);
    expect(failed.rolloutStateReason).toMatch(/circuit breaker/);
    expect(failed.rolloutStateReason).toMatch(/not a valid ONNX graph/);
    expect(sup.primary()?.modelUri).toBe('s3://m/v1');
    expect(sup.pids().sort()).toEqual([...oldPids].sort());
    const res = await fetch(`${lb.url}/invocations`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(200);
    expect(res.headers.get(MODEL_VERSION_HEADER)).toBe('1');
  });

  it('fails a rollout fast when the new tasks stay up but report that their model failed to load', async () => {
    const { sup } = await setup({ readinessTimeoutMs: 60_000 });
    await sup.deploy('s3://m/v1');
    const failed = await sup.deploy('s3://m/unloadable');
    expect(failed.rolloutState).toBe('FAILED');
    expect(failed.rolloutStateReason).toMatch(/failed to load its model: model.tar.gz is not a gzip archive/);
    expect(sup.primary()?.modelUri).toBe('s3://m/v1');
  });

  it('replaces a task that crashes while serving, and logs it', async () => {
    const { lb, sup, logs } = await setup();
    await sup.deploy('s3://m/v1');
    const [victim] = sup.pids();
    process.kill(victim!, 'SIGKILL');
    await waitFor(() => sup.pids().length === 2 && !sup.pids().includes(victim!));
    await waitFor(() => lb.snapshot().filter((t) => t.health === 'healthy').length === 2);
    expect(logs.some((l) => /exited unexpectedly/.test(l))).toBe(true);
    expect(sup.primary()?.runningCount).toBe(2);
  });

  it('replaces a task of the live deployment that died during a rollout that then failed', async () => {
    const { lb, sup } = await setup({ desiredCount: 1, readinessTimeoutMs: 3_000 });
    await sup.deploy('s3://m/v1');
    const [live] = sup.pids();
    const rollout = sup.begin('s3://m/stuck');
    await waitFor(() => sup.tasks().some((t) => t.modelUri === 's3://m/stuck'));
    process.kill(live!, 'SIGKILL');
    expect((await rollout.done).rolloutState).toBe('FAILED');
    await waitFor(() => sup.primary()?.runningCount === 1);
    expect(sup.primary()?.modelUri).toBe('s3://m/v1');
    const res = await fetch(`${lb.url}/invocations`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(200);
    expect(res.headers.get(MODEL_VERSION_HEADER)).toBe('1');
  });

  it('rolls out only the newest of the deployments queued behind one in progress, as ECS replaces them', async () => {
    const { sup } = await setup({ desiredCount: 1, readinessTimeoutMs: 2_000 });
    await sup.deploy('s3://m/v1');
    const inProgress = sup.begin('s3://m/stuck');
    await waitFor(() => sup.primary()?.modelUri === 's3://m/stuck');
    const older = sup.begin('s3://m/v2');
    const newest = sup.begin('s3://m/v3');
    expect(await older.done).toMatchObject({
      status: 'INACTIVE',
      rolloutState: 'FAILED',
      supersededBy: newest.deployment.id,
    });
    expect(await inProgress.done).toMatchObject({ rolloutState: 'FAILED', rolledBackTo: expect.any(String) });
    expect(await newest.done).toMatchObject({
      status: 'PRIMARY',
      rolloutState: 'COMPLETED',
      modelVersion: '3',
    });
    const follow = await new LocalDeployTarget(sup).follow(older.deployment.id);
    expect(follow.outcome).toBe('superseded');
  });

  it('leaves the deployment queued behind the one in progress interrupted when it stops, and a superseded one superseded', async () => {
    const { sup } = await setup({ desiredCount: 1 });
    await sup.deploy('s3://m/v1');
    const inProgress = sup.begin('s3://m/stuck');
    await waitFor(() => sup.primary()?.modelUri === 's3://m/stuck');
    const superseded = sup.begin('s3://m/v2');
    const queued = sup.begin('s3://m/v3');
    await sup.stop();
    const byId = new Map(sup.deployments().map((d) => [d.id, d]));
    expect(byId.get(inProgress.deployment.id)).toMatchObject({ rolloutState: 'FAILED' });
    expect(wasInterrupted(byId.get(inProgress.deployment.id)!)).toBe(true);
    expect(byId.get(queued.deployment.id)).toMatchObject({
      status: 'INACTIVE',
      rolloutState: 'FAILED',
      rolloutStateReason: INTERRUPTED_QUEUED_REASON,
    });
    expect(wasInterrupted(byId.get(queued.deployment.id)!)).toBe(true);
    expect(wasInterrupted(byId.get(superseded.deployment.id)!)).toBe(false);
    expect(await queued.done).toMatchObject({ rolloutStateReason: INTERRUPTED_QUEUED_REASON });
  });

  it('keeps the live deployment through more failed rollouts than the history holds', async () => {
    const { lb, sup } = await setup({ desiredCount: 1 });
    const live = await sup.deploy('s3://m/v1');
    const failing = Array.from({ length: 21 }, (_, i) => sup.begin(`s3://m/broken${i}`));
    await Promise.all(failing.map((f) => f.done));
    expect(sup.deployments()).toHaveLength(20);
    expect(sup.primary()).toMatchObject({ id: live.id, runningCount: 1 });
    expect((await new LocalDeployTarget(sup).describe()).revision).toBe(live.revision);
    const res = await fetch(`${lb.url}/invocations`, { method: 'POST', body: '{}' });
    expect(res.headers.get(MODEL_VERSION_HEADER)).toBe('1');
  }, 120_000);

  it('rolls back by hand to the previous completed model', async () => {
    const { sup } = await setup({ desiredCount: 1 });
    await sup.deploy('s3://m/v1');
    await sup.deploy('s3://m/v2');
    const back = await sup.rollback();
    expect(back).toMatchObject({ modelUri: 's3://m/v1', rolloutState: 'COMPLETED', modelVersion: '1' });
    expect(sup.deployments()).toHaveLength(3);
  });

  it('walks further back on a second rollback, as ECS follows the base revisions, instead of toggling', async () => {
    const { sup } = await setup({ desiredCount: 1 });
    const v1 = await sup.deploy('s3://m/v1');
    const v2 = await sup.deploy('s3://m/v2');
    await sup.deploy('s3://m/v3');
    const first = await sup.rollback();
    expect(first).toMatchObject({ modelUri: 's3://m/v2', revision: v2.revision, rolloutState: 'COMPLETED' });
    const second = await sup.rollback();
    expect(second).toMatchObject({ modelUri: 's3://m/v1', revision: v1.revision, rolloutState: 'COMPLETED' });
    expect(() => sup.rollback()).toThrow(/nothing to roll back to/);
  });

  it('never rolls back to a model the circuit breaker rejected, nor one a newer upload superseded', async () => {
    const { sup } = await setup({ desiredCount: 1, readinessTimeoutMs: 4_000 });
    await sup.deploy('s3://m/v1');
    expect((await sup.deploy('s3://m/broken')).rolloutState).toBe('FAILED');
    const stuck = sup.begin('s3://m/stuck');
    await waitFor(() => sup.primary()?.modelUri === 's3://m/stuck');
    const superseded = sup.begin('s3://m/v3');
    const v4 = sup.begin('s3://m/v4');
    expect((await superseded.done).supersededBy).toBe(v4.deployment.id);
    expect((await stuck.done).rolloutState).toBe('FAILED');
    expect((await v4.done).rolloutState).toBe('COMPLETED');
    expect(await sup.rollback()).toMatchObject({ modelUri: 's3://m/v1', rolloutState: 'COMPLETED' });
  });

  it('refuses a rollback when there is nothing earlier to go back to', async () => {
    const { sup } = await setup({ desiredCount: 1 });
    await sup.deploy('s3://m/v1');
    expect(() => sup.rollback()).toThrow(/nothing to roll back to/);
  });

  it('stops every task on stop(): no process is left behind', async () => {
    const { sup } = await setup();
    await sup.deploy('s3://m/v1');
    const pids = sup.pids();
    await sup.stop();
    expect(pids.filter(isAlive)).toEqual([]);
  });
});

describe('announcedPort', () => {
  it('reads the port from the JSON line a task logs once it listens', () => {
    expect(announcedPort('{"level":30,"event":"listening","port":39939,"host":"127.0.0.1"}')).toBe(39939);
  });

  it.each([
    ['another event', '{"event":"model_none","port":39939}'],
    ['a port that is not a whole number in range', '{"event":"listening","port":"39939"}'],
    ['port 0', '{"event":"listening","port":0}'],
    ['a port past 65535', '{"event":"listening","port":70000}'],
    ['text that mentions listening', 'Server "listening" at http://127.0.0.1:39939'],
    ['a line cut short', '{"event":"listening","port":399'],
  ])('ignores %s', (_, line) => {
    expect(announcedPort(line)).toBeUndefined();
  });
});

describe('Supervisor and task ports', () => {
  it('routes to the port each task says it got, never one chosen for it', async () => {
    const { lb, sup, logs } = await setup({ desiredCount: 2 });
    await sup.deploy('s3://m/v1');
    const ports = sup.tasks().map((t) => t.port);
    expect(new Set(ports).size).toBe(2);
    for (const task of sup.tasks()) {
      expect(logs).toContain(`task ${task.id} listens on port ${task.port}`);
      const info = (await (await fetch(`${task.url}/`)).json()) as { pid: number };
      expect(info.pid).toBe(task.pid);
    }
    expect((await fetch(`${lb.url}/invocations`, { method: 'POST', body: '{}' })).status).toBe(200);
  });

  it('fails a rollout whose task never says its port, and says so', async () => {
    const { sup } = await setup({ desiredCount: 1, readinessTimeoutMs: 1_500 });
    await sup.deploy('s3://m/v1');
    const failed = await sup.deploy('s3://m/silent');
    expect(failed.rolloutState).toBe('FAILED');
    expect(failed.rolloutStateReason).toMatch(
      /did not say which port it listens on within 1\.5 s \(a JSON line \{"event":"listening","port":N\} on stdout\)/,
    );
    expect(sup.primary()?.modelUri).toBe('s3://m/v1');
  });
});
