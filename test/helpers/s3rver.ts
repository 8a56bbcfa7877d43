import type { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { installS3rverDesShim } from '../../src/local/s3-server.ts';

/** The subset of s3rver's (untyped, CommonJS) API this helper uses. */
interface S3rverInstance extends EventEmitter {
  run(): Promise<AddressInfo>;
  httpServer?: Server;
  store: { putObject(object: unknown): Promise<unknown> };
}
type S3ObjectConstructor = new (
  bucket: string,
  key: string,
  content: Buffer,
  metadata: Record<string, string>,
) => unknown;
type S3rverConstructor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}) => S3rverInstance;

const require = createRequire(import.meta.url);
// s3rver ships no type declarations; the interface above pins what we rely on.
const S3rver = require('s3rver') as S3rverConstructor;
const S3Object = require('s3rver/lib/models/object') as S3ObjectConstructor;

/** Credentials s3rver accepts (it checks signatures against these fixed keys). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** A running s3rver on loopback. */
export interface RunningS3rver {
  /** `http://127.0.0.1:<port>`: pass as the S3 endpoint (path-style). */
  readonly endpoint: string;
  /** The temp directory holding the buckets (removed by `stop`). */
  readonly dir: string;
  /** The s3rver instance; emits `event` for S3 notifications (object created/removed). */
  readonly server: EventEmitter;
  /**
   * Writes objects straight into s3rver's store, skipping HTTP: for arranging large fixtures
   * (thousands of keys) quickly. Emits no S3 events.
   */
  seed(bucket: string, keys: readonly string[], body?: string | Buffer): Promise<void>;
  /** Closes the server (and its keep-alive sockets) and deletes `dir`. */
  stop(): Promise<void>;
}

/**
 * Starts s3rver on 127.0.0.1 with an ephemeral port, a fresh temp directory and the given buckets.
 *
 * @example const s3 = await startS3rver({ buckets: ['models'] }); ...; await s3.stop();
 */
export async function startS3rver(options: { buckets?: readonly string[] } = {}): Promise<RunningS3rver> {
  installS3rverDesShim();
  const dir = await mkdtemp(join(tmpdir(), 'slipway-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name })),
  });
  let address: AddressInfo;
  try {
    address = await server.run();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    dir,
    server,
    async seed(bucket, keys, body = '') {
      const content = Buffer.from(body);
      for (const key of keys) {
        await server.store.putObject(new S3Object(bucket, key, content, {}));
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const http = server.httpServer;
      if (http) {
        const closed = new Promise<void>((resolve) => http.close(() => resolve()));
        // SDK clients keep sockets alive; close() alone would wait for them to time out.
        http.closeAllConnections();
        await closed;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An S3 client configured for a running s3rver (path-style, fixed credentials, us-east-1). */
export function s3rverClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { ...S3RVER_CREDENTIALS },
  });
}
