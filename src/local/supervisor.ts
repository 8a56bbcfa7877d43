import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { DeploymentError } from './errors.ts';
import { probe } from './load-balancer.ts';
import type { TargetSpec } from './load-balancer.ts';
import type { PinnedModel } from '../rollout/deploy-target.ts';

/** ECS deployment status: the one being rolled out (or live) is PRIMARY, the one it replaces ACTIVE. */
export type DeploymentStatus = 'PRIMARY' | 'ACTIVE' | 'INACTIVE';
/** ECS rollout state of a deployment. */
export type RolloutState = 'IN_PROGRESS' | 'COMPLETED' | 'FAILED';
/**
 * Why a deployment failed when the twin stopped during its rollout (a clean stop, or read back from
 * state still in progress after a crash); a restart replays its upload.
 */
export const INTERRUPTED_REASON = 'interrupted: the twin stopped during the rollout';
/** Why a deployment queued behind another failed when the twin stopped cleanly; a restart replays it too. */
export const INTERRUPTED_QUEUED_REASON = 'interrupted: the twin stopped before the rollout started';
// What a clean stop called a queued deployment before it was replayed (state files of older twins).
const STOPPED_QUEUED_REASON = 'the service stopped before the rollout started';

/** Whether the twin stopped in (or before) a deployment's rollout, so that a restart replays its upload. */
export function wasInterrupted(d: Pick<Deployment, 'rolloutState' | 'rolloutStateReason'>): boolean {
  return (
    d.rolloutState === 'FAILED' &&
    (d.rolloutStateReason.startsWith('interrupted:') || d.rolloutStateReason === STOPPED_QUEUED_REASON)
  );
}

/** Revision of the twin's service before its first deployment (the no-model state). */
export const INITIAL_REVISION = 'slipway-inference:0';

/** The number of a twin revision (`slipway-inference:<n>`); 0 for one that is not. */
export function revisionNumber(revision: string): number {
  return Number(/:(\d+)$/.exec(revision)?.[1] ?? 0);
}

/**
 * The deployment the service is driven to (ECS: the service's task definition): the newest one in
 * progress or queued, else the live one. A FAILED one never became the service's revision.
 */
export function currentDeployment<T extends Pick<Deployment, 'status' | 'rolloutState'>>(
  deployments: readonly T[],
): T | undefined {
  return deployments.find(
    (d) => d.rolloutState === 'IN_PROGRESS' || (d.status === 'PRIMARY' && d.rolloutState === 'COMPLETED'),
  );
}

/** ECS task lifecycle, reduced to what the twin distinguishes. */
export type TaskStatus = 'PROVISIONING' | 'RUNNING' | 'DEACTIVATING' | 'STOPPED';

/** One deployment of the service, shaped like an ECS service deployment. */
export interface Deployment {
  readonly id: string;
  /**
   * Task-definition-like revision (`slipway-inference:<n>`): a new one per deployment of a model,
   * the earlier one's again for a rollback (and for the model a restart resumes).
   */
  readonly revision: string;
  /**
   * The revision the service was driven to when this revision was made (ECS: the rollout's
   * `slipway:base-revision` tag): where a rollback from it goes. Absent in older state files.
   */
  readonly baseRevision?: string;
  status: DeploymentStatus;
  rolloutState: RolloutState;
  rolloutStateReason: string;
  /**
   * Set when the service went back from this deployment to an earlier model: the id of the
   * deployment it went back to (the circuit breaker's, when this one FAILED) or of the rollback
   * deployment that replaced it (a rollback by hand).
   */
  rolledBackTo?: string;
  /** Set when a newer deployment replaced this one before it started: the id of that deployment. */
  supersededBy?: string;
  /**
   * Set when this deployment runs an earlier revision again (a rollback, or the model a restart
   * resumes): the id of the deployment of that revision it was made from.
   */
  readonly redeployOf?: string;
  /** The exact model object the tasks of this deployment serve, with its ordering record. */
  readonly model: PinnedModel;
  /** Same as `model.uri`. */
  readonly modelUri: string;
  /** Model version reported by the tasks once ready (falls back to the version given to deploy). */
  modelVersion?: string;
  readonly desiredCount: number;
  runningCount: number;
  failedTasks: number;
  readonly createdAt: string;
  updatedAt: string;
}

