import { Agent, createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PortInUseError, isAddressInUse } from './errors.ts';

/** Header the load balancer adds to every proxied response: the task that answered. */
export const TASK_HEADER = 'x-slipway-task';
/** Header the load balancer adds to every proxied response: the model version that answered. */
export const MODEL_VERSION_HEADER = 'x-slipway-model-version';
/** Path prefix the load balancer keeps for the twin's control API instead of proxying it. */
export const CONTROL_PREFIX = '/_slipway/';
/** The control API's status route: what `slipway status` reads and a claimant of the state dir probes. */
export const CONTROL_STATUS_PATH = `${CONTROL_PREFIX}status`;

/** Where a target stands, in ALB terms. */
export type TargetHealth = 'initial' | 'healthy' | 'unhealthy' | 'draining';

/** A task registered with the load balancer. */
export interface TargetSpec {
  readonly id: string;
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** Added to responses as {@link MODEL_VERSION_HEADER}. */
  readonly modelVersion?: string;
}

/** A target and its live counters. */
export interface TargetSnapshot extends TargetSpec {
  readonly health: TargetHealth;
  readonly inFlight: number;
  readonly served: number;
}

/** Handles requests under {@link CONTROL_PREFIX}. */
export type ControlHandler = (
  req: IncomingMessage,
  body: Buffer,
  res: ServerResponse,
) => Promise<void> | void;

/** Options of {@link LoadBalancer}. */
export interface LoadBalancerOptions {
  /** Listening port (0 picks a free one). */
  readonly port: number;
  readonly host?: string;
  /** Readiness path probed on every target; default `/v2/health/ready`. */
  readonly healthPath?: string;
  /** Interval between health checks; default 1000 ms. */
  readonly healthIntervalMs?: number;
  /** Consecutive failed checks before a healthy target stops receiving traffic; default 2. */
  readonly unhealthyThreshold?: number;
  /** Largest request body accepted (bodies are buffered so a failed attempt can be retried). */
  readonly maxBodyBytes?: number;
  readonly control?: ControlHandler;
  /** Called for noteworthy events (target marked unhealthy, retries). */
  readonly log?: (message: string) => void;
}

interface Target extends TargetSpec {
  health: TargetHealth;
  inFlight: number;
  served: number;
  failures: number;
  agent: Agent;
  idleWaiters: (() => void)[];
}

// Errors that mean the request never reached the task's application, so sending it elsewhere is safe.
const RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ENOTFOUND']);

/**
 * The twin's application load balancer: an HTTP reverse proxy that routes round-robin to
 * healthy targets only, health-checks them, drains deregistered targets, and retries a
 * request on another target when a connection fails before any response arrived.
 */
export class LoadBalancer {
  private readonly options: LoadBalancerOptions;
  private readonly targets = new Map<string, Target>();
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private cursor = 0;
  private boundPort = 0;

  constructor(options: LoadBalancerOptions) {
    this.options = options;
  }

  /** The port the load balancer listens on. */
  get port(): number {
    return this.boundPort;
  }

  /** Base URL of the load balancer. */
  get url(): string {
    return `http://127.0.0.1:${this.boundPort}`;
  }

