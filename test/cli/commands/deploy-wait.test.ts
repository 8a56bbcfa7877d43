import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { captureOutput } from '../../helpers/capture-output.ts';
import type { CapturedOutput } from '../../helpers/capture-output.ts';
import { findDeployment, snapshot } from '../../../src/cli/commands/deploy.ts';
import { runCli } from '../../../src/cli/program.ts';
import { createStore } from '../../../src/store/create-store.ts';
import { LOCAL_S3_CREDENTIALS } from '../../../src/local/s3-server.ts';
import { LOCAL_BUCKETS, startTwin } from '../../../src/local/twin.ts';
import type { Twin } from '../../../src/local/twin.ts';
import { fakeSpawner } from '../../local/helpers.ts';

// The fake server plays the model named by the key's first segment: v<N> serves version N.
const spawn = fakeSpawner((uri): Record<string, string> => ({
  FAKE_VERSION: (uri.replace(`s3://${LOCAL_BUCKETS.models}/`, '').split('/')[0] ?? '').replace(/^v/, ''),
}));

let dir: string;
let twin: Twin;
let output: CapturedOutput;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slipway-deploy-wait-'));
  twin = await startTwin({
    stateDir: join(dir, 'state'),
    port: 0,
    tasks: 1,
    spawn,
    readinessTimeoutMs: 10_000,
  });
  await writeFile(join(dir, 'a.tar.gz'), 'bytes of model a');
  await writeFile(join(dir, 'b.tar.gz'), 'bytes of model b');
});
afterEach(async () => {
  vi.restoreAllMocks();
  await twin.stop();
  await rm(dir, { recursive: true, force: true });
});

interface WaitResult {
  readonly code: number;
  readonly json: { uri: string; deploymentId?: string; outcome: string; reason?: string };
}

/** `slipway deploy <file or s3:// URI> --key <key> --wait --json` against the twin, output captured. */
async function deployWait(file: string, key: string): Promise<WaitResult> {
  output = captureOutput();
  try {
    const model = file.startsWith('s3://') ? file : join(dir, file);
    const args = ['deploy', model, '--key', key, '--wait', '--json', '--timeout', '60'];
    const code = await runCli(['node', 'slipway', ...args, '--state-dir', join(dir, 'state')]);
    return { code, json: JSON.parse(output.stdout) as WaitResult['json'] };
  } finally {
    vi.restoreAllMocks();
  }
}

async function versionServed(): Promise<string | null> {
  const res = await fetch(`${twin.url}/invocations`, { method: 'POST', body: '{}' });
  return res.status === 200 ? res.headers.get('x-slipway-model-version') : null;
}