/** One inference-server process. */
export interface TaskInfo {
  readonly id: string;
  readonly deploymentId: string;
  readonly pid: number | undefined;
  /** The port the task listens on, once it has said so (see {@link TaskSpawner}). */
  port?: number;
  /** `http://127.0.0.1:<port>`, once the port is known. */
  url?: string;
  readonly modelUri: string;
  lastStatus: TaskStatus;
  modelVersion?: string;
  sha256?: string;
  startedAt: string;
  stoppedReason?: string;
}

/** What a spawner gets to start one task. */
export interface TaskLaunch {
  readonly taskId: string;
  readonly modelUri: string;
  readonly model: PinnedModel;
  readonly modelVersion?: string;
}

/**
 * Starts one inference-server process serving `launch.modelUri` on a loopback port the process
 * picks itself (port 0), and says which on stdout: a JSON line `{"event": "listening", "port": N}`,
 * as `slipway serve` logs it. A port chosen for the process and freed before it binds could be
 * taken meanwhile (by any outgoing connection's ephemeral port), and the task would then fail, or
 * its health checks reach another server.
 */
export type TaskSpawner = (launch: TaskLaunch) => ChildProcess;

/** The port a task's output line announces it listens on, if it is that line. */
export function announcedPort(line: string): number | undefined {
  if (!line.startsWith('{') || !line.includes('"listening"')) return undefined;
  try {
    const parsed = JSON.parse(line) as { event?: unknown; port?: unknown };
    const { event, port } = parsed;
    return event === 'listening' &&
      typeof port === 'number' &&
      Number.isInteger(port) &&
      port > 0 &&
      port < 65_536
      ? port
      : undefined;
  } catch {
    return undefined;
  }
}

/** The part of the load balancer the supervisor drives. */
export interface TrafficRouter {
  register(spec: TargetSpec, initialHealth: 'initial' | 'healthy'): void;
  deregister(id: string, timeoutMs?: number): Promise<void>;
}

/** Options of {@link Supervisor}. */
export interface SupervisorOptions {
  readonly spawn: TaskSpawner;
  readonly router: TrafficRouter;
  /** Tasks per deployment; default 2. */
  readonly desiredCount?: number;
  /** How long a new task may take to become ready before it counts as failed; default 60 s. */
  readonly readinessTimeoutMs?: number;
  /** Failed new tasks that trip the circuit breaker; default 2. */
  readonly failureThreshold?: number;
  /** How long draining waits for in-flight requests (ALB deregistration delay); default 30 s. */
  readonly drainTimeoutMs?: number;
  /** How long a SIGTERMed task may take to exit before SIGKILL; default 10 s. */
  readonly stopTimeoutMs?: number;
  /** Readiness path; default `/v2/health/ready`. */
  readonly readinessPath?: string;
  /** Path answering JSON with the served model's `version` and `sha256`; default `/`. */
  readonly infoPath?: string;
  /** Directory for one log file per task (stdout and stderr); none when absent. */
  readonly logDir?: string;
  /** Deployments from an earlier run, shown in history. */
  readonly history?: readonly Deployment[];
  readonly log?: (message: string) => void;
  /** Called after every change of a deployment or task (to persist state). */
  readonly onChange?: () => void;
}

interface Task extends TaskInfo {
  child: ChildProcess;
  exited: Promise<number | null>;
  exitCode?: number | null;
  stopping: boolean;
  output: string[];
  logFile?: WriteStream;
}

/** Deployments kept in history; the live one and those still to settle are kept beyond it. */
const HISTORY_LIMIT = 20;

