import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { modelUploadEventPattern } from '../../src/names.ts';
import { EventBus, toEventBridgeEvent } from '../../src/local/event-bus.ts';
import { matchesEventPattern, parseModelEvent } from '../../src/rollout/event.ts';
import type { S3ObjectCreatedEvent } from '../../src/local/event-bus.ts';
import { LOCAL_S3_CREDENTIALS, startLocalS3 } from '../../src/local/s3-server.ts';
import { waitFor } from './helpers.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const putRecord = {
  eventName: 'ObjectCreated:Put',
  eventTime: '2026-01-02T03:04:05.678Z',
  awsRegion: 'us-east-1',
  requestParameters: { sourceIPAddress: '127.0.0.1' },
  responseElements: { 'x-amz-request-id': 'REQ1' },
  s3: {
    bucket: { name: 'models' },
    object: { key: 'job-1/output/model.tar.gz', size: 42, eTag: 'abc', sequencer: '0A1B' },
  },
};

describe('toEventBridgeEvent', () => {
  it('reshapes an S3 put notification into the EventBridge Object Created event AWS sends', () => {
    const event = toEventBridgeEvent(putRecord);
    expect(event).toMatchObject({
      version: '0',
      'detail-type': 'Object Created',
      source: 'aws.s3',
      time: '2026-01-02T03:04:05Z',
      region: 'us-east-1',
      resources: ['arn:aws:s3:::models'],
      detail: {
        version: '0',
        bucket: { name: 'models' },
        object: { key: 'job-1/output/model.tar.gz', size: 42, etag: 'abc', sequencer: '0A1B' },
        'request-id': 'REQ1',
        reason: 'PutObject',
      },
    });
  });

  it('produces events the rollout accepts, with keys encoded and decoded like S3 does', () => {
    const event = toEventBridgeEvent({
      ...putRecord,
      s3: { ...putRecord.s3, object: { ...putRecord.s3.object, key: 'my job/output/model.tar.gz' } },
    });
    expect(event?.detail.object.key).toBe('my+job/output/model.tar.gz');
    expect(parseModelEvent(event)).toMatchObject({
      key: 'my job/output/model.tar.gz',
      etag: 'abc',
      sequencer: '0A1B',
    });
  });

  it('ignores removals', () => {
    expect(toEventBridgeEvent({ ...putRecord, eventName: 'ObjectRemoved:Delete' })).toBeUndefined();
  });
});

describe('matchesEventPattern', () => {
  const event = toEventBridgeEvent(putRecord)!;
  it('matches the shared rule pattern on the models bucket and the model.tar.gz suffix', () => {
    expect(matchesEventPattern(modelUploadEventPattern('models'), event)).toBe(true);
  });
  it('rejects another bucket or another key suffix', () => {
    expect(matchesEventPattern(modelUploadEventPattern('data'), event)).toBe(false);
    const other = { ...event, detail: { ...event.detail, object: { key: 'job-1/output/metrics.json' } } };
    expect(matchesEventPattern(modelUploadEventPattern('models'), other)).toBe(false);
  });
});

describe('EventBus on a real local S3 server', () => {
  it('delivers one event per model upload and none for other objects or buckets', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'slipway-bus-'));
    const s3 = await startLocalS3({ directory: dir, buckets: ['models', 'data'] });
    cleanups.push(async () => {
      await s3.close();
      await rm(dir, { recursive: true, force: true });
    });
    const seen: S3ObjectCreatedEvent[] = [];
    const bus = new EventBus({
      pattern: modelUploadEventPattern('models'),
      handler: (e) => void seen.push(e),
    });
    bus.attach(s3.notifications);
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { ...LOCAL_S3_CREDENTIALS },
    });
    cleanups.push(() => Promise.resolve(client.destroy()));
    const put = (Bucket: string, Key: string): Promise<unknown> =>
      client.send(new PutObjectCommand({ Bucket, Key, Body: 'x' }));
    await put('models', 'a/output/model.tar.gz');
    await put('models', 'a/output/notes.txt');
    await put('data', 'b/model.tar.gz');
    await waitFor(() => seen.length >= 1);
    await bus.idle();
    expect(seen.map((e) => e.detail.object.key)).toEqual(['a/output/model.tar.gz']);
    expect(seen[0]!.detail.object.etag).toMatch(/^[0-9a-f]{32}$/);
  });

  it('reads the ETag of an object whose notification has none (s3rver on CopyObject) before delivering', async () => {
    const seen: S3ObjectCreatedEvent[] = [];
    const heads: string[] = [];
    const bus = new EventBus({
      pattern: modelUploadEventPattern('models'),
      handler: (e) => void seen.push(e),
      head: (bucket, key) => {
        heads.push(`${bucket}/${key}`);
        return Promise.resolve({ etag: 'def', size: 7 });
      },
    });
    const object = { key: 'job 2/output/model.tar.gz', size: 42, sequencer: '0A1C' };
    bus.publishRecord({ ...putRecord, eventName: 'ObjectCreated:Copy', s3: { ...putRecord.s3, object } });
    bus.publishRecord(putRecord);
    await bus.idle();
    expect(heads).toEqual(['models/job 2/output/model.tar.gz']);
    expect(seen.map((e) => [e.detail.reason, e.detail.object.etag, e.detail.object.size])).toEqual([
      ['CopyObject', 'def', 42],
      ['PutObject', 'abc', 42],
    ]);
    expect(parseModelEvent(seen[0])).toMatchObject({ etag: 'def', key: 'job 2/output/model.tar.gz' });
  });

  it('retries a delivery whose handler throws (at least once)', async () => {
    let calls = 0;
    const errors: unknown[] = [];
    const bus = new EventBus({
      pattern: modelUploadEventPattern('models'),
      handler: () => {
        calls += 1;
        if (calls === 1) throw new Error('transient');
      },
      onError: (err) => errors.push(err),
    });
    bus.publishRecord(putRecord);
    await bus.idle();
    expect(calls).toBe(2);
    expect(errors).toHaveLength(1);
  });
});
