import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopyObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { mnistBootstrap } from '../../src/local/bootstrap.ts';
import { StateDirError } from '../../src/local/errors.ts';
import { MODEL_VERSION_HEADER } from '../../src/local/load-balancer.ts';
import { LOCAL_S3_CREDENTIALS } from '../../src/local/s3-server.ts';
import { LOCAL_BUCKETS, startTwin } from '../../src/local/twin.ts';
import type { TwinRuntimeFile, TwinStateFile } from '../../src/local/state-dir.ts';
import type { Twin } from '../../src/local/twin.ts';
import { isAlive, modelKeySpawner, startTwinProcess, waitFor } from './helpers.ts';

// The fake server plays the model named by the key's first segment: v<N> serves version N, v<N>-broken dies.
const spawn = modelKeySpawner;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slipway-twin-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function start(stateDir: string, readinessTimeoutMs = 10_000): Promise<Twin> {
  const twin = await startTwin({ stateDir, port: 0, tasks: 1, spawn, readinessTimeoutMs });
  cleanups.push(() => twin.stop());
  return twin;
}

function s3Client(twin: { readonly s3Endpoint: string }): S3Client {
  const client = new S3Client({
    endpoint: twin.s3Endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { ...LOCAL_S3_CREDENTIALS },
  });
  cleanups.push(() => Promise.resolve(client.destroy()));
  return client;
}

async function upload(twin: { readonly s3Endpoint: string }, key: string): Promise<void> {
  const client = s3Client(twin);
  await client.send(
    new PutObjectCommand({ Bucket: LOCAL_BUCKETS.models, Key: key, Body: `bytes of ${key}` }),
  );
}

async function versionServed(twin: { readonly url: string }): Promise<string | null> {
  const res = await fetch(`${twin.url}/invocations`, { method: 'POST', body: '{}' });
  return res.status === 200 ? res.headers.get(MODEL_VERSION_HEADER) : null;
}

/** Uploads `<name>/output/model.tar.gz` and waits until the twin serves it (v<N>[-mode]: version N). */
async function rollOut(
  twin: { readonly s3Endpoint: string; readonly url: string },
  name: string,
): Promise<void> {
  await upload(twin, `${name}/output/model.tar.gz`);
  const version = /^v(\d+)/.exec(name)?.[1] ?? name;
  await waitFor(async () => (await versionServed(twin)) === version, 30_000);
}

async function settled(twin: Twin): Promise<void> {
  await waitFor(() => twin.supervisor.deployments().every((d) => d.rolloutState !== 'IN_PROGRESS'));
}