/**
 * Runs the inference service as child processes and rolls deployments like ECS with
 * minimumHealthyPercent 100 / maximumPercent 200 and the deployment circuit breaker on:
 * start the new tasks, wait until they are ready, shift traffic to them, drain the old ones,
 * then SIGTERM them; if the new tasks fail readiness, stop them and keep the old ones.
 * A task that dies while serving is replaced.
 */
export class Supervisor {
  private readonly options: SupervisorOptions;
  private readonly deploymentList: Deployment[];
  private readonly taskMap = new Map<string, Task>();
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private restartDelayMs = 0;
  private revisionCounter: number;
  /** Tasks that received traffic at some point: only their deaths count as crashes. */
  private readonly registered = new Set<string>();
  /** Replacements on their way, per deployment id (so a refill does not start them twice). */
  private readonly replacing = new Map<string, number>();
  /** The deployment waiting behind the one in progress, not started yet (a newer one replaces it). */
  private queued: Deployment | undefined;

  constructor(options: SupervisorOptions) {
    this.options = options;
    this.deploymentList = (options.history ?? []).map((d) => ({
      ...d,
      status: 'INACTIVE',
      runningCount: 0,
      rolloutState: d.rolloutState === 'IN_PROGRESS' ? 'FAILED' : d.rolloutState,
      rolloutStateReason: d.rolloutState === 'IN_PROGRESS' ? INTERRUPTED_REASON : d.rolloutStateReason,
    }));
    this.revisionCounter = Math.max(0, ...this.deploymentList.map((d) => revisionNumber(d.revision)));
  }

  /** Deployments, newest first. */
  deployments(): Deployment[] {
    return this.deploymentList.map((d) => ({ ...d }));
  }

  /** The deployment currently serving (or being rolled out). */
  primary(): Deployment | undefined {
    const d = this.deploymentList.find((x) => x.status === 'PRIMARY');
    return d ? { ...d } : undefined;
  }

  /** The deployment the service is driven to (see {@link currentDeployment}). */
  current(): Deployment | undefined {
    const d = currentDeployment(this.deploymentList);
    return d ? { ...d } : undefined;
  }

  /** Tasks that are not stopped. */
  tasks(): TaskInfo[] {
    return [...this.taskMap.values()].map(
      ({
        id,
        deploymentId,
        pid,
        port,
        url,
        modelUri,
        lastStatus,
        modelVersion,
        sha256,
        startedAt,
        stoppedReason,
      }) => ({
        id,
        deploymentId,
        pid,
        port,
        url,
        modelUri,
        lastStatus,
        startedAt,
        ...(modelVersion !== undefined ? { modelVersion } : {}),
        ...(sha256 !== undefined ? { sha256 } : {}),
        ...(stoppedReason !== undefined ? { stoppedReason } : {}),
      }),
    );
  }

  /** Process ids of every live task (for orphan checks and the state file). */
  pids(): number[] {
    return [...this.taskMap.values()].flatMap((t) =>
      t.pid !== undefined && t.exitCode === undefined ? [t.pid] : [],
    );
  }

  /**
   * Rolls out a model; resolves with the deployment once it is COMPLETED or FAILED
   * (a failure is reported in the result, not thrown). Deployments run one at a time.
   */
  deploy(model: PinnedModel | string, options: { modelVersion?: string } = {}): Promise<Deployment> {
    return this.begin(model, options).done;
  }

