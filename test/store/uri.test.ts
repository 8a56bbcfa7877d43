import { describe, expect, it } from 'vitest';
import {
  StoreError,
  formatStoreUri,
  isPrefixUri,
  looksLikeUri,
  parseStoreUri,
} from '../../src/store/index.ts';

function badUri(uri: string): StoreError {
  try {
    parseStoreUri(uri);
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('STORE_BAD_URI');
    return err as StoreError;
  }
  throw new Error(`expected ${uri} to be rejected`);
}

describe('parseStoreUri', () => {
  it('parses an S3 object URI', () => {
    expect(parseStoreUri('s3://acme-models/mnist/job-1/output/model.tar.gz')).toEqual({
      scheme: 's3',
      bucket: 'acme-models',
      key: 'mnist/job-1/output/model.tar.gz',
    });
  });

  it('parses a versionId', () => {
    expect(parseStoreUri('s3://acme-models/m/model.tar.gz?versionId=3HL4kqtJl.ab_c')).toEqual({
      scheme: 's3',
      bucket: 'acme-models',
      key: 'm/model.tar.gz',
      versionId: '3HL4kqtJl.ab_c',
    });
  });

  it('parses bucket-only and prefix URIs with an empty or slash-terminated key', () => {
    expect(parseStoreUri('s3://acme-models')).toEqual({ scheme: 's3', bucket: 'acme-models', key: '' });
    expect(parseStoreUri('s3://acme-models/')).toEqual({ scheme: 's3', bucket: 'acme-models', key: '' });
    expect(parseStoreUri('s3://acme-models/mnist/')).toEqual({
      scheme: 's3',
      bucket: 'acme-models',
      key: 'mnist/',
    });
  });

  it('takes S3 keys literally, as the AWS CLI does', () => {
    expect(parseStoreUri('s3://b-1/a%20b/c d')).toMatchObject({ key: 'a%20b/c d' });
  });

  it('parses file URIs into absolute paths, decoding escapes and keeping a prefix slash', () => {
    expect(parseStoreUri('file:///tmp/models/model.tar.gz')).toEqual({
      scheme: 'file',
      path: '/tmp/models/model.tar.gz',
    });
    expect(parseStoreUri('file:///tmp/my%20models/')).toEqual({ scheme: 'file', path: '/tmp/my models/' });
  });

  it.each([
    ['', /empty URI/],
    ['   ', /empty URI/],
    ['models/model.tar.gz', /no scheme/],
    ['/tmp/model.tar.gz', /no scheme/],
    ['http://example.com/model.tar.gz', /unsupported scheme "http:"/],
    ['gs://bucket/key', /unsupported scheme "gs:"/],
    ['s3://', /no bucket name/],
    ['s3:bucket/key', /expected s3:\/\/bucket\/key/],
    ['s3:///key', /no bucket name/],
    ['s3://Bad_Bucket/key', /"Bad_Bucket" is not a valid bucket name/],
    ['s3://ab/key', /not a valid bucket name/],
    ['s3://192.168.1.1/key', /not a valid bucket name/],
    ['s3://a..b/key', /not a valid bucket name/],
    ['s3://bucket/key?versionId=', /versionId is empty/],
    ['s3://bucket/key?acl=1', /unsupported query parameter "acl"/],
    ['s3://bucket/key?versionId=a&versionId=b', /versionId given twice/],
    ['s3://bucket/?versionId=a', /needs an object key/],
    ['file://relative/path', /absolute and local/],
    ['file:relative', /absolute and local/],
    ['file:///tmp/x?y=1', /no query/],
  ])('rejects %j', (uri, message) => {
    const err = badUri(uri);
    expect(err.message).toMatch(message);
    if (uri.trim() !== '') expect(err.message).toContain(JSON.stringify(uri));
  });
});

describe('formatStoreUri', () => {
  it.each([
    's3://acme-models/mnist/model.tar.gz',
    's3://acme-models/mnist/model.tar.gz?versionId=abc.DEF_123',
    's3://acme-models/',
    'file:///tmp/models/model.tar.gz',
    'file:///tmp/my%20models/',
  ])('round-trips %s', (uri) => {
    expect(formatStoreUri(parseStoreUri(uri))).toBe(uri);
  });

  it('refuses an S3 key containing "?"', () => {
    expect(() => formatStoreUri({ scheme: 's3', bucket: 'bucket', key: 'a?b' })).toThrow(StoreError);
  });
});

describe('isPrefixUri', () => {
  it('is true only for URIs ending in a slash', () => {
    expect(isPrefixUri('s3://b-1/models/')).toBe(true);
    expect(isPrefixUri('s3://b-1/models/model.tar.gz')).toBe(false);
  });
});

describe('looksLikeUri', () => {
  it.each(['s3://b/k', 's3:/typo', 'S3:b', 'file://relative/x', 'file:x', 'http://x/y', 'git+ssh://h/r'])(
    'takes %s for a URI, so it is parsed and a malformed one reported',
    (text) => {
      expect(looksLikeUri(text)).toBe(true);
    },
  );

  it.each(['model.tar.gz', './models/', '/abs/model.onnx', 'C:/models/model.onnx', 'none', 'dir:name'])(
    'takes %s for a local path',
    (text) => {
      expect(looksLikeUri(text)).toBe(false);
    },
  );
});
