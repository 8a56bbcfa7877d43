import { SlipwayError } from '../errors.ts';

/** Stable codes of rollout failures; the CLI and the Lambda logs key on these. */
export type RolloutErrorCode =
  /** The event is not a valid S3 "Object Created" event for the models bucket. */
  | 'ROLLOUT_EVENT_INVALID'
  /** A required environment variable (cluster, service, models bucket) is missing or empty. */
  | 'ROLLOUT_CONFIG'
  /** The service or its cluster does not exist, or the service is not ACTIVE. */
  | 'ROLLOUT_SERVICE_NOT_FOUND'
  /** The task definition has no container that carries MODEL_URI, or more than one candidate. */
  | 'ROLLOUT_NO_MODEL_CONTAINER'
  /** The caller's IAM identity may not perform an ECS action the rollout needs. */
  | 'ROLLOUT_ACCESS_DENIED'
  /** ECS kept throttling after every retry. */
  | 'ROLLOUT_THROTTLED'
  /** Any other ECS failure. */
  | 'ROLLOUT_AWS'
  /** The service changed under us (a concurrent deploy) more often than we are willing to retry. */
  | 'ROLLOUT_CONFLICT'
  /** Rollback found no earlier revision that pins a different model. */
  | 'ROLLOUT_NO_PREVIOUS_MODEL'
  /** No deployment with the requested id exists on the service. */
  | 'ROLLOUT_DEPLOYMENT_NOT_FOUND'
  /** Following a deployment gave up before it settled. */
  | 'ROLLOUT_FOLLOW_TIMEOUT';

/** A rollout failure with a stable code; `retryable` says whether trying the same thing again may help. */
export class RolloutError extends SlipwayError {
  declare readonly code: RolloutErrorCode;
  /** True when the same call may succeed later (throttling, conflicts, server errors). */
  readonly retryable: boolean;

  constructor(code: RolloutErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(code, message, options);
    this.retryable = options?.retryable ?? false;
  }
}