  /**
   * Queues a rollout and returns its deployment at once, plus a promise of how it ends. The
   * deployment gets a new revision based on the current one, or with `redeploy` that deployment's
   * revision again (its model, and its base).
   */
  begin(
    model: PinnedModel | string,
    options: { modelVersion?: string; rollbackOf?: Deployment; redeploy?: Deployment } = {},
  ): { deployment: Deployment; done: Promise<Deployment> } {
    if (this.stopped) throw new DeploymentError('the service is stopping');
    const pinned: PinnedModel = typeof model === 'string' ? { uri: model } : model;
    const now = new Date().toISOString();
    const { redeploy } = options;
    let revision: Pick<Deployment, 'revision' | 'baseRevision' | 'redeployOf'>;
    if (redeploy) {
      revision = {
        redeployOf: redeploy.id,
        revision: redeploy.revision,
        ...(redeploy.baseRevision !== undefined ? { baseRevision: redeploy.baseRevision } : {}),
      };
    } else {
      this.revisionCounter += 1;
      revision = {
        revision: `slipway-inference:${this.revisionCounter}`,
        baseRevision: currentDeployment(this.deploymentList)?.revision ?? INITIAL_REVISION,
      };
    }
    const deployment: Deployment = {
      id: `ecs-svc/${randomBytes(8).toString('hex')}`,
      ...revision,
      status: 'ACTIVE',
      rolloutState: 'IN_PROGRESS',
      rolloutStateReason: 'queued behind the deployment in progress',
      model: pinned,
      modelUri: pinned.uri,
      ...(options.modelVersion !== undefined ? { modelVersion: options.modelVersion } : {}),
      desiredCount: this.options.desiredCount ?? 2,
      runningCount: 0,
      failedTasks: 0,
      createdAt: now,
      updatedAt: now,
    };
    // As ECS replaces a deployment with a newer one, only the newest of the waiting ones rolls out.
    const superseded = this.dropQueued(
      `superseded by deployment ${deployment.id} before it started`,
      deployment,
    );
    if (superseded)
      this.options.log?.(`deployment ${superseded.id}: superseded by deployment ${deployment.id}`);
    this.queued = deployment;
    this.deploymentList.unshift(deployment);
    this.trimHistory();
    this.changed();
    const run = this.queue.then(() => this.roll(deployment, options.rollbackOf));
    this.queue = run.catch(() => undefined);
    return { deployment: { ...deployment }, done: run.then(() => ({ ...deployment })) };
  }

  /**
   * Rolls back to the revision the current one was based on, as a new deployment of that revision.
   * Throws when there is nothing to roll back to. See {@link beginRollback}.
   */
  rollback(): Promise<Deployment> {
    return this.beginRollback().done;
  }

  /**
   * Like {@link rollback}, but returns the new deployment at once; `to` names the deployment whose
   * revision to go back to instead (a restart redoing the rollback the last twin stopped in).
   *
   * The way back is the chain of base revisions, as the ECS target follows the rollout's
   * `slipway:base-revision` tags: a second rollback goes on from where the first went (A, B, C
   * deployed: back to B, then to A), and a model that never completed a rollout (rejected by the
   * circuit breaker, superseded, interrupted) is passed over, as are revisions that pin the
   * current model. Where a link is missing (history from an older twin, or trimmed), it goes on
   * with the next lower revision.
   */
  beginRollback(to?: Deployment): { deployment: Deployment; done: Promise<Deployment> } {
    const target = to ?? this.rollbackTarget(currentDeployment(this.deploymentList));
    if (!target) {
      throw new DeploymentError(
        'nothing to roll back to: no earlier completed deployment with another model',
      );
    }
    this.options.log?.(
      `rollback requested: redeploying ${target.revision} with ${target.modelUri} (from deployment ${target.id})`,
    );
    // The deployment serving (or rolling out) now is the one the service goes back from.
    const serving = this.deploymentList.find((d) => d.status === 'PRIMARY');
    return this.begin(target.model, {
      ...(target.modelVersion !== undefined ? { modelVersion: target.modelVersion } : {}),
      ...(serving ? { rollbackOf: serving } : {}),
      redeploy: target,
    });
  }