describe('startTwin', () => {
  it('rolls out an uploaded model by itself and reports it through the control API', async () => {
    const twin = await start(await tempDir());
    expect((await fetch(`${twin.url}/invocations`, { method: 'POST', body: '{}' })).status).toBe(503);
    await upload(twin, 'v1/output/model.tar.gz');
    await waitFor(async () => (await versionServed(twin)) === '1');
    await upload(twin, 'v1/output/notes.txt');
    const status = (await (await fetch(`${twin.url}/_slipway/status`)).json()) as {
      deployments: { rolloutState: string; modelUri: string }[];
      tasks: { modelVersion: string }[];
    };
    expect(status.deployments).toHaveLength(1);
    expect(status.deployments[0]).toMatchObject({
      rolloutState: 'COMPLETED',
      modelUri: `s3://${LOCAL_BUCKETS.models}/v1/output/model.tar.gz`,
    });
    expect(status.tasks.map((t) => t.modelVersion)).toEqual(['1']);
  });

  it('rolls out a model copied into the models bucket from another bucket (CopyObject)', async () => {
    const twin = await start(await tempDir());
    const client = s3Client(twin);
    await client.send(
      new PutObjectCommand({ Bucket: LOCAL_BUCKETS.data, Key: 'staging/model.tar.gz', Body: 'model bytes' }),
    );
    await client.send(
      new CopyObjectCommand({
        Bucket: LOCAL_BUCKETS.models,
        Key: 'v7/output/model.tar.gz',
        CopySource: `${LOCAL_BUCKETS.data}/staging/model.tar.gz`,
      }),
    );
    await waitFor(async () => (await versionServed(twin)) === '7');
    expect(twin.supervisor.deployments()[0]?.model.etag).toMatch(/^[0-9a-f]{32}$/);
  });

  it('keeps serving the old model when a broken one is uploaded, and status says why', async () => {
    const twin = await start(await tempDir());
    await upload(twin, 'v1/output/model.tar.gz');
    await waitFor(async () => (await versionServed(twin)) === '1');
    await upload(twin, 'v2-broken/output/model.tar.gz');
    await waitFor(() => twin.supervisor.deployments().some((d) => d.rolloutState === 'FAILED'));
    const failed = twin.supervisor.deployments().find((d) => d.rolloutState === 'FAILED');
    expect(failed?.rolloutStateReason).toMatch(/circuit breaker.*not a valid ONNX graph/);
    expect(await versionServed(twin)).toBe('1');
  });

  it('rolls back by hand through the control API', async () => {
    const twin = await start(await tempDir());
    await upload(twin, 'v1/output/model.tar.gz');
    await waitFor(async () => (await versionServed(twin)) === '1');
    await upload(twin, 'v2/output/model.tar.gz');
    await waitFor(async () => (await versionServed(twin)) === '2');
    const res = await fetch(`${twin.url}/_slipway/rollback`, { method: 'POST' });
    expect(res.status).toBe(202);
    await settled(twin);
    expect(await versionServed(twin)).toBe('1');
  });

  it('resumes the last deployed model after a restart, without a new upload', async () => {
    const stateDir = await tempDir();
    const first = await start(stateDir);
    await upload(first, 'v3/output/model.tar.gz');
    await waitFor(async () => (await versionServed(first)) === '3');
    const pids = first.supervisor.pids();
    await first.stop();
    expect(pids.filter(isAlive)).toEqual([]);

    const second = await start(stateDir);
    await waitFor(async () => (await versionServed(second)) === '3');
    expect(second.supervisor.deployments().length).toBe(2);
  });

  it('rolls back twice in a row along the deployments made before a restart: C, then B, then A', async () => {
    const stateDir = await tempDir();
    const first = await start(stateDir);
    for (const name of ['v1', 'v2', 'v3']) await rollOut(first, name);
    await first.stop();

    const second = await start(stateDir);
    await waitFor(async () => (await versionServed(second)) === '3');
    for (const v of ['2', '1']) {
      const res = await fetch(`${second.url}/_slipway/rollback`, { method: 'POST' });
      expect(res.status).toBe(202);
      await settled(second);
      expect(await versionServed(second)).toBe(v);
    }
    const res = await fetch(`${second.url}/_slipway/rollback`, { method: 'POST' });
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ code: 'ROLLOUT_NO_PREVIOUS_MODEL' });
  });

  /** Stops `twin`, starts another on its state; resolves once it has judged the newest upload. */
  async function restart(twin: Twin): Promise<{ twin: Twin; rollouts: string[] }> {
    await twin.stop();
    const logs: string[] = [];
    const next = await startTwin({
      stateDir: twin.paths.root,
      port: 0,
      tasks: 1,
      spawn,
      log: (m) => logs.push(m),
    });
    cleanups.push(() => next.stop());
    await waitFor(() => logs.some((l) => l.startsWith('rollout:')));
    await settled(next);
    return { twin: next, rollouts: logs.filter((l) => l.startsWith('rollout:')) };
  }

  it('keeps a rollback by hand across a restart: the model it rolled back from is not deployed again', async () => {
    const first = await start(await tempDir());
    for (const name of ['v1', 'v2']) await rollOut(first, name);
    expect((await fetch(`${first.url}/_slipway/rollback`, { method: 'POST' })).status).toBe(202);
    await settled(first);

    const { twin, rollouts } = await restart(first);
    expect(rollouts).toEqual([
      expect.stringMatching(/^rollout: skip \(rolled-back\) v2\/output\/model\.tar\.gz: /),
    ]);
    expect(await versionServed(twin)).toBe('1');
  });

  it('does not deploy again after a restart a model the circuit breaker rejected', async () => {
    const first = await start(await tempDir());
    await rollOut(first, 'v1');
    await upload(first, 'v2-broken/output/model.tar.gz');
    await waitFor(() => first.supervisor.deployments()[0]?.rolloutState === 'FAILED');

    const { twin, rollouts } = await restart(first);
    expect(rollouts).toEqual([
      expect.stringMatching(/^rollout: skip \(rolled-back\) v2-broken\/output\/model\.tar\.gz: /),
    ]);
    expect(twin.supervisor.deployments().filter((d) => d.modelUri.includes('broken'))).toHaveLength(1);
  });

  it('refuses a state directory that a running twin owns', async () => {
    const stateDir = await tempDir();
    await start(stateDir);
    const err = await startTwin({ stateDir, port: 0, spawn }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDirError);
    expect((err as Error).message).toMatch(/another local twin .* is running/);
  });

  it("records the first-run trainer's process group in twin.json while it trains", async () => {
    const stateDir = await tempDir();
    let finish = (): void => undefined;
    const trained = new Promise<void>((resolve) => (finish = resolve));
    const bootstrap = mnistBootstrap({
      runner: async (run) => {
        run.onStart?.(4242);
        run.signal.addEventListener('abort', finish);
        await trained;
        return { modelUri: `${run.output}${run.jobName}/output/model.tar.gz` };
      },
    });
    const twin = await startTwin({ stateDir, port: 0, tasks: 1, spawn, bootstrap });
    cleanups.push(() => twin.stop());
    const runtime = async (): Promise<TwinRuntimeFile> =>
      JSON.parse(await readFile(join(stateDir, 'twin.json'), 'utf8')) as TwinRuntimeFile;
    await waitFor(async () => (await runtime()).trainer !== undefined, 60_000);
    expect((await runtime()).trainer).toEqual({
      pgid: 4242,
      jobName: expect.stringMatching(/^slipway-mnist-/),
    });
    finish();
    await twin.bootstrapped;
    await waitFor(async () => (await runtime()).trainer === undefined);
  }, 90_000);

  it('recovers from a stale runtime record and sets a corrupt state file aside', async () => {
    const stateDir = await tempDir();
    const notes: string[] = [];
    await writeFile(
      join(stateDir, 'twin.json'),
      JSON.stringify({ pid: 999_999_9, url: 'http://127.0.0.1:1', s3Endpoint: 'x', taskPids: [] }),
    );
    await writeFile(join(stateDir, 'state.json'), '{ not json');
    const twin = await startTwin({ stateDir, port: 0, spawn, log: (m) => notes.push(m) });
    cleanups.push(() => twin.stop());
    expect(notes.join('\n')).toMatch(/recovered from a twin that did not stop cleanly/);
    expect(notes.join('\n')).toMatch(/state\.json is corrupt/);
    expect((await readdir(stateDir)).some((f) => f.startsWith('state.json.corrupt-'))).toBe(true);
    const runtime = JSON.parse(await readFile(join(stateDir, 'twin.json'), 'utf8')) as { pid: number };
    expect(runtime.pid).toBe(process.pid);
  });
});

