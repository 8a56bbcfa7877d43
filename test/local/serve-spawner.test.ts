import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NO_MODEL_URI } from '../../src/names.ts';
import { announcedPort } from '../../src/local/supervisor.ts';
import { serveSpawner, taskLogLevel } from '../../src/local/twin.ts';

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('serveSpawner', () => {
  it('starts `slipway serve` on a port of its own, which it announces even when the twin logs only warnings', async () => {
    vi.stubEnv('LOG_LEVEL', 'warn');
    const child = serveSpawner({})({ taskId: 't1', modelUri: NO_MODEL_URI, model: { uri: NO_MODEL_URI } });
    try {
      let port: number | undefined;
      for await (const line of createInterface({ input: child.stdout! })) {
        port = announcedPort(line);
        if (port !== undefined) break;
      }
      expect(port).toBeGreaterThan(0);
      const res = await fetch(`http://127.0.0.1:${port}/v2/health/ready`);
      expect(res.status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    }
  }, 30_000);
});

describe('taskLogLevel', () => {
  it('keeps a level that shows info lines and raises any other to info', () => {
    expect(
      ['trace', 'debug', 'info', 'warn', 'error', 'silent', 'fatal', undefined].map(taskLogLevel),
    ).toEqual(['trace', 'debug', 'info', 'info', 'info', 'info', 'info', 'info']);
  });
});