describe('slipway deploy --wait against the local twin', () => {
  it('says no rollout happened when the same file goes to the live key again (the model is already live)', async () => {
    const first = await deployWait('a.tar.gz', 'v1/output/model.tar.gz');
    expect(first).toMatchObject({ code: 0, json: { outcome: 'completed' } });
    const deploymentsBefore = twin.supervisor.deployments().length;

    const again = await deployWait('a.tar.gz', 'v1/output/model.tar.gz');

    expect(again.code).toBe(0);
    expect(again.json.outcome).toBe('skipped');
    expect(again.json.deploymentId).toBeUndefined();
    expect(again.json.reason).toMatch(/duplicate.*is already the live model/);
    expect(twin.supervisor.deployments()).toHaveLength(deploymentsBefore);
  });

  it('shows the key as it was uploaded, not URL-encoded, in the twin status', async () => {
    const key = 'v1/red flower+1/model.tar.gz';
    expect(await deployWait('a.tar.gz', key)).toMatchObject({ code: 0, json: { outcome: 'completed' } });
    // Again: the skip is found by that key (a duplicate), as the status shows it.
    expect((await deployWait('a.tar.gz', key)).json.reason).toMatch(/^skip \(duplicate\)/);

    output = captureOutput();
    const code = await runCli(['node', 'slipway', 'status', '--state-dir', join(dir, 'state')]);
    vi.restoreAllMocks();

    expect(code).toBe(0);
    expect(output.stdout).toContain(`deploy ${key}`);
    expect(output.stdout).toContain(`skip (duplicate) ${key}`);
  });

  it('exits 1 when the rollout skips the upload as older than the live model', async () => {
    // Live: a model whose upload event is stamped in the future, so this upload is older.
    const live = await twin.target.deploy({
      uri: `s3://${LOCAL_BUCKETS.models}/v7/output/model.tar.gz`,
      bucket: LOCAL_BUCKETS.models,
      key: 'v7/output/model.tar.gz',
      etag: 'e7',
      sequencer: '0A',
      eventTime: '2999-01-01T00:00:00Z',
    });
    expect((await twin.target.follow(live.deploymentId, { intervalMs: 50 })).outcome).toBe('completed');

    const result = await deployWait('a.tar.gz', 'v1/output/model.tar.gz');

    expect(result.code).toBe(1);
    expect(result.json.outcome).toBe('skipped');
    expect(result.json.reason).toMatch(/^skip \(older-than-live\): .* is older than the live model/);
    expect(output.stderr).toMatch(/the rollout skipped s3:\/\/slipway-models\/v1\/output\/model\.tar\.gz/);
    expect(await versionServed()).toBe('7');
  });

  it('exits 1 when the rollout skips an empty upload as not a model', async () => {
    const store = createStore({ endpoint: twin.s3Endpoint, credentials: { ...LOCAL_S3_CREDENTIALS } });
    await store.put(`s3://${LOCAL_BUCKETS.data}/empty.tar.gz`, Readable.from([]));

    const result = await deployWait(`s3://${LOCAL_BUCKETS.data}/empty.tar.gz`, 'v3/output/model.tar.gz');

    expect(result.code).toBe(1);
    expect(result.json).toMatchObject({ outcome: 'skipped' });
    expect(result.json.reason).toMatch(/^skip \(not-a-model\): .* is empty/);
  });

  it('refuses a key with "#" or "?" before uploading, instead of an upload the rollout rejects', async () => {
    for (const key of ['exp#1/model.tar.gz', 'exp?1/model.tar.gz']) {
      output = captureOutput();
      const args = [
        'deploy',
        join(dir, 'a.tar.gz'),
        '--key',
        key,
        '--wait',
        '--state-dir',
        join(dir, 'state'),
      ];
      const code = await runCli(['node', 'slipway', ...args]);
      vi.restoreAllMocks();

      expect(code).toBe(1);
      expect(output.stderr).toContain(`--key "${key}" contains "?" or "#"`);
      expect(output.stdout).not.toContain('uploaded');
    }
    expect(twin.supervisor.deployments()).toEqual([]);
  });

  it('follows the new deployment of a re-uploaded model the service was rolled back from, not its old one', async () => {
    expect((await deployWait('a.tar.gz', 'v1/output/model.tar.gz')).json.outcome).toBe('completed');
    const b = await deployWait('b.tar.gz', 'v2/output/model.tar.gz');
    expect(b.json.outcome).toBe('completed');
    output = captureOutput();
    expect(await runCli(['node', 'slipway', 'rollback', '--wait', '--state-dir', join(dir, 'state')])).toBe(
      0,
    );
    vi.restoreAllMocks();
    expect(await versionServed()).toBe('1');

    const again = await deployWait('b.tar.gz', 'v2/output/model.tar.gz');

    expect(again.code).toBe(0);
    expect(again.json.outcome).toBe('completed');
    expect(again.json.deploymentId).not.toBe(b.json.deploymentId);
    expect(await versionServed()).toBe('2');
  });
});

describe('findDeployment', () => {
  const KEY = 'v2/output/model.tar.gz';
  const model = {
    uri: `s3://${LOCAL_BUCKETS.models}/${KEY}`,
    bucket: LOCAL_BUCKETS.models,
    key: KEY,
    etag: 'e2',
  };
  const deployment = (id: string, rolloutState: string): Record<string, unknown> => ({
    id,
    revision: `slipway-inference:${id}`,
    status: 'INACTIVE',
    rolloutState,
    rolloutStateReason: '',
    model,
    modelUri: model.uri,
    desiredCount: 1,
    runningCount: 0,
    failedTasks: 0,
    createdAt: '2026-03-01T12:00:00Z',
    updatedAt: '2026-03-01T12:00:00Z',
  });

  it('waits for the new deployment of a re-uploaded model instead of taking its old, rolled-back one', async () => {
    // The twin's history before the upload holds the deployment the service was rolled back from;
    // the new deployment only shows on the second look after the upload.
    const old = { ...deployment('ecs-svc/old', 'FAILED'), rolledBackTo: 'ecs-svc/a' };
    const fresh = { ...deployment('ecs-svc/new', 'IN_PROGRESS'), status: 'PRIMARY' };
    const looks = [[old], [old], [fresh, old]];
    let look = 0;
    const client = {
      status: () =>
        Promise.resolve({ deployments: looks[Math.min(look++, looks.length - 1)], recentEvents: [] }),
    };
    const target = { status: () => Promise.resolve({ deployments: [] }) };
    const where = { kind: 'local', client, target } as unknown as Parameters<typeof findDeployment>[0];

    const before = await snapshot(where);
    const found = await findDeployment(
      where,
      KEY,
      { uri: model.uri, size: 1, lastModified: new Date(), etag: 'e2' },
      before,
      { deadline: Date.now() + 10_000, intervalMs: 250 },
    );

    expect('id' in found ? found.id : found).toBe('ecs-svc/new');
  });
});
