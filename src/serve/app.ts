import Fastify, { LogController } from 'fastify';
import type { FastifyError, FastifyInstance, FastifyServerOptions } from 'fastify';
import type { ServeConfig } from './config.ts';
import { isServeError } from './errors.ts';
import { registerBodyParsers } from './json-body.ts';
import { JsonParsePool } from './json-parse-pool.ts';
import { createMetrics } from './metrics.ts';
import type { ServeMetrics } from './metrics.ts';
import { ModelHost } from './model-host.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { rootRoutes } from './routes/root.ts';
import { sagemakerRoutes } from './routes/sagemaker.ts';
import { v2Routes } from './routes/v2.ts';
import type { RouteOptions } from './routes/common.ts';

/** A built (not listening) inference app with its model host and metrics. */
export interface ServeApp {
  readonly app: FastifyInstance;
  readonly host: ModelHost;
  readonly metrics: ServeMetrics;
  /** HTTP requests received and not yet answered. */
  readonly inflightRequests: () => number;
}

/** Options of {@link createApp}. */
export interface CreateAppOptions {
  readonly config: ServeConfig;
  /** Fastify logger option: `false` in tests, a pino config (or `true`) in the server. */
  readonly logger?: FastifyServerOptions['logger'];
}

/** Maps any error to the status and `{"error"}` body the client gets. */
function toResponse(
  err: FastifyError,
  bodyLimit: number,
): { status: number; message: string; retryAfter?: number } {
  if (isServeError(err)) {
    return err.retryAfterSeconds === undefined
      ? { status: err.statusCode, message: err.message }
      : { status: err.statusCode, message: err.message, retryAfter: err.retryAfterSeconds };
  }
  if (err.validation) {
    return { status: 400, message: `invalid request: ${err.message}` };
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: `the request body is larger than the limit of ${bodyLimit} bytes` };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 415,
        message: 'unsupported Content-Type; send application/json (or text/csv to /invocations)',
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, message: 'the request body is empty; send a JSON document' };
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return { status, message: err.message };
  return { status: 500, message: 'internal server error' };
}

/**
 * Builds the inference service as a Fastify app: body parsers, one error handler, and the route
 * groups (SageMaker, Open Inference Protocol v2, metrics, `GET /`). It never listens and does not
 * load a model; the caller (server.ts, tests) calls `host.load(uri)`.
 *
 * @example const { app, host } = await createApp({ config }); void host.load(config.modelUri);
 */
export async function createApp(options: CreateAppOptions): Promise<ServeApp> {
  const { config } = options;
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: config.bodyLimit,
    // Per-request logs would dominate at inference rates; failures are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    // A request that reached an open connection before SIGTERM is in flight: answer it, don't 503 it.
    return503OnClosing: false,
    // Closing idle sockets at once would also drop connections accepted just before SIGTERM whose
    // request is not parsed yet; server.ts closes idle sockets itself once in-flight work is done.
    forceCloseConnections: false,
    // Client-controlled values are validated as sent: no coercion of "5" into 5 or 5 into [5].
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });
  const metrics = createMetrics();
  const host = new ModelHost({ config, log: app.log, metrics });

  const jsonPool = new JsonParsePool({
    threads: config.workers,
    nice: config.workerNice,
    onThreadExit: (err) => app.log.error({ err, event: 'json_parser_exit' }, 'a JSON parser thread stopped'),
  });
  registerBodyParsers(app, config.bodyLimit, jsonPool);

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { status, message, retryAfter } = toResponse(err, config.bodyLimit);
    if (status >= 500 && !isServeError(err)) {
      request.log.error({ err, url: request.url, method: request.method }, 'request failed');
    }
    if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
    return reply.code(status).send({ error: message });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  // Hooks take callbacks rather than being async: at inference rates a promise per hook per request
  // is measurable main-thread work.
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    metrics.requestDuration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
    done();
  });
  // In-flight requests, counted until their response is finished or the socket closes.
  let inflight = 0;
  let drained: (() => void) | undefined;
  app.addHook('onRequest', (_request, reply, done) => {
    inflight++;
    metrics.inflight.inc();
    reply.raw.once('close', () => {
      inflight--;
      metrics.inflight.dec();
      if (inflight === 0) drained?.();
    });
    done();
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    // While draining, end keep-alive connections after their current response.
    if (host.draining) void reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onClose', async () => {
    // Fastify runs this hook before its own server.close() has waited for open requests, so the
    // workers must outlive every request still being answered.
    if (inflight > 0) await new Promise<void>((resolve) => (drained = resolve));
    await Promise.all([host.close(), jsonPool.close()]);
  });

  const routeOptions: RouteOptions = { host, config, metrics };
  await app.register(rootRoutes, routeOptions);
  await app.register(sagemakerRoutes, routeOptions);
  await app.register(v2Routes, routeOptions);
  await app.register(metricsRoutes, routeOptions);
  return { app, host, metrics, inflightRequests: () => inflight };
}
