import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createApp } from './app.ts';
import type { ServeConfig } from './config.ts';
import { ListenError } from './errors.ts';
import type { ModelHost } from './model-host.ts';

/** How long after SIGTERM the listener stays open with readiness false (requests may still be arriving). */
const DRAIN_GRACE_MS = 300;

/** How long a connection that never sent a request may stay open during a drain. */
const UNUSED_CONNECTION_GRACE_MS = 2_000;

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
  const { app, host } = await createApp({
    config,
    logger: options.logger ?? { level: process.env.LOG_LEVEL ?? 'info' },
  });
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    await app.close().catch(() => undefined);
    throw listenError(err, config);
  }
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
      idleIntraOpThreads: config.idleIntraOpThreads,
      workerNice: config.workerNice,
      maxBatchSize: config.maxBatchSize,
      maxBatchDelayMs: config.maxBatchDelayMs,
    },
    'listening',
  );
  void host.load(config.modelUri);

  const connections = trackConnections(app.server);
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
      const sweeper = setInterval(() => sweepIdleConnections(connections), 50);
      // Let one poll phase run so connections that queued while the event loop was busy are
      // accepted, then stop accepting at the socket level. Node's http close() would also reap
      // "idle" connections, and a connection whose request bytes have not been parsed yet counts
      // as idle: its client would see a reset for a request it had already sent.
      await new Promise((resolve) => setImmediate(resolve));
      const drained = new Promise<'closed'>((resolve) => {
        net.Server.prototype.close.call(app.server, () => resolve('closed'));
      });
      const outcome = await Promise.race([drained, deadline]);
      if (outcome === 'closed') await app.close();
      clearTimeout(timer);
      clearInterval(sweeper);
      if (outcome === 'deadline') {
        app.log.warn({ event: 'shutdown_deadline' }, 'in-flight requests did not finish before the deadline');
        app.server.closeAllConnections();
        await app.close();
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

/** Why listen() failed, in words that name the setting to change. */
function listenError(err: unknown, config: ServeConfig): ListenError {
  const code = (err as { code?: unknown } | undefined)?.code;
  const where = `${config.host}:${config.port}`;
  const message =
    code === 'EADDRINUSE'
      ? `cannot listen on ${where}: port ${config.port} is already in use by another process; stop it or pick another port with --port <n> (or PORT)`
      : code === 'EACCES'
        ? `cannot listen on ${where}: permission denied (ports below 1024 need privileges); pick another port with --port <n> (or PORT)`
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EADDRNOTAVAIL'
          ? `cannot listen on ${where}: "${config.host}" is not an address of this machine; pass one with --host (0.0.0.0 for all interfaces, 127.0.0.1 for loopback only)`
          : `cannot listen on ${where}: ${err instanceof Error ? err.message : String(err)}`;
  return new ListenError(message, { cause: err });
}

/** What the drain needs to know about one client connection. */
interface ConnectionState {
  /** Requests on this connection that have not finished yet. */
  active: number;
  /** Responses already sent on it. */
  served: number;
  /** When it connected, or when its last response finished. */
  since: number;
}

/** Follows every connection of the server, so the drain can tell idle ones from new ones. */
function trackConnections(server: net.Server): Map<net.Socket, ConnectionState> {
  const connections = new Map<net.Socket, ConnectionState>();
  server.on('connection', (socket: net.Socket) => {
    connections.set(socket, { active: 0, served: 0, since: Date.now() });
    socket.once('close', () => connections.delete(socket));
  });
  server.on('request', (req: { socket: net.Socket }, res: { once(event: 'close', fn: () => void): void }) => {
    const state = connections.get(req.socket);
    if (!state) return;
    state.active += 1;
    res.once('close', () => {
      state.active -= 1;
      state.served += 1;
      state.since = Date.now();
    });
  });
  return connections;
}

/**
 * Closes keep-alive connections that sit idle after a response, so the drain can finish. A
 * connection that has not delivered its first request yet is left alone for a while: its client
 * may already have sent the request (the event loop just has not read it), and closing it would
 * reset a request the server accepted. Node's own closeIdleConnections() cannot tell the two apart.
 */
function sweepIdleConnections(connections: Map<net.Socket, ConnectionState>): void {
  const now = Date.now();
  for (const [socket, state] of connections) {
    if (state.active > 0) continue;
    const idleFor = now - state.since;
    if ((state.served > 0 && idleFor >= 100) || idleFor >= UNUSED_CONNECTION_GRACE_MS) socket.destroy();
  }
}
