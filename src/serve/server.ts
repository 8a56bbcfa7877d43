import type { FastifyInstance } from 'fastify';
import { createApp } from './app.ts';
import type { ServeConfig } from './config.ts';
import type { ModelHost } from './model-host.ts';

/** How long after SIGTERM the listener stays open with readiness false (requests may still be arriving). */
const DRAIN_GRACE_MS = 300;

/** A listening inference server. */
export interface RunningServer {
  readonly app: FastifyInstance;
  readonly host: ModelHost;
  /** Bound port (useful with port 0). */
  readonly port: number;
  /** `http://<host>:<port>` reachable from this machine. */
  readonly url: string;
  /** Graceful stop: readiness false, stop accepting, finish in-flight work (bounded by the deadline). */
  shutdown(reason?: string): Promise<void>;
  /** Resolves once the server has shut down. */
  readonly closed: Promise<void>;
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** Install SIGTERM/SIGINT handlers that shut down and exit 0 (the CLI and container). @default false */
  readonly handleSignals?: boolean;
  /** Fastify/pino logger option. @default JSON logs at info level */
  readonly logger?: boolean | { level: string };
}

/**
 * Starts the inference server: listens at once (SageMaker needs the port within 250 ms), then
 * loads the model in the background; readiness flips when it is loaded and warmed.
 *
 * @example const server = await startServer(loadServeConfig(), { handleSignals: true });
 */
export async function startServer(
  config: ServeConfig,
  options: StartServerOptions = {},
): Promise<RunningServer> {
  const { app, host, inflightRequests } = await createApp({
    config,
    logger: options.logger ?? { level: process.env.LOG_LEVEL ?? 'info' },
  });
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const reachable = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  app.log.info(
    {
      event: 'listening',
      port,
      host: config.host,
      pid: process.pid,
      modelUri: config.modelUri,
      workers: config.workers,
      intraOpThreads: config.intraOpThreads,
      maxBatchSize: config.maxBatchSize,
      maxBatchDelayMs: config.maxBatchDelayMs,
    },
    'listening',
  );
  void host.load(config.modelUri);

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let shuttingDown: Promise<void> | undefined;
  const shutdown = (reason = 'shutdown requested'): Promise<void> => {
    shuttingDown ??= (async () => {
      host.startDraining();
      app.log.info({ event: 'shutdown', reason, deadlineMs: config.shutdownTimeoutMs }, 'shutting down');
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), config.shutdownTimeoutMs);
      });
      // Readiness is already false; keep accepting briefly so requests routed before the load
      // balancer noticed are served (with Connection: close) rather than reset by the closing listener.
      await new Promise((resolve) => setTimeout(resolve, Math.min(DRAIN_GRACE_MS, config.shutdownTimeoutMs)));
      const started = Date.now();
      const sweeper = setInterval(() => {
        // Idle keep-alive sockets would hold close() open; drop them once nothing is in flight and
        // every connection accepted before the signal has had time to deliver its request.
        if (inflightRequests() === 0 && Date.now() - started >= DRAIN_GRACE_MS)
          app.server.closeIdleConnections();
      }, 50);
      const outcome = await Promise.race([app.close().then(() => 'closed' as const), deadline]);
      clearTimeout(timer);
      clearInterval(sweeper);
      if (outcome === 'deadline') {
        app.log.warn({ event: 'shutdown_deadline' }, 'in-flight requests did not finish before the deadline');
        app.server.closeAllConnections();
      }
      app.log.info({ event: 'stopped' }, 'stopped');
      resolveClosed();
    })();
    return shuttingDown;
  };

  if (options.handleSignals) {
    const onSignal = (signal: NodeJS.Signals) => {
      void shutdown(signal).then(() => process.exit(0));
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }

  return { app, host, port, url: `http://${reachable}:${port}`, shutdown, closed };
}
