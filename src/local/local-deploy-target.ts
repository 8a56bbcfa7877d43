import { RolloutError } from '../rollout/errors.ts';
import type {
  DeployOptions,
  DeployResult,
  DeployTarget,
  DeploymentInfo,
  FollowOptions,
  FollowResult,
  PinnedModel,
  ServiceState,
  ServiceStatus,
} from '../rollout/deploy-target.ts';
import { pollUntilSettled } from '../rollout/follow.ts';
import { DeploymentError } from './errors.ts';
import {
  INITIAL_REVISION,
  baseRevisionNumber,
  currentDeployment,
  revisionNumber,
  wasInterrupted,
} from './supervisor.ts';
import type { Deployment, Supervisor } from './supervisor.ts';

/** Default time between two reads when following a twin deployment: it settles in seconds. */
const TWIN_FOLLOW_INTERVAL_MS = 250;

/** The rollout's {@link DeployTarget} backed by the twin's supervisor. */
export class LocalDeployTarget implements DeployTarget {
  private readonly supervisor: Supervisor;
  private readonly serviceName: string;

  constructor(supervisor: Supervisor, serviceName = 'slipway-local') {
    this.supervisor = supervisor;
    this.serviceName = serviceName;
  }

  /**
   * The revision the service is driven to (the newest deployment that did not fail), and the
   * models of the deployments it was rolled back from.
   */
  describe(): Promise<ServiceState> {
    return Promise.resolve(serviceStateOf(this.supervisor.deployments()));
  }

  /** Starts a rolling deployment of `model`; resolves once the supervisor accepted it. */
  deploy(model: PinnedModel, options: DeployOptions = {}): Promise<DeployResult> {
    const previous = this.supervisor.current();
    const previousRevision = previous?.revision ?? INITIAL_REVISION;
    if (options.ifRevision !== undefined && options.ifRevision !== previousRevision) {
      return Promise.reject(
        new RolloutError(
          'ROLLOUT_CONFLICT',
          `the service moved to ${previousRevision} since the decision (made against ${options.ifRevision})`,
          { retryable: true },
        ),
      );
    }
    const { deployment } = this.supervisor.begin(model);
    return Promise.resolve({
      deploymentId: deployment.id,
      revision: deployment.revision,
      previousRevision,
      model: deployment.model,
    });
  }

  /** Redeploys the revision the current one was based on (see `Supervisor.beginRollback`). */
  rollback(): Promise<DeployResult> {
    const previousRevision = this.supervisor.current()?.revision ?? INITIAL_REVISION;
    try {
      const { deployment } = this.supervisor.beginRollback();
      return Promise.resolve({
        deploymentId: deployment.id,
        revision: deployment.revision,
        previousRevision,
        model: deployment.model,
      });
    } catch (err) {
      if (err instanceof DeploymentError) {
        return Promise.reject(new RolloutError('ROLLOUT_NO_PREVIOUS_MODEL', err.message, { cause: err }));
      }
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Polls the supervisor until the deployment settles. */
  follow(deploymentId: string, options: FollowOptions = {}): Promise<FollowResult> {
    return followTwinDeployment(
      deploymentId,
      () => Promise.resolve(this.supervisor.deployments().find((d) => d.id === deploymentId)),
      `no deployment ${deploymentId} on the local service`,
      options,
    );
  }

  /** The service and its deployments (newest first, PRIMARY first). */
  status(): Promise<ServiceStatus> {
    const deployments = this.supervisor.deployments();
    const shown = deployments.filter((d) => d.status !== 'INACTIVE');
    const primary = shown.find((d) => d.status === 'PRIMARY');
    const ordered = primary ? [primary, ...shown.filter((d) => d !== primary)] : shown;
    return Promise.resolve({
      service: this.serviceName,
      serviceStatus: 'ACTIVE',
      desiredCount: primary?.desiredCount ?? 0,
      runningCount: this.supervisor.tasks().filter((t) => t.lastStatus === 'RUNNING').length,
      deployments: ordered.map(toDeploymentInfo),
    });
  }
}

/**
 * The twin's service state as the rollout sees it, from its deployments (the supervisor's own, or
 * as the control API lists them): the revision it is driven to (the newest deployment that did not
 * fail), its model, and the models it was rolled back from.
 */
export function serviceStateOf(deployments: readonly Deployment[]): ServiceState {
  const current = currentDeployment(deployments);
  return {
    revision: current?.revision ?? INITIAL_REVISION,
    model: current?.model,
    rolledBack: rolledBackModels(deployments, current),
  };
}

/**
 * The models of the twin's deployments the service went back from (`ServiceState.rolledBack`), as
 * the ECS target counts them: every deployment (a superseded one included) of a revision newer
 * than the current one, or between it and the revision it was based on (left before it was made),
 * and every deployment the service was rolled back from. Interrupted ones do not count: a restart
 * replays them.
 */
function rolledBackModels(
  deployments: readonly Deployment[],
  current: Deployment | undefined,
): PinnedModel[] {
  const n = revisionNumber(current?.revision ?? INITIAL_REVISION);
  const base = current ? baseRevisionNumber(current) : n;
  const left = (d: Deployment): boolean => {
    const revision = revisionNumber(d.revision);
    return !wasInterrupted(d) && (revision > n || (revision > base && revision < n));
  };
  return deployments.flatMap((d) => (d.rolledBackTo !== undefined || left(d) ? [d.model] : []));
}

/** Maps a supervisor deployment onto the rollout's vocabulary. */
export function toDeploymentInfo(d: Deployment): DeploymentInfo {
  return {
    id: d.id,
    status: d.status,
    rolloutState: d.rolloutState,
    reason: d.rolloutStateReason,
    revision: d.revision,
    model: d.model,
    desiredCount: d.desiredCount,
    runningCount: d.runningCount,
    pendingCount: d.rolloutState === 'IN_PROGRESS' ? Math.max(0, d.desiredCount - d.runningCount) : 0,
    failedTasks: d.failedTasks,
    createdAt: new Date(d.createdAt),
    updatedAt: new Date(d.updatedAt),
  };
}

/**
 * Follows one of the twin supervisor's deployments, read by `read` (in process, or through the
 * control API). The supervisor settles a deployment itself, so one read says how it ended:
 * COMPLETED (superseded if it is no longer PRIMARY), or FAILED (rolled back when the service went
 * back to an earlier deployment, superseded when a newer one replaced it before it started). One
 * that has left the list was superseded.
 */
export function followTwinDeployment(
  deploymentId: string,
  read: () => Promise<Deployment | undefined>,
  notFound: string,
  options: FollowOptions,
): Promise<FollowResult> {
  return pollUntilSettled<Deployment>(
    deploymentId,
    {
      read,
      info: toDeploymentInfo,
      settled: (d, info) => {
        const ended = { deploymentId, reason: d.rolloutStateReason, deployment: info };
        if (d.rolloutState === 'COMPLETED') {
          return { ...ended, outcome: d.status === 'PRIMARY' ? 'completed' : 'superseded' };
        }
        if (d.rolloutState === 'FAILED') {
          if (d.supersededBy !== undefined) return { ...ended, outcome: 'superseded' };
          return { ...ended, outcome: d.rolledBackTo === undefined ? 'failed' : 'rolled-back' };
        }
        return undefined;
      },
      gone: () => ({ deploymentId, outcome: 'superseded' }),
      notFound: () => new RolloutError('ROLLOUT_DEPLOYMENT_NOT_FOUND', notFound),
    },
    options,
    TWIN_FOLLOW_INTERVAL_MS,
  );
}
