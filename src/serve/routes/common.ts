import type { FastifyReply } from 'fastify';
import type { ModelHost, ModelInfo } from '../model-host.ts';
import { NO_MODEL_MESSAGE } from '../model-host.ts';
import { ServeError } from '../errors.ts';
import type { ServeConfig } from '../config.ts';
import type { ServeMetrics } from '../metrics.ts';
import type { ClientPresence } from '../scheduler.ts';

/** What every route plugin receives. */
export interface RouteOptions {
  readonly host: ModelHost;
  readonly config: ServeConfig;
  readonly metrics: ServeMetrics;
}

/** Seconds a client should wait before retrying while the model loads. */
export const LOADING_RETRY_AFTER_SECONDS = 5;

/**
 * The ready model, or the 503/404 a prediction gets instead: no model deployed, still loading
 * (with Retry-After), failed to load (with the reason), or a name/version this server does not serve.
 */
export function requireModel(host: ModelHost, name?: string, version?: string): ModelInfo {
  const state = host.state;
  if (state.status === 'none') throw new ServeError('SERVE_NO_MODEL', 503, NO_MODEL_MESSAGE);
  if (state.status === 'loading') {
    throw new ServeError('SERVE_UNAVAILABLE', 503, `the model is still loading; retry in a few seconds`, {
      retryAfterSeconds: LOADING_RETRY_AFTER_SECONDS,
    });
  }
  if (state.status === 'failed') {
    throw new ServeError('SERVE_UNAVAILABLE', 503, `the model failed to load: ${state.reason}`);
  }
  const model = state.model;
  if (name !== undefined && name !== model.name) {
    throw new ServeError(
      'SERVE_NOT_FOUND',
      404,
      `unknown model '${name}'; this server serves '${model.name}'`,
    );
  }
  if (version !== undefined && version !== model.version) {
    throw new ServeError(
      'SERVE_NOT_FOUND',
      404,
      `unknown version '${version}' of model '${name ?? model.name}'; this server serves version '${model.version}'`,
    );
  }
  return model;
}

/**
 * Whether the client of `reply` is still there: it has gone once the response closed unfinished
 * (possibly before the handler ran, while the body was parsed on a parser thread). An inference
 * still waiting for a worker is then dropped instead of run for nobody.
 */
export function clientPresence(reply: FastifyReply): ClientPresence {
  const response = reply.raw;
  let listener: (() => void) | undefined;
  response.once('close', () => {
    if (!response.writableFinished) listener?.();
  });
  return {
    get gone() {
      return response.destroyed && !response.writableFinished;
    },
    onGone(fn) {
      listener = fn;
    },
  };
}
