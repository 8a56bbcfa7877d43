import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortInUseError } from '../../src/local/errors.ts';
import { startLocalS3 } from '../../src/local/s3-server.ts';

let dir: string;
let busy: Server;
let busyPort: number;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slipway-local-s3-'));
  busy = createServer();
  await new Promise<void>((ok) => busy.listen(0, '127.0.0.1', ok));
  busyPort = (busy.address() as AddressInfo).port;
});
afterEach(async () => {
  await new Promise<void>((done) => busy.close(() => done()));
  await rm(dir, { recursive: true, force: true });
});

describe('startLocalS3', () => {
  it('rejects with PortInUseError naming --s3-port when the port is taken, instead of crashing', async () => {
    const started = startLocalS3({ directory: dir, buckets: ['slipway-models'], port: busyPort });

    await expect(started).rejects.toBeInstanceOf(PortInUseError);
    await expect(started).rejects.toThrow(
      `port ${busyPort} (local S3 server) is already in use by another process; stop it or pick another port with --s3-port <port>`,
    );
  });

  it('serves the buckets on a free port', async () => {
    const s3 = await startLocalS3({ directory: dir, buckets: ['slipway-models'], port: 0 });
    try {
      const res = await fetch(`${s3.endpoint}/slipway-models`, { method: 'HEAD' });
      expect(s3.port).toBeGreaterThan(0);
      expect(res.status).not.toBe(404);
    } finally {
      await s3.close();
    }
  });
});
