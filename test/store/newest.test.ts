import { describe, expect, it } from 'vitest';
import { pickNewestModel, pickNewestModelFrom } from '../../src/store/index.ts';
import type { ObjectInfo } from '../../src/store/index.ts';

function object(uri: string, iso: string): ObjectInfo {
  return { uri, size: 1, lastModified: new Date(iso) };
}

describe('pickNewestModel', () => {
  it('picks the latest model.tar.gz and ignores other objects, however new', () => {
    const objects = [
      object('s3://m-1/a/output/model.tar.gz', '2026-01-01T00:00:00Z'),
      object('s3://m-1/c/output/model.tar.gz', '2026-01-03T00:00:00Z'),
      object('s3://m-1/b/output/model.tar.gz', '2026-01-02T00:00:00Z'),
      object('s3://m-1/z/notes.txt', '2026-02-01T00:00:00Z'),
      object('s3://m-1/z/model.tar.gz.bak', '2026-02-01T00:00:00Z'),
    ];
    expect(pickNewestModel(objects)?.uri).toBe('s3://m-1/c/output/model.tar.gz');
  });

  it('breaks a tie in lastModified by the greater key, whatever the listing order', () => {
    const a = object('s3://m-1/job-20260101/output/model.tar.gz', '2026-01-01T00:00:00Z');
    const b = object('s3://m-1/job-20260102/output/model.tar.gz', '2026-01-01T00:00:00Z');
    expect(pickNewestModel([a, b])?.uri).toBe(b.uri);
    expect(pickNewestModel([b, a])?.uri).toBe(b.uri);
  });

  it('returns undefined when there is no model', () => {
    expect(pickNewestModel([object('s3://m-1/x.txt', '2026-01-01T00:00:00Z')])).toBeUndefined();
  });

  it('works over an async listing', async () => {
    async function* listing(): AsyncGenerator<ObjectInfo> {
      await Promise.resolve();
      yield object('file:///m/a/model.tar.gz', '2026-01-01T00:00:00Z');
      yield object('file:///m/b/model.tar.gz', '2026-01-05T00:00:00Z');
    }
    expect((await pickNewestModelFrom(listing()))?.uri).toBe('file:///m/b/model.tar.gz');
  });
});
