import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreError, createStore } from '../../src/store/index.ts';
import type { ObjectStore } from '../../src/store/index.ts';
import { readAll } from './store-contract.ts';

const s3Mock = mockClient(S3Client);
let store: ObjectStore;

function serviceError(name: string, status: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: status },
    message: name,
  });
}

/** In Node the SDK hands back an http.IncomingMessage, a plain Readable with helpers mixed in. */
function body(text: string): GetObjectCommandOutput['Body'] {
  return Readable.from([Buffer.from(text)]) as unknown as GetObjectCommandOutput['Body'];
}

beforeEach(() => {
  s3Mock.reset();
  store = createStore({ s3Client: new S3Client({ region: 'us-east-1' }) });
});

afterEach(() => {
  s3Mock.reset();
});

describe('S3 reads by versionId (mocked client)', () => {
  it('sends GetObject with exactly the bucket, key and versionId of the URI', async () => {
    s3Mock.on(GetObjectCommand).resolves({ Body: body('version one') });
    const stream = await store.get('s3://acme-models/mnist/model.tar.gz?versionId=v1.abc');
    expect((await readAll(stream)).toString()).toBe('version one');
    const calls = s3Mock.commandCalls(GetObjectCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({
      Bucket: 'acme-models',
      Key: 'mnist/model.tar.gz',
      VersionId: 'v1.abc',
    });
  });

  it('sends no VersionId for a plain URI', async () => {
    s3Mock.on(GetObjectCommand).resolves({ Body: body('latest') });
    await store.get('s3://acme-models/mnist/model.tar.gz');
    expect(s3Mock.commandCalls(GetObjectCommand)[0]!.args[0].input.VersionId).toBeUndefined();
  });

  it('heads a version and reports it in the canonical URI', async () => {
    s3Mock.on(HeadObjectCommand).resolves({
      ContentLength: 42,
      LastModified: new Date('2026-01-01T00:00:00Z'),
      ETag: '"abc123"',
      VersionId: 'v2',
    });
    const info = await store.head('s3://acme-models/m/model.tar.gz?versionId=v2');
    expect(s3Mock.commandCalls(HeadObjectCommand)[0]!.args[0].input).toEqual({
      Bucket: 'acme-models',
      Key: 'm/model.tar.gz',
      VersionId: 'v2',
    });
    expect(info).toEqual({
      uri: 's3://acme-models/m/model.tar.gz?versionId=v2',
      size: 42,
      lastModified: new Date('2026-01-01T00:00:00Z'),
      etag: 'abc123',
      versionId: 'v2',
    });
  });

  it('pins the version S3 assigned on put', async () => {
    s3Mock.on(PutObjectCommand).resolves({ ETag: '"e"', VersionId: 'v9' });
    s3Mock
      .on(HeadObjectCommand)
      .resolves({ ContentLength: 5, LastModified: new Date(), ETag: '"e"', VersionId: 'v9' });
    const info = await store.put('s3://acme-models/m/model.tar.gz', 'hello');
    expect(info.uri).toBe('s3://acme-models/m/model.tar.gz?versionId=v9');
    expect(s3Mock.commandCalls(HeadObjectCommand)[0]!.args[0].input.VersionId).toBe('v9');
  });

  it('pins no version for the "null" version of a bucket whose versioning is suspended', async () => {
    s3Mock.on(HeadObjectCommand).resolves({ ContentLength: 5, ETag: '"e"', VersionId: 'null' });
    const info = await store.head('s3://acme-models/m/model.tar.gz');
    expect(info.uri).toBe('s3://acme-models/m/model.tar.gz');
    expect(info.versionId).toBeUndefined();
  });

  it('refuses to put to a versionId URI', async () => {
    await expect(store.put('s3://acme-models/m/model.tar.gz?versionId=v1', 'x')).rejects.toMatchObject({
      code: 'STORE_BAD_URI',
    });
    expect(s3Mock.calls()).toHaveLength(0);
  });

  it('finds the newest model across list pages and returns it with its versionId', async () => {
    s3Mock
      .on(ListObjectsV2Command, { Bucket: 'acme-models', Prefix: 'mnist/', ContinuationToken: undefined })
      .resolves({
        IsTruncated: true,
        NextContinuationToken: 'page-2',
        Contents: [{ Key: 'mnist/a/output/model.tar.gz', Size: 10, LastModified: new Date('2026-01-01') }],
      })
      .on(ListObjectsV2Command, { ContinuationToken: 'page-2' })
      .resolves({
        IsTruncated: false,
        Contents: [
          { Key: 'mnist/b/output/model.tar.gz', Size: 11, LastModified: new Date('2026-01-02') },
          { Key: 'mnist/c/notes.txt', Size: 1, LastModified: new Date('2026-01-03') },
        ],
      });
    s3Mock
      .on(HeadObjectCommand)
      .resolves({ ContentLength: 11, LastModified: new Date('2026-01-02'), VersionId: 'v7' });
    const newest = await store.newestModel('s3://acme-models/mnist/');
    expect(s3Mock.commandCalls(ListObjectsV2Command)).toHaveLength(2);
    expect(s3Mock.commandCalls(HeadObjectCommand)[0]!.args[0].input).toMatchObject({
      Bucket: 'acme-models',
      Key: 'mnist/b/output/model.tar.gz',
    });
    expect(newest.uri).toBe('s3://acme-models/mnist/b/output/model.tar.gz?versionId=v7');
  });

  it('heads job-10, not job-9, when both were uploaded in the same second', async () => {
    const second = new Date('2026-01-01T00:00:00Z');
    s3Mock.on(ListObjectsV2Command).resolves({
      IsTruncated: false,
      Contents: [
        { Key: 'mnist/job-10/output/model.tar.gz', Size: 10, LastModified: second },
        { Key: 'mnist/job-9/output/model.tar.gz', Size: 9, LastModified: second },
      ],
    });
    s3Mock.on(HeadObjectCommand).resolves({ ContentLength: 10, LastModified: second, ETag: '"e10"' });
    const newest = await store.newestModel('s3://acme-models/mnist/');
    expect(s3Mock.commandCalls(HeadObjectCommand).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'acme-models', Key: 'mnist/job-10/output/model.tar.gz', VersionId: undefined },
    ]);
    expect(newest.uri).toBe('s3://acme-models/mnist/job-10/output/model.tar.gz');
  });

  // The rollout skips an empty upload and rejects a key with "?" or "#" (it cannot pin one in
  // MODEL_URI), so a prefix must not resolve to one, nor fail because such a key lies under it.
  it('heads the newest model the rollout could deploy, passing over empty objects and keys with "?" or "#"', async () => {
    const at = (second: number): Date => new Date(Date.UTC(2026, 0, 1, 0, 0, second));
    s3Mock.on(ListObjectsV2Command).resolves({
      IsTruncated: false,
      Contents: [
        { Key: 'mnist/job-1/output/model.tar.gz', Size: 10, LastModified: at(1) },
        { Key: 'mnist/job-2/output/model.tar.gz', Size: 0, LastModified: at(2) },
        { Key: 'mnist/job#3/output/model.tar.gz', Size: 10, LastModified: at(3) },
        { Key: 'mnist/job?4/output/model.tar.gz', Size: 10, LastModified: at(4) },
        { Key: 'mnist/notes/why?.txt', Size: 10, LastModified: at(5) },
      ],
    });
    s3Mock.on(HeadObjectCommand).resolves({ ContentLength: 10, LastModified: at(1), ETag: '"e1"' });
    const newest = await store.newestModel('s3://acme-models/mnist/');
    expect(newest.uri).toBe('s3://acme-models/mnist/job-1/output/model.tar.gz');
  });
});

