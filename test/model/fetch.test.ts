import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ArtifactError, fetchModel, packModel } from '../../src/model/index.ts';
import { StoreError, createStore, formatStoreUri } from '../../src/store/index.ts';
import { conformanceModel } from '../helpers/conformance.ts';
import { rawTarGz } from '../helpers/raw-tar.ts';

let work: string;
let tarball: string;
let parentDir: string;
const store = createStore();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'slipway-fetch-'));
  const modelDir = join(work, 'model');
  await mkdir(modelDir);
  await copyFile(conformanceModel('simple/test_single_relu_model/model.onnx'), join(modelDir, 'model.onnx'));
  tarball = join(work, 'model.tar.gz');
  await packModel(modelDir, tarball);
  parentDir = join(work, 'extract');
  await mkdir(parentDir);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const fileUri = (path: string): string => formatStoreUri({ scheme: 'file', path });
const s3Store = () => createStore({ s3Client: new S3Client({ region: 'us-east-1' }) });
const tarballBody = () => createReadStream(tarball) as unknown as GetObjectCommandOutput['Body'];
/** What the SDK throws for S3's 412 to a GET whose If-Match no longer holds. */
const preconditionFailed = () =>
  new S3ServiceException({
    name: 'PreconditionFailed',
    $fault: 'client',
    $metadata: { httpStatusCode: 412 },
    message: 'At least one of the pre-conditions you specified did not hold',
  });

describe('fetchModel from a file:// store', () => {
  it('fetches the newest model under a prefix and says which object it was', async () => {
    const models = join(work, 'models') + '/';
    await store.put(
      `${fileUri(models)}job-1/output/model.tar.gz`,
      rawTarGz([{ name: 'model.onnx', body: 'old' }]),
    );
    await sleep(20);
    await store.put(`${fileUri(models)}job-2/output/model.tar.gz`, createReadStream(tarball));
    const model = await fetchModel(store, fileUri(models), { parentDir });
    try {
      expect(model.source.uri).toBe(`${fileUri(models)}job-2/output/model.tar.gz`);
      expect(model.signature.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [1, 2] }]);
      expect(await readFile(model.onnxPath)).toEqual(
        await readFile(conformanceModel('simple/test_single_relu_model/model.onnx')),
      );
    } finally {
      await rm(model.dir, { recursive: true, force: true });
    }
  });

  it('fetches an exact object URI', async () => {
    const uri = fileUri(join(work, 'exact', 'model.tar.gz'));
    await store.put(uri, createReadStream(tarball));
    const model = await fetchModel(store, uri, { parentDir });
    expect(model.source.uri).toBe(uri);
    await rm(model.dir, { recursive: true, force: true });
  });

  it('throws StoreError for a missing object and leaves nothing behind', async () => {
    const error: unknown = await fetchModel(store, fileUri(join(work, 'nope', 'model.tar.gz')), {
      parentDir,
    }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('STORE_NOT_FOUND');
    expect(await readdir(parentDir)).toEqual([]);
  });

  it('throws ArtifactError for a hostile artifact and leaves nothing behind', async () => {
    const uri = fileUri(join(work, 'evil', 'model.tar.gz'));
    await store.put(uri, rawTarGz([{ name: '../../escape', body: 'x' }]));
    const error: unknown = await fetchModel(store, uri, { parentDir }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ArtifactError);
    expect((error as ArtifactError).code).toBe('ARTIFACT_UNSAFE_ENTRY');
    expect(await readdir(parentDir)).toEqual([]);
  });
});

