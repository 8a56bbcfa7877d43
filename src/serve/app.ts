import { maxHeaderSize } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController } from 'fastify';
import type {
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifyServerOptions,
} from 'fastify';
import type { ServeConfig } from './config.ts';
import { isServeError } from './errors.ts';
import { registerBodyParsers } from './json-body.ts';
import { JsonParsePool } from './json-parse-pool.ts';
import { trackRouteMethods } from './method-not-allowed.ts';
import { CLIENT_CLOSED_STATUS, createMetrics } from './metrics.ts';
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

/** Longest a client may take to send one whole request (headers and body). */
export const REQUEST_TIMEOUT_MS = 60_000;

/** Longest path parameter: model names may be 256 characters (the manifest's limit), URL-encoded up to 3x. */
const MAX_PARAM_LENGTH = 1024;

function frameworkErrorMessage(err: FastifyError, url: string): string {
  switch (err.code) {
    case 'FST_ERR_BAD_URL':
      // The router also calls a target that is neither a path nor an http(s) URL a bad URL
      // (CONNECT's host:port, for one).
      return url.startsWith('/') || /^https?:\/\//i.test(url)
        ? 'the URL is not valid: a percent-escape in it does not decode (use %25 for a literal %)'
        : 'the request target is not a path: it must start with / (this service is not a proxy)';
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return `a path parameter (model name or version) is longer than ${MAX_PARAM_LENGTH} characters`;
    default:
      return err.message;
  }
}

/**
 * Fastify's `clientErrorHandler`: a JSON `{"error"}` answer for what Node's HTTP parser refuses.
 * Returns the status it wrote on the socket, if any.
 */
function answerClientError(err: Error & { code?: string }, socket: Socket): number | undefined {
  if (err.code === 'ECONNRESET' || socket.destroyed) return undefined;
  const [status, reason, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', `the request was not received within ${REQUEST_TIMEOUT_MS / 1000} s`]
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [
            431,
            'Request Header Fields Too Large',
            `the request headers are larger than ${maxHeaderSize / 1024} KiB`,
          ]
        : [
            400,
            'Bad Request',
            `the HTTP request is malformed (${err.code ?? 'parse error'}: ${err.message})`,
          ];
  const body = JSON.stringify({ error: message });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
  return status;
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
        message:
          'unsupported Content-Type; send application/json, application/octet-stream with the binary tensor extension (v2 infer), or text/csv (/invocations)',
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
  // The status answerClientError wrote on a socket whose request had already reached the routes
  // (a body cut by a parse error or the request timeout): what the metrics count that request as.
  const answeredOnSocket = new WeakMap<Socket, string>();
  const metrics = createMetrics();
  // In-flight requests, counted until their response is finished or the socket closes. Requests are
  // counted in the metrics when their response closes, not in onResponse: a client that goes away
  // mid-body, or while its request waits for inference, closes the response unfinished, and Fastify
  // runs no onResponse for that (nor onRequestAbort once the body is in). Such a request counts as
  // 499, unless answerClientError answered it on the socket.
  let inflight = 0;
  let drained: (() => void) | undefined;
  const track = (request: FastifyRequest, reply: FastifyReply): void => {
    const started = performance.now();
    inflight++;
    metrics.inflight.inc();
    reply.raw.once('close', () => {
      inflight--;
      metrics.inflight.dec();
      const route = request.routeOptions.url ?? 'unmatched';
      const status = reply.raw.writableFinished
        ? String(reply.statusCode)
        : (answeredOnSocket.get(request.raw.socket) ?? CLIENT_CLOSED_STATUS);
      metrics.requests.inc({ route, method: request.method, status });
      metrics.requestDuration.observe(
        { route, method: request.method },
        (performance.now() - started) / 1000,
      );
      if (inflight === 0) drained?.();
    });
  };
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
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // A client that sends its request slower than this (a stalled upload, a slowloris) gets a 408
    // and its connection closed, instead of holding a socket and a body buffer for ever.
    requestTimeout: REQUEST_TIMEOUT_MS,
    // An HTTP/1.1 request without Host is refused in onRequest, as {"error"} and counted, rather
    // than with the bare 400 Node would send before any route or metric sees it.
    http: { requireHostHeader: false },
    // Errors Fastify answers before routing (a malformed URL, a too-long parameter) get the same
    // {"error"} body as every other error. Fastify runs no hooks for them, so they are tracked here.
    frameworkErrors: (err, request, reply) => {
      track(request, reply);
      void (reply as FastifyReply)
        .code(err.statusCode ?? 400)
        .send({ error: frameworkErrorMessage(err, request.url) });
    },
    // Requests the HTTP parser itself refuses (duplicate Content-Length, bad chunking, oversized
    // headers, a request timeout) are answered on the socket, also as {"error"}.
    clientErrorHandler: (err, socket) => {
      const status = answerClientError(err, socket);
      // A connection that ended mid-request is the client going away (499 in the metrics), even
      // though a 400 was written back in case it still reads.
      if (status !== undefined && err.code !== 'HPE_INVALID_EOF_STATE') {
        answeredOnSocket.set(socket, String(status));
      }
    },
  });
  const host = new ModelHost({ config, log: app.log, metrics });
  // Node answers an Expect header other than 100-continue with a bare 417 of its own, which no
  // route sees and the metrics never count. Such requests go to the routes instead, marked, and
  // get the 417 from onRequest, as {"error"}.
  const unmetExpectations = new WeakSet<IncomingMessage>();
  app.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    unmetExpectations.add(request);
    app.server.emit('request', request, response);
  });

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
  const notFound = (request: FastifyRequest) => ({
    error: `no route ${request.method} ${request.url.split('?')[0]}`,
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send(notFound(request)));

  // Hooks take callbacks rather than being async: at inference rates a promise per hook per request
  // is measurable main-thread work.
  app.addHook('onRequest', (request, reply, done) => {
    track(request, reply);
    // A path the service does not have is a 404 whatever the body: answered before the body is
    // read, so it is never parsed, nor refused as too large, malformed or of the wrong type.
    if (request.is404) {
      void reply.code(404).send(notFound(request));
      return;
    }
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      void reply
        .code(400)
        .header('connection', 'close')
        .send({ error: 'the request has no Host header, which HTTP/1.1 requires' });
      return;
    }
    if (unmetExpectations.has(request.raw)) {
      void reply
        .code(417)
        .header('connection', 'close')
        .send({
          error: `the Expect header ${JSON.stringify(request.headers.expect)} is not supported; send none, or Expect: 100-continue`,
        });
      return;
    }
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
  const addMethodNotAllowed = trackRouteMethods(app);
  await app.register(rootRoutes, routeOptions);
  await app.register(sagemakerRoutes, routeOptions);
  await app.register(v2Routes, routeOptions);
  await app.register(metricsRoutes, routeOptions);
  addMethodNotAllowed();
  return { app, host, metrics, inflightRequests: () => inflight };
}