describe('S3 error mapping (mocked client)', () => {
  it('maps AccessDenied on get to STORE_ACCESS_DENIED without probing the bucket', async () => {
    s3Mock.on(GetObjectCommand).rejects(serviceError('AccessDenied', 403));
    const error: unknown = await store.get('s3://acme-models/secret.tar.gz').catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('STORE_ACCESS_DENIED');
    expect((error as StoreError).message).toMatch(/s3:\/\/acme-models\/secret\.tar\.gz: access denied/);
    expect(s3Mock.commandCalls(HeadBucketCommand)).toHaveLength(0);
  });

  it("sends If-Match quoted and maps S3's 412 to STORE_CHANGED", async () => {
    s3Mock.on(GetObjectCommand).rejects(serviceError('PreconditionFailed', 412));
    const err = await store
      .get('s3://acme-models/m/model.tar.gz', { ifMatch: 'abc' })
      .catch((e: unknown) => e);
    expect(s3Mock.commandCalls(GetObjectCommand)[0]!.args[0].input).toEqual({
      Bucket: 'acme-models',
      Key: 'm/model.tar.gz',
      IfMatch: '"abc"',
    });
    expect(err).toMatchObject({ code: 'STORE_CHANGED' });
    expect((err as Error).message).toBe(
      's3://acme-models/m/model.tar.gz: the object changed: its ETag is no longer abc',
    );
  });

  it('maps a bodiless 403 on head to STORE_ACCESS_DENIED', async () => {
    s3Mock.on(HeadObjectCommand).rejects(serviceError('Forbidden', 403));
    await expect(store.head('s3://acme-models/x')).rejects.toMatchObject({ code: 'STORE_ACCESS_DENIED' });
  });

  it('maps AccessDenied on list to STORE_ACCESS_DENIED', async () => {
    s3Mock.on(ListObjectsV2Command).rejects(serviceError('AccessDenied', 403));
    await expect(store.newestModel('s3://acme-models/')).rejects.toMatchObject({
      code: 'STORE_ACCESS_DENIED',
    });
  });

  it('maps NoSuchKey to STORE_NOT_FOUND when the bucket exists', async () => {
    s3Mock
      .on(GetObjectCommand)
      .rejects(
        new NoSuchKey({ $metadata: { httpStatusCode: 404 }, message: 'The specified key does not exist.' }),
      );
    s3Mock.on(HeadBucketCommand).resolves({});
    await expect(store.get('s3://acme-models/missing')).rejects.toMatchObject({ code: 'STORE_NOT_FOUND' });
  });

  it('tells a missing bucket from a missing key after a bodiless 404', async () => {
    s3Mock.on(HeadObjectCommand).rejects(serviceError('NotFound', 404));
    s3Mock.on(HeadBucketCommand).rejects(serviceError('NotFound', 404));
    await expect(store.head('s3://gone-bucket/x')).rejects.toMatchObject({ code: 'STORE_NO_SUCH_BUCKET' });
  });

  it('maps a server error to STORE_IO with the service message', async () => {
    s3Mock.on(HeadObjectCommand).rejects(
      new S3ServiceException({
        name: 'InternalError',
        $fault: 'server',
        $metadata: { httpStatusCode: 500 },
        message: 'boom',
      }),
    );
    await expect(store.head('s3://acme-models/x')).rejects.toMatchObject({
      code: 'STORE_IO',
      message: expect.stringMatching(/InternalError \(500\): boom/) as unknown,
    });
  });
});