describe('fetchModel from S3 (mocked client)', () => {
  const s3Mock = mockClient(S3Client);
  beforeEach(() => {
    s3Mock.reset();
  });
  /** The object's ETag is now `etag`: S3 answers a GET whose If-Match names another with 412. */
  const nowHasEtag = (etag: string) =>
    s3Mock
      .on(GetObjectCommand)
      .rejects(preconditionFailed())
      .on(GetObjectCommand, { IfMatch: `"${etag}"` })
      .resolves({ Body: tarballBody() });
  afterAll(() => {
    s3Mock.restore();
  });

  it('downloads exactly the version it resolved, so a concurrent upload cannot swap the model', async () => {
    s3Mock.on(HeadObjectCommand).resolves({ ContentLength: 1, LastModified: new Date(), VersionId: 'v3' });
    s3Mock.on(GetObjectCommand).resolves({ Body: tarballBody() });
    const model = await fetchModel(s3Store(), 's3://acme-models/m/model.tar.gz', { parentDir });
    expect(s3Mock.commandCalls(GetObjectCommand)[0]!.args[0].input).toEqual({
      Bucket: 'acme-models',
      Key: 'm/model.tar.gz',
      VersionId: 'v3',
    });
    expect(model.source.versionId).toBe('v3');
    await rm(model.dir, { recursive: true, force: true });
  });

  it('ties the read to the HEAD: If-Match with the ETag it just read, even when nothing pins one', async () => {
    s3Mock.on(HeadObjectCommand).resolves({ ContentLength: 1, LastModified: new Date(), ETag: '"e1"' });
    s3Mock.on(GetObjectCommand).resolves({ Body: tarballBody() });
    const model = await fetchModel(s3Store(), 's3://acme-models/m/model.tar.gz', { parentDir });
    expect(s3Mock.commandCalls(GetObjectCommand).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'acme-models', Key: 'm/model.tar.gz', IfMatch: '"e1"' },
    ]);
    expect(model.source.etag).toBe('e1');
    await rm(model.dir, { recursive: true, force: true });
  });

  it('resolves again when the object is overwritten between HEAD and GET, and records the object it read', async () => {
    s3Mock
      .on(HeadObjectCommand)
      .resolvesOnce({ ContentLength: 1, LastModified: new Date('2026-01-01'), ETag: '"e1"' })
      .resolves({ ContentLength: 2, LastModified: new Date('2026-01-02'), ETag: '"e2"' });
    nowHasEtag('e2');
    const model = await fetchModel(s3Store(), 's3://acme-models/m/model.tar.gz', { parentDir });
    expect(s3Mock.commandCalls(HeadObjectCommand)).toHaveLength(2);
    expect(s3Mock.commandCalls(GetObjectCommand).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'acme-models', Key: 'm/model.tar.gz', IfMatch: '"e1"' },
      { Bucket: 'acme-models', Key: 'm/model.tar.gz', IfMatch: '"e2"' },
    ]);
    expect(model.source).toMatchObject({ etag: 'e2', size: 2, lastModified: new Date('2026-01-02') });
    await rm(model.dir, { recursive: true, force: true });
  });

  it('resolves a prefix again after a 412, so the newest model is the one read', async () => {
    const listed = (keys: string[]) => ({
      IsTruncated: false,
      Contents: keys.map((Key, i) => ({ Key, Size: 1, LastModified: new Date(Date.UTC(2026, 0, i + 1)) })),
    });
    s3Mock
      .on(ListObjectsV2Command)
      .resolvesOnce(listed(['m/job-1/output/model.tar.gz']))
      .resolves(listed(['m/job-1/output/model.tar.gz', 'm/job-2/output/model.tar.gz']));
    s3Mock
      .on(HeadObjectCommand, { Key: 'm/job-1/output/model.tar.gz' })
      .resolves({ ContentLength: 1, LastModified: new Date(), ETag: '"e1"' })
      .on(HeadObjectCommand, { Key: 'm/job-2/output/model.tar.gz' })
      .resolves({ ContentLength: 1, LastModified: new Date(), ETag: '"e2"' });
    nowHasEtag('e2');
    const model = await fetchModel(s3Store(), 's3://acme-models/m/', { parentDir });
    expect(model.source).toMatchObject({ uri: 's3://acme-models/m/job-2/output/model.tar.gz', etag: 'e2' });
    expect(s3Mock.commandCalls(GetObjectCommand).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'acme-models', Key: 'm/job-1/output/model.tar.gz', IfMatch: '"e1"' },
      { Bucket: 'acme-models', Key: 'm/job-2/output/model.tar.gz', IfMatch: '"e2"' },
    ]);
    await rm(model.dir, { recursive: true, force: true });
  });

  it('gives up with STORE_CHANGED, downloading nothing, when the object changes on every attempt', async () => {
    let n = 0;
    s3Mock
      .on(HeadObjectCommand)
      .callsFake(() => ({ ContentLength: 1, LastModified: new Date(), ETag: `"e${++n}"` }));
    s3Mock.on(GetObjectCommand).rejects(preconditionFailed());
    const err = await fetchModel(s3Store(), 's3://acme-models/m/model.tar.gz', { parentDir }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ code: 'STORE_CHANGED' });
    expect((err as Error).message).toMatch(
      /s3:\/\/acme-models\/m\/model\.tar\.gz changed between reading its metadata and its bytes 3 times/,
    );
    expect(s3Mock.commandCalls(GetObjectCommand)).toHaveLength(3);
    expect(await readdir(parentDir)).toEqual([]);
  });

  it('does not resolve again when the deployment pins the ETag: the pinned object is gone', async () => {
    s3Mock.on(HeadObjectCommand).resolves({ ContentLength: 1, LastModified: new Date(), ETag: '"abc123"' });
    s3Mock.on(GetObjectCommand).rejects(preconditionFailed());
    const err = await fetchModel(s3Store(), 's3://acme-models/m/model.tar.gz', {
      parentDir,
      ifMatch: 'abc123',
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_CHANGED' });
    expect((err as Error).message).toMatch(/its ETag is no longer abc123/);
    expect(s3Mock.commandCalls(HeadObjectCommand)).toHaveLength(1);
    expect(s3Mock.commandCalls(GetObjectCommand)).toHaveLength(1);
  });

  it('pins the ETag: If-Match on the read, and a changed object refused before any download', async () => {
    s3Mock.on(HeadObjectCommand).resolves({ ContentLength: 1, LastModified: new Date(), ETag: '"abc123"' });
    s3Mock.on(GetObjectCommand).resolves({ Body: tarballBody() });
    const uri = 's3://acme-models/m/model.tar.gz';
    const model = await fetchModel(s3Store(), uri, { parentDir, ifMatch: 'abc123' });
    expect(s3Mock.commandCalls(GetObjectCommand)[0]!.args[0].input).toEqual({
      Bucket: 'acme-models',
      Key: 'm/model.tar.gz',
      IfMatch: '"abc123"',
    });
    await rm(model.dir, { recursive: true, force: true });

    const changed = await fetchModel(s3Store(), uri, { parentDir, ifMatch: 'def456' }).catch(
      (e: unknown) => e,
    );
    expect(changed).toMatchObject({ code: 'STORE_CHANGED' });
    expect((changed as Error).message).toMatch(/its ETag is abc123, the deployment pinned def456/);
    expect(s3Mock.commandCalls(GetObjectCommand)).toHaveLength(1);
  });
});
