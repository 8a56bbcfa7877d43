/**
 * The one interface every place Slipway can deploy to implements: ECS on AWS
 * (`EcsDeployTarget`) and the local twin's process supervisor.
 *
 * The rollout logic (decide, deploy, re-check, follow) is written against this interface only,
 * so the Lambda and the local twin run the same code. A "revision" is the target's unit of
 * desired configuration: an ECS task-definition ARN, or whatever the supervisor uses
 * (a counter is fine). Each revision pins exactly one model (or the no-model state).
 */

/**
 * A model pinned by a revision, plus what the rollout recorded to order later events.
 * Only `uri` is guaranteed: a revision written by hand (or by the CDK app) may carry no ordering
 * record, and then any new event counts as newer.
 */
export interface PinnedModel {
  /** What MODEL_URI holds: `s3://bucket/key`, `s3://bucket/key?versionId=v`, or another store URI. */
  readonly uri: string;
  /** Bucket of an `s3://` model. */
  readonly bucket?: string;
  /** Object key of an `s3://` model (decoded, as S3 stores it). */
  readonly key?: string;
  /** S3 version id, when the bucket is versioned. */
  readonly versionId?: string;
  /** S3 ETag without quotes (multipart uploads look like `<hex>-<parts>`). */
  readonly etag?: string;
  /** S3 sequencer of the event that pinned the model (hex; orders events for one key). */
  readonly sequencer?: string;
  /** Time of that event, ISO 8601 (orders events across keys). */
  readonly eventTime?: string;
}

/** The desired state of a service: its current revision and the model it pins. */
export interface ServiceState {
  /** Opaque id of the revision the service is being driven to (ECS: task-definition ARN). */
  readonly revision: string;
  /** The model that revision pins; undefined in the no-model state (MODEL_URI = `none`). */
  readonly model: PinnedModel | undefined;
  /**
   * Models the service was rolled back from (by the circuit breaker or by hand). A late or
   * repeated delivery of one of their events is skipped instead of deploying a model that already
   * failed; uploading the model again (a new object version or sequencer) deploys it. ECS: the
   * models of the family's ACTIVE revisions the service ran that are newer than the current one,
   * or between it and the revision it came from; the twin: the same of its deployments (a
   * superseded one included, an interrupted one not), and those it was rolled back from.
   * Absent means none are known.
   */
  readonly rolledBack?: readonly PinnedModel[];
}

/** Rollout progress of one deployment, with ECS's vocabulary (the twin maps onto it). */
export type RolloutState = 'IN_PROGRESS' | 'COMPLETED' | 'FAILED';

/** One deployment of the service and the model it runs. */
export interface DeploymentInfo {
  /** Deployment id (ECS: `ecs-svc/1234567890123456789`). */
  readonly id: string;
  /** PRIMARY = the newest, what the service converges to; ACTIVE = older tasks still draining. */
  readonly status: 'PRIMARY' | 'ACTIVE' | 'INACTIVE';
  readonly rolloutState: RolloutState;
  /** Why the rollout is in that state (ECS: `rolloutStateReason`), when known. */
  readonly reason?: string;
  /** The revision this deployment runs. */
  readonly revision: string;
  /** The model that revision pins; undefined in the no-model state. */
  readonly model: PinnedModel | undefined;
  readonly desiredCount: number;
  readonly runningCount: number;
  readonly pendingCount: number;
  readonly failedTasks: number;
  readonly createdAt?: Date;
  readonly updatedAt?: Date;
}

/** Everything `slipway status` shows: the service and each of its deployments. */
export interface ServiceStatus {
  /** Service name (ECS service name, or the twin's service name). */
  readonly service: string;
  /** ACTIVE, DRAINING or INACTIVE (ECS vocabulary). */
  readonly serviceStatus: string;
  readonly desiredCount: number;
  readonly runningCount: number;
  /** Newest first; the PRIMARY deployment comes first. */
  readonly deployments: readonly DeploymentInfo[];
}

