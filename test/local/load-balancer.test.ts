import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LoadBalancer, MODEL_VERSION_HEADER, TASK_HEADER } from '../../src/local/load-balancer.ts';
import { PortInUseError } from '../../src/local/errors.ts';
import { freePort } from '../../src/local/supervisor.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function backend(name: string, opts: { ready?: boolean; delayMs?: number } = {}): Promise<string> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/v2/health/ready') {
      res.writeHead(opts.ready === false ? 503 : 200).end();
      return;
    }
    setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(name), opts.delayMs ?? 0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function startLb(): Promise<LoadBalancer> {
  const lb = new LoadBalancer({ port: 0, healthIntervalMs: 100 });
  await lb.listen();
  cleanups.push(() => lb.close());
  return lb;
}

describe('LoadBalancer', () => {
  it('answers 503 with an explanation while no task is healthy', async () => {
    const lb = await startLb();
    const res = await fetch(`${lb.url}/invocations`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toMatch(/no healthy inference task/);
  });

  it('spreads requests over healthy targets and tags responses with task and model version', async () => {
    const lb = await startLb();
    lb.register({ id: 'a', url: await backend('A'), modelVersion: '7' }, 'healthy');
    lb.register({ id: 'b', url: await backend('B'), modelVersion: '7' }, 'healthy');
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${lb.url}/x`);
      seen.add(await res.text());
      expect(res.headers.get(MODEL_VERSION_HEADER)).toBe('7');
      expect(['a', 'b']).toContain(res.headers.get(TASK_HEADER));
    }
    expect(seen).toEqual(new Set(['A', 'B']));
  });

  it('routes a new target only after it passes a health check', async () => {
    const lb = await startLb();
    lb.register({ id: 'sick', url: await backend('SICK', { ready: false }) });
    lb.register({ id: 'well', url: await backend('WELL') });
    await new Promise((r) => setTimeout(r, 400));
    const bodies = await Promise.all(
      Array.from({ length: 6 }, () => fetch(`${lb.url}/`).then((r) => r.text())),
    );
    expect(new Set(bodies)).toEqual(new Set(['WELL']));
    expect(lb.snapshot().find((t) => t.id === 'sick')?.health).toBe('unhealthy');
  });

  it('retries on another target when a task refuses the connection, so the client sees no failure', async () => {
    const lb = await startLb();
    const deadPort = await freePort();
    lb.register({ id: 'dead', url: `http://127.0.0.1:${deadPort}` }, 'healthy');
    lb.register({ id: 'live', url: await backend('LIVE') }, 'healthy');
    const results = await Promise.all(
      Array.from({ length: 8 }, () => fetch(`${lb.url}/p`, { method: 'POST', body: 'x' })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(lb.snapshot().find((t) => t.id === 'dead')?.health).toBe('unhealthy');
  });

  it('draining waits for in-flight requests and sends no new ones to the draining target', async () => {
    const lb = await startLb();
    lb.register({ id: 'old', url: await backend('OLD', { delayMs: 500 }) }, 'healthy');
    const inFlight = fetch(`${lb.url}/slow`).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 100));
    lb.register({ id: 'new', url: await backend('NEW') }, 'healthy');
    let drained = false;
    const drain = lb.deregister('old').then(() => (drained = true));
    const during = await fetch(`${lb.url}/fast`).then((r) => r.text());
    expect(during).toBe('NEW');
    expect(drained).toBe(false);
    expect(await inFlight).toBe('OLD');
    await drain;
    expect(lb.snapshot().map((t) => t.id)).toEqual(['new']);
  });

  it('reports a taken port as a PortInUseError naming the port and the flag', async () => {
    const first = await startLb();
    const second = new LoadBalancer({ port: first.port });
    const err = await second.listen().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortInUseError);
    expect((err as Error).message).toContain(String(first.port));
    expect((err as Error).message).toContain('--port');
  });

  it('hands /_slipway/ requests to the control handler instead of a task', async () => {
    const lb = new LoadBalancer({
      port: 0,
      control: (req, body, res) => {
        res.writeHead(200).end(`control ${req.url ?? ''} ${body.toString()}`);
      },
    });
    await lb.listen();
    cleanups.push(() => lb.close());
    const res = await fetch(`${lb.url}/_slipway/status`, { method: 'POST', body: 'hi' });
    expect(await res.text()).toBe('control /_slipway/status hi');
  });
});
