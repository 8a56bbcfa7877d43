import type { Readable } from 'node:stream';

/** A parsed storage URI. */
export type StoreLocation =
  | { readonly scheme: 's3'; readonly bucket: string; readonly key: string; readonly versionId?: string }
  | { readonly scheme: 'file'; readonly path: string };

/** Metadata of one stored object. */
export interface ObjectInfo {
  /** Canonical URI of the object (`s3://b/k[?versionId=v]` or `file:///abs`). */
  readonly uri: string;
  readonly size: number;
  readonly lastModified: Date;
  /** S3 ETag without quotes; absent for files. */
  readonly etag?: string;
  /** S3 version id when the bucket is versioned. */
  readonly versionId?: string;
}

/** Options for `put`. */
export interface PutOptions {
  readonly contentType?: string;
  /** Called with the total bytes uploaded so far. */
  readonly onProgress?: (bytesUploaded: number) => void;
}

/** Options for `get`. */
export interface GetOptions {
  /**
   * Read only if the object's ETag is this one (S3 If-Match); otherwise fail with STORE_CHANGED.
   * Files have no ETag, so `file://` reads ignore it.
   */
  readonly ifMatch?: string;
}

/** Object storage over `s3://` and `file://` URIs, with one behaviour for both. */
export interface ObjectStore {
  /** Stream an object's bytes (never buffered whole). */
  get(uri: string, options?: GetOptions): Promise<Readable>;
  /** Write an object from a stream, buffer or string; large bodies use multipart upload. */
  put(uri: string, body: Readable | Uint8Array | string, options?: PutOptions): Promise<ObjectInfo>;
  /** Metadata of one object. */
  head(uri: string): Promise<ObjectInfo>;
  /** Every object under a prefix URI, across all pages. */
  list(prefixUri: string): AsyncIterable<ObjectInfo>;
  /** The newest `model.tar.gz` under a prefix URI. */
  newestModel(prefixUri: string): Promise<ObjectInfo>;
}
