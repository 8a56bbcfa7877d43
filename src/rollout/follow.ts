/**
 * Following a deployment by polling the service status: shared by `EcsDeployTarget` and usable
 * by any `DeployTarget` whose status uses ECS's deployment vocabulary.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { DeploymentInfo, FollowOptions, FollowResult, ServiceStatus } from './deploy-target.ts';
import { RolloutError } from './errors.ts';

/** Default time between two polls when following an ECS deployment. */
export const DEFAULT_FOLLOW_INTERVAL_MS = 15_000;
/** Default limit on following one deployment. */
export const DEFAULT_FOLLOW_TIMEOUT_MS = 30 * 60_000;

/**
 * Poll `readStatus` until deployment `deploymentId` settles.
 *
 * Reading ECS's deployment list: COMPLETED is done; FAILED while a newer deployment is PRIMARY
 * means the circuit breaker rolled it back; FAILED while still PRIMARY (seen twice, to give ECS
 * time to start the rollback deployment) means nothing rolled it back; an in-progress deployment
 * that lost PRIMARY, or vanished from the list, was superseded (if it vanished after failing, it
 * was rolled back and drained).
 */
export async function followByPolling(
  readStatus: () => Promise<ServiceStatus>,
  deploymentId: string,
  options: FollowOptions = {},
): Promise<FollowResult> {
  const intervalMs = options.intervalMs ?? DEFAULT_FOLLOW_INTERVAL_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_FOLLOW_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let last: DeploymentInfo | undefined;
  let failedPrimarySeen = false;

  for (;;) {
    options.signal?.throwIfAborted();
    const status = await readStatus();
    const deployment = status.deployments.find((d) => d.id === deploymentId);
    if (deployment === undefined) {
      if (last === undefined) {
        throw new RolloutError(
          'ROLLOUT_DEPLOYMENT_NOT_FOUND',
          `service ${status.service} has no deployment ${deploymentId} (current: ${status.deployments.map((d) => d.id).join(', ') || 'none'})`,
        );
      }
      const primary = status.deployments.find((d) => d.status === 'PRIMARY');
      return {
        deploymentId,
        outcome: last.rolloutState === 'FAILED' ? 'rolled-back' : 'superseded',
        reason: last.reason ?? `replaced by deployment ${primary?.id ?? '(unknown)'}`,
        deployment: last,
      };
    }
    last = deployment;
    options.onProgress?.(deployment);
    const settled = settle(deployment, failedPrimarySeen);
    if (settled !== undefined) return settled;
    if (deployment.rolloutState === 'FAILED') failedPrimarySeen = true;

    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new RolloutError(
        'ROLLOUT_FOLLOW_TIMEOUT',
        `deployment ${deploymentId} did not settle within ${Math.round(timeoutMs / 1000)}s ` +
          `(last: ${deployment.rolloutState}, ${deployment.runningCount}/${deployment.desiredCount} tasks running)`,
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
