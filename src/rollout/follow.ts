/**
 * Following a deployment by polling: one loop (`pollUntilSettled`) for every `DeployTarget`, and
 * ECS's reading of its deployment list (`followByPolling`), used by `EcsDeployTarget`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { DeploymentInfo, FollowOptions, FollowResult, ServiceStatus } from './deploy-target.ts';
import { RolloutError } from './errors.ts';

/** Default time between two polls when following an ECS deployment. */
export const DEFAULT_FOLLOW_INTERVAL_MS = 15_000;
/** Default limit on following one deployment. */
export const DEFAULT_FOLLOW_TIMEOUT_MS = 30 * 60_000;

/** What one target contributes to following a deployment; the polling itself is `pollUntilSettled`. */
export interface DeploymentSource<D> {
  /** Reads the deployment fresh; undefined once the target no longer lists it. */
  read(): Promise<D | undefined>;
  /** The snapshot given to `onProgress` and kept in the result. */
  info(deployment: D): DeploymentInfo;
  /**
   * The outcome once the deployment has settled, or undefined to poll again; `info` is this
   * read's snapshot, `previous` the read before it.
   */
  settled(deployment: D, info: DeploymentInfo, previous: D | undefined): FollowResult | undefined;
  /** The outcome of a deployment that was listed (last seen as `last`) and has left the list. */
  gone(last: D): FollowResult;
  /** The error for a deployment that was never listed. */
  notFound(): Error;
}

/**
 * Polls `source` every `intervalMs` until deployment `deploymentId` settles, the timeout passes
 * (`ROLLOUT_FOLLOW_TIMEOUT`, retryable), or `signal` aborts (rejects with the signal's reason).
 * The loop every `DeployTarget.follow` shares: ECS's (`followByPolling`), the twin supervisor's
 * and the twin control API's.
 */
export async function pollUntilSettled<D>(
  deploymentId: string,
  source: DeploymentSource<D>,
  options: FollowOptions,
  defaultIntervalMs: number,
): Promise<FollowResult> {
  const intervalMs = options.intervalMs ?? defaultIntervalMs;
  const timeoutMs = options.timeoutMs ?? DEFAULT_FOLLOW_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let last: D | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    const deployment = await source.read();
    if (deployment === undefined) {
      if (last === undefined) throw source.notFound();
      return source.gone(last);
    }
    const info = source.info(deployment);
    options.onProgress?.(info);
    const settled = source.settled(deployment, info, last);
    if (settled !== undefined) return settled;
    last = deployment;

    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new RolloutError(
        'ROLLOUT_FOLLOW_TIMEOUT',
        `deployment ${deploymentId} did not settle within ${Math.round(timeoutMs / 1000)}s ` +
          `(last: ${info.rolloutState}, ${info.runningCount}/${info.desiredCount} tasks running)`,
        { retryable: true },
      );
    }
    try {
      await sleep(Math.min(intervalMs, remaining), undefined, { signal: options.signal });
    } catch (err) {
      // Node rejects with a generic AbortError; callers gave a reason, so surface theirs.
      if (options.signal?.aborted) throw options.signal.reason;
      throw err;
    }
  }
}

/**
 * Poll `readStatus` until deployment `deploymentId` settles.
 *
 * Reading ECS's deployment list: COMPLETED is done; FAILED while a newer deployment is PRIMARY
 * means the circuit breaker rolled it back; FAILED while still PRIMARY (seen twice, to give ECS
 * time to start the rollback deployment) means nothing rolled it back; an in-progress deployment
 * that lost PRIMARY, or vanished from the list, was superseded (if it vanished after failing, it
 * was rolled back and drained).
 */
export function followByPolling(
  readStatus: () => Promise<ServiceStatus>,
  deploymentId: string,
  options: FollowOptions = {},
): Promise<FollowResult> {
  let status: ServiceStatus | undefined;
  return pollUntilSettled<DeploymentInfo>(
    deploymentId,
    {
      read: async () => {
        status = await readStatus();
        return status.deployments.find((d) => d.id === deploymentId);
      },
      info: (deployment) => deployment,
      settled: (deployment, _info, previous) => settle(deployment, previous?.rolloutState === 'FAILED'),
      gone: (last) => {
        const primary = status?.deployments.find((d) => d.status === 'PRIMARY');
        return {
          deploymentId,
          outcome: last.rolloutState === 'FAILED' ? 'rolled-back' : 'superseded',
          reason: last.reason ?? `replaced by deployment ${primary?.id ?? '(unknown)'}`,
          deployment: last,
        };
      },
      notFound: () =>
        new RolloutError(
          'ROLLOUT_DEPLOYMENT_NOT_FOUND',
          `service ${status?.service ?? '(unknown)'} has no deployment ${deploymentId} (current: ${status?.deployments.map((d) => d.id).join(', ') || 'none'})`,
        ),
    },
    options,
    DEFAULT_FOLLOW_INTERVAL_MS,
  );
}

function settle(deployment: DeploymentInfo, failedPrimarySeen: boolean): FollowResult | undefined {
  const base = {
    deploymentId: deployment.id,
    deployment,
    ...(deployment.reason === undefined ? {} : { reason: deployment.reason }),
  };
  if (deployment.rolloutState === 'COMPLETED') return { ...base, outcome: 'completed' };
  if (deployment.rolloutState === 'FAILED') {
    if (deployment.status !== 'PRIMARY') return { ...base, outcome: 'rolled-back' };
    return failedPrimarySeen ? { ...base, outcome: 'failed' } : undefined;
  }
  if (deployment.status !== 'PRIMARY') return { ...base, outcome: 'superseded' };
  return undefined;
}