describe('startTwin after a stop in the middle of a rollout', () => {
  // The first twin runs in a process of its own, so that it can be killed; the second in this one.
  // `queued` are uploaded once `key` rolls out, so they wait behind it (the newest superseding the others).
  async function stopMidRollout(signal: NodeJS.Signals, key: string, queued: string[] = []): Promise<string> {
    const stateDir = await tempDir();
    const first = await startTwinProcess(stateDir, 20_000);
    cleanups.push(async () => {
      first.child.kill('SIGKILL');
      await first.exited;
    });
    const state = (): Promise<string> => readFile(join(stateDir, 'state.json'), 'utf8');
    await upload(first, 'v1/output/model.tar.gz');
    await waitFor(async () => (await versionServed(first)) === '1');
    await upload(first, key);
    await waitFor(async () => (await state()).includes('IN_PROGRESS'));
    for (const queuedKey of queued) await upload(first, queuedKey);
    await waitFor(async () => {
      const text = await state();
      return queued.every((k) => text.includes(k));
    });
    first.child.kill(signal);
    await first.exited;
    return stateDir;
  }

  it('after a crash, serves the last completed model and rolls the interrupted upload again, falling back to it', async () => {
    const stateDir = await stopMidRollout('SIGKILL', 'v2-stuck/output/model.tar.gz');
    const twin = await start(stateDir, 2_000);
    await waitFor(() => twin.supervisor.deployments().length === 4, 30_000);
    await settled(twin);
    const [retried, resumed] = twin.supervisor.deployments();
    expect(resumed).toMatchObject({
      modelUri: 's3://slipway-models/v1/output/model.tar.gz',
      status: 'PRIMARY',
    });
    expect(retried).toMatchObject({
      modelUri: 's3://slipway-models/v2-stuck/output/model.tar.gz',
      rolloutState: 'FAILED',
    });
    expect(retried?.rolledBackTo).toBe(resumed?.id);
    expect(await versionServed(twin)).toBe('1');
  }, 120_000);

  it('after a clean stop, serves the last completed model, then rolls out the upload it stopped in', async () => {
    const stateDir = await stopMidRollout('SIGTERM', 'v2-slow/output/model.tar.gz');
    const twin = await start(stateDir);
    await waitFor(async () => (await versionServed(twin)) === '2', 40_000);
    // The new tasks serve before the old ones have drained, which is when the rollout completes.
    await settled(twin);
    expect(twin.supervisor.deployments()[0]).toMatchObject({
      modelUri: 's3://slipway-models/v2-slow/output/model.tar.gz',
      status: 'PRIMARY',
      rolloutState: 'COMPLETED',
    });
  }, 120_000);

  it('after a clean stop, rolls out the uploads queued behind the rollout it stopped in, in order, but not a superseded one', async () => {
    const stateDir = await stopMidRollout('SIGTERM', 'v2-stuck/output/model.tar.gz', [
      'v3/output/model.tar.gz',
      'v4/output/model.tar.gz',
    ]);
    const stopped = JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as TwinStateFile;
    const before = new Set(stopped.deployments.map((d) => d.id));
    const logs: string[] = [];
    const twin = await startTwin({
      stateDir,
      port: 0,
      tasks: 1,
      spawn,
      readinessTimeoutMs: 2_000,
      log: (m) => logs.push(m),
    });
    cleanups.push(() => twin.stop());
    await waitFor(async () => (await versionServed(twin)) === '4', 40_000);
    await settled(twin);
    const since = twin.supervisor
      .deployments()
      .filter((d) => !before.has(d.id))
      .reverse()
      .map((d) => `${d.modelUri.replace('s3://slipway-models/', '').split('/')[0]!} ${d.rolloutState}`);
    expect(since).toEqual(['v1 COMPLETED', 'v2-stuck FAILED', 'v4 COMPLETED']);
    // Replayed with its own event, as the upload it stopped in is: not left to the newest-object check.
    expect(logs.filter((l) => l.startsWith('checking an interrupted model'))).toEqual([
      'checking an interrupted model in the store: s3://slipway-models/v2-stuck/output/model.tar.gz',
      'checking an interrupted model in the store: s3://slipway-models/v4/output/model.tar.gz',
    ]);
    // v4 is the newest object too: replayed once, not again as the newest.
    expect(logs.filter((l) => l.startsWith('checking the newest'))).toEqual([]);
  }, 120_000);

  it('after a clean stop in the middle of a rollback by hand, goes back again instead of keeping the model it left', async () => {
    const stateDir = await tempDir();
    const first = await startTwinProcess(stateDir, 20_000);
    cleanups.push(async () => {
      first.child.kill('SIGKILL');
      await first.exited;
    });
    for (const name of ['v1-slow', 'v2']) await rollOut(first, name);
    expect((await fetch(`${first.url}/_slipway/rollback`, { method: 'POST' })).status).toBe(202);
    await waitFor(async () => (await readFile(join(stateDir, 'state.json'), 'utf8')).includes('IN_PROGRESS'));
    first.child.kill('SIGTERM');
    await first.exited;

    const twin = await start(stateDir);
    await waitFor(() => twin.supervisor.deployments().length === 5, 30_000);
    await settled(twin);
    expect(await versionServed(twin)).toBe('1');
    expect(twin.supervisor.deployments()[0]).toMatchObject({
      modelUri: 's3://slipway-models/v1-slow/output/model.tar.gz',
      status: 'PRIMARY',
      rolloutState: 'COMPLETED',
    });
  }, 120_000);
});