  /** Starts listening; a taken port raises {@link PortInUseError}. */
  async listen(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          isAddressInUse(err)
            ? new PortInUseError(this.options.port, 'load balancer', '--port', { cause: err })
            : err,
        ),
      );
      server.listen(this.options.port, this.options.host ?? '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.boundPort = (server.address() as AddressInfo).port;
    this.timer = setInterval(() => void this.checkAll(), this.options.healthIntervalMs ?? 1000);
    this.timer.unref();
  }

  /**
   * Registers a target. A target already known to be ready (the supervisor checked it) can
   * start healthy; otherwise it receives traffic after its first passing health check.
   */
  register(spec: TargetSpec, initialHealth: 'initial' | 'healthy' = 'initial'): void {
    this.targets.set(spec.id, {
      ...spec,
      health: initialHealth,
      inFlight: 0,
      served: 0,
      failures: 0,
      agent: new Agent({ keepAlive: true, maxSockets: 64 }),
      idleWaiters: [],
    });
    if (initialHealth === 'initial') void this.check(spec.id);
  }

  /**
   * Stops sending new requests to a target and resolves once its in-flight requests have
   * finished (or `timeoutMs` passed), then forgets it.
   */
  async deregister(id: string, timeoutMs = 30_000): Promise<void> {
    const target = this.targets.get(id);
    if (!target) return;
    target.health = 'draining';
    if (target.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        target.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.targets.delete(id);
    target.agent.destroy();
  }

  /** Every registered target with its health and counters. */
  snapshot(): TargetSnapshot[] {
    return [...this.targets.values()].map(({ id, url, modelVersion, health, inFlight, served }) => ({
      id,
      url,
      ...(modelVersion !== undefined ? { modelVersion } : {}),
      health,
      inFlight,
      served,
    }));
  }

  /** Stops listening and health checking; open connections are closed. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const server = this.server;
    this.server = undefined;
    for (const target of this.targets.values()) target.agent.destroy();
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  private pick(exclude: ReadonlySet<string>): Target | undefined {
    const healthy = [...this.targets.values()].filter((t) => t.health === 'healthy' && !exclude.has(t.id));
    if (healthy.length === 0) return undefined;
    this.cursor = (this.cursor + 1) % healthy.length;
    return healthy[this.cursor];
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: Buffer;
    try {
      body = await readBody(req, this.options.maxBodyBytes ?? 16 * 1024 * 1024);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        sendJson(res, 413, { error: `request body exceeds ${err.limit} bytes` });
      } else {
        res.destroy();
      }
      return;
    }
    if (req.url?.startsWith(CONTROL_PREFIX) && this.options.control) {
      try {
        await this.options.control(req, body, res);
      } catch (err) {
        if (!res.headersSent) sendJson(res, 500, { error: err instanceof Error ? err.message : String(err) });
        else res.destroy();
      }
      return;
    }
    const tried = new Set<string>();
    for (;;) {
      const target = this.pick(tried);
      if (!target) {
        sendJson(res, 503, {
          error:
            tried.size === 0
              ? 'no healthy inference task behind the load balancer (no model deployed yet, or tasks are starting)'
              : 'every inference task refused the connection',
        });
        return;
      }
      tried.add(target.id);
      const outcome = await this.forward(target, req, body, res);
      if (outcome === 'done') return;
      // The connection failed before a response: the task is going away. Take it out of
      // rotation now rather than at the next health check, and try another one.
      if (target.health === 'healthy') target.health = 'unhealthy';
      this.options.log?.(
        `retrying ${req.method ?? ''} ${req.url ?? ''}: task ${target.id} refused (${outcome})`,
      );
    }
  }

  private forward(target: Target, req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<string> {
    target.inFlight += 1;
    const finish = (): void => {
      target.inFlight -= 1;
      if (target.inFlight === 0) for (const wake of target.idleWaiters.splice(0)) wake();
    };
    return new Promise<string>((resolve) => {
      const headers = { ...req.headers, 'content-length': String(body.length) };
      delete headers['transfer-encoding'];
      delete headers.connection;
      const upstream = httpRequest(
        `${target.url}${req.url ?? '/'}`,
        { method: req.method, headers, agent: target.agent },
        (up) => {
          const out: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(up.headers))
            if (v !== undefined && k !== 'connection') out[k] = v;
          out[TASK_HEADER] = target.id;
          if (target.modelVersion !== undefined) out[MODEL_VERSION_HEADER] = target.modelVersion;
          res.writeHead(up.statusCode ?? 502, out);
          up.pipe(res);
          up.on('end', () => {
            target.served += 1;
            finish();
            resolve('done');
          });
          up.on('error', () => {
            finish();
            res.destroy();
            resolve('done');
          });
        },
      );
      upstream.on('error', (err: NodeJS.ErrnoException) => {
        if (res.headersSent) return;
        finish();
        if (RETRYABLE.has(err.code ?? '')) {
          resolve(err.code ?? 'error');
          return;
        }
        sendJson(res, 502, { error: `task ${target.id} failed: ${err.message}` });
        resolve('done');
      });
      upstream.end(body);
    });
  }

  private async checkAll(): Promise<void> {
    await Promise.all([...this.targets.keys()].map((id) => this.check(id)));
  }

  private async check(id: string): Promise<void> {
    const target = this.targets.get(id);
    if (!target || target.health === 'draining') return;
    const ok = await probe(`${target.url}${this.options.healthPath ?? '/v2/health/ready'}`, 2_000);
    // The target may have started draining while the probe was in flight.
    if ((target.health as TargetHealth) === 'draining' || !this.targets.has(id)) return;
    if (ok) {
      target.failures = 0;
      if (target.health !== 'healthy') this.options.log?.(`task ${id} is healthy`);
      target.health = 'healthy';
    } else {
      target.failures += 1;
      const threshold = target.health === 'healthy' ? (this.options.unhealthyThreshold ?? 2) : 1;
      if (target.failures >= threshold && target.health !== 'unhealthy') {
        if (target.health === 'healthy') this.options.log?.(`task ${id} failed its health check`);
        target.health = 'unhealthy';
      }
    }
  }
}

/** GETs a URL and resolves true on a 2xx answer within the timeout. */
export function probe(url: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) >= 200 && (res.statusCode ?? 500) < 300);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`body exceeds ${limit} bytes`);
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Writes a JSON response. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}
