import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import { ENV } from '../names.ts';
import { pinnableVersionId } from '../shared/s3-pin.ts';
import { isModelUpload } from '../shared/upload-order.ts';
import { StoreError } from './errors.ts';
import { pickNewestModelFrom } from './newest.ts';
import type { GetOptions, ObjectInfo, PutOptions } from './types.ts';
import { formatStoreUri, unquoteEtag } from './uri.ts';

/** Multipart part size: S3's minimum is 5 MiB; 8 MiB matches the AWS CLI default. */
export const MULTIPART_PART_SIZE = 8 * 1024 * 1024;
/** Parts uploaded in parallel (memory held is about queueSize x part size). */
const MULTIPART_QUEUE_SIZE = 4;

/** An S3 object address. */
export interface S3Address {
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
}

/** How to reach S3 (or an S3-compatible server). */
export interface S3StoreOptions {
  /** A ready client (tests pass mocks; callers share connection pools). Wins over the fields below. */
  readonly s3Client?: S3Client;
  /** Custom endpoint (s3rver, MinIO, LocalStack). @default process.env.SLIPWAY_S3_ENDPOINT */
  readonly endpoint?: string;
  /** @default 'us-east-1' with a custom endpoint, else the SDK's region chain (AWS_REGION, profile) */
  readonly region?: string;
  readonly credentials?: S3ClientConfig['credentials'];
  /** @default true with a custom endpoint, else false */
  readonly forcePathStyle?: boolean;
}

/** Builds the S3 client a store uses, applying the custom-endpoint defaults. */
export function createS3Client(options: S3StoreOptions = {}): S3Client {
  if (options.s3Client) return options.s3Client;
  const endpoint = options.endpoint ?? (process.env[ENV.s3Endpoint] || undefined);
  const config: S3ClientConfig = {};
  if (endpoint) {
    config.endpoint = endpoint;
    config.forcePathStyle = options.forcePathStyle ?? true;
    config.region = options.region ?? 'us-east-1';
  } else {
    if (options.region) config.region = options.region;
    if (options.forcePathStyle !== undefined) config.forcePathStyle = options.forcePathStyle;
  }
  if (options.credentials) config.credentials = options.credentials;
  return new S3Client(config);
}

/** One listed object: its key, and its metadata but the URI (which a key with "?" cannot have). */
interface ListedKey {
  readonly key: string;
  readonly info: Omit<ObjectInfo, 'uri'>;
}

function uriOf(address: S3Address): string {
  return formatStoreUri({ scheme: 's3', ...address });
}

function quote(etag: string): string {
  return etag.startsWith('"') || etag.startsWith('W/') ? etag : `"${etag}"`;
}

