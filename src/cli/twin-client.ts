import { readRuntimeFile, statePaths } from '../local/state-dir.ts';
import type { TwinRuntimeFile } from '../local/state-dir.ts';
import { TwinNotRunningError } from '../local/errors.ts';
import type { Deployment, TaskInfo } from '../local/supervisor.ts';
import { CONTROL_STATUS_PATH, type TargetSnapshot } from '../local/load-balancer.ts';
import type { RolloutRecord, TrainingState } from '../local/twin.ts';
import type {
  DeployResult,
  DeployTarget,
  FollowOptions,
  FollowResult,
  ServiceState,
  ServiceStatus,
} from '../rollout/deploy-target.ts';
import { RolloutError } from '../rollout/errors.ts';
import { followTwinDeployment, serviceStateOf } from '../local/local-deploy-target.ts';
import { SlipwayError, UsageError } from '../errors.ts';

/** What `GET /_slipway/status` answers. */
export interface TwinStatus {
  readonly twin: {
    readonly pid: number;
    readonly startedAt: string;
    readonly url: string;
    readonly s3Endpoint: string;
    readonly buckets: { readonly data: string; readonly models: string };
    readonly stateDir: string;
  };
  readonly training: TrainingState;
  readonly service: ServiceStatus;
  readonly deployments: readonly Deployment[];
  readonly tasks: readonly TaskInfo[];
  readonly targets: readonly TargetSnapshot[];
  readonly recentEvents: readonly RolloutRecord[];
}

/** Finds a running twin through its state directory and talks to its control API. */
export class TwinClient {
  /** The twin's runtime record (endpoints, buckets). */
  readonly runtime: TwinRuntimeFile;

  private constructor(runtime: TwinRuntimeFile) {
    this.runtime = runtime;
  }

  /** Connects to the twin whose state lives in `stateDir`; a clear error when none runs there. */
  static async connect(stateDir: string): Promise<TwinClient> {
    const paths = statePaths(stateDir);
    const runtime = await readRuntimeFile(paths);
    if (!runtime) {
      throw new TwinNotRunningError(
        `no local twin is running with state in ${paths.root}; start one with \`npx slipway up\` (or pass --state-dir, or --cloud for the deployed stack)`,
      );
    }
    const client = new TwinClient(runtime);
    try {
      await client.request('GET', CONTROL_STATUS_PATH);
    } catch (err) {
      if (err instanceof TwinNotRunningError) {
        throw new TwinNotRunningError(
          `the local twin recorded in ${paths.runtime} (pid ${runtime.pid}, ${runtime.url}) does not answer; ` +
            'it probably stopped without cleaning up: run `npx slipway up` again (it recovers the state)',
          { cause: err },
        );
      }
      throw err;
    }
    return client;
  }

  /** Everything `status` shows. */
  status(): Promise<TwinStatus> {
    return this.request('GET', CONTROL_STATUS_PATH) as Promise<TwinStatus>;
  }

  /** Starts a rollback to the previous model. */
  rollback(): Promise<DeployResult> {
    return this.request('POST', '/_slipway/rollback') as Promise<DeployResult>;
  }

  /** One deployment by id, or undefined when the twin does not know it. */
  async deployment(id: string): Promise<Deployment | undefined> {
    try {
      return (await this.request('GET', `/_slipway/deployments/${encodeURIComponent(id)}`)) as Deployment;
    } catch (err) {
      if (err instanceof SlipwayError && err.code === 'TWIN_NOT_FOUND') return undefined;
      throw err;
    }
  }

  private async request(method: string, path: string): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.runtime.url}${path}`, { method, signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      throw new TwinNotRunningError(`cannot reach the local twin at ${this.runtime.url}`, { cause: err });
    }
    const body = (await res.json().catch(() => ({}))) as { error?: string; code?: string };
    if (res.status === 404) throw new SlipwayError('TWIN_NOT_FOUND', body.error ?? `${path} not found`);
    if (!res.ok)
      throw new SlipwayError(
        body.code ?? 'TWIN_ERROR',
        body.error ?? `${method} ${path}: HTTP ${res.status}`,
      );
    return body;
  }
}

/**
 * The rollout's DeployTarget over a running twin's control API, so that the CLI drives the twin
 * and a deployed stack (EcsDeployTarget) with the same rollout operations.
 */
export class RemoteTwinTarget implements DeployTarget {
  private readonly client: TwinClient;

  constructor(client: TwinClient) {
    this.client = client;
  }

  /** The revision the twin is driven to and its model, and the models it was rolled back from. */
  async describe(): Promise<ServiceState> {
    return serviceStateOf((await this.client.status()).deployments);
  }

  /** Deploys happen by uploading to the models bucket (the event starts the rollout), not by call. */
  deploy(): Promise<DeployResult> {
    return Promise.reject(
      new UsageError(
        'the local twin deploys what is uploaded to its models bucket: use `npx slipway deploy <model.tar.gz>`',
      ),
    );
  }

  /** Starts a rollback on the twin. */
  async rollback(): Promise<DeployResult> {
    try {
      return await this.client.rollback();
    } catch (err) {
      if (err instanceof SlipwayError && err.code === 'ROLLOUT_NO_PREVIOUS_MODEL') {
        throw new RolloutError('ROLLOUT_NO_PREVIOUS_MODEL', err.message, { cause: err });
      }
      throw err;
    }
  }

  /** Polls one deployment until it settles. */
  follow(deploymentId: string, options: FollowOptions = {}): Promise<FollowResult> {
    return followTwinDeployment(
      deploymentId,
      () => this.client.deployment(deploymentId),
      `the local twin has no deployment ${deploymentId}`,
      options,
    );
  }

  /** The twin's service status. */
  async status(): Promise<ServiceStatus> {
    return (await this.client.status()).service;
  }
}
