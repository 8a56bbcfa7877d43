import type { FastifyInstance } from 'fastify';
import type { RouteOptions } from './common.ts';

/** Prometheus exposition on `GET /metrics`. */
export function metricsRoutes(
  app: FastifyInstance,
  { metrics }: RouteOptions,
  done: (err?: Error) => void,
): void {
  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
  done();
}
