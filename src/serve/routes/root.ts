import type { FastifyInstance } from 'fastify';
import { NO_MODEL_MESSAGE } from '../model-host.ts';
import type { RouteOptions } from './common.ts';

/** `GET /`: which model this process serves (the local twin and operators identify it here). */
export function rootRoutes(app: FastifyInstance, { host }: RouteOptions, done: (err?: Error) => void): void {
  app.get('/', (_request, reply) => {
    const state = host.state;
    switch (state.status) {
      case 'ready': {
        const { batchable: _batchable, ...model } = state.model;
        return { status: 'ready', ...model, labels: model.labels ?? null };
      }
      case 'none':
        return { status: 'none', message: NO_MODEL_MESSAGE };
      case 'loading':
        return reply.code(503).send({ status: 'loading', sourceUri: state.uri, error: host.notReadyReason });
      case 'failed':
        return reply.code(503).send({ status: 'failed', sourceUri: state.uri, error: host.notReadyReason });
    }
  });
  done();
}
