import { SlipwayError } from '../errors.ts';

/** Stable codes of the errors the inference service answers with. */
export type ServeErrorCode =
  | 'SERVE_BAD_REQUEST'
  | 'SERVE_NOT_FOUND'
  | 'SERVE_UNAVAILABLE'
  | 'SERVE_NO_MODEL'
  | 'SERVE_INFERENCE_FAILED'
  | 'SERVE_ABANDONED'
  | 'SERVE_OVERLOADED'
  | 'SERVE_INTERNAL'
  | 'SERVE_CONFIG';

/** An error with the HTTP status the service answers it with; `retryAfterSeconds` sets Retry-After. */
export class ServeError extends SlipwayError {
  /** HTTP status code sent to the client. */
  readonly statusCode: number;
  /** Seconds for the Retry-After header (503 only). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ServeErrorCode,
    statusCode: number,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(code, message, options);
    this.statusCode = statusCode;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** The service cannot listen where it was told to (port taken, address not of this machine). */
export class ListenError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SERVE_LISTEN', message, options);
  }
}

/** A client mistake in a request (400); the message says what was wrong. */
export function badRequest(message: string): ServeError {
  return new ServeError('SERVE_BAD_REQUEST', 400, message);
}

/** True for errors carrying their own HTTP status. */
export function isServeError(err: unknown): err is ServeError {
  return err instanceof ServeError;
}
