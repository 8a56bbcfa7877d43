/**
 * Rollout operations over any `DeployTarget`: roll out an event (what the Lambda and the local
 * twin's event bus call), restore a model a failed code deploy took away (the Lambda, asked by
 * deploy.yml), status, rollback and follow (what the CLI calls).
 */
import { pollUntil, type PollOptions } from '../shared/poll.ts';
import { decideRollout, type RolloutDecision, type RolloutPolicy } from './decision.ts';
import type {
  DeployResult,
  DeployTarget,
  DeploymentInfo,
  FollowOptions,
  FollowResult,
  PinnedModel,
  ServiceState,
  ServiceStatus,
} from './deploy-target.ts';
import { RolloutError } from './errors.ts';
import { decideRestore, type RestoreDecision } from './restore.ts';

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
  return oneAtATime(target, () => decideAndDeploy(event, target, policy, options));
}

/** What `restoreModel` did. */
export type RestoreOutcome =
  | { readonly kind: 'deploy'; readonly result: DeployResult }
  | { readonly kind: 'skip'; readonly decision: Extract<RestoreDecision, { kind: 'skip' }> };

/**
 * Pin `model` again after a failed code deploy took it from the service (see `./restore.ts`):
 * deploy it unless it is live or a newer model is. Serialized with `rolloutModelEvent` on the same
 * target, and conditional on the revision it decided against, as a rollout is.
 */
export function restoreModel(
  model: PinnedModel,
  target: DeployTarget,
  options: { readonly maxConflicts?: number } = {},
): Promise<RestoreOutcome> {
  return oneAtATime(target, () =>
    deployAgainstLatest<RestoreOutcome>(target, options.maxConflicts, (state) => {
      const decision = decideRestore(model, state);
      if (decision.kind === 'skip') return { stop: { kind: 'skip', decision } };
      return { deploy: model, deployed: (result) => ({ kind: 'deploy', result }) };
    }),
  );
}

/** What to do on one read of the target's state: stop with an outcome, or deploy a model. */
type Step<Outcome> =
  | { readonly stop: Outcome }
  | { readonly deploy: PinnedModel; readonly deployed: (result: DeployResult) => Outcome };

/**
 * Read the target's state, decide, and deploy on condition that the service is still on the
 * revision decided against; when another writer switched it meanwhile, read and decide again (at
 * most `maxConflicts` times, then the conflict is thrown).
 */
async function deployAgainstLatest<Outcome>(
  target: DeployTarget,
  maxConflicts = 3,
  decide: (state: ServiceState) => Step<Outcome>,
): Promise<Outcome> {
  for (let conflicts = 0; ; conflicts++) {
    const state = await target.describe();
    const step = decide(state);
    if ('stop' in step) return step.stop;
    try {
      return step.deployed(await target.deploy(step.deploy, { ifRevision: state.revision }));
    } catch (err) {
      if (!(err instanceof RolloutError) || err.code !== 'ROLLOUT_CONFLICT' || conflicts >= maxConflicts) {
        throw err;
      }
    }
  }
}

// One rollout at a time per target in this process: decide-then-deploy must not interleave with
// another event's (the Lambda gets this from reserved concurrency 1; the twin from this queue).
const queues = new WeakMap<DeployTarget, Promise<void>>();

function oneAtATime<T>(target: DeployTarget, work: () => Promise<T>): Promise<T> {
  const previous = queues.get(target) ?? Promise.resolve();
  const run = previous.then(work);
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

  return deployAgainstLatest<RolloutOutcome>(target, options.maxConflicts, (state) => {
    const decision = decideRollout(event, state, policy, parsing);
    if (decision.kind === 'skip') return { stop: { kind: 'skip', decision } };
    if (decision.kind === 'reject') return { stop: { kind: 'reject', decision } };
    return { deploy: decision.model, deployed: (result) => ({ kind: 'deploy', decision, result }) };
  });
}

/** Options of `waitUntilSteady`: how often to look, and for how long (see `pollUntil`). */
export type SteadyOptions = Omit<PollOptions<ServiceStatus>, 'onWait'>;

/**
 * The service's status once no rollout is in progress (every deployment COMPLETED or FAILED): the
 * model that serves for good, not one a rollout may still take back. Throws
 * `ROLLOUT_FOLLOW_TIMEOUT` naming the rollout that was still in progress at the deadline.
 */
export async function waitUntilSteady(target: DeployTarget, options: SteadyOptions): Promise<ServiceStatus> {
  const inProgress = (status: ServiceStatus): DeploymentInfo | undefined =>
    status.deployments.find((d) => d.rolloutState === 'IN_PROGRESS');
  const { value: status } = await pollUntil(
    () => target.status(),
    (s) => inProgress(s) === undefined,
    options,
  );
  const moving = inProgress(status);
  if (moving === undefined) return status;
  throw new RolloutError(
    'ROLLOUT_FOLLOW_TIMEOUT',
    `a rollout is still in progress after ${Math.round(options.timeoutMs / 1000)}s: deployment ${moving.id} ` +
      `(${moving.model?.uri ?? 'no model'}, ${moving.runningCount}/${moving.desiredCount} tasks running)`,
    { retryable: true },
  );
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
