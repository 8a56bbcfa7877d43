import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../helpers/conformance.ts';

const BIN = join(REPO_ROOT, 'bin', 'slipway.js');

/** Runs `slipway serve ...`; a serve that started would run until the timeout kills it. */
function serve(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'serve', '--model', 'none', ...args],
      { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, timeout: 20_000 },
      (err, _stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stderr });
      },
    );
  });
}

let busy: Server;
let busyPort: number;
beforeAll(async () => {
  busy = createServer();
  await new Promise<void>((ok) => busy.listen(0, '0.0.0.0', ok));
  busyPort = (busy.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((done) => busy.close(() => done())));

describe('slipway serve cannot listen', () => {
  it('names a port another process holds, in one line with exit 1', async () => {
    const res = await serve(['--port', String(busyPort)]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      `slipway: cannot listen on 0.0.0.0:${busyPort}: port ${busyPort} is already in use by another process; stop it or pick another port with --port <n> (or PORT)\n`,
    );
  });

  it('names a --host that is not an address of this machine, in one line with exit 1', async () => {
    const res = await serve(['--port', '0', '--host', '999.1.1.1']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /^slipway: cannot listen on 999\.1\.1\.1:0: "999\.1\.1\.1" is not an address of this machine; pass one with --host/,
    );
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('slipway serve number settings', () => {
  it.each([
    [['--port', ''], '--port must be a whole number from 0 to 65535, got ""'],
    [['--port', '0x2'], '--port must be a whole number from 0 to 65535, got "0x2"'],
    [['--workers', '1e0'], '--workers must be a whole number from 1 to 64, got "1e0"'],
    [['--max-batch-size', '8.0'], '--max-batch-size must be a whole number from 1 to 4096, got "8.0"'],
  ])('refuses %j as up --port would, before listening', async (args, message) => {
    const res = await serve(args);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(`slipway: ${message}\n`);
  });

  it('refuses an environment variable that is not a decimal whole number', async () => {
    const res = await serve([], { PORT: '0x1F90' });
    expect(res.code).toBe(1);
    expect(res.stderr).toBe('slipway: PORT must be a whole number from 0 to 65535, got "0x1F90"\n');
  });
});

describe('slipway serve --model', () => {
  it('reports a malformed URI as train --data does, instead of serving a missing local path', async () => {
    const res = await serve(['--port', '0', '--model', 'http://x/y']);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      'slipway: --model: bad storage URI "http://x/y": unsupported scheme "http:" (expected s3:// or file://)\n',
    );
  });
});
