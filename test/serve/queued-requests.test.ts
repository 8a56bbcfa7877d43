import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { writeClassifierDir } from './fixtures/onnx-builder.ts';
import { listenApp, postJson, requestsCounted, testConfig } from './fixtures/serve-app.ts';
import type { ListeningApp } from './fixtures/serve-app.ts';

/** While `held`, every worker of the pool reports busy, so requests wait in the scheduler's queue. */
const pools = vi.hoisted(() => ({ held: false, idle: [] as (() => void)[] }));

/** Lets the pools take work again, and tells their schedulers so. */
function releasePools(): void {
  pools.held = false;
  for (const idle of pools.idle) idle();
}

vi.mock(import('../../src/serve/worker-pool.ts'), async (importOriginal) => {
  const original = await importOriginal();
  class HoldablePool extends original.WorkerPool {
    constructor(options: ConstructorParameters<typeof original.WorkerPool>[0]) {
      super(options);
      pools.idle.push(() => this.onIdle?.());
    }

    override get idleWorkers(): number {
      return pools.held ? 0 : super.idleWorkers;
    }
  }
  return { ...original, WorkerPool: HoldablePool };
});

const row = [0.1, 0.2, 0.3, 0.4];
const v2Body = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: row }] });
const invocationsBody = JSON.stringify({ instances: [row] });

let root: string;
let server: ListeningApp;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'slipway-abandoned-'));
  server = await listenApp(testConfig({ workers: 1, maxBatchSize: 8, maxBatchDelayMs: 0 }));
  expect((await server.host.load(await writeClassifierDir(join(root, 'iris')))).status).toBe('ready');
});
afterAll(async () => {
  releasePools();
  // A request a failed test left waiting must finish first: the server closes idle connections
  // only, and its keep-alive connection would otherwise hold the close open.
  await vi.waitFor(() => expect(server.inflightRequests()).toBe(0)).catch(() => undefined);
  await server.close();
  await rm(root, { recursive: true, force: true });
});

const gauge = async (
  metric: 'queueDepth' | 'inflight' | 'abandoned' | 'shed',
  of: ListeningApp = server,
): Promise<number> => (await of.metrics[metric].get()).values[0]?.value ?? 0;
const histogramSum = async (metric: 'batchSize' | 'batchRequests'): Promise<number> =>
  (await server.metrics[metric].get()).values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;

/** Sends a whole POST on a raw connection and leaves the connection open. */
function postRaw(path: string, body: string): Socket {
  const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
  socket.on('error', () => undefined);
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  return socket;
}

describe('a request whose client goes away while it waits for a worker', () => {
  it('leaves the queue without running, is counted as abandoned and 499, and the server keeps answering', async () => {
    const rowsBefore = await histogramSum('batchSize');
    const requestsBefore = await histogramSum('batchRequests');
    pools.held = true;
    const leaving = [
      postRaw('/v2/models/iris/infer', v2Body),
      postRaw('/v2/models/iris/infer', v2Body),
      postRaw('/invocations', invocationsBody),
    ];
    await vi.waitFor(async () => expect(await gauge('queueDepth')).toBe(3));
    const staying = postJson(`${server.url}/v2/models/iris/infer`, JSON.parse(v2Body));
    await vi.waitFor(async () => expect(await gauge('queueDepth')).toBe(4));

    for (const socket of leaving) socket.resetAndDestroy();
    await vi.waitFor(async () => expect(await gauge('abandoned')).toBe(3));
    expect(await gauge('queueDepth')).toBe(1);
    await vi.waitFor(async () => expect(await gauge('inflight')).toBe(1));

    releasePools();
    expect((await staying).status).toBe(200);
    // Only the request that stayed reached a worker: one row, one request.
    expect(await histogramSum('batchSize')).toBe(rowsBefore + 1);
    expect(await histogramSum('batchRequests')).toBe(requestsBefore + 1);
    expect(await gauge('queueDepth')).toBe(0);
    await vi.waitFor(async () => expect(await gauge('inflight')).toBe(0));

    const closed = (route: string) =>
      requestsCounted(server.metrics, { route, method: 'POST', status: '499' });
    expect(await closed('/v2/models/:name/infer')).toBe(2);
    expect(await closed('/invocations')).toBe(1);
    const again = await postJson(`${server.url}/invocations`, JSON.parse(invocationsBody));
    expect(again.status).toBe(200);
    expect(await gauge('abandoned')).toBe(3);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/^slipway_inference_abandoned_total 3$/m);
  });
});

describe('an inference that arrives while the queue holds SLIPWAY_MAX_QUEUED_BYTES of inputs', () => {
  it('gets 503 with Retry-After at once, is counted as shed, and the queued requests still run', async () => {
    // One FP32 row of 4 values is 16 bytes: one request fits in the queue, a second does not.
    const small = await listenApp(
      testConfig({ workers: 1, maxBatchSize: 8, maxBatchDelayMs: 0, maxQueuedBytes: 20 }),
    );
    try {
      expect((await small.host.load(await writeClassifierDir(join(root, 'iris-small')))).status).toBe(
        'ready',
      );
      pools.held = true;
      const queued = postJson(`${small.url}/v2/models/iris/infer`, JSON.parse(v2Body));
      await vi.waitFor(async () => expect(await gauge('queueDepth', small)).toBe(1));

      const refused = await fetch(`${small.url}/v2/models/iris/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: v2Body,
      });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(((await refused.json()) as { error: string }).error).toMatch(
        /overloaded: 1 requests with 16 bytes of inputs already wait .*limit 20 bytes, SLIPWAY_MAX_QUEUED_BYTES/,
      );
      expect(await gauge('shed', small)).toBe(1);
      expect(await gauge('queueDepth', small)).toBe(1);
      // Health checks never queue: the task stays healthy while it sheds load.
      expect((await fetch(`${small.url}/ping`)).status).toBe(200);

      releasePools();
      expect((await queued).status).toBe(200);
      const after = await postJson(`${small.url}/invocations`, JSON.parse(invocationsBody));
      expect(after.status).toBe(200);
      expect(
        await requestsCounted(small.metrics, {
          route: '/v2/models/:name/infer',
          method: 'POST',
          status: '503',
        }),
      ).toBe(1);
    } finally {
      releasePools();
      await small.close();
    }
  });
});
