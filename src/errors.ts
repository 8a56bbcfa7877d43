/** Base class of every error Slipway raises on purpose: a stable `code` plus a message for humans. */
export class SlipwayError extends Error {
  /** Stable machine-readable code, e.g. `ARTIFACT_UNSAFE_PATH`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An input the user (or a client) supplied is wrong; the message says what and how to fix it. */
export class UsageError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE', message, options);
  }
}

/** True for errors Slipway raised on purpose (as opposed to bugs). */
export function isSlipwayError(err: unknown): err is SlipwayError {
  return err instanceof SlipwayError;
}