  /** The newest completed deployment of the first revision back along the base chain with another model. */
  private rollbackTarget(from: Deployment | undefined): Deployment | undefined {
    const ofRevision = (n: number): Deployment[] =>
      this.deploymentList.filter((d) => revisionNumber(d.revision) === n);
    const numbers = [...new Set(this.deploymentList.map((d) => revisionNumber(d.revision)))].sort(
      (a, b) => b - a,
    );
    let before = from ? previousRevision(from) : Infinity;
    for (const n of numbers) {
      if (n > before) continue;
      const link = ofRevision(n);
      const completed = link.find((d) => d.rolloutState === 'COMPLETED');
      if (completed && completed.modelUri !== from?.modelUri) return completed;
      before = previousRevision(link[0]!);
    }
    return undefined;
  }

  /**
   * Stops every task (SIGTERM, then SIGKILL after the stop timeout) and refuses new deployments.
   * Resolves once the rollout in progress has settled; it and the one queued behind it end as
   * interrupted, so a restart replays them in order.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.dropQueued(INTERRUPTED_QUEUED_REASON);
    await Promise.all([...this.taskMap.values()].map((t) => this.stopTask(t, 'service stopping', false)));
    await this.queue;
    this.changed();
  }

  /**
   * Ends the deployment waiting behind the one in progress, if there is one, as FAILED with
   * `reason`, without starting it; returns it.
   */
  private dropQueued(reason: string, supersededBy?: Deployment): Deployment | undefined {
    const waiting = this.queued;
    if (waiting === undefined) return undefined;
    this.queued = undefined;
    waiting.status = 'INACTIVE';
    if (supersededBy) waiting.supersededBy = supersededBy.id;
    this.finish(waiting, 'FAILED', reason);
    return waiting;
  }

  /** Runs one deployment; `rollbackOf` is the deployment a rollback by hand goes back from. */
  private async roll(deployment: Deployment, rollbackOf?: Deployment): Promise<void> {
    if (this.queued === deployment) this.queued = undefined;
    // Superseded, or interrupted by a stop, while it waited.
    if (deployment.rolloutState !== 'IN_PROGRESS') return;
    const previous = this.deploymentList.find((d) => d.status === 'PRIMARY');
    if (previous) previous.status = 'ACTIVE';
    deployment.status = 'PRIMARY';
    deployment.rolloutStateReason = 'ECS deployment in progress: starting new tasks';
    this.touch(deployment);
    this.options.log?.(`deployment ${deployment.id}: rolling out ${deployment.modelUri}`);

    const ready: Task[] = [];
    const threshold = this.options.failureThreshold ?? 2;
    let lastFailure = '';
    while (ready.length < deployment.desiredCount && deployment.failedTasks < threshold && !this.stopped) {
      const missing = deployment.desiredCount - ready.length;
      const started = Array.from({ length: missing }, () => this.startTask(deployment));
      const results = await Promise.all(started.map((t) => this.waitReady(t)));
      results.forEach((failure, i) => {
        const task = started[i]!;
        if (failure === undefined) {
          ready.push(task);
        } else {
          deployment.failedTasks += 1;
          lastFailure = `task ${task.id} ${failure}`;
          this.options.log?.(`deployment ${deployment.id}: ${lastFailure}`);
          void this.stopTask(task, failure, false);
        }
      });
      this.touch(deployment);
    }

    if (ready.length < deployment.desiredCount) {
      await Promise.all(ready.map((t) => this.stopTask(t, 'deployment failed', false)));
      const rolledBackTo = this.stopped ? undefined : previous;
      const reason = this.stopped
        ? INTERRUPTED_REASON
        : `ECS deployment circuit breaker: ${deployment.failedTasks} task(s) failed to become ready (${lastFailure})` +
          (rolledBackTo
            ? `; rolled back to ${rolledBackTo.id} (${rolledBackTo.modelUri})`
            : '; no earlier deployment to keep');
      deployment.status = 'INACTIVE';
      if (previous) previous.status = 'PRIMARY';
      if (rolledBackTo) deployment.rolledBackTo = rolledBackTo.id;
      this.finish(deployment, 'FAILED', reason);
      this.options.log?.(`deployment ${deployment.id}: FAILED: ${reason}`);
      // A task of the kept deployment that died meanwhile was not replaced (it was not PRIMARY then).
      if (rolledBackTo) this.refill(rolledBackTo);
      return;
    }

    // Shift traffic: new tasks in, then old tasks drained and stopped (never below 100% healthy).
    for (const task of ready) {
      task.lastStatus = 'RUNNING';
      await this.describeTask(task);
      deployment.modelVersion = task.modelVersion ?? deployment.modelVersion;
      this.options.router.register(this.targetOf(task), 'healthy');
      this.registered.add(task.id);
    }
    deployment.runningCount = ready.length;
    deployment.rolloutStateReason = 'ECS deployment in progress: draining old tasks';
    this.touch(deployment);
    const old = [...this.taskMap.values()].filter((t) => t.deploymentId !== deployment.id && !t.stopping);
    await Promise.all(old.map((t) => this.stopTask(t, `replaced by deployment ${deployment.id}`, true)));
    for (const d of this.deploymentList) {
      if (d !== deployment && d.status !== 'INACTIVE') {
        d.status = 'INACTIVE';
        d.runningCount = 0;
      }
    }
    if (rollbackOf && rollbackOf.modelUri !== deployment.modelUri) rollbackOf.rolledBackTo = deployment.id;
    this.finish(deployment, 'COMPLETED', 'ECS deployment completed');
    this.options.log?.(
      `deployment ${deployment.id}: COMPLETED (model version ${deployment.modelVersion ?? '?'})`,
    );
  }

