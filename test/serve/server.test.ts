import { createReadStream } from 'node:fs';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packModel } from '../../src/model/index.ts';
import { createStore } from '../../src/store/index.ts';
import type { ObjectInfo } from '../../src/store/index.ts';
import { S3RVER_CREDENTIALS, startS3rver } from '../helpers/s3rver.ts';
import type { RunningS3rver } from '../helpers/s3rver.ts';
import { startChildServer } from './fixtures/child-server.ts';
import type { ChildServer } from './fixtures/child-server.ts';
import { buildCnn, writeClassifierDir, writeModel } from './fixtures/onnx-builder.ts';

let root: string;
let s3: RunningS3rver;
const s3Env = (): Record<string, string> => ({
  SLIPWAY_S3_ENDPOINT: s3.endpoint,
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  AWS_REGION: 'us-east-1',
});

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'slipway-serve-server-'));
  s3 = await startS3rver({ buckets: ['models'] });
});
afterAll(async () => {
  await s3.stop();
  await rm(root, { recursive: true, force: true });
});

/** POST with its own connection; resolves with the status (or the error message). */
function post(url: string, body: string, onWritten: () => void): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(
      url,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', (err) => resolve(err.message));
    req.end(body, onWritten);
  });
}

/** Packs a classifier model (version `version`) and uploads it to `uri` in s3rver. */
async function uploadClassifier(name: string, version: string, uri: string): Promise<ObjectInfo> {
  const dir = await writeClassifierDir(join(root, name), { version });
  const tarball = join(root, `${name}.tar.gz`);
  await packModel(dir, tarball);
  const store = createStore({ endpoint: s3.endpoint, credentials: { ...S3RVER_CREDENTIALS } });
  return store.put(uri, createReadStream(tarball));
}

describe('slipway serve (child process)', () => {
  it('loads the newest model under an s3:// prefix and identifies it on GET /', async () => {
    await uploadClassifier('iris', '7', 's3://models/iris/job-1/output/model.tar.gz');

    const server = await startChildServer(['--model', 's3://models/iris/', '--workers', '1'], s3Env());
    try {
      const ready = await server.waitForEvent('model_ready');
      expect(ready).toMatchObject({ name: 'iris', version: '7' });
      const res = await fetch(`${server.url}/`);
      expect(await res.json()).toMatchObject({
        status: 'ready',
        name: 'iris',
        version: '7',
        sourceUri: 's3://models/iris/job-1/output/model.tar.gz',
      });
      expect((await fetch(`${server.url}/v2/health/ready`)).status).toBe(200);
    } finally {
      server.kill();
      expect(await server.exited).toBe(0);
    }
  });

  it('refuses, and says why, an S3 object whose ETag is not the one SLIPWAY_MODEL_ETAG pins', async () => {
    const uri = 's3://models/pinned/model.tar.gz';
    const { etag } = await uploadClassifier('pinned', '1', uri);

    const server = await startChildServer(['--workers', '1'], {
      ...s3Env(),
      MODEL_URI: uri,
      SLIPWAY_MODEL_ETAG: '0123456789abcdef0123456789abcdef',
    });
    try {
      const failed = await server.waitForEvent('model_failed');
      expect(failed).toMatchObject({ code: 'STORE_CHANGED' });
      expect(String(failed.reason)).toContain(`its ETag is ${etag}, the deployment pinned 0123456789abcdef`);
      expect((await fetch(`${server.url}/ping`)).status).toBe(503);
    } finally {
      server.kill();
      expect(await server.exited).toBe(0);
    }
  });

  it('stays up and not ready, saying why, when the S3 object is missing', async () => {
    const server = await startChildServer(
      ['--model', 's3://models/nothing/model.tar.gz', '--workers', '1'],
      s3Env(),
    );
    try {
      await server.waitForEvent('model_failed');
      const res = await fetch(`${server.url}/v2/health/ready`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toMatch(/s3:\/\/models\/nothing\/model.tar.gz/);
    } finally {
      server.kill();
      expect(await server.exited).toBe(0);
    }
  });

  it('finishes every in-flight request on SIGTERM, then exits 0', async () => {
    const dir = join(root, 'cnn');
    await writeModel(dir, buildCnn({ channels: 3, size: 128, filters: [64, 64, 64], classes: 10 }));
    const server: ChildServer = await startChildServer([
      '--model',
      dir,
      '--workers',
      '1',
      '--max-batch-size',
      '1',
    ]);
    await server.waitForEvent('model_ready');
    const image = {
      inputs: [
        {
          name: 'image',
          shape: [1, 3, 128, 128],
          datatype: 'FP32',
          data: new Array(3 * 128 * 128).fill(0.5),
        },
      ],
    };
    const body = JSON.stringify(image);
    const n = 16;
    let written = 0;
    let answered = 0;
    let allWritten!: () => void;
    const sent = new Promise<void>((resolve) => (allWritten = resolve));
    const results = Array.from({ length: n }, () =>
      post(`${server.url}/v2/models/cnn/infer`, body, () => {
        if (++written === n) allWritten();
      }).then((status) => {
        answered++;
        return status;
      }),
    );
    await sent;
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Most requests must still be queued behind the single worker, or the test proves nothing.
    expect(answered).toBeLessThan(n / 2);
    server.kill('SIGTERM');
    const statuses = await Promise.all(results);
    expect(statuses).toEqual(new Array(n).fill(200));
    expect(await server.exited).toBe(0);
    expect(server.logs.some((l) => l.event === 'shutdown')).toBe(true);
  });
});
