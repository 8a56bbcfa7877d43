import { describe, expect, it } from 'vitest';
import { modelUploadEventPattern } from '../../src/names.ts';
import { RolloutError } from '../../src/rollout/errors.ts';
import {
  decodeS3EventKey,
  matchesEventPattern,
  parseModelEvent,
  parseS3ModelUri,
  s3ModelUri,
} from '../../src/rollout/event.ts';
import { DOCUMENTED_OBJECT_CREATED_EVENT, MODELS_BUCKET, modelEvent } from './fixtures.ts';

interface RawEvent {
  time: unknown;
  detail: { bucket?: unknown; reason: unknown; object: Record<string, unknown> };
}

describe('parseModelEvent', () => {
  it('accepts AWS documented Object Created event and pins the exact version', () => {
    const event = parseModelEvent(DOCUMENTED_OBJECT_CREATED_EVENT);

    expect(event).toEqual({
      id: '17793124-05d4-b198-2fde-7ededc63b103',
      bucket: 'amzn-s3-demo-bucket1',
      key: 'example-key',
      versionId: 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e',
      etag: 'b1946ac92492d2347c6235b4d2611184',
      sequencer: '617f08299329d189',
      time: '2021-11-12T00:00:00Z',
      size: 5,
      reason: 'PutObject',
      uri: 's3://amzn-s3-demo-bucket1/example-key?versionId=IYV3p45BT0ac8hjHg1houSdS1a.Mro8e',
    });
  });

  it('accepts the newer documented shape with event-version and bucket tags', () => {
    const raw = structuredClone(DOCUMENTED_OBJECT_CREATED_EVENT) as unknown as {
      detail: Record<string, unknown> & { bucket: Record<string, unknown> };
    };
    raw.detail['event-version'] = '1.1';
    raw.detail.bucket['aws-generated-tags'] = { 'aws:cloudformation:logical-id': 'S3DemoBucket' };

    expect(parseModelEvent(raw).key).toBe('example-key');
  });

  it('decodes the key as S3 notifications encode it, unless the caller resolved the key', () => {
    const raw = modelEvent({ key: 'runs/c++/model.tar.gz', versionId: null });

    expect(parseModelEvent(raw).key).toBe('runs/c  /model.tar.gz');
    const resolved = parseModelEvent(raw, { objectKey: 'runs/c++/model.tar.gz' });
    expect(resolved.key).toBe('runs/c++/model.tar.gz');
    expect(resolved.uri).toBe(`s3://${MODELS_BUCKET}/runs/c++/model.tar.gz`);
  });

  it('accepts a multipart upload into an unversioned bucket and pins it by ETag', () => {
    const event = parseModelEvent(
      modelEvent({
        etag: '4af981f98d22a0b9979da24b259e5e42-12',
        versionId: null,
        sequencer: '0064D3901D00059242',
        reason: 'CompleteMultipartUpload',
        size: 198524144,
      }),
    );

    expect(event.uri).toBe(`s3://${MODELS_BUCKET}/training/job-1/output/model.tar.gz`);
    expect(event.versionId).toBeUndefined();
    expect(event.etag).toBe('4af981f98d22a0b9979da24b259e5e42-12');
    expect(event.reason).toBe('CompleteMultipartUpload');
  });

  it('treats the literal "null" version of a suspended-versioning bucket as unversioned', () => {
    const event = parseModelEvent(modelEvent({ versionId: 'null' }));

    expect(event.versionId).toBeUndefined();
    expect(event.uri).not.toContain('versionId');
  });

  it('decodes URL-encoded keys the way S3 encodes them', () => {
    const event = parseModelEvent(modelEvent({ key: 'runs/my+run%2B2/%C3%A9t%C3%A9/model.tar.gz' }));

    expect(event.key).toBe('runs/my run+2/été/model.tar.gz');
    expect(event.uri).toBe(
      `s3://${MODELS_BUCKET}/runs/my run+2/été/model.tar.gz?versionId=IYV3p45BT0ac8hjHg1houSdS1a.Mro8e`,
    );
  });

  it.each([
    ['detail.object.etag', (e: RawEvent) => delete e.detail.object.etag],
    ['detail.object.sequencer', (e: RawEvent) => delete e.detail.object.sequencer],
    ['detail.object.size', (e: RawEvent) => delete e.detail.object.size],
    ['detail.bucket', (e: RawEvent) => delete e.detail.bucket],
    ['time', (e: RawEvent) => (e.time = 'yesterday')],
    ['detail.reason', (e: RawEvent) => (e.detail.reason = 'Teleport')],
    ['detail.object.sequencer', (e: RawEvent) => (e.detail.object.sequencer = 'not-hex')],
  ])('rejects an event with a bad %s, naming the field', (field, mutate) => {
    const raw = modelEvent();
    mutate(raw as unknown as RawEvent);

    expect(() => parseModelEvent(raw)).toThrow(RolloutError);
    expect(() => parseModelEvent(raw)).toThrow(field);
  });

  it('rejects keys that are not valid URL encoding', () => {
    expect(() => parseModelEvent(modelEvent({ key: 'bad%E0%A4%A/model.tar.gz' }))).toThrow(
      /not valid URL encoding/,
    );
  });

  it('rejects keys that cannot be pinned in a URI without ambiguity', () => {
    expect(() => parseModelEvent(modelEvent({ key: 'what%3F/model.tar.gz' }))).toThrow(/"\?" or "#"/);
  });
});

