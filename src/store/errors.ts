import { SlipwayError } from '../errors.ts';

/** Stable codes of {@link StoreError}. */
export const STORE_ERROR_CODES = [
  /** The URI is malformed or uses an unsupported scheme or query parameter. */
  'STORE_BAD_URI',
  /** No object at that URI (or nothing matching under a prefix). */
  'STORE_NOT_FOUND',
  /** The S3 bucket does not exist. */
  'STORE_NO_SUCH_BUCKET',
  /** S3 refused the request (403), or the file system refused access. */
  'STORE_ACCESS_DENIED',
  /** The object is not the one asked for: its ETag differs from `ifMatch` (412). */
  'STORE_CHANGED',
  /** Anything else: network failure, disk full, unexpected service error. */
  'STORE_IO',
] as const;

/** One of {@link STORE_ERROR_CODES}. */
export type StoreErrorCode = (typeof STORE_ERROR_CODES)[number];

/** Object storage failed or was asked something impossible; `code` says which. */
export class StoreError extends SlipwayError {
  declare readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** True when `err` is a {@link StoreError}, optionally with the given code. */
export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}
