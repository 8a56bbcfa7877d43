import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { METHODS } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { REQUEST_TIMEOUT_MS, createApp } from '../../src/serve/app.ts';
import { NO_MODEL_MESSAGE } from '../../src/serve/model-host.ts';
import type { Classification } from '../../src/serve/routes/sagemaker.ts';
import { buildConstant, writeClassifierDir } from './fixtures/onnx-builder.ts';
import { binaryRequest, encodeTensorBytes, postBinary } from './fixtures/binary-client.ts';
import { assertMatchesSchema } from './fixtures/openapi.ts';
import {
  getJson,
  listenApp,
  parseRawResponse,
  postJson,
  requestsCounted,
  sendRaw,
  testConfig,
} from './fixtures/serve-app.ts';
import type { ListeningApp } from './fixtures/serve-app.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'slipway-serve-app-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const row = [0.1, 0.2, 0.3, 0.4];

describe('with MODEL_URI=none (first deployment, no model yet)', () => {
  let server: ListeningApp;
  beforeAll(async () => {
    server = await listenApp(testConfig());
    await server.host.load('none');
  });
  afterAll(() => server.close());

  it('is live and ready, and GET / says no model is deployed', async () => {
    expect((await getJson(`${server.url}/ping`)).status).toBe(200);
    expect((await getJson(`${server.url}/v2/health/ready`)).status).toBe(200);
    expect((await getJson(`${server.url}/v2/health/live`)).status).toBe(200);
    expect(await getJson(`${server.url}/`)).toEqual({
      status: 200,
      body: { status: 'none', message: NO_MODEL_MESSAGE },
    });
  });

  it('answers every prediction with 503 and the no-model message', async () => {
    const v2 = await postJson(`${server.url}/v2/models/any/infer`, {
      inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }],
    });
    const sm = await postJson(`${server.url}/invocations`, { instances: [row] });
    for (const res of [v2, sm]) {
      expect(res.status).toBe(503);
      expect(res.body).toEqual({
        error: 'no model is deployed yet; upload a model.tar.gz to the models bucket',
      });
    }
  });

  it('counts the answers Fastify gives before routing (a bad percent-escape, a too-long parameter) as unmatched', async () => {
    const unmatched = (status: string) =>
      requestsCounted(server.metrics, { route: 'unmatched', method: 'GET', status });
    const [before400, before414] = [await unmatched('400'), await unmatched('414')];
    expect((await getJson(`${server.url}/v2/models/a%zz/ready`)).status).toBe(400);
    expect((await getJson(`${server.url}/v2/models/${'x'.repeat(1100)}/ready`)).status).toBe(414);
    await vi.waitFor(async () => expect(await unmatched('414')).toBe(before414 + 1));
    expect(await unmatched('400')).toBe(before400 + 1);
    expect(server.inflightRequests()).toBe(0);
    expect((await server.metrics.inflight.get()).values[0]!.value).toBe(0);
  });

  describe('a known path asked with a method it does not answer', () => {
    const send = async (method: string, path: string, init: RequestInit = {}) => {
      const res = await fetch(`${server.url}${path}`, { method, ...init });
      const text = await res.text();
      return { status: res.status, allow: res.headers.get('allow'), text };
    };

    it.each([
      ['GET', '/invocations', 'POST'],
      ['POST', '/ping', 'GET, HEAD'],
      ['DELETE', '/v2/models/x/infer', 'POST'],
      ['GET', '/v2/models/x/versions/2/infer', 'POST'],
      ['PUT', '/v2/models/x/ready', 'GET, HEAD'],
      ['POST', '/v2/', 'GET, HEAD'],
      ['OPTIONS', '/metrics', 'GET, HEAD'],
    ])('answers %s %s with 405, Allow: %s and an {"error"} naming both', async (method, path, allow) => {
      const res = await send(method, path);
      expect(res.status).toBe(405);
      expect(res.allow).toBe(allow);
      const body: unknown = JSON.parse(res.text);
      assertMatchesSchema('inference_error_response', body);
      expect(body).toEqual({ error: `method ${method} is not allowed on ${path}; use ${allow}` });
    });

    it('answers 405 before reading the body, whatever its type or size', async () => {
      const xml = await send('PUT', '/invocations?x=1', {
        headers: { 'content-type': 'application/xml' },
        body: '<a/>',
      });
      expect(xml.status).toBe(405);
      expect(JSON.parse(xml.text)).toEqual({ error: 'method PUT is not allowed on /invocations; use POST' });
      const big = await send('DELETE', '/v2/models/x/infer', {
        headers: { 'content-type': 'application/json' },
        body: 'x'.repeat(2 * 1024 * 1024),
      });
      expect(big.status).toBe(405);
    });

    it('answers every other method the HTTP parser accepts (PROPFIND, MKCOL, M-SEARCH, ...) the same way, counted', async () => {
      // CONNECT never reaches the routes; HEAD and POST are served on /invocations or answered above.
      const methods = METHODS.filter((method) => !['CONNECT', 'HEAD', 'POST'].includes(method));
      for (const method of methods) {
        const ask = async (path: string) =>
          parseRawResponse(
            await sendRaw(server.url, `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
          );
        const known = await ask('/invocations');
        expect({ method, status: known.status, allow: known.headers.get('allow') }).toEqual({
          method,
          status: 405,
          allow: 'POST',
        });
        expect(JSON.parse(known.body)).toEqual({
          error: `method ${method} is not allowed on /invocations; use POST`,
        });
        const unknown = await ask('/nope');
        expect({ method, status: unknown.status }).toEqual({ method, status: 404 });
        expect(JSON.parse(unknown.body)).toEqual({ error: `no route ${method} /nope` });
      }
      const counted = (method: string, route: string, status: string) =>
        requestsCounted(server.metrics, { route, method, status });
      await vi.waitFor(async () => expect(await counted('PROPFIND', 'unmatched', '404')).toBe(1));
      expect(await counted('PROPFIND', '/invocations', '405')).toBe(1);
      expect(await counted('M-SEARCH', '/invocations', '405')).toBe(1);
    });

    it('answers CONNECT, which Node never hands to the routes, the same way, counted, and then closes', async () => {
      const known = parseRawResponse(
        await sendRaw(server.url, 'CONNECT /invocations HTTP/1.1\r\nHost: x\r\n\r\n'),
      );
      expect({ status: known.status, allow: known.headers.get('allow') }).toEqual({
        status: 405,
        allow: 'POST',
      });
      expect(known.headers.get('connection')).toBe('close');
      expect(JSON.parse(known.body)).toEqual({
        error: 'method CONNECT is not allowed on /invocations; use POST',
      });
      const tunnel = parseRawResponse(
        await sendRaw(server.url, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'),
      );
      expect(tunnel.status).toBe(400);
      expect(JSON.parse(tunnel.body)).toEqual({
        error: 'the request target is not a path: it must start with / (this service is not a proxy)',
      });
      const counted = (route: string, status: string) =>
        requestsCounted(server.metrics, { route, method: 'CONNECT', status });
      await vi.waitFor(async () => expect(await counted('unmatched', '400')).toBe(1));
      expect(await counted('/invocations', '405')).toBe(1);
      expect(server.inflightRequests()).toBe(0);
    });

    it('answers an Expect header other than 100-continue with a 417 that says so, counted under the route', async () => {
      const reply = parseRawResponse(
        await sendRaw(
          server.url,
          'POST /invocations HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
        ),
      );
      expect(reply.status).toBe(417);
      expect(reply.headers.get('connection')).toBe('close');
      expect(JSON.parse(reply.body)).toEqual({
        error: 'the Expect header "200-ok" is not supported; send none, or Expect: 100-continue',
      });
      await vi.waitFor(async () =>
        expect(
          await requestsCounted(server.metrics, { route: '/invocations', method: 'POST', status: '417' }),
        ).toBe(1),
      );
      expect(server.inflightRequests()).toBe(0);
    });

    it('answers an HTTP/1.1 request without Host with a 400 that says so, counted; HTTP/1.0 needs none', async () => {
      const reply = parseRawResponse(await sendRaw(server.url, 'GET /v2/health/live HTTP/1.1\r\n\r\n'));
      expect(reply.status).toBe(400);
      expect(reply.headers.get('connection')).toBe('close');
      expect(JSON.parse(reply.body)).toEqual({
        error: 'the request has no Host header, which HTTP/1.1 requires',
      });
      await vi.waitFor(async () =>
        expect(
          await requestsCounted(server.metrics, { route: '/v2/health/live', method: 'GET', status: '400' }),
        ).toBe(1),
      );
      const old = parseRawResponse(await sendRaw(server.url, 'GET /v2/health/live HTTP/1.0\r\n\r\n'));
      expect(old.status).toBe(200);
    });

    it('answers HEAD on a POST-only path with 405 and no body', async () => {
      expect(await send('HEAD', '/invocations')).toEqual({ status: 405, allow: 'POST', text: '' });
    });

    it('still answers 404 for unknown paths, whatever the method, and serves the right methods', async () => {
      for (const method of ['GET', 'POST', 'DELETE']) {
        const res = await send(method, '/nope');
        expect(res.status).toBe(404);
        expect(JSON.parse(res.text)).toEqual({ error: `no route ${method} /nope` });
      }
      expect((await send('GET', '/ping')).status).toBe(200);
      expect((await send('HEAD', '/ping')).status).toBe(200);
    });

    it('answers 404 on an unknown path before reading the body, whatever its type, size or method', async () => {
      const cases: [string, string, RequestInit][] = [
        ['POST', '/nope', { headers: { 'content-type': 'application/json' }, body: '{"inputs": [' }],
        [
          'PUT',
          '/v2/models/x/nope',
          { headers: { 'content-type': 'application/json' }, body: '{'.repeat(2 << 20) },
        ],
        ['POST', '/nope', { headers: { 'content-type': 'text/csv' }, body: 'a,b' }],
        ['QUERY', '/nope', {}],
      ];
      for (const [method, path, init] of cases) {
        const res = await send(method, path, init);
        expect({ method, path, status: res.status }).toEqual({ method, path, status: 404 });
        expect(JSON.parse(res.text)).toEqual({ error: `no route ${method} ${path}` });
      }
    });

    it('counts 405s under the route pattern, not the path asked', async () => {
      await send('DELETE', '/v2/models/some-model-name/infer');
      const text = await (await fetch(`${server.url}/metrics`)).text();
      expect(text).toMatch(
        /slipway_http_requests_total\{route="\/v2\/models\/:name\/infer",method="DELETE",status="405"\} [1-9]/,
      );
      expect(text).not.toMatch(/some-model-name/);
    });
  });
});

describe('requests whose connection closes before the answer', () => {
  /** The app with one extra route whose answer waits until the test releases it. */
  let server: ListeningApp;
  let release: () => void = () => undefined;
  beforeAll(async () => {
    const built = await createApp({ config: testConfig() });
    built.app.post('/test/held', async () => {
      await new Promise<void>((resolve) => (release = resolve));
      return { ok: true };
    });
    await built.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = built.app.server.address() as AddressInfo;
    server = { ...built, url: `http://127.0.0.1:${port}`, close: () => built.app.close() };
    await server.host.load('none');
  });
  afterAll(() => server.close());

  const postsCounted = (route: string, status: string): Promise<number> =>
    requestsCounted(server.metrics, { route, method: 'POST', status });
  const inflightGauge = async (): Promise<number> => (await server.metrics.inflight.get()).values[0]!.value;

  /** Opens a raw connection, writes `text`, and resolves once the server has taken the request. */
  const sendPart = async (text: string): Promise<Socket> => {
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(text);
    await vi.waitFor(() => expect(server.inflightRequests()).toBe(1));
    return socket;
  };

  it.each([
    ['closes', (socket: Socket) => socket.destroy()],
    ['resets', (socket: Socket) => socket.resetAndDestroy()],
  ])(
    'counts a request whose client %s its connection mid-body as 499 and leaves nothing in flight',
    async (_how, cut) => {
      const before = await postsCounted('/invocations', '499');
      const socket = await sendPart(
        'POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
          'Content-Length: 100\r\n\r\n{"instances": [[1, 2',
      );
      cut(socket);
      await vi.waitFor(async () => expect(await postsCounted('/invocations', '499')).toBe(before + 1));
      expect(server.inflightRequests()).toBe(0);
      expect(await inflightGauge()).toBe(0);
      expect(await postsCounted('/invocations', '400')).toBe(0);
    },
  );

  it('counts a request whose client leaves before the answer as 499, once, even when the answer comes later', async () => {
    const socket = await sendPart(
      'POST /test/held HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
    );
    socket.destroy();
    await vi.waitFor(async () => expect(await postsCounted('/test/held', '499')).toBe(1));
    expect(await inflightGauge()).toBe(0);
    release();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await postsCounted('/test/held', '499')).toBe(1);
    expect(await postsCounted('/test/held', '200')).toBe(0);
  });

  it('counts a body the HTTP parser refuses mid-way under the status it answered, not as 499', async () => {
    const before = await postsCounted('/invocations', '499');
    const before400 = await postsCounted('/invocations', '400');
    const socket = await sendPart(
      'POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n',
    );
    const answer = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      socket.on('close', () => resolve(text));
    });
    socket.write('zz\r\n');
    expect(await answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    await vi.waitFor(async () => expect(await postsCounted('/invocations', '400')).toBe(before400 + 1));
    expect(await postsCounted('/invocations', '499')).toBe(before);
    expect(await inflightGauge()).toBe(0);
  });
});

describe('before and after a failed load', () => {
  it('is not ready while loading (503 + Retry-After) and stays not ready with the reason when the artifact is bad', async () => {
    const server = await listenApp(testConfig());
    try {
      const loading = await postJson(`${server.url}/invocations`, { instances: [row] });
      expect(loading.status).toBe(503);
      expect(loading.headers.get('retry-after')).toBe('5');
      expect((await getJson(`${server.url}/ping`)).status).toBe(503);

      const bad = join(root, 'bad');
      await writeClassifierDir(bad);
      await writeFile(join(bad, 'model.onnx'), 'not an onnx model');
      const state = await server.host.load(bad);
      expect(state.status).toBe('failed');
      for (const path of ['/ping', '/v2/health/ready', '/']) {
        const res = await getJson(`${server.url}${path}`);
        expect(res.status).toBe(503);
        expect(JSON.stringify(res.body)).toMatch(/SHA-256/);
      }
      expect((await getJson(`${server.url}/v2/health/live`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('serving a classifier with a manifest', () => {
  let server: ListeningApp;
  let dir: string;
  beforeAll(async () => {
    dir = await writeClassifierDir(join(root, 'iris'));
    server = await listenApp(
      // Two threads for a lone run: answers must not depend on which session (wide or not) ran them.
      testConfig({
        workers: 2,
        idleIntraOpThreads: 2,
        maxBatchSize: 8,
        maxBatchDelayMs: 20,
        bodyLimit: 64 * 1024,
      }),
    );
    const state = await server.host.load(dir);
    expect(state.status).toBe('ready');
  });
  afterAll(() => server.close());

  it('identifies the model on GET / (name, version, source, sha256, loadedAt, signature)', async () => {
    const { status, body } = await getJson(`${server.url}/`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      status: 'ready',
      name: 'iris',
      version: '3',
      sourceUri: dir,
      signature: { inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }] },
      labels: ['cat', 'dog', 'bird'],
    });
    expect((body as { sha256: string }).sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse((body as { loadedAt: string }).loadedAt)).not.toBeNaN();
  });

  it('serves server and model metadata that match the OpenAPI document', async () => {
    for (const path of ['/v2', '/v2/'])
      assertMatchesSchema('metadata_server_response', (await getJson(`${server.url}${path}`)).body);
    for (const path of ['/v2/models/iris', '/v2/models/iris/versions/3']) {
      const res = await getJson(`${server.url}${path}`);
      expect(res.status).toBe(200);
      assertMatchesSchema('metadata_model_response', res.body);
    }
    expect((await getJson(`${server.url}/v2/models/iris/ready`)).status).toBe(200);
    expect((await getJson(`${server.url}/v2/models/iris/versions/3/ready`)).status).toBe(200);
  });

  it('reads a JSON body that starts with a UTF-8 byte order mark', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: row }] });
    const res = await fetch(`${server.url}/v2/models/iris/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(body)]),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { outputs: unknown[] }).outputs.length).toBeGreaterThan(0);
  });

  it('infers over v2, echoing the id and honouring requested outputs', async () => {
    const res = await postJson(`${server.url}/v2/models/iris/versions/3/infer`, {
      id: 'req-1',
      inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: [row, row] }],
      outputs: [{ name: 'probs' }],
    });
    expect(res.status).toBe(200);
    assertMatchesSchema('inference_response', res.body);
    const body = res.body as {
      id: string;
      model_name: string;
      model_version: string;
      outputs: { name: string; shape: number[]; data: number[] }[];
    };
    expect(body).toMatchObject({ id: 'req-1', model_name: 'iris', model_version: '3' });
    expect(body.outputs).toHaveLength(1);
    expect(body.outputs[0]!.shape).toEqual([2, 3]);
    const sum = body.outputs[0]!.data.slice(0, 3).reduce((a, b) => a + b, 0);
    expect(sum).toBeCloseTo(1, 5);
  });

  it('classifies /invocations instances with the top label and scores, in every body form', async () => {
    const instances = await postJson(`${server.url}/invocations`, { instances: [row, [4, 3, 2, 1]] });
    expect(instances.status).toBe(200);
    const predictions = (
      instances.body as { predictions: { label: string; index: number; scores: number[] }[] }
    ).predictions;
    expect(predictions).toHaveLength(2);
    for (const p of predictions) {
      expect(['cat', 'dog', 'bird']).toContain(p.label);
      expect(p.scores).toHaveLength(3);
      expect(p.scores[p.index]).toBe(Math.max(...p.scores));
    }
    const named = await postJson(`${server.url}/invocations`, {
      instances: [{ x: row }, { x: [4, 3, 2, 1] }],
    });
    const columnar = await postJson(`${server.url}/invocations`, { inputs: { x: [row, [4, 3, 2, 1]] } });
    const csv = await fetch(`${server.url}/invocations`, {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body: '0.1,0.2,0.3,0.4\n4,3,2,1\n',
    });
    expect(named.body).toEqual(instances.body);
    expect(columnar.body).toEqual(instances.body);
    expect(await csv.json()).toEqual(instances.body);
  });

  it('coalesces concurrent requests into batches and splits the results back exactly', async () => {
    const rows = Array.from({ length: 24 }, (_, i) => [i / 10, 1 - i / 20, (i % 3) / 2, 0.5]);
    const alone = await Promise.all(
      rows.map(async (r) => {
        const res = await postJson(`${server.url}/v2/models/iris/infer`, {
          inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: r }],
        });
        return res.body;
      }),
    );
    const before = await server.metrics.batchRequests.get();
    const together = await Promise.all(
      rows.map((r) =>
        postJson(`${server.url}/v2/models/iris/infer`, {
          inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: r }],
        }),
      ),
    );
    expect(together.map((r) => r.body)).toEqual(alone);
    const after = await server.metrics.batchRequests.get();
    // Batch buffers are reused across batches: rounds in a different order, half of them binary,
    // must still give each row its own answer.
    const probs = (body: unknown) => (body as { outputs: { data: number[] }[] }).outputs[0]!.data;
    for (let round = 1; round <= 4; round++) {
      const order = rows.map((_, i) => (i * 7 + round) % rows.length);
      const answers = await Promise.all(
        order.map(async (i, k) => {
          if (k % 2 === 0) {
            const res = await postJson(`${server.url}/v2/models/iris/infer`, {
              inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: rows[i]! }],
            });
            return probs(res.body);
          }
          const res = await postBinary(
            `${server.url}/v2/models/iris/infer`,
            binaryRequest([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: rows[i]! }]),
          );
          return res.response!.outputs[0]!.data as number[];
        }),
      );
      answers.forEach((got, k) =>
        expect(got, `round ${round}, row ${order[k]}`).toEqual(probs(alone[order[k]!])),
      );
    }
    const sum = (m: typeof after) =>
      m.values.find((v) => v.metricName === 'slipway_batch_requests_sum')?.value ?? 0;
    const count = (m: typeof after) =>
      m.values.find((v) => v.metricName === 'slipway_batch_requests_count')?.value ?? 0;
    // More requests than runs means at least one run carried several requests.
    expect(sum(after) - sum(before)).toBe(24);
    expect(count(after) - count(before)).toBeLessThan(24);
  });

  it('exposes Prometheus metrics with the model version', async () => {
    const res = await fetch(`${server.url}/metrics`);
    const text = await res.text();
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    expect(text).toMatch(
      /slipway_model_info\{name="iris",version="3",sha256="[0-9a-f]{64}",source="[^"]+"\} 1/,
    );
    expect(text).toMatch(
      /slipway_http_requests_total\{route="\/v2\/models\/:name\/infer",method="POST",status="200"\} \d+/,
    );
    expect(text).toMatch(/slipway_batch_size_bucket/);
    expect(text).toMatch(/slipway_queue_depth/);
  });

  const bad: [string, string, unknown, number, RegExp][] = [
    [
      'unknown input',
      '/v2/models/iris/infer',
      { inputs: [{ name: 'y', shape: [1, 4], datatype: 'FP32', data: row }] },
      400,
      /unknown input 'y'.*inputs are: x/,
    ],
    ['missing input', '/v2/models/iris/infer', { inputs: [] }, 400, /missing input\(s\): x/],
    [
      'extra input',
      '/v2/models/iris/infer',
      {
        inputs: [
          { name: 'x', shape: [1, 4], datatype: 'FP32', data: row },
          { name: 'x', shape: [1, 4], datatype: 'FP32', data: row },
        ],
      },
      400,
      /more than once/,
    ],
    [
      'wrong datatype',
      '/v2/models/iris/infer',
      { inputs: [{ name: 'x', shape: [1, 4], datatype: 'INT32', data: [1, 2, 3, 4] }] },
      400,
      /expects datatype FP32, got INT32/,
    ],
    [
      'shape vs data',
      '/v2/models/iris/infer',
      { inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: row }] },
      400,
      /needs 8 elements but data has 4/,
    ],
    [
      'wrong shape',
      '/v2/models/iris/infer',
      { inputs: [{ name: 'x', shape: [1, 5], datatype: 'FP32', data: [...row, 1] }] },
      400,
      /dim 1 must be 4/,
    ],
    [
      'NaN in ints',
      '/v2/models/iris/infer',
      { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 'nope'] }] },
      400,
      /data\[3\] = "nope"/,
    ],
    [
      'unknown model',
      '/v2/models/other/infer',
      { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: row }] },
      404,
      /unknown model 'other'/,
    ],
    [
      'unknown version',
      '/v2/models/iris/versions/9/infer',
      { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: row }] },
      404,
      /unknown version '9'/,
    ],
    [
      'unknown output',
      '/v2/models/iris/infer',
      { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: row }], outputs: [{ name: 'z' }] },
      400,
      /unknown output 'z'/,
    ],
    [
      'batch over limit',
      '/v2/models/iris/infer',
      { inputs: [{ name: 'x', shape: [65, 4], datatype: 'FP32', data: new Array(260).fill(0) }] },
      400,
      /batch of 65 rows, over the limit of 64/,
    ],
    [
      'shape as string',
      '/v2/models/iris/infer',
      { inputs: [{ name: 'x', shape: ['1', 4], datatype: 'FP32', data: row }] },
      400,
      /shape\/0 must be integer/,
    ],
    ['malformed JSON', '/v2/models/iris/infer', '{"inputs": [', 400, /malformed JSON/],
    ['deep JSON', '/invocations', '['.repeat(10_000) + ']'.repeat(10_000), 400, /nested deeper than 64/],
    ['ragged instances', '/invocations', { instances: [row, [1, 2]] }, 400, /instance 1 has 2 values/],
    ['not an envelope', '/invocations', { foo: 1 }, 400, /expected a JSON object \{"instances"/],
    ['bad CSV', '/invocations', null, 400, /CSV line 1, column 2/],
    [
      'FP32 beyond its range',
      '/v2/models/iris/infer',
      { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 1e300, 3, 4] }] },
      400,
      /data\[1\] = 1e\+300 is outside the FP32 range/,
    ],
    [
      'both instances and inputs',
      '/invocations',
      { instances: [row], inputs: [row] },
      400,
      /both "instances" and "inputs"/,
    ],
  ];
  it.each(bad)(
    'rejects %s with a clear 4xx naming the problem',
    async (_what, path, body, status, message) => {
      const res =
        body === null
          ? await fetch(`${server.url}${path}`, {
              method: 'POST',
              headers: { 'content-type': 'text/csv' },
              body: '1,x,3,4',
            }).then(async (r) => ({ status: r.status, body: await r.json() }))
          : await postJson(`${server.url}${path}`, body);
      expect(res.status).toBe(status);
      assertMatchesSchema('inference_error_response', res.body);
      expect((res.body as { error: string }).error).toMatch(message);
    },
  );

  it('classifies NaN scores as no label, never as an arbitrary one, and keeps them as "NaN"', async () => {
    const res = await postJson(`${server.url}/invocations`, { instances: [['NaN', 2, 3, 4], row] });
    expect(res.status).toBe(200);
    const [nan, ok] = (res.body as { predictions: Classification[] }).predictions;
    expect(nan).toEqual({ label: null, index: null, scores: ['NaN', 'NaN', 'NaN'] });
    expect(ok!.label).toBe(['cat', 'dog', 'bird'][ok!.index!]);
  });

  it('reads only decimal numbers from CSV', async () => {
    for (const cell of ['0x10', '0b1', '1e999', ' ', '1_0']) {
      const res = await fetch(`${server.url}/invocations`, {
        method: 'POST',
        headers: { 'content-type': 'text/csv' },
        body: `1,2,${cell},4\n`,
      });
      expect(res.status, cell).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/CSV line 1, column 3/);
    }
    const fine = await fetch(`${server.url}/invocations`, {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body: '+1.5,-.5,2e-1,3.\n',
    });
    expect(fine.status).toBe(200);
  });

  it('answers errors found before routing or by the HTTP parser with an {"error"} that says what was wrong', async () => {
    const badUrl = await getJson(`${server.url}/v2/models/a%20b%c/ready`);
    expect(badUrl.status).toBe(400);
    expect(badUrl.body).toEqual({ error: expect.stringMatching(/percent-escape/) as unknown });
    const long = await getJson(`${server.url}/v2/models/${'x'.repeat(1100)}/ready`);
    expect(long.status).toBe(414);
    expect(long.body).toEqual({ error: expect.stringMatching(/longer than 1024 characters/) as unknown });
    // 300 characters is within the limit: an unknown model, not a router error.
    expect((await getJson(`${server.url}/v2/models/${'x'.repeat(300)}/ready`)).status).toBe(404);
    const raw = await sendRaw(
      server.url,
      'POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toEqual({
      error: expect.stringMatching(/the HTTP request is malformed/) as unknown,
    });
    expect(server.app.server.requestTimeout).toBe(REQUEST_TIMEOUT_MS);
  });

  it('answers 413 to a body over the limit and 415 to an unsupported content type', async () => {
    const big = await postJson(`${server.url}/v2/models/iris/infer`, {
      pad: 'x'.repeat(70 * 1024),
      inputs: [],
    });
    expect(big.status).toBe(413);
    expect((big.body as { error: string }).error).toMatch(/larger than the limit of 65536 bytes/);
    const xml = await fetch(`${server.url}/invocations`, {
      method: 'POST',
      headers: { 'content-type': 'application/xml' },
      body: '<a/>',
    });
    expect(xml.status).toBe(415);
    expect(((await xml.json()) as { error: string }).error).toMatch(/unsupported Content-Type/);
    // Not read as CSV: text/plain is not one of the accepted types.
    const plain = await fetch(`${server.url}/invocations`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ instances: [row] }),
    });
    expect(plain.status).toBe(415);
    expect(((await plain.json()) as { error: string }).error).toMatch(/text\/csv \(\/invocations\)/);
  });

  describe('binary tensor data extension', () => {
    const infer = () => `${server.url}/v2/models/iris/infer`;
    const raw = async (
      path: string,
      body: Buffer | string,
      headers: Record<string, string>,
    ): Promise<{ status: number; error: string }> => {
      const res = await fetch(`${server.url}${path}`, { method: 'POST', headers, body });
      const text = await res.text();
      return { status: res.status, error: (JSON.parse(text) as { error: string }).error };
    };
    /** A binary body whose JSON header is `header` and whose binary part is `binary`. */
    const body = (header: unknown, binary: Buffer) => {
      const json = Buffer.from(JSON.stringify(header));
      return {
        body: Buffer.concat([json, binary]),
        headers: {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': String(json.length),
        },
      };
    };
    const xInput = (size: number, extra: Record<string, unknown> = {}) => ({
      name: 'x',
      shape: [1, 4],
      datatype: 'FP32',
      parameters: { binary_data_size: size },
      ...extra,
    });
    const rowBytes = encodeTensorBytes('FP32', row);

    it('is announced in the server metadata', async () => {
      expect((await getJson(`${server.url}/v2`)).body).toMatchObject({ extensions: ['binary_tensor_data'] });
    });

    it('takes binary inputs and returns binary outputs that equal the JSON answer', async () => {
      const data = [...row, 0.5, 0.6, 0.7, 0.8];
      const json = await postJson(infer(), {
        inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data }],
      });
      const expected = (json.body as { outputs: { name: string; data: number[] }[] }).outputs;
      const request = binaryRequest([{ name: 'x', datatype: 'FP32', shape: [2, 4], data }], {
        id: 'bin-1',
        parameters: { binary_data_output: true },
      });
      for (const contentType of ['application/octet-stream', 'application/json']) {
        const res = await postBinary(infer(), request, contentType);
        expect(res.status, res.error).toBe(200);
        expect(res.headers.get('content-type')).toBe('application/octet-stream');
        expect(res.response!.header).toMatchObject({ id: 'bin-1', model_name: 'iris', model_version: '3' });
        for (const out of res.response!.outputs) {
          expect(out.binary).toBe(true);
          const want = expected.find((e) => e.name === out.name)!.data;
          out.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
        }
      }
    });

    it('returns JSON outputs unless asked, and honours binary_data per output over binary_data_output', async () => {
      const plain = await postBinary(
        infer(),
        binaryRequest([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: row }]),
      );
      expect(plain.status).toBe(200);
      expect(plain.headers.get('content-type')).toMatch(/application\/json/);
      expect(plain.response!.outputs.every((o) => !o.binary)).toBe(true);

      const ask = (outputParameters: Record<string, unknown>) =>
        postBinary(
          infer(),
          binaryRequest([{ name: 'x', datatype: 'FP32', shape: [1, 4], data: row }], {
            parameters: { binary_data_output: true },
            outputs: [{ name: 'probs', parameters: outputParameters }],
          }),
        );
      expect((await ask({ binary_data: false })).response!.outputs[0]!.binary).toBe(false);
      expect((await ask({})).response!.outputs[0]!.binary).toBe(true);
    });

    const cases: [string, string, Buffer | string, Record<string, string>, RegExp][] = [
      [
        'a header that is not a number',
        '/v2/models/iris/infer',
        '{}',
        { 'content-type': 'application/octet-stream', 'inference-header-content-length': '12abc' },
        /must be a byte count/,
      ],
      [
        'a header longer than the body',
        '/v2/models/iris/infer',
        '{}',
        { 'content-type': 'application/octet-stream', 'inference-header-content-length': '99' },
        /JSON part is 99 bytes but the body has 2/,
      ],
      [
        'an octet-stream body without the header',
        '/v2/models/iris/infer',
        Buffer.alloc(16),
        { 'content-type': 'application/octet-stream' },
        /send the Inference-Header-Content-Length header/,
      ],
      [
        'a header that cuts the JSON short',
        '/v2/models/iris/infer',
        '{"inputs": []}',
        { 'content-type': 'application/octet-stream', 'inference-header-content-length': '5' },
        /malformed JSON/,
      ],
      [
        'a JSON part that is not an object',
        '/v2/models/iris/infer',
        '[1]',
        { 'content-type': 'application/octet-stream', 'inference-header-content-length': '3' },
        /JSON part of a binary request must be an object/,
      ],
      ...(
        [
          [
            'a size that does not match the shape',
            { inputs: [xInput(12)] },
            rowBytes.subarray(0, 12),
            /needs 16 bytes of binary data but binary_data_size is 12/,
          ],
          [
            'a size past the binary part',
            { inputs: [xInput(32)] },
            rowBytes,
            /binary_data_size 32 but only 16 bytes/,
          ],
          [
            'bytes after the last input',
            { inputs: [xInput(16)] },
            Buffer.concat([rowBytes, Buffer.alloc(3)]),
            /3 bytes after the last binary input/,
          ],
          [
            'both data and binary_data_size',
            { inputs: [xInput(16, { data: row })] },
            rowBytes,
            /both "data" and binary_data_size/,
          ],
          ['a negative size', { inputs: [xInput(-4)] }, rowBytes, /binary_data_size must be an integer >= 0/],
          [
            'a size as a string',
            { inputs: [xInput('16' as unknown as number)] },
            rowBytes,
            /binary_data_size must be an integer >= 0/,
          ],
          [
            'an input with neither',
            { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32' }] },
            rowBytes,
            /has no data/,
          ],
          [
            'binary_data_output that is not a boolean',
            { parameters: { binary_data_output: 'yes' }, inputs: [xInput(16)] },
            rowBytes,
            /binary_data_output must be true or false/,
          ],
          [
            'a wrong datatype',
            { inputs: [xInput(16, { datatype: 'INT32' })] },
            rowBytes,
            /expects datatype FP32, got INT32/,
          ],
        ] as const
      ).map(([what, header, binary, message]): [string, string, Buffer, Record<string, string>, RegExp] => {
        const b = body(header, binary);
        return [what, '/v2/models/iris/infer', b.body, b.headers, message];
      }),
      [
        'binary_data_size in a plain JSON request',
        '/v2/models/iris/infer',
        JSON.stringify({ inputs: [xInput(16)] }),
        { 'content-type': 'application/json' },
        /has binary_data_size but the request has no binary part/,
      ],
      [
        'a binary body sent to /invocations',
        '/invocations',
        body({ instances: [row] }, rowBytes).body,
        body({ instances: [row] }, rowBytes).headers,
        /binary tensor extension .* is for \/v2\/models/,
      ],
    ];
    it.each(cases)(
      'rejects %s with a 400 naming the problem',
      async (_what, path, payload, headers, message) => {
        const res = await raw(path, payload, headers);
        expect(res.status).toBe(400);
        expect(res.error).toMatch(message);
      },
    );
  });

  it('answers 404 with a JSON error for unknown routes', async () => {
    expect(await getJson(`${server.url}/nope`)).toEqual({
      status: 404,
      body: { error: 'no route GET /nope' },
    });
  });
});

describe('worker priority', () => {
  it.skipIf(!existsSync('/proc/thread-self'))(
    'runs inference threads at SLIPWAY_WORKER_NICE, below the event loop',
    async () => {
      const niceOf = (task: string) =>
        Number(readFileSync(`/proc/self/task/${task}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
      const before = new Set(readdirSync('/proc/self/task'));
      const server = await listenApp(testConfig({ workers: 2, workerNice: 7 }));
      try {
        expect((await server.host.load(await writeClassifierDir(join(root, 'nice')))).status).toBe('ready');
        const started = readdirSync('/proc/self/task').filter((t) => !before.has(t));
        const niced = started.filter((t) => niceOf(t) === 7);
        // The two worker threads at least (onnxruntime's own threads, if any, inherit it).
        expect(niced.length).toBeGreaterThanOrEqual(2);
        expect(niceOf(String(process.pid))).toBe(0);
      } finally {
        await server.close();
      }
    },
  );
});

describe('a model without inputs (a constant graph)', () => {
  let server: ListeningApp;
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'slipway-constant-'));
    const dir = join(root, 'constant');
    await mkdir(dir);
    await writeFile(join(dir, 'model.onnx'), buildConstant([1.5, -2]));
    server = await listenApp();
    expect((await server.host.load(dir)).status).toBe('ready');
  });
  afterAll(async () => {
    await server.close();
    await rm(root, { recursive: true, force: true });
  });

  it('answers v2 inference with {"inputs": []}, as the protocol allows', async () => {
    const res = await postJson(`${server.url}/v2/models/constant/infer`, { id: 'c1', inputs: [] });
    expect(res.status).toBe(200);
    assertMatchesSchema('inference_response', res.body);
    expect(res.body).toMatchObject({
      id: 'c1',
      outputs: [{ name: 'y', datatype: 'FP32', shape: [2], data: [1.5, -2] }],
    });
  });

  it('refuses /invocations, which sends instances as inputs, and says where to go', async () => {
    const res = await postJson(`${server.url}/invocations`, { instances: [] });
    expect(res.status).toBe(400);
    expect((res.body as { error: string }).error).toMatch(
      /takes no inputs.*POST \{"inputs": \[\]\} to \/v2\/models\/constant\/infer/,
    );
  });
});
