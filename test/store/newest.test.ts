import { describe, expect, it } from 'vitest';
import { pickNewestModel, pickNewestModelFrom } from '../../src/store/index.ts';
import type { ObjectInfo } from '../../src/store/index.ts';

function object(uri: string, iso: string): ObjectInfo {
  return { uri, size: 1, lastModified: new Date(iso) };
}

describe('pickNewestModel', () => {
  it('passes over an empty model.tar.gz and a key with "#", which the rollout never deploys', () => {
    const objects = [
      object('s3://m-1/a/output/model.tar.gz', '2026-01-01T00:00:00Z'),
      { ...object('s3://m-1/b/output/model.tar.gz', '2026-01-02T00:00:00Z'), size: 0 },
      object('s3://m-1/c#1/output/model.tar.gz', '2026-01-03T00:00:00Z'),
      object('file:///m/d%231/output/model.tar.gz', '2026-01-04T00:00:00Z'),
    ];
    expect(pickNewestModel(objects.slice(0, 3))?.uri).toBe('s3://m-1/a/output/model.tar.gz');
    // A file URI escapes "#" in a name: that file is a model like any other.
    expect(pickNewestModel(objects)?.uri).toBe('file:///m/d%231/output/model.tar.gz');
  });

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

  describe('in a tie on lastModified (S3 keeps it to the second)', () => {
    const second = '2026-01-01T00:00:00Z';
    const newestOf = (...keys: string[]) =>
      pickNewestModel(keys.map((key) => object(`s3://m-1/${key}`, second)))?.uri.slice('s3://m-1/'.length);
    /** The winner, after checking that every rotation of the listing picks the same one. */
    const winner = (...keys: string[]) => {
      const picks = new Set(keys.map((_, i) => newestOf(...keys.slice(i), ...keys.slice(0, i))));
      picks.add(newestOf(...[...keys].reverse()));
      expect(picks.size, `listing order changed the pick: ${[...picks].join(', ')}`).toBe(1);
      return [...picks][0];
    };

    it('reads digit runs as numbers: job-10 is newer than job-9', () => {
      expect(winner('job-9/output/model.tar.gz', 'job-10/output/model.tar.gz')).toBe(
        'job-10/output/model.tar.gz',
      );
      expect(
        winner('job-2/model.tar.gz', 'job-11/model.tar.gz', 'job-100/model.tar.gz', 'job-99/model.tar.gz'),
      ).toBe('job-100/model.tar.gz');
    });

    it('orders timestamps in keys by time, including runs longer than a double holds exactly', () => {
      expect(
        winner(
          'mnist-2026-01-02-10-00-00-001/output/model.tar.gz',
          'mnist-2026-01-02-09-59-59-999/output/model.tar.gz',
        ),
      ).toBe('mnist-2026-01-02-10-00-00-001/output/model.tar.gz');
      expect(winner('run-20260102T000000Z/model.tar.gz', 'run-20260101T235959Z/model.tar.gz')).toBe(
        'run-20260102T000000Z/model.tar.gz',
      );
      expect(winner('job-18446744073709551617/model.tar.gz', 'job-18446744073709551616/model.tar.gz')).toBe(
        'job-18446744073709551617/model.tar.gz',
      );
    });

    it('orders the same key under different prefixes by the prefixes, numbers as numbers', () => {
      expect(winner('team-a/job-1/model.tar.gz', 'team-b/job-1/model.tar.gz')).toBe(
        'team-b/job-1/model.tar.gz',
      );
      expect(winner('v10/job-1/model.tar.gz', 'v2/job-1/model.tar.gz')).toBe('v10/job-1/model.tar.gz');
      expect(winner('a/model.tar.gz', 'a/b/model.tar.gz')).toBe('a/model.tar.gz');
    });

    it('keeps plain string order where no two numbers meet, and for equal numbers padded differently', () => {
      expect(winner('job-x/model.tar.gz', 'job-1/model.tar.gz', 'job--/model.tar.gz')).toBe(
        'job-x/model.tar.gz',
      );
      expect(winner('job-1/model.tar.gz', 'job--/model.tar.gz')).toBe('job-1/model.tar.gz');
      expect(winner('job-09/model.tar.gz', 'job-9/model.tar.gz')).toBe('job-9/model.tar.gz');
      expect(winner('job-010/model.tar.gz', 'job-9/model.tar.gz', 'job-09/model.tar.gz')).toBe(
        'job-010/model.tar.gz',
      );
    });

    it('lets a later lastModified win over any key', () => {
      const older = object('s3://m-1/job-10/model.tar.gz', second);
      const newer = object('s3://m-1/job-9/model.tar.gz', '2026-01-01T00:00:01Z');
      expect(pickNewestModel([older, newer])?.uri).toBe(newer.uri);
      expect(pickNewestModel([newer, older])?.uri).toBe(newer.uri);
    });
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