  /**
   * Drops the oldest settled deployments beyond the history limit; never the live one, the one it
   * would fall back to (ACTIVE) or one still in progress.
   */
  private trimHistory(): void {
    for (let i = this.deploymentList.length - 1; i >= 0 && this.deploymentList.length > HISTORY_LIMIT; i--) {
      const d = this.deploymentList[i]!;
      if (d.status === 'INACTIVE' && d.rolloutState !== 'IN_PROGRESS') this.deploymentList.splice(i, 1);
    }
  }

  private finish(deployment: Deployment, state: RolloutState, reason: string): void {
    deployment.rolloutState = state;
    deployment.rolloutStateReason = reason;
    this.touch(deployment);
  }

  private touch(deployment: Deployment): void {
    deployment.updatedAt = new Date().toISOString();
    this.changed();
  }

  private changed(): void {
    this.options.onChange?.();
  }

  private targetOf(task: Task): TargetSpec {
    if (task.url === undefined) throw new Error(`task ${task.id} has not said which port it listens on`);
    return {
      id: task.id,
      url: task.url,
      ...(task.modelVersion !== undefined ? { modelVersion: task.modelVersion } : {}),
    };
  }

  private startTask(deployment: Deployment): Task {
    const id = randomBytes(6).toString('hex');
    const child = this.options.spawn({
      taskId: id,
      modelUri: deployment.modelUri,
      model: deployment.model,
      ...(deployment.modelVersion !== undefined ? { modelVersion: deployment.modelVersion } : {}),
    });
    const task: Task = {
      id,
      deploymentId: deployment.id,
      pid: child.pid,
      modelUri: deployment.modelUri,
      lastStatus: 'PROVISIONING',
      startedAt: new Date().toISOString(),
      child,
      exited: new Promise((resolve) => {
        child.once('exit', (code, signal) => {
          task.exitCode = code ?? (signal ? -1 : null);
          resolve(code);
        });
        child.once('error', (err) => {
          task.output.push(`spawn failed: ${err.message}`);
          task.exitCode = -1;
          resolve(-1);
        });
      }),
      stopping: false,
      output: [],
    };
    if (this.options.logDir) task.logFile = createWriteStream(join(this.options.logDir, `task-${id}.log`));
    // Lines, not chunks: a line (the port announcement among them) may arrive split across reads.
    const onLine = (line: string, fromStdout: boolean): void => {
      const text = line.trim();
      if (!text) return;
      task.output.push(text);
      task.output.splice(0, Math.max(0, task.output.length - 30));
      const port = fromStdout && task.port === undefined ? announcedPort(text) : undefined;
      if (port === undefined) return;
      task.port = port;
      task.url = `http://127.0.0.1:${port}`;
      this.options.log?.(`task ${id} listens on port ${port}`);
      this.changed();
    };
    for (const [stream, fromStdout] of [
      [child.stdout, true],
      [child.stderr, false],
    ] as const) {
      if (!stream) continue;
      stream.on('data', (chunk: Buffer) => task.logFile?.write(chunk));
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => onLine(line, fromStdout));
    }
    this.taskMap.set(id, task);
    void task.exited.then(() => this.onExit(task));
    this.options.log?.(`task ${id} started (pid ${child.pid ?? '?'}) for ${deployment.modelUri}`);
    this.changed();
    return task;
  }

  /** Resolves undefined when the task is ready, or with why it is not. */
  private async waitReady(task: Task): Promise<string | undefined> {
    const deadline = Date.now() + (this.options.readinessTimeoutMs ?? 60_000);
    for (;;) {
      if (task.exitCode !== undefined) {
        return `exited with code ${String(task.exitCode)} before it was ready${lastWords(task.output)}`;
      }
      if (this.stopped) return 'stopped';
      if (task.url !== undefined) {
        if (await probe(`${task.url}${this.options.readinessPath ?? '/v2/health/ready'}`, 1_000))
          return undefined;
        // A server that gave up loading its model stays alive but never gets ready: fail fast.
        const loadFailure = await this.loadFailure(task.url);
        if (loadFailure !== undefined) return `failed to load its model: ${loadFailure}`;
      }
      if (Date.now() > deadline) {
        const within = `within ${(this.options.readinessTimeoutMs ?? 60_000) / 1000} s`;
        return task.url === undefined
          ? `did not say which port it listens on ${within} (a JSON line {"event":"listening","port":N} on stdout)${lastWords(task.output)}`
          : `was not ready ${within}${lastWords(task.output)}`;
      }
      await sleep(150);
    }
  }

  /** The error a task reports on its info path when its model failed to load. */
  private async loadFailure(taskUrl: string): Promise<string | undefined> {
    try {
      const res = await fetch(`${taskUrl}${this.options.infoPath ?? '/'}`, {
        signal: AbortSignal.timeout(1_000),
      });
      if (res.ok) {
        await res.arrayBuffer();
        return undefined;
      }
      const info = (await res.json()) as { status?: unknown; error?: unknown };
      return info.status === 'failed'
        ? typeof info.error === 'string'
          ? info.error
          : 'unknown error'
        : undefined;
    } catch {
      return undefined;
    }
  }

  private async describeTask(task: Task): Promise<void> {
    if (task.url === undefined) return;
    try {
      const res = await fetch(`${task.url}${this.options.infoPath ?? '/'}`, {
        signal: AbortSignal.timeout(2_000),
      });
      if (!res.ok) return;
      const info = (await res.json()) as {
        version?: unknown;
        sha256?: unknown;
        model?: { version?: unknown };
      };
      const version = info.version ?? info.model?.version;
      if (typeof version === 'string' || typeof version === 'number') task.modelVersion = String(version);
      if (typeof info.sha256 === 'string') task.sha256 = info.sha256;
    } catch {
      // The version is informational; the task is ready and serves regardless.
    }
  }

  private async stopTask(task: Task, reason: string, drain: boolean): Promise<void> {
    if (task.stopping) {
      await task.exited;
      return;
    }
    task.stopping = true;
    task.stoppedReason = reason;
    task.lastStatus = 'DEACTIVATING';
    this.changed();
    await this.options.router.deregister(task.id, drain ? (this.options.drainTimeoutMs ?? 30_000) : 0);
    if (task.exitCode === undefined) {
      task.child.kill('SIGTERM');
      const timer = setTimeout(() => task.child.kill('SIGKILL'), this.options.stopTimeoutMs ?? 10_000);
      await task.exited;
      clearTimeout(timer);
    }
  }

  private onExit(task: Task): void {
    task.lastStatus = 'STOPPED';
    task.logFile?.end();
    this.taskMap.delete(task.id);
    this.changed();
    if (task.stopping || this.stopped) return;
    const deployment = this.deploymentList.find((d) => d.id === task.deploymentId);
    // A task that never got ready is the rollout's business (circuit breaker), not a crash.
    if (!deployment || !this.wasServing(task)) return;
    const why = `exited unexpectedly with code ${String(task.exitCode)}${lastWords(task.output)}`;
    this.options.log?.(`task ${task.id} ${why}; starting a replacement`);
    task.stoppedReason = why;
    void this.options.router.deregister(task.id, 0);
    deployment.runningCount = Math.max(0, deployment.runningCount - 1);
    this.touch(deployment);
    void this.replace(deployment);
  }

  private wasServing(task: Task): boolean {
    return this.registered.has(task.id);
  }

  /** Starts a replacement for each task a deployment is short of (desired, less running and on their way). */
  private refill(deployment: Deployment): void {
    const missing =
      deployment.desiredCount - deployment.runningCount - (this.replacing.get(deployment.id) ?? 0);
    if (missing <= 0) return;
    this.options.log?.(`deployment ${deployment.id}: starting ${missing} task(s) to replace those that died`);
    for (let i = 0; i < missing; i++) void this.replace(deployment);
  }

  private async replace(deployment: Deployment): Promise<void> {
    this.replacing.set(deployment.id, (this.replacing.get(deployment.id) ?? 0) + 1);
    try {
      await this.replaceOnce(deployment);
    } finally {
      const left = (this.replacing.get(deployment.id) ?? 1) - 1;
      if (left > 0) this.replacing.set(deployment.id, left);
      else this.replacing.delete(deployment.id);
    }
  }

  private async replaceOnce(deployment: Deployment): Promise<void> {
    // Back off when replacements keep dying, like ECS's task launch throttling.
    this.restartDelayMs = Math.min(10_000, this.restartDelayMs === 0 ? 250 : this.restartDelayMs * 2);
    await sleep(this.restartDelayMs);
    if (this.stopped || deployment.status !== 'PRIMARY') return;
    const task = this.startTask(deployment);
    const failure = await this.waitReady(task);
    if (failure !== undefined) {
      this.options.log?.(`replacement task ${task.id} ${failure}`);
      await this.stopTask(task, failure, false);
      if (!this.stopped && deployment.status === 'PRIMARY') void this.replace(deployment);
      return;
    }
    if (this.stopped || deployment.status !== 'PRIMARY') {
      await this.stopTask(task, 'deployment no longer primary', false);
      return;
    }
    task.lastStatus = 'RUNNING';
    await this.describeTask(task);
    this.options.router.register(this.targetOf(task), 'healthy');
    this.registered.add(task.id);
    deployment.runningCount += 1;
    this.touch(deployment);
    this.options.log?.(`replacement task ${task.id} is serving`);
    setTimeout(() => (this.restartDelayMs = 0), 30_000).unref();
  }
}

/** The revision number `d` was based on: its recorded base, or its own without one. */
export function baseRevisionNumber(d: Deployment): number {
  return revisionNumber(d.baseRevision ?? d.revision);
}

/** The highest revision number a rollback from `d` may go to: its recorded base, or any lower one. */
function previousRevision(d: Deployment): number {
  const n = revisionNumber(d.revision);
  const base = baseRevisionNumber(d);
  return base < n ? base : n - 1;
}

function lastWords(output: readonly string[]): string {
  const tail = output.slice(-3).join(' | ');
  return tail ? `: ${tail.slice(0, 400)}` : '';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Asks the kernel for a free loopback port (free when it answers; anything may take it after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
