import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  DeleteObjectsCommand,
  GetObjectTaggingCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  STALE_ASSET_RETENTION_DAYS,
  STALE_TAG,
  builtAssetKeys,
  planAssetSweep,
  sweepStaleAssets,
} from '../../scripts/expire-docs-assets.ts';
import { s3rverClient, startS3rver, type RunningS3rver } from '../helpers/s3rver.ts';

const DAY = 24 * 60 * 60 * 1000;
const PUBLISHED = new Date('2026-03-01T12:00:00.000Z');
const daysAfter = (days: number): Date => new Date(PUBLISHED.getTime() + days * DAY);

describe('planAssetSweep', () => {
  const current = new Set(['assets/app.NEW00000.js']);

  it('leaves the assets of the published build alone, even if an old mark is on them', () => {
    const plan = planAssetSweep(
      current,
      [{ key: 'assets/app.NEW00000.js', staleSince: daysAfter(-90) }],
      PUBLISHED,
    );
    expect(plan).toEqual({ live: ['assets/app.NEW00000.js'], mark: [], keep: [], expire: [] });
  });

  it('marks an unreferenced asset the first time, however long ago it was uploaded', () => {
    const plan = planAssetSweep(current, [{ key: 'assets/app.OLD00000.js' }], PUBLISHED);
    expect(plan.mark).toEqual(['assets/app.OLD00000.js']);
    expect(plan.expire).toEqual([]);
  });

  it('keeps a marked asset for the retention and expires it from then on', () => {
    const asset = { key: 'assets/app.OLD00000.js', staleSince: PUBLISHED };
    const at = (days: number) => planAssetSweep(current, [asset], daysAfter(days));
    expect(at(STALE_ASSET_RETENTION_DAYS - 1).keep).toEqual([asset.key]);
    expect(at(STALE_ASSET_RETENTION_DAYS).expire).toEqual([asset.key]);
    expect(at(STALE_ASSET_RETENTION_DAYS + 100).expire).toEqual([asset.key]);
  });

  it('marks again when the mark is unreadable or in the future, so an asset lives longer, never shorter', () => {
    const plan = planAssetSweep(
      current,
      [
        { key: 'assets/a.AAAAAAAA.js', staleSince: new Date('not a date') },
        { key: 'assets/b.BBBBBBBB.js', staleSince: daysAfter(1) },
      ],
      PUBLISHED,
    );
    expect(plan.mark).toEqual(['assets/a.AAAAAAAA.js', 'assets/b.BBBBBBBB.js']);
  });
});

describe('sweepStaleAssets against S3 (s3rver)', () => {
  const BUCKET = 'docs';
  let s3server: RunningS3rver;
  let s3: S3Client;
  let dist: string;

  beforeAll(async () => {
    s3server = await startS3rver({ buckets: [BUCKET] });
    s3 = s3rverClient(s3server.endpoint);
  });
  afterAll(async () => {
    s3.destroy();
    await s3server.stop();
  });
  beforeEach(async () => {
    dist = await mkdtemp(join(tmpdir(), 'slipway-docs-dist-'));
  });
  // s3rver keeps an object's tags across its deletion and re-upload (S3 drops them), so each test
  // uses keys of its own.
  afterEach(async () => {
    await rm(dist, { recursive: true, force: true });
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    const objects = (listed.Contents ?? []).map(({ Key }) => ({ Key }));
    if (objects.length > 0)
      await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: objects } }));
  });

  /** Writes a build's files into `dist` and uploads them, as docs.yml's upload steps do. */
  async function publish(files: readonly string[]): Promise<void> {
    await rm(dist, { recursive: true, force: true });
    for (const file of files) {
      await mkdir(dirname(join(dist, file)), { recursive: true });
      await writeFile(join(dist, file), file);
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: file, Body: file }));
    }
  }

  async function keys(): Promise<string[]> {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'assets/' }));
    return (listed.Contents ?? []).map((o) => o.Key!).sort();
  }

  it('keeps an old build’s assets for the retention after a publish drops them, then deletes them', async () => {
    const first = ['index.html', 'assets/app.AAAAAAAA.js', 'assets/chunks/@localSearch.CCCCCCCC.js'];
    const second = ['index.html', 'assets/app.BBBBBBBB.js', 'assets/chunks/@localSearch.CCCCCCCC.js'];
    await publish(first);
    await publish(second);

    const sweep = (now: Date) => sweepStaleAssets({ s3, bucket: BUCKET, dist, now });
    expect(await sweep(PUBLISHED)).toMatchObject({ mark: ['assets/app.AAAAAAAA.js'], expire: [] });
    const tags = await s3.send(
      new GetObjectTaggingCommand({ Bucket: BUCKET, Key: 'assets/app.AAAAAAAA.js' }),
    );
    expect(tags.TagSet).toEqual([{ Key: STALE_TAG, Value: PUBLISHED.toISOString() }]);

    // A later publish does not restart the clock of an asset already marked.
    expect(await sweep(daysAfter(STALE_ASSET_RETENTION_DAYS - 1))).toMatchObject({
      mark: [],
      keep: ['assets/app.AAAAAAAA.js'],
      expire: [],
    });
    expect(await keys()).toContain('assets/app.AAAAAAAA.js');

    expect(await sweep(daysAfter(STALE_ASSET_RETENTION_DAYS))).toMatchObject({
      expire: ['assets/app.AAAAAAAA.js'],
    });
    expect(await keys()).toEqual(['assets/app.BBBBBBBB.js', 'assets/chunks/@localSearch.CCCCCCCC.js']);
  });

  it('finds the nested asset keys of a build with / separators', async () => {
    await publish(['assets/chunks/theme.DDDDDDDD.js', 'assets/style.EEEEEEEE.css', '404.html']);
    expect([...(await builtAssetKeys(dist))].sort()).toEqual([
      'assets/chunks/theme.DDDDDDDD.js',
      'assets/style.EEEEEEEE.css',
    ]);
  });

  it('refuses a build without assets instead of marking the live site stale', async () => {
    await publish(['assets/app.ZZZZZZZZ.js']);
    await rm(join(dist, 'assets'), { recursive: true });
    await mkdir(join(dist, 'assets'));
    await expect(sweepStaleAssets({ s3, bucket: BUCKET, dist, now: PUBLISHED })).rejects.toThrow(
      /no files under assets\/; refusing/,
    );
    await expect(
      sweepStaleAssets({ s3, bucket: BUCKET, dist: join(dist, 'missing'), now: PUBLISHED }),
    ).rejects.toThrow(/run npm run docs:build first/);
    const tags = await s3.send(
      new GetObjectTaggingCommand({ Bucket: BUCKET, Key: 'assets/app.ZZZZZZZZ.js' }),
    );
    expect(tags.TagSet).toEqual([]);
  });
});
