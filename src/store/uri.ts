import { fileURLToPath, pathToFileURL } from 'node:url';
import { StoreError } from './errors.ts';
import type { StoreLocation } from './types.ts';

// S3 bucket naming rules (general purpose buckets): 3-63 chars of a-z 0-9 . -, letter or digit at
// both ends, no "..", not shaped like an IP address.
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const IP_RE = /^\d{1,3}(\.\d{1,3}){3}$/;

function bad(uri: string, why: string): StoreError {
  return new StoreError('STORE_BAD_URI', `bad storage URI ${JSON.stringify(uri)}: ${why}`);
}

function parseS3(uri: string, rest: string): StoreLocation {
  const queryAt = rest.indexOf('?');
  const path = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const query = queryAt === -1 ? undefined : rest.slice(queryAt + 1);
  const slash = path.indexOf('/');
  const bucket = slash === -1 ? path : path.slice(0, slash);
  const key = slash === -1 ? '' : path.slice(slash + 1);
  if (bucket === '') throw bad(uri, 'no bucket name (expected s3://bucket/key)');
  if (!BUCKET_RE.test(bucket) || bucket.includes('..') || IP_RE.test(bucket)) {
    throw bad(
      uri,
      `"${bucket}" is not a valid bucket name (3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit)`,
    );
  }
  if (query === undefined) return { scheme: 's3', bucket, key };
  const params = new URLSearchParams(query);
  let versionId: string | undefined;
  for (const [name, value] of params) {
    if (name !== 'versionId')
      throw bad(uri, `unsupported query parameter "${name}" (only versionId is allowed)`);
    if (versionId !== undefined) throw bad(uri, 'versionId given twice');
    if (value === '') throw bad(uri, 'versionId is empty');
    versionId = value;
  }
  if (versionId === undefined) throw bad(uri, 'empty query string');
  if (key === '') throw bad(uri, 'a versionId needs an object key');
  return { scheme: 's3', bucket, key, versionId };
}

function parseFile(uri: string): StoreLocation {
  if (!uri.startsWith('file:///')) {
    throw bad(uri, 'file URIs must be absolute and local: file:///absolute/path');
  }
  let url: URL;
  try {
    url = new URL(uri);
  } catch (err) {
    throw new StoreError('STORE_BAD_URI', `bad storage URI ${JSON.stringify(uri)}: not a URL`, {
      cause: err,
    });
  }
  if (url.search !== '' || url.hash !== '') throw bad(uri, 'file URIs take no query or fragment');
  let path: string;
  try {
    path = fileURLToPath(url);
  } catch (err) {
    throw new StoreError(
      'STORE_BAD_URI',
      `bad storage URI ${JSON.stringify(uri)}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  // fileURLToPath drops nothing but normalises; keep the trailing slash that marks a prefix.
  if (uri.endsWith('/') && !path.endsWith('/')) path += '/';
  return { scheme: 'file', path };
}

/**
 * Parses `s3://bucket/key[?versionId=v]` or `file:///abs/path`; throws StoreError `STORE_BAD_URI`
 * naming the URI and the problem. S3 keys are taken literally (no percent-decoding), as the AWS CLI does.
 *
 * @example parseStoreUri('s3://acme-models/mnist/model.tar.gz?versionId=3HL4k')
 */
export function parseStoreUri(uri: string): StoreLocation {
  if (typeof uri !== 'string' || uri.trim() === '') throw bad(String(uri), 'empty URI');
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(uri);
  if (!match) throw bad(uri, 'no scheme (expected s3://bucket/key or file:///absolute/path)');
  const scheme = match[1]!.toLowerCase();
  if (scheme === 'file') return parseFile(uri);
  if (scheme === 's3') {
    if (!match[2]!.startsWith('//')) throw bad(uri, 'expected s3://bucket/key');
    return parseS3(uri, match[2]!.slice(2));
  }
  throw bad(uri, `unsupported scheme "${match[1]}:" (expected s3:// or file://)`);
}

/**
 * True when `text` is meant as a URI rather than a local path: it starts with `s3:` or `file:`, or
 * with a scheme of two or more characters and `:/` (`http://...`, `s3:/typo`). Callers that also
 * take local paths pass such text to {@link parseStoreUri}, so a malformed or unsupported URI is
 * reported as one instead of being looked up as a file. One-letter schemes are drive letters.
 *
 * @example looksLikeUri('http://x/y') // true; looksLikeUri('./models/model.tar.gz') // false
 */
export function looksLikeUri(text: string): boolean {
  return /^(s3|file):/i.test(text) || /^[A-Za-z][A-Za-z0-9+.-]+:\//.test(text);
}

/**
 * Formats a location as its canonical URI (inverse of {@link parseStoreUri}).
 *
 * @example formatStoreUri({ scheme: 's3', bucket: 'b', key: 'k' }) // 's3://b/k'
 */
export function formatStoreUri(location: StoreLocation): string {
  if (location.scheme === 'file') {
    const href = pathToFileURL(location.path).href;
    return location.path.endsWith('/') && !href.endsWith('/') ? `${href}/` : href;
  }
  if (location.key.includes('?')) {
    throw new StoreError(
      'STORE_BAD_URI',
      `S3 key ${JSON.stringify(location.key)} contains "?", which a URI cannot carry`,
    );
  }
  const base = `s3://${location.bucket}/${location.key}`;
  return location.versionId === undefined
    ? base
    : `${base}?versionId=${encodeURIComponent(location.versionId)}`;
}

/** True when the URI names a prefix ("the newest model under it") rather than one object. */
export function isPrefixUri(uri: string): boolean {
  return uri.endsWith('/');
}

/** An ETag as Slipway keeps it: without the quotes S3 puts around it. */
export function unquoteEtag(etag: string): string {
  return etag.replace(/^"|"$/g, '');
}