function unquote(etag: string | undefined): string | undefined {
  return etag === undefined ? undefined : unquoteEtag(etag);
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/** Maps AWS SDK failures to StoreError; `subject` is the URI the caller asked about. */
export function mapS3Error(err: unknown, subject: string): StoreError {
  if (err instanceof StoreError) return err;
  const name = err instanceof Error ? err.name : '';
  const status = statusOf(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (name === 'NoSuchBucket') {
    return new StoreError('STORE_NO_SUCH_BUCKET', `${subject}: bucket does not exist`, { cause: err });
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchVersion' || status === 404) {
    return new StoreError('STORE_NOT_FOUND', `${subject}: object not found`, { cause: err });
  }
  if (name === 'AccessDenied' || name === 'Forbidden' || status === 403) {
    return new StoreError(
      'STORE_ACCESS_DENIED',
      `${subject}: access denied (check the IAM policy and bucket policy)`,
      { cause: err },
    );
  }
  const kind = err instanceof S3ServiceException ? `S3 error ${name} (${status ?? '?'})` : 'request failed';
  return new StoreError('STORE_IO', `${subject}: ${kind}: ${detail}`, { cause: err });
}

/** The `s3://` half of the object store, on AWS SDK v3. */
export class S3ObjectStore {
  constructor(readonly client: S3Client) {}

  /** Streams the body; errors before the first byte (missing object, 403, 412) are thrown here. */
  async get(address: S3Address, options: GetOptions = {}): Promise<Readable> {
    try {
      const response = await this.client.send(
        new GetObjectCommand({
          Bucket: address.bucket,
          Key: address.key,
          VersionId: address.versionId,
          // S3 compares quoted ETags; accept the bare form the rest of Slipway uses.
          ...(options.ifMatch === undefined ? {} : { IfMatch: quote(options.ifMatch) }),
        }),
      );
      const body = response.Body;
      // In Node the SDK's body is an http.IncomingMessage (a Readable) with helper methods mixed in.
      if (body instanceof Readable) return body;
      throw new StoreError('STORE_IO', `${uriOf(address)}: response has no readable body`);
    } catch (err) {
      if (
        options.ifMatch !== undefined &&
        (statusOf(err) === 412 || (err as Error).name === 'PreconditionFailed')
      ) {
        throw new StoreError(
          'STORE_CHANGED',
          `${uriOf(address)}: the object changed: its ETag is no longer ${options.ifMatch}`,
          { cause: err },
        );
      }
      throw await this.#mapWithBucketCheck(err, address);
    }
  }

  async put(
    address: S3Address,
    body: Readable | Uint8Array | string,
    options: PutOptions = {},
  ): Promise<ObjectInfo> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: address.bucket, Key: address.key, Body: body, ContentType: options.contentType },
      partSize: MULTIPART_PART_SIZE,
      queueSize: MULTIPART_QUEUE_SIZE,
      leavePartsOnError: false,
    });
    const { onProgress } = options;
    if (onProgress) {
      upload.on('httpUploadProgress', (progress) => {
        if (progress.loaded !== undefined) onProgress(progress.loaded);
      });
    }
    let versionId: string | undefined;
    try {
      const result = await upload.done();
      versionId = result.VersionId ?? undefined;
    } catch (err) {
      throw mapS3Error(err, uriOf(address));
    }
    return this.head(versionId ? { ...address, versionId } : { bucket: address.bucket, key: address.key });
  }

  async head(address: S3Address): Promise<ObjectInfo> {
    try {
      const response = await this.client.send(
        new HeadObjectCommand({ Bucket: address.bucket, Key: address.key, VersionId: address.versionId }),
      );
      const versionId = pinnableVersionId(response.VersionId || undefined);
      const info: ObjectInfo = {
        uri: uriOf({ bucket: address.bucket, key: address.key, versionId }),
        size: response.ContentLength ?? 0,
        lastModified: response.LastModified ?? new Date(0),
        etag: unquote(response.ETag),
        versionId,
      };
      return info;
    } catch (err) {
      throw await this.#mapWithBucketCheck(err, address);
    }
  }

  async *list(bucket: string, prefix: string): AsyncGenerator<ObjectInfo> {
    for await (const object of this.#listKeys(bucket, prefix)) {
      yield { uri: uriOf({ bucket, key: object.key }), ...object.info };
    }
  }

  /** Finds the newest model by listing, then heads it so the result carries its versionId and ETag. */
  async newestModel(bucket: string, prefix: string): Promise<ObjectInfo> {
    const newest = await pickNewestModelFrom(this.#listModels(bucket, prefix));
    if (!newest) throw new StoreError('STORE_NOT_FOUND', `no model.tar.gz under s3://${bucket}/${prefix}`);
    const key = newest.uri.slice(`s3://${bucket}/`.length);
    return this.head({ bucket, key });
  }

  /**
   * The listed objects that may be models (`isModelUpload`), picked out before they become URIs: one
   * key with "?" under the prefix, which no URI can name, must not hide every model there.
   */
  async *#listModels(bucket: string, prefix: string): AsyncGenerator<ObjectInfo> {
    for await (const { key, info } of this.#listKeys(bucket, prefix)) {
      if (isModelUpload({ key, size: info.size })) yield { uri: uriOf({ bucket, key }), ...info };
    }
  }

  /** Every object under a prefix, across all pages, by key. */
  async *#listKeys(bucket: string, prefix: string): AsyncGenerator<ListedKey> {
    let token: string | undefined;
    do {
      let response;
      try {
        response = await this.client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }),
        );
      } catch (err) {
        throw mapS3Error(err, `s3://${bucket}/${prefix}`);
      }
      for (const object of response.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield {
          key: object.Key,
          info: {
            size: object.Size ?? 0,
            lastModified: object.LastModified ?? new Date(0),
            etag: unquote(object.ETag),
          },
        };
      }
      token = response.IsTruncated ? response.NextContinuationToken : undefined;
    } while (token);
  }

  /** A 404 on HEAD/GET has no body, so "no such bucket" looks like "no such key" until we ask. */
  async #mapWithBucketCheck(err: unknown, address: S3Address): Promise<StoreError> {
    const mapped = mapS3Error(err, uriOf(address));
    if (mapped.code !== 'STORE_NOT_FOUND') return mapped;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: address.bucket }));
    } catch (bucketErr) {
      const status = statusOf(bucketErr);
      const name = bucketErr instanceof Error ? bucketErr.name : '';
      if (status === 404 || name === 'NoSuchBucket' || name === 'NotFound') {
        return new StoreError(
          'STORE_NO_SUCH_BUCKET',
          `${uriOf(address)}: bucket "${address.bucket}" does not exist`,
          {
            cause: err,
          },
        );
      }
    }
    return mapped;
  }
}
