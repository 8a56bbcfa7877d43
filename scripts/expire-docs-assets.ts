/**
 * Expires the docs site's hashed assets once no published build has used them for a while.
 * docs.yml runs it after uploading a build and invalidating CloudFront.
 *
 * VitePress names every file under `assets/` by its content hash, and pages loaded before a
 * publish keep asking for the assets of their own build: an open tab fetches page chunks as the
 * reader navigates, and a browser or edge may still hold the old HTML. So a publish uploads the
 * new assets next to the old ones, and an asset the new build no longer references is only
 * *marked* stale (an object tag with the time this sweep first found it unreferenced). A later
 * sweep deletes it once it has been stale for `STALE_ASSET_RETENTION_DAYS`. The mark is not the
 * object's LastModified: an asset uploaded months ago may have been in use until this publish.
 *
 * The workflow must PUT every asset of the build on each publish (`aws s3 cp --recursive`, not a
 * sync that may skip unchanged objects): a PUT replaces the object and drops its tags, so an asset
 * that comes back in a later build (a reverted page) loses an old stale mark.
 *
 * Usage: npx tsx scripts/expire-docs-assets.ts --bucket <docs bucket> --dist docs/.vitepress/dist
 */
import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import {
  DeleteObjectsCommand,
  GetObjectTaggingCommand,
  ListObjectsV2Command,
  PutObjectTaggingCommand,
  S3Client,
  type Tag,
} from '@aws-sdk/client-s3';

/** VitePress's `assetsDir`: every file under it carries a content hash in its name. */
export const ASSETS_PREFIX = 'assets/';

/** Object tag holding the time (ISO 8601) a sweep first found the asset unreferenced. */
export const STALE_TAG = 'slipway-stale-since';

/**
 * How long an unreferenced asset stays. Pages published before it went stale may still be open
 * or cached: HTML is revalidated on every visit and the edges are invalidated on publish, but a
 * tab left open loads chunks for days, and HTML published before pages carried Cache-Control may
 * sit in a browser's heuristic cache for a tenth of its age. Stale assets cost almost nothing.
 */
export const STALE_ASSET_RETENTION_DAYS = 30;

const DAY_MS = 24 * 60 * 60 * 1000;

/** An object under `assets/` in the docs bucket, with its stale mark if it has one. */
export interface BucketAsset {
  readonly key: string;
  readonly staleSince?: Date;
}

/** What one sweep does with the bucket's assets. */
export interface SweepPlan {
  /** Referenced by the build just published: left alone. */
  readonly live: readonly string[];
  /** Unreferenced and not yet marked: tag with the sweep's time. */
  readonly mark: readonly string[];
  /** Marked less than the retention ago: kept for pages that may still use them. */
  readonly keep: readonly string[];
  /** Marked at least the retention ago: delete. */
  readonly expire: readonly string[];
}

/**
 * Decides, without I/O, which bucket assets to mark stale, keep or delete. An unreadable mark
 * counts as no mark, so the asset is marked again (it lives longer, never shorter).
 */
export function planAssetSweep(
  current: ReadonlySet<string>,
  objects: readonly BucketAsset[],
  now: Date,
  retentionDays: number = STALE_ASSET_RETENTION_DAYS,
): SweepPlan {
  const plan = { live: [] as string[], mark: [] as string[], keep: [] as string[], expire: [] as string[] };
  for (const { key, staleSince } of objects) {
    const since = staleSince?.getTime();
    if (current.has(key)) plan.live.push(key);
    else if (since === undefined || Number.isNaN(since) || since > now.getTime()) plan.mark.push(key);
    else if (now.getTime() - since >= retentionDays * DAY_MS) plan.expire.push(key);
    else plan.keep.push(key);
  }
  return plan;
}

/** The asset keys of a built site: `assets/<path>` for every file under `<dist>/assets`. */
export async function builtAssetKeys(dist: string): Promise<Set<string>> {
  const dir = join(dist, ASSETS_PREFIX);
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((err: unknown) => {
    throw new Error(`cannot read the build's assets in ${dir} (run npm run docs:build first)`, {
      cause: err,
    });
  });
  return new Set(
    entries
      .filter((e) => e.isFile())
      .map((e) => ASSETS_PREFIX + relative(dir, join(e.parentPath, e.name)).split(sep).join('/')),
  );
}

/** Options of {@link sweepStaleAssets}. */
export interface SweepOptions {
  readonly s3: S3Client;
  readonly bucket: string;
  /** The build just published (VitePress's output directory). */
  readonly dist: string;
  /** @default STALE_ASSET_RETENTION_DAYS */
  readonly retentionDays?: number;
  /** @default the current time */
  readonly now?: Date;
}

/**
 * Marks the bucket's unreferenced assets stale and deletes those stale for the retention.
 * Refuses to run against a build with no assets: that is a wrong `dist`, not a site with none,
 * and would start the clock on every asset the live site uses.
 */
export async function sweepStaleAssets(options: SweepOptions): Promise<SweepPlan> {
  const { s3, bucket } = options;
  const now = options.now ?? new Date();
  const current = await builtAssetKeys(options.dist);
  if (current.size === 0) {
    throw new Error(`the build has no files under ${ASSETS_PREFIX}; refusing to mark the live site stale`);
  }

  const objects: BucketAsset[] = [];
  const tagsOf = new Map<string, Tag[]>();
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: ASSETS_PREFIX, ContinuationToken: token }),
    );
    for (const { Key: key } of page.Contents ?? []) {
      if (key === undefined) continue;
      if (current.has(key)) {
        objects.push({ key });
        continue;
      }
      const { TagSet: tags = [] } = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }));
      tagsOf.set(key, tags);
      const mark = tags.find((t) => t.Key === STALE_TAG)?.Value;
      objects.push(mark === undefined ? { key } : { key, staleSince: new Date(mark) });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);

  const plan = planAssetSweep(current, objects, now, options.retentionDays);
  for (const key of plan.mark) {
    const others = (tagsOf.get(key) ?? []).filter((t) => t.Key !== STALE_TAG);
    await s3.send(
      new PutObjectTaggingCommand({
        Bucket: bucket,
        Key: key,
        Tagging: { TagSet: [...others, { Key: STALE_TAG, Value: now.toISOString() }] },
      }),
    );
  }
  for (let i = 0; i < plan.expire.length; i += 1000) {
    const batch = plan.expire.slice(i, i + 1000);
    const out = await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    const failed = out.Errors ?? [];
    if (failed.length > 0) {
      throw new Error(
        `could not delete ${failed.length} stale asset(s), e.g. ${failed[0]?.Key}: ${failed[0]?.Code} ${failed[0]?.Message}`,
      );
    }
  }
  return plan;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { bucket: { type: 'string' }, dist: { type: 'string' } },
    strict: true,
  });
  if (!values.bucket || !values.dist)
    throw new Error('--bucket <docs bucket> and --dist <built site> are required');
  const s3 = new S3Client({});
  try {
    const plan = await sweepStaleAssets({ s3, bucket: values.bucket, dist: values.dist });
    process.stdout.write(
      `${plan.live.length} live, ${plan.mark.length} newly stale, ${plan.keep.length} kept (stale < ` +
        `${STALE_ASSET_RETENTION_DAYS} days), ${plan.expire.length} deleted\n`,
    );
  } finally {
    s3.destroy();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    process.stderr.write(`expire-docs-assets: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