describe('matchesEventPattern with the shared model upload pattern', () => {
  const pattern = modelUploadEventPattern(MODELS_BUCKET);

  it('matches a model upload to the models bucket', () => {
    expect(matchesEventPattern(pattern, modelEvent())).toBe(true);
  });

  it.each([
    ['another bucket', modelEvent({ bucket: 'someone-elses-bucket' })],
    ['another detail-type', modelEvent({ detailType: 'Object Deleted' })],
    ['a key that only contains model.tar.gz', modelEvent({ key: 'models/model.tar.gz.bak' })],
    ['a key with model.tar.gz as a folder', modelEvent({ key: 'model.tar.gz/weights.bin' })],
    ['an event without detail', { source: 'aws.s3', 'detail-type': 'Object Created' }],
    ['something that is not an object', 'model.tar.gz'],
  ])('does not match %s', (_name, event) => {
    expect(matchesEventPattern(pattern, event)).toBe(false);
  });

  it('supports prefix, exists and anything-but like EventBridge', () => {
    const event = { detail: { object: { key: 'a/b' }, tags: ['x', 'y'] } };

    expect(matchesEventPattern({ detail: { object: { key: [{ prefix: 'a/' }] } } }, event)).toBe(true);
    expect(matchesEventPattern({ detail: { tags: ['y'] } }, event)).toBe(true);
    expect(matchesEventPattern({ detail: { missing: [{ exists: false }] } }, event)).toBe(true);
    expect(matchesEventPattern({ detail: { object: [{ exists: true }] } }, event)).toBe(false);
    expect(matchesEventPattern({ detail: { object: { key: [{ 'anything-but': ['a/b'] }] } } }, event)).toBe(
      false,
    );
  });

  it('refuses operators it does not implement instead of matching silently', () => {
    expect(() => matchesEventPattern({ size: [{ numeric: ['>', 0] }] }, { size: 1 })).toThrow(/numeric/);
  });
});

describe('model URIs', () => {
  it('round-trips bucket, key and version id', () => {
    const uri = s3ModelUri('b', 'dir/with space/model.tar.gz', 'v1+/=');

    expect(parseS3ModelUri(uri)).toEqual({
      bucket: 'b',
      key: 'dir/with space/model.tar.gz',
      versionId: 'v1+/=',
    });
  });

  it('does not parse other schemes', () => {
    expect(parseS3ModelUri('file:///models/model.tar.gz')).toBeUndefined();
  });

  it('decodes + as space and %2B as plus', () => {
    expect(decodeS3EventKey('a+b%2Bc')).toBe('a b+c');
  });
});
