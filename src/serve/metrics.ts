import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The service's Prometheus metrics, in a registry of its own (several apps may share a process in tests). */
export interface ServeMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly requestDuration: Histogram<'route' | 'method'>;
  readonly inferenceDuration: Histogram<'model'>;
  readonly batchSize: Histogram;
  readonly batchRequests: Histogram;
  readonly queueDepth: Gauge;
  readonly abandoned: Counter;
  readonly shed: Counter;
  readonly inflight: Gauge;
  readonly modelInfo: Gauge<'name' | 'version' | 'sha256' | 'source'>;
  readonly modelReady: Gauge;
}

/**
 * The `status` label of a request whose client closed the connection before the answer was sent
 * (mid-body, or while the request waited for inference): nginx's 499, "client closed request".
 */
export const CLIENT_CLOSED_STATUS = '499';

/** Creates the metrics (with Node's default process metrics) in a fresh registry. */
export function createMetrics(): ServeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'slipway_' });
  const registers = [registry];
  return {
    registry,
    requests: new Counter({
      name: 'slipway_http_requests_total',
      help: `HTTP requests by route, method and status code (${CLIENT_CLOSED_STATUS}: the client closed the connection before the answer)`,
      labelNames: ['route', 'method', 'status'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'slipway_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['route', 'method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    inferenceDuration: new Histogram({
      name: 'slipway_inference_duration_seconds',
      help: 'Time from queueing an inference to its result (queue wait + batch + run)',
      labelNames: ['model'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    batchSize: new Histogram({
      name: 'slipway_batch_size',
      help: 'Rows (dim 0) per inference run on a worker',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    batchRequests: new Histogram({
      name: 'slipway_batch_requests',
      help: 'Requests coalesced into one inference run',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'slipway_queue_depth',
      help: 'Inference requests waiting for a worker',
      registers,
    }),
    abandoned: new Counter({
      name: 'slipway_inference_abandoned_total',
      help: 'Inference requests dropped without running because their client closed the connection while they waited for a worker',
      registers,
    }),
    shed: new Counter({
      name: 'slipway_inference_shed_total',
      help: 'Inference requests refused with 503 because the inputs already waiting for a worker reached SLIPWAY_MAX_QUEUED_BYTES',
      registers,
    }),
    inflight: new Gauge({
      name: 'slipway_http_requests_in_flight',
      help: 'HTTP requests received and not yet answered',
      registers,
    }),
    modelInfo: new Gauge({
      name: 'slipway_model_info',
      help: 'The served model (value 1), labelled with its name, version, sha256 and source URI',
      labelNames: ['name', 'version', 'sha256', 'source'],
      registers,
    }),
    modelReady: new Gauge({
      name: 'slipway_model_ready',
      help: '1 when the model is loaded and the server is ready, else 0',
      registers,
    }),
  };
}
