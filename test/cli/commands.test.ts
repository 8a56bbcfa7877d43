import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/slipway.js', import.meta.url));
let dir: string;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: dir }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slipway-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('twin commands without a running twin', () => {
  it('status explains that no twin runs and how to start one, in one line with exit 1', async () => {
    const res = await cli(['status']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/slipway: no local twin is running .*`npx slipway up`/);
    expect(res.stderr).not.toMatch(/at .*\.ts:\d+/);
  });

  it('deploy rejects a key that would never trigger a rollout', async () => {
    const res = await cli(['deploy', 'x.tar.gz', '--key', 'models/x.zip']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/--key "models\/x.zip" must be a relative key ending in model.tar.gz/);
  });

  it('deploy reports a relative file:// URI as a bad URI, in one line with exit 1', async () => {
    const res = await cli(['deploy', 'file://relative/model.tar.gz']);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      'slipway: bad storage URI "file://relative/model.tar.gz": file URIs must be absolute and local: file:///absolute/path\n',
    );
  });

  it('deploy reports a URI of another scheme as unsupported instead of looking for a file', async () => {
    const res = await cli(['deploy', 'https://example.com/model.tar.gz']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /bad storage URI "https:\/\/example.com\/model.tar.gz": unsupported scheme "https:"/,
    );
  });

  it('up rejects a port out of range before starting anything', async () => {
    const res = await cli(['up', '--port', '70000']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/--port must be a whole number from 0 to 65535, got "70000"/);
  });

  it('up names a taken --s3-port in one line with exit 1, as it does a taken --port', async () => {
    const busy = createServer();
    await new Promise<void>((ok) => busy.listen(0, '127.0.0.1', ok));
    const port = (busy.address() as AddressInfo).port;
    try {
      const res = await cli([
        'up',
        '--s3-port',
        String(port),
        '--port',
        '0',
        '--no-train',
        '--state-dir',
        'twin',
      ]);
      expect(res.code).toBe(1);
      expect(res.stderr).toBe(
        `slipway: port ${port} (local S3 server) is already in use by another process; stop it or pick another port with --s3-port <port>\n`,
      );
    } finally {
      await new Promise((done) => busy.close(done));
    }
  });

  it('predict with nothing to send says what to pass', async () => {
    const res = await cli(['predict', '--url', 'http://127.0.0.1:9']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/nothing to predict/);
  });
});