/** Options of `DeployTarget.deploy`. */
export interface DeployOptions {
  /**
   * Only deploy if the service's current revision is still this one (the revision the decision
   * was made against). The target re-checks as late as it can, just before switching the service,
   * and throws `RolloutError('ROLLOUT_CONFLICT', ..., { retryable: true })` if it moved.
   */
  readonly ifRevision?: string;
}

/** What a deploy or a rollback started. */
export interface DeployResult {
  /** Id of the new deployment; pass it to `follow`. */
  readonly deploymentId: string;
  /** The revision the service now runs towards. */
  readonly revision: string;
  /** The revision it ran before. */
  readonly previousRevision: string;
  /** The model the new revision pins (undefined only if a rollback lands in the no-model state). */
  readonly model: PinnedModel | undefined;
}

/** Options of `DeployTarget.follow`. */
export interface FollowOptions {
  /** Time between two status checks. @default 15000 for ECS */
  readonly intervalMs?: number;
  /** Give up (with `ROLLOUT_FOLLOW_TIMEOUT`) after this long. @default 1800000 (30 minutes) */
  readonly timeoutMs?: number;
  /** Called with each snapshot, for progress output. */
  readonly onProgress?: (deployment: DeploymentInfo) => void;
  /** Stops following early (rejects with the signal's reason). */
  readonly signal?: AbortSignal;
}

/** How a followed deployment ended. */
export type FollowOutcome =
  /** Every task of the deployment is running and healthy; old tasks are gone. */
  | 'completed'
  /** The deployment failed and the service rolled back to an earlier deployment. */
  | 'rolled-back'
  /** The deployment failed and nothing rolled it back (no circuit-breaker rollback configured). */
  | 'failed'
  /** A newer deployment replaced it before it settled. */
  | 'superseded';

/** Result of `DeployTarget.follow`. */
export interface FollowResult {
  readonly deploymentId: string;
  readonly outcome: FollowOutcome;
  /** Human-readable reason from the target (ECS `rolloutStateReason`). */
  readonly reason?: string;
  /** The last snapshot seen of the deployment, if it was still listed. */
  readonly deployment?: DeploymentInfo;
}

/**
 * A place the inference service runs, driven by revisions that each pin one model.
 *
 * Contract for implementers (the local twin): every method reads fresh state (no caching across
 * calls that would hide another writer), failures are `RolloutError`s with the codes from
 * `./errors.ts`, and nothing reports success unless the target accepted the change.
 */
export interface DeployTarget {
  /** The service's current revision and the model it pins; the rollout decision's input. */
  describe(): Promise<ServiceState>;

  /**
   * Create a revision identical to the current one except that it pins `model`, and switch the
   * service to it with a rolling deployment (old tasks keep serving until new ones are ready).
   * Resolves once the target has accepted the deployment, not when it has finished; use `follow`.
   */
  deploy(model: PinnedModel, options?: DeployOptions): Promise<DeployResult>;

  /**
   * Switch the service back to the last model it ran before the current one, passing over models
   * it was rolled back from and revisions that pin the current model (the no-model state is never
   * a rollback target). Both targets follow the base revision each rollout recorded (ECS: the
   * `slipway:base-revision` tag; the twin: each deployment's `baseRevision`), so a second rollback
   * goes on further back (A, B, C deployed: back to B, then to A), never to the revision it came
   * from. Throws `ROLLOUT_NO_PREVIOUS_MODEL` if there is none.
   */
  rollback(): Promise<DeployResult>;

  /**
   * Poll one deployment until it completes, fails, is rolled back or superseded. Throws
   * `ROLLOUT_DEPLOYMENT_NOT_FOUND` if the id is unknown at the first check, and
   * `ROLLOUT_FOLLOW_TIMEOUT` when `timeoutMs` passes first.
   */
  follow(deploymentId: string, options?: FollowOptions): Promise<FollowResult>;

  /** The service and each of its current deployments, with the model each one runs. */
  status(): Promise<ServiceStatus>;
}
