import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { captureOutput } from '../../helpers/capture-output.ts';
import type { CapturedOutput } from '../../helpers/capture-output.ts';
import { runCli } from '../../../src/cli/program.ts';

let output: CapturedOutput;
let server: Server | undefined;
const seen: string[] = [];

/** A server answering every request with `status` and `body`, recording the paths asked for. */
async function serve(status: number, body: string, contentType: string): Promise<string> {
  server = createServer((req, res) => {
    seen.push(req.url ?? '');
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'content-type': contentType });
      res.end(body);
    });
  });
  await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeEach(() => {
  output = captureOutput();
  seen.length = 0;
});
afterEach(async () => {
  vi.restoreAllMocks();
  if (server) await new Promise((done) => server!.close(done));
  server = undefined;
});

const predict = (url: string): Promise<number> =>
  runCli(['node', 'slipway', 'predict', '--data', '{}', '--url', url, '--json']);

describe('slipway predict --url', () => {
  it('reports a 200 answer that is not JSON with the URL, the status and the start of the body', async () => {
    const base = await serve(200, `<html><body>${'welcome '.repeat(100)}</body></html>`, 'text/html');

    const code = await predict(base);

    expect(code).toBe(1);
    expect(output.stdout).toBe('');
    expect(output.stderr).toMatch(
      new RegExp(
        `^slipway: ${base}/invocations answered 200 with a body that is not JSON .*: "<html><body>welcome welcome `,
      ),
    );
    expect(output.stderr).not.toMatch(/SyntaxError|unexpected error|\n\s+at /);
    expect(output.stderr.length).toBeLessThan(400);
  });

  it('keeps the path prefix of the URL, with or without a trailing slash', async () => {
    const base = await serve(200, '{"predictions": [1]}', 'application/json');

    expect(await predict(`${base}/models/mnist/`)).toBe(0);
    expect(await predict(`${base}/models/mnist`)).toBe(0);
    expect(await predict(base)).toBe(0);

    expect(seen).toEqual(['/models/mnist/invocations', '/models/mnist/invocations', '/invocations']);
  });

  it('rejects a --url that is not an http(s) URL before sending anything', async () => {
    expect(await predict('localhost:8080')).toBe(1);
    expect(output.stderr).toBe('slipway: --url "localhost:8080" is not an http:// or https:// URL\n');
    expect(await predict('127.0.0.1:8080')).toBe(1);
    expect(output.stderr).toMatch(
      /--url "127.0.0.1:8080" is not a URL; expected e.g. http:\/\/127.0.0.1:8080/,
    );
  });
});
