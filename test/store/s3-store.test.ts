import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchModel } from '../../src/model/index.ts';
import { MULTIPART_PART_SIZE, StoreError, createStore } from '../../src/store/index.ts';
import type { ObjectStore } from '../../src/store/index.ts';
import { s3rverClient, startS3rver } from '../helpers/s3rver.ts';
import type { RunningS3rver } from '../helpers/s3rver.ts';
import { listAll, readAll, sha256, storeContract } from './store-contract.ts';

let s3: RunningS3rver;
let client: S3Client;
let store: ObjectStore;
/** Names of every S3 command the client sent, to see multipart happen on the wire. */
const commands: string[] = [];
let counter = 0;
const prefix = (): string => `s3://models/t${++counter}/`;

beforeAll(async () => {
  s3 = await startS3rver({ buckets: ['models'] });
  client = s3rverClient(s3.endpoint);
  client.middlewareStack.add(
    (next, context) => (args) => {
      commands.push(context.commandName ?? '?');
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  store = createStore({ s3Client: client });
});

afterAll(async () => {
  client?.destroy();
  await s3?.stop();
});

describe('s3:// store against s3rver', () => {
  storeContract(() => ({ store, prefix }));

  it('uploads an object over 16 MiB in 8 MiB parts and reads back the same bytes', async () => {
    const body = randomBytes(20 * 1024 * 1024 + 123);
    const uri = `${prefix()}big/model.tar.gz`;
    const progress: number[] = [];
    commands.length = 0;
    const info = await store.put(
      uri,
      Readable.from([body.subarray(0, 7_000_000), body.subarray(7_000_000)]),
      {
        onProgress: (n) => progress.push(n),
      },
    );
    expect(commands.filter((c) => c === 'CreateMultipartUploadCommand')).toHaveLength(1);
    expect(commands.filter((c) => c === 'UploadPartCommand')).toHaveLength(
      Math.ceil(body.length / MULTIPART_PART_SIZE),
    );
    expect(commands).toContain('CompleteMultipartUploadCommand');
    expect(commands).not.toContain('PutObjectCommand');
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.at(-1)).toBe(body.length);
    expect(info.size).toBe(body.length);
    expect(sha256(await readAll(await store.get(uri)))).toBe(sha256(body));
  });

  it('reads with If-Match given bare or quoted, and fetchModel refuses an object whose ETag changed', async () => {
    const uri = `${prefix()}model.tar.gz`;
    const first = await store.put(uri, 'first');
    expect(first.etag).toMatch(/^[0-9a-f]{32}$/);
    for (const ifMatch of [first.etag!, `"${first.etag!}"`]) {
      expect((await readAll(await store.get(uri, { ifMatch }))).toString()).toBe('first');
    }
    await store.put(uri, 'second');
    // s3rver ignores If-Match on GET (S3 answers 412, tested with the mocked client), so this
    // shows the metadata check fetchModel makes before it reads.
    const err = await fetchModel(store, uri, { ifMatch: first.etag! }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ code: 'STORE_CHANGED' });
  });

  it('uses a single PUT for a small object', async () => {
    commands.length = 0;
    await store.put(`${prefix()}small.txt`, 'small');
    expect(commands).toContain('PutObjectCommand');
    expect(commands).not.toContain('CreateMultipartUploadCommand');
  });

  it('lists past 1,000 keys by following continuation tokens', async () => {
    const base = prefix();
    const keys = Array.from({ length: 1005 }, (_, i) => `t${counter}/k${String(i).padStart(4, '0')}`);
    await s3.seed('models', keys, 'x');
    commands.length = 0;
    const listed = await listAll(store, base);
    expect(commands.filter((c) => c === 'ListObjectsV2Command').length).toBeGreaterThanOrEqual(2);
    expect(listed.map((o) => o.uri).sort()).toEqual(keys.map((key) => `s3://models/${key}`));
  });

  it('reports a missing bucket as STORE_NO_SUCH_BUCKET from head, get, put and list', async () => {
    const uri = 's3://no-such-bucket/key.txt';
    for (const attempt of [
      () => store.head(uri),
      () => store.get(uri),
      () => store.put(uri, 'x'),
      () => listAll(store, 's3://no-such-bucket/'),
      () => store.newestModel('s3://no-such-bucket/'),
    ]) {
      const error: unknown = await attempt().catch((err: unknown) => err);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe('STORE_NO_SUCH_BUCKET');
      expect((error as StoreError).message).toContain('no-such-bucket');
    }
  });

  it('reads the endpoint from SLIPWAY_S3_ENDPOINT when none is given', async () => {
    const keys = ['SLIPWAY_S3_ENDPOINT', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] as const;
    const saved = keys.map((key) => process.env[key]);
    process.env.SLIPWAY_S3_ENDPOINT = s3.endpoint;
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    try {
      const fromEnv = createStore();
      const uri = `${prefix()}env.txt`;
      await fromEnv.put(uri, 'via env');
      expect((await readAll(await fromEnv.get(uri))).toString()).toBe('via env');
    } finally {
      keys.forEach((key, i) => {
        const value = saved[i];
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      });
    }
  });

  it('reports an unreachable endpoint as STORE_IO', async () => {
    const dead = createStore({
      endpoint: 'http://127.0.0.1:1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    });
    await expect(dead.head('s3://models/x')).rejects.toMatchObject({ code: 'STORE_IO' });
  });
});
