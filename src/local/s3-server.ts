import type * as NodeCrypto from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { PortInUseError, isAddressInUse } from './errors.ts';

/** The subset of s3rver's (untyped, CommonJS) API the twin relies on. */
interface S3rverInstance extends EventEmitter {
  configureBuckets(): Promise<unknown>;
  /** With a callback: creates the HTTP server, starts listen() on it and returns it. */
  listen(port: number, address: string, onListening: () => void): Server;
  httpServer?: Server;
}
type S3rverConstructor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}) => S3rverInstance;

const require = createRequire(import.meta.url);
// s3rver ships no type declarations; the interface above pins what we use.
const S3rver = require('s3rver') as S3rverConstructor;

let desShimInstalled = false;

/**
 * s3rver 3.7 encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (Node >= 17)
 * no longer provides, so every truncated listing fails with a 500. The token only has to
 * round-trip through s3rver itself, so "des" is served by AES-128-CBC with the 8-byte key and IV
 * doubled. Only the "des" algorithm name is touched; nothing else in the process uses it.
 */
export function installS3rverDesShim(): void {
  if (desShimInstalled) return;
  desShimInstalled = true;
  const crypto = require('node:crypto') as typeof NodeCrypto;
  const double = (value: unknown): Buffer => {
    const bytes = Buffer.from(value as Uint8Array);
    return Buffer.concat([bytes, bytes]);
  };
  // The same substitution for both directions: "des" becomes AES-128-CBC, anything else passes through.
  type Factory = (algorithm: string, key: Buffer, iv: Buffer, options?: undefined) => unknown;
  const desAsAes = (original: Factory): Factory => {
    return (algorithm, key, iv, options) =>
      algorithm === 'des'
        ? original('aes-128-cbc', double(key), double(iv))
        : original(algorithm, key, iv, options);
  };
  crypto.createCipheriv = desAsAes(crypto.createCipheriv) as typeof crypto.createCipheriv;
  crypto.createDecipheriv = desAsAes(crypto.createDecipheriv) as typeof crypto.createDecipheriv;
}

/** Credentials s3rver accepts (it verifies request signatures against these fixed keys). */
export const LOCAL_S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** Options of {@link startLocalS3}. */
export interface LocalS3Options {
  /** Directory holding the buckets; reused across restarts so objects survive. */
  readonly directory: string;
  /** Buckets to create when missing. */
  readonly buckets: readonly string[];
  /** TCP port on loopback; 0 picks a free one. */
  readonly port?: number;
  /** Bind address (default 127.0.0.1: the twin never listens beyond loopback). */
  readonly address?: string;
}

/** A running local S3 server. */
export interface LocalS3 {
  /** `http://127.0.0.1:<port>`, for path-style S3 clients. */
  readonly endpoint: string;
  readonly port: number;
  /** Emits `event` with an S3 notification (`{ Records: [...] }`) per object created or removed. */
  readonly notifications: EventEmitter;
  /** Stops accepting requests and closes kept-alive sockets. */
  close(): Promise<void>;
}

/**
 * Starts s3rver on loopback over a persistent directory, creating the given buckets.
 *
 * @example const s3 = await startLocalS3({ directory: '.slipway/s3', buckets: ['slipway-models'] });
 */
export async function startLocalS3(options: LocalS3Options): Promise<LocalS3> {
  await mkdir(options.directory, { recursive: true });
  const port = options.port ?? 0;
  installS3rverDesShim();
  const server = new S3rver({
    address: options.address ?? '127.0.0.1',
    port,
    silent: true,
    directory: options.directory,
    configureBuckets: options.buckets.map((name) => ({ name })),
  });
  await server.configureBuckets();
  // Not server.run(): it listens without an 'error' listener, so a taken port crashed the process
  // with an unhandled 'error' event instead of rejecting. This is run() with the listener added.
  const http = await new Promise<Server>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(
        isAddressInUse(err) ? new PortInUseError(port, 'local S3 server', '--s3-port', { cause: err }) : err,
      );
    };
    const listening: Server = server.listen(port, options.address ?? '127.0.0.1', () => {
      listening.off('error', onError);
      resolve(listening);
    });
    listening.once('error', onError);
  });
  server.httpServer = http;
  const address = http.address() as AddressInfo;
  let closed = false;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    notifications: server,
    async close() {
      if (closed) return;
      closed = true;
      const http = server.httpServer;
      if (!http) return;
      const done = new Promise<void>((resolve) => http.close(() => resolve()));
      // SDK clients keep sockets alive; close() alone would wait for them to time out.
      http.closeAllConnections();
      await done;
    },
  };
}
