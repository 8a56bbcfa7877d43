/**
 * Rollout operations over any `DeployTarget`: roll out an event (what the Lambda and the local
 * twin's event bus call), status, rollback and follow (what the CLI calls).
 */
import { decideRollout, type RolloutDecision, type RolloutPolicy } from './decision.ts';
import type {
  DeployResult,
  DeployTarget,
  FollowOptions,
  FollowResult,
  ServiceStatus,
} from './deploy-target.ts';
import { RolloutError } from './errors.ts';

/** What `rolloutModelEvent` did. */
export type RolloutOutcome =
  | {
      readonly kind: 'deploy';
      readonly decision: Extract<RolloutDecision, { kind: 'deploy' }>;
      readonly result: DeployResult;
    }
  | { readonly kind: 'skip'; readonly decision: Extract<RolloutDecision, { kind: 'skip' }> }
  | { readonly kind: 'reject'; readonly decision: Extract<RolloutDecision, { kind: 'reject' }> };

/** Options of `rolloutModelEvent`. */
export interface RolloutEventOptions {
  /**
   * How many times to re-decide when another writer switched the service between our read and
   * our deploy. @default 3
   */
  readonly maxConflicts?: number;
  /**
   * The object's key as S3 stores it, when the caller has resolved the event's key (the Lambda
   * does, see `resolveObjectKey`). @default the event's key, URL-decoded
   */
  readonly objectKey?: string;
}

/**
 * Decide on one event against the target's current state and deploy if the decision says so.
 *
 * Safe under concurrency: calls for the same target in one process run one after another, and
 * across processes the deploy is conditional on the revision the decision was made against; if
 * the service moved meanwhile, the state is read again and the decision re-made (so of two racing
 * events the newer one wins and the older one ends as `older-than-live`). The remaining window
 * (between the target's last re-check and its switch) is closed on AWS by reserved concurrency 1
 * (the infra's `serialRollouts`; without it, the last of two racing switches wins).
 * Rejections are returned, not thrown; the caller decides how loud to be.
 */
export function rolloutModelEvent(
  event: unknown,
  target: DeployTarget,
  policy: RolloutPolicy,
  options: RolloutEventOptions = {},
): Promise<RolloutOutcome> {
  // One rollout at a time per target in this process: decide-then-deploy must not interleave with
  // another event's (the Lambda gets this from reserved concurrency 1; the twin from this queue).
  const previous = queues.get(target) ?? Promise.resolve();
  const run = previous.then(() => decideAndDeploy(event, target, policy, options));
  const settled = run.then(
    () => undefined,
    () => undefined,
  );
  queues.set(target, settled);
  void settled.then(() => {
    if (queues.get(target) === settled) queues.delete(target);
  });
  return run;
}

const queues = new WeakMap<DeployTarget, Promise<void>>();

async function decideAndDeploy(
  event: unknown,
  target: DeployTarget,
  policy: RolloutPolicy,
  options: RolloutEventOptions,
): Promise<RolloutOutcome> {
  // Invalid events and non-models are judged without touching the target: with no live model the
  // decision can only reject, skip as not-a-model, or deploy.
  const parsing = options.objectKey === undefined ? {} : { objectKey: options.objectKey };
  const early = decideRollout(event, { revision: '', model: undefined }, policy, parsing);
  if (early.kind === 'reject') return { kind: 'reject', decision: early };
  if (early.kind === 'skip') return { kind: 'skip', decision: early };

  const maxConflicts = options.maxConflicts ?? 3;
  for (let conflicts = 0; ; conflicts++) {
    const state = await target.describe();
    const decision = decideRollout(event, state, policy, parsing);
    if (decision.kind === 'skip') return { kind: 'skip', decision };
    if (decision.kind === 'reject') return { kind: 'reject', decision };
    try {
      const result = await target.deploy(decision.model, { ifRevision: state.revision });
      return { kind: 'deploy', decision, result };
    } catch (err) {
      if (!(err instanceof RolloutError) || err.code !== 'ROLLOUT_CONFLICT' || conflicts >= maxConflicts) {
        throw err;
      }
    }
  }
}

/** Which model each deployment of the service runs, and where each rollout stands. */
export function rolloutStatus(target: DeployTarget): Promise<ServiceStatus> {
  return target.status();
}

/** Roll the service back to the previous model revision; follow the returned deployment id. */
export function rollbackModel(target: DeployTarget): Promise<DeployResult> {
  return target.rollback();
}

/** Follow a deployment by id until it completed, failed, rolled back or was superseded. */
export function followDeployment(
  target: DeployTarget,
  deploymentId: string,
  options?: FollowOptions,
): Promise<FollowResult> {
  return target.follow(deploymentId, options);
}

/** Plain-text lines describing a service status, for the CLI and logs. */
export function formatStatus(status: ServiceStatus): string[] {
  const lines = [
    `service ${status.service} (${status.serviceStatus}): ${status.runningCount}/${status.desiredCount} tasks running`,
  ];
  for (const d of status.deployments) {
    const model = d.model === undefined ? 'no model (MODEL_URI=none)' : d.model.uri;
    const version = d.model?.versionId ?? d.model?.etag;
    lines.push(
      `  ${d.status.padEnd(7)} ${d.id}  ${d.rolloutState}  ${d.runningCount}/${d.desiredCount} running` +
        `${d.failedTasks > 0 ? `, ${d.failedTasks} failed` : ''}`,
      `          model ${model}${version ? ` (version ${version})` : ''}`,
      `          revision ${d.revision}${d.reason ? `\n          ${d.reason}` : ''}`,
    );
  }
  return lines;
}
