import { SlipwayError } from '../errors.ts';

/** A port the twin needs is already taken by another process. */
export class PortInUseError extends SlipwayError {
  /** The port that was taken. */
  readonly port: number;

  constructor(port: number, what: string, flag: string, options?: { cause?: unknown }) {
    super(
      'PORT_IN_USE',
      `port ${port} (${what}) is already in use by another process; stop it or pick another port with ${flag} <port>`,
      options,
    );
    this.port = port;
  }
}

/** The twin's state directory is unusable (another twin owns it, or it cannot be read). */
export class StateDirError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STATE_DIR', message, options);
  }
}

/** No local twin answers where the state directory says it runs. */
export class TwinNotRunningError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TWIN_NOT_RUNNING', message, options);
  }
}

/** A deployment could not be carried out (the circuit breaker tripped, or a deploy was superseded). */
export class DeploymentError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DEPLOYMENT_FAILED', message, options);
  }
}

/** True when a listen() failure means the port is taken. */
export function isAddressInUse(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'EADDRINUSE';
}
