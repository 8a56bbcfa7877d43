import { spawn } from 'node:child_process';
import { appendFile, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV, modelUploadEventPattern } from '../names.ts';
import { RolloutError } from '../rollout/errors.ts';
import { readableS3EventKey } from '../rollout/event.ts';
import type { PinnedModel } from '../rollout/deploy-target.ts';
import type { SkipReason } from '../rollout/decision.ts';
import { rolloutModelEvent } from '../rollout/operations.ts';
import { modelEnvironment } from '../rollout/pinned-model.ts';
import { SERVE_NODE_FLAGS } from '../serve/config.ts';
import { createStore } from '../store/create-store.ts';
import type { ObjectInfo, ObjectStore } from '../store/types.ts';
import { EventBus, storedObjectEvent } from './event-bus.ts';
import type { S3ObjectCreatedEvent } from './event-bus.ts';
import { CONTROL_STATUS_PATH, LoadBalancer, sendJson } from './load-balancer.ts';
import { LocalDeployTarget } from './local-deploy-target.ts';
import { LOCAL_S3_CREDENTIALS, startLocalS3 } from './s3-server.ts';
import type { LocalS3 } from './s3-server.ts';
import { claimStateDir, statePaths, writeJsonAtomic } from './state-dir.ts';
import type { StatePaths, TrainerRecord, TwinRuntimeFile } from './state-dir.ts';
import { Supervisor, wasInterrupted } from './supervisor.ts';
import type { Deployment, TaskSpawner } from './supervisor.ts';

/** Bucket names of the twin's local S3 store. */
export const LOCAL_BUCKETS = { data: 'slipway-data', models: 'slipway-models' } as const;

/** What a bootstrap (first training run on an empty store) gets to work with. */
export interface BootstrapContext {
  readonly store: ObjectStore;
  /** `s3://slipway-data/` */
  readonly dataPrefix: string;
  /** `s3://slipway-models/`: uploading a `model.tar.gz` under it starts a rollout. */
  readonly modelsPrefix: string;
  readonly paths: StatePaths;
  /** S3 endpoint and credentials, for child processes. */
  readonly s3Env: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
  readonly log: (message: string) => void;
  /** Records the trainer's process group in twin.json while it runs, for a start after a crash to stop. */
  readonly onTrainer?: (trainer: TrainerRecord) => void;
}

/** Trains a first model and uploads it to the models bucket. */
export type Bootstrap = (context: BootstrapContext) => Promise<void>;

/** Options of {@link startTwin}. */
export interface TwinOptions {
  /** State directory (default `.slipway`). */
  readonly stateDir: string;
  /** Load-balancer port; 0 picks a free one. */
  readonly port: number;
  /** Inference tasks per deployment (default 2). */
  readonly tasks?: number;
  /** Port of the local S3 server (default: a free one). */
  readonly s3Port?: number;
  /** Runs on an empty store; none means "wait for an upload". */
  readonly bootstrap?: Bootstrap;
  /** Starts one inference task (default: `slipway serve` as a child process). */
  readonly spawn?: TaskSpawner;
  /** Readiness deadline of a new task (default 60 s). */
  readonly readinessTimeoutMs?: number;
  /** One line per noteworthy event. */
  readonly log?: (message: string) => void;
}

/** Progress of the bootstrap training run. */
export interface TrainingState {
  state: 'idle' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  detail?: string;
}

/** A recent rollout decision, as `status` shows it. */
export interface RolloutRecord {
  readonly time: string;
  readonly key: string;
  /** `deploy`, `skip (<reason>)` or `reject`. */
  readonly decision: string;
  /** Why the rollout skipped the event, where it did (`deploy --wait` tells a skip by it). */
  readonly skipReason?: SkipReason;
  readonly detail: string;
}

/** A running local twin. */
export interface Twin {
  readonly url: string;
  readonly port: number;
  readonly s3Endpoint: string;
  readonly paths: StatePaths;
  readonly supervisor: Supervisor;
  readonly target: LocalDeployTarget;
  readonly training: TrainingState;
  /** The environment a process needs to talk to the twin's S3 (endpoint and credentials). */
  readonly s3Env: Readonly<Record<string, string>>;
  /** Resolves once the bootstrap (if any) has finished; never rejects. */
  readonly bootstrapped: Promise<void>;
  /** Stops training, every task, the load balancer and S3; idempotent. */
  stop(): Promise<void>;
}

/**
 * Brings up the whole pipeline on loopback: S3, the event bus, the rollout with a local deploy
 * target, the supervised inference tasks and the load balancer. Resumes the last model that
 * completed a rollout, then rolls the uploads the last twin stopped rolling out, and the newest
 * model in the store, through the rollout decision; runs the bootstrap on an empty store.
 */
export async function startTwin(options: TwinOptions): Promise<Twin> {
  const paths = statePaths(options.stateDir);
  const claim = await claimStateDir(paths);
  const twinLog = join(paths.logs, 'twin.log');
  const log = (message: string): void => {
    options.log?.(message);
    void appendFile(twinLog, `${new Date().toISOString()} ${message}\n`).catch(() => undefined);
  };
  for (const note of claim.notes) log(`state: ${note}`);

  const recent: RolloutRecord[] = [];
  const training: TrainingState = { state: 'idle' };
  // The control API needs the supervisor, which needs the load balancer: wire it in afterwards.
  const control: { handle?: (req: IncomingMessage, body: Buffer, res: ServerResponse) => Promise<void> } = {};
  const lb = new LoadBalancer({
    port: options.port,
    log,
    control: (req, body, res) =>
      control.handle ? control.handle(req, body, res) : sendJson(res, 503, { error: 'starting' }),
  });
  await lb.listen();

  let s3: LocalS3;
  try {
    s3 = await startLocalS3({
      directory: paths.s3,
      buckets: [LOCAL_BUCKETS.data, LOCAL_BUCKETS.models],
      ...(options.s3Port !== undefined ? { port: options.s3Port } : {}),
    });
  } catch (err) {
    await lb.close();
    throw err;
  }
  const s3Env: Record<string, string> = {
    [ENV.s3Endpoint]: s3.endpoint,
    AWS_ACCESS_KEY_ID: LOCAL_S3_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_S3_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
  };
  const store = createStore({ endpoint: s3.endpoint, credentials: { ...LOCAL_S3_CREDENTIALS } });

  let persistQueue = Promise.resolve();
  let persistPending = false;
  const runtimeRecord = (): TwinRuntimeFile => ({
    pid: process.pid,
    startedAt,
    url: lb.url,
    port: lb.port,
    s3Endpoint: s3.endpoint,
    buckets: { ...LOCAL_BUCKETS },
    taskPids: supervisor.pids(),
    ...(trainer ? { trainer } : {}),
  });
  const persist = (): void => {
    if (persistPending) return;
    persistPending = true;
    persistQueue = persistQueue
      .then(async () => {
        persistPending = false;
        await writeJsonAtomic(paths.state, { deployments: supervisor.deployments() });
        if (!stopping) await writeJsonAtomic(paths.runtime, runtimeRecord());
      })
      .catch((err: unknown) => log(`state: could not save: ${(err as Error).message}`));
  };

  const startedAt = new Date().toISOString();
  let stopping = false;
  let trainer: TrainerRecord | undefined;
  const supervisor = new Supervisor({
    spawn: options.spawn ?? serveSpawner(s3Env),
    router: lb,
    desiredCount: options.tasks ?? 2,
    readinessTimeoutMs: options.readinessTimeoutMs ?? 60_000,
    logDir: paths.logs,
    history: claim.history,
    log,
    onChange: persist,
  });
  const target = new LocalDeployTarget(supervisor);

  // The same operation the Lambda runs: decide against the live revision, deploy conditionally.
  const onModelEvent = async (event: S3ObjectCreatedEvent): Promise<void> => {
    const outcome = await rolloutModelEvent(event, target, { modelsBucket: LOCAL_BUCKETS.models });
    const key = readableS3EventKey(event.detail.object.key);
    const record = (d: string, detail: string, skipReason?: SkipReason): void => {
      recent.unshift({
        time: new Date().toISOString(),
        key,
        decision: d,
        detail,
        ...(skipReason === undefined ? {} : { skipReason }),
      });
      recent.splice(10);
      log(`rollout: ${d} ${key}: ${detail}`);
    };
    if (outcome.kind === 'deploy') {
      const { result, decision } = outcome;
      record('deploy', `deployment ${result.deploymentId} (${result.revision}) pins ${decision.model.uri}`);
    } else if (outcome.kind === 'skip') {
      const { reason, detail } = outcome.decision;
      record(`skip (${reason})`, detail, reason);
    } else {
      record('reject', outcome.decision.reason);
    }
  };
  const bus = new EventBus({
    pattern: modelUploadEventPattern(LOCAL_BUCKETS.models),
    handler: onModelEvent,
    head: (bucket, key) => store.head(`s3://${bucket}/${key}`),
    onError: (err, _event, attempt) =>
      log(`rollout: handling an upload event failed (attempt ${attempt}): ${(err as Error).message}`),
  });
  bus.attach(s3.notifications);

  const abort = new AbortController();
  control.handle = controlApi({
    supervisor,
    target,
    lb,
    s3Endpoint: s3.endpoint,
    paths,
    recent,
    training,
    startedAt,
  });
  await writeJsonAtomic(paths.runtime, runtimeRecord());

  let bootstrapped: Promise<void> = Promise.resolve();
  // What served last is the newest deployment that completed, whatever came after it (a rollout the
  // twin stopped in, or that failed); the history read back has no rollout in progress left.
  const history = supervisor.deployments();
  const resumeFrom = history.find((d) => d.rolloutState === 'COMPLETED');
  const newest = await newestObject(store);
  // The uploads the last twin stopped rolling out, then the newest upload, go through the decision
  // an upload event gets (duplicate, rolled back, older), after the resumed model is live, so the
  // circuit breaker has it to fall back to. The interrupted ones are replayed with their own events
  // (and so is the newest, when a deployment pinned it): the store's listing has one-second times,
  // so "newest" alone may miss an upload made in the same second as the live model. A rollback by
  // hand the last twin stopped in is done again, in its place among them.
  const interrupted = resumeFrom ? await interruptedWork(history, resumeFrom, store) : [];
  const catchUp = async (): Promise<void> => {
    const pending: (Replay & { readonly which: string })[] = interrupted.map((r) => ({
      ...r,
      which: 'an interrupted',
    }));
    // The newest object, unless it is an interrupted upload replayed above (it would only be skipped
    // as a duplicate of itself).
    const replayed = (info: ObjectInfo): boolean =>
      interrupted.some((r) => r.kind === 'upload' && r.info.uri === info.uri && r.info.etag === info.etag);
    if (newest && !replayed(newest)) {
      pending.push({
        kind: 'upload',
        info: newest,
        event: newestEvent(newest, history),
        which: 'the newest',
      });
    }
    for (const replay of pending) {
      if (replay.kind === 'rollback') {
        const { revision, modelUri } = replay.deployment;
        log(`redoing the rollback to ${revision} (${modelUri}) that the last twin stopped in`);
        try {
          supervisor.beginRollback(replay.deployment);
        } catch (err) {
          log(`rollback: ${(err as Error).message}`);
        }
        continue;
      }
      const { info, event, which } = replay;
      log(`checking ${which} model in the store: ${info.uri}`);
      if (!event) continue;
      await onModelEvent(event).catch((err: unknown) =>
        log(`rollout: ${info.uri}: ${(err as Error).message}`),
      );
    }
  };
  if (resumeFrom) {
    log(`resuming the last deployed model ${resumeFrom.modelUri}`);
    // Its revision again, as ECS would still run it: rollbacks go on along the same chain.
    const resumed = supervisor.begin(resumeFrom.model, { redeploy: resumeFrom }).done;
    void resumed.catch(() => undefined).then(catchUp);
  } else if (newest) {
    void catchUp();
  } else if (options.bootstrap) {
    training.state = 'running';
    training.detail = 'staging MNIST and training the example model';
    log(`empty store: ${training.detail}`);
    bootstrapped = options
      .bootstrap({
        store,
        dataPrefix: `s3://${LOCAL_BUCKETS.data}/`,
        modelsPrefix: `s3://${LOCAL_BUCKETS.models}/`,
        paths,
        s3Env,
        signal: abort.signal,
        log,
        onTrainer: (started) => {
          trainer = started;
          persist();
        },
      })
      .finally(() => {
        trainer = undefined;
        persist();
      })
      .then(
        () => {
          training.state = 'succeeded';
          training.detail = 'model uploaded; the rollout follows from the upload event';
          log(`training: ${training.detail}`);
        },
        (err: unknown) => {
          training.state = abort.signal.aborted ? 'cancelled' : 'failed';
          training.detail = err instanceof Error ? err.message : String(err);
          log(`training ${training.state}: ${training.detail}`);
        },
      );
  } else {
    log(`no model yet: upload one with \`npx slipway deploy <model.tar.gz>\``);
  }

  let stopped: Promise<void> | undefined;
  return {
    url: lb.url,
    port: lb.port,
    s3Endpoint: s3.endpoint,
    paths,
    supervisor,
    target,
    training,
    s3Env,
    bootstrapped,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        abort.abort(new Error('the twin is stopping'));
        bus.detach();
        await bootstrapped;
        await supervisor.stop();
        await lb.close();
        await s3.close();
        persist();
        await persistQueue;
        await rm(paths.runtime, { force: true });
        log('stopped');
      })();
      return stopped;
    },
  };
}

/** What a restart does again: an upload replayed with its event, or a rollback by hand. */
type Replay =
  | { readonly kind: 'upload'; readonly info: ObjectInfo; readonly event: S3ObjectCreatedEvent | undefined }
  | { readonly kind: 'rollback'; readonly deployment: Deployment };

/**
 * What the last twin stopped in or before (newer than the deployment it resumes: the rollout in
 * progress, and the one queued behind it), oldest first; superseded ones are not among them. An
 * upload comes with the event that started it; an object overwritten since is left out (its newer
 * upload is the store's newest, or was rolled out on its own). A rollback comes as the deployment
 * whose revision it went back to, unless that is the revision resumed.
 */
async function interruptedWork(
  deployments: readonly Deployment[],
  resumeFrom: Deployment,
  store: ObjectStore,
): Promise<Replay[]> {
  const newer = deployments.slice(
    0,
    deployments.findIndex((d) => d.id === resumeFrom.id),
  );
  const work: Replay[] = [];
  for (const deployment of newer.reverse()) {
    const { model } = deployment;
    if (!wasInterrupted(deployment)) continue;
    if (deployment.redeployOf !== undefined) {
      if (deployment.revision !== resumeFrom.revision) work.push({ kind: 'rollback', deployment });
      continue;
    }
    if (!model.sequencer || !model.eventTime) continue;
    const info = await store.head(model.uri).catch(() => undefined);
    if (info === undefined || info.etag !== model.etag) continue;
    work.push({ kind: 'upload', info, event: recordedEvent(info, model) });
  }
  return work;
}

/**
 * The event of the store's newest upload: the one it came with when a deployment pinned that very
 * upload (same ETag, not written again since the event), else one made from the object. The
 * listing keeps whole seconds, so an event made from it has another sequencer, and the upload would
 * pass for a new one: neither the live model (a duplicate) nor one the service was rolled back from.
 */
function newestEvent(info: ObjectInfo, history: readonly Deployment[]): S3ObjectCreatedEvent | undefined {
  const written = Math.floor(info.lastModified.getTime() / 1000);
  const pinned = history.find(
    ({ model }) =>
      model.uri === info.uri &&
      model.etag === info.etag &&
      model.eventTime !== undefined &&
      written <= Math.floor(Date.parse(model.eventTime) / 1000),
  );
  return pinned ? recordedEvent(info, pinned.model) : storedObjectEvent(info);
}

/** The event that pinned `model`, rebuilt from its ordering record, for the object `info` holds. */
function recordedEvent(info: ObjectInfo, model: PinnedModel): S3ObjectCreatedEvent | undefined {
  return model.eventTime !== undefined && model.sequencer !== undefined
    ? storedObjectEvent(info, { eventTime: model.eventTime, sequencer: model.sequencer })
    : storedObjectEvent(info);
}

async function newestObject(store: ObjectStore): Promise<ObjectInfo | undefined> {
  try {
    return await store.newestModel(`s3://${LOCAL_BUCKETS.models}/`);
  } catch {
    return undefined;
  }
}

/** The command that runs one inference server: the CLI's `serve` from source or from the build. */
export function serveCommand(): { command: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  const cli = here.endsWith('.ts')
    ? fileURLToPath(new URL('../../bin/slipway.js', import.meta.url))
    : fileURLToPath(new URL('../cli/main.js', import.meta.url));
  return { command: process.execPath, args: [...SERVE_NODE_FLAGS, cli, 'serve'] };
}

/** Spawns `slipway serve` pinned to the launch's model, with one inference worker (the twin shares 2 cores). */
export function serveSpawner(s3Env: Readonly<Record<string, string>>): TaskSpawner {
  const { command, args } = serveCommand();
  return ({ model }) => {
    const modelEnv = Object.fromEntries(
      Object.entries(modelEnvironment(model)).filter((e): e is [string, string] => e[1] !== undefined),
    );
    // Port 0: the server binds a free port itself and logs it ({"event":"listening","port":N}).
    return spawn(command, [...args, '--model', model.uri, '--port', '0', '--host', '127.0.0.1'], {
      env: {
        ...process.env,
        ...s3Env,
        ...modelEnv,
        [ENV.port]: '0',
        // The supervisor learns the task's port from its `listening` line, logged at info.
        LOG_LEVEL: taskLogLevel(process.env['LOG_LEVEL']),
        [ENV.workers]: process.env[ENV.workers] ?? '1',
        [ENV.intraOpThreads]: process.env[ENV.intraOpThreads] ?? '1',
        // Several tasks share this machine: none may take every core for itself.
        [ENV.idleIntraOpThreads]: process.env[ENV.idleIntraOpThreads] ?? '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  };
}

/** The log level of a task: the twin's own when it shows info lines, else info. */
export function taskLogLevel(level: string | undefined): string {
  return level !== undefined && ['trace', 'debug', 'info'].includes(level) ? level : 'info';
}

interface ControlContext {
  readonly supervisor: Supervisor;
  readonly target: LocalDeployTarget;
  readonly lb: LoadBalancer;
  readonly s3Endpoint: string;
  readonly paths: StatePaths;
  readonly recent: readonly RolloutRecord[];
  readonly training: TrainingState;
  readonly startedAt: string;
}

/** The twin's control API under `/_slipway/`, used by `slipway status`, `rollback` and `deploy --wait`. */
function controlApi(
  ctx: ControlContext,
): (req: IncomingMessage, body: Buffer, res: ServerResponse) => Promise<void> {
  return async (req, _body, res) => {
    const url = new URL(req.url ?? '/', 'http://twin');
    const path = url.pathname;
    if (req.method === 'GET' && path === CONTROL_STATUS_PATH) {
      sendJson(res, 200, {
        twin: {
          pid: process.pid,
          startedAt: ctx.startedAt,
          url: ctx.lb.url,
          s3Endpoint: ctx.s3Endpoint,
          buckets: LOCAL_BUCKETS,
          stateDir: ctx.paths.root,
        },
        training: ctx.training,
        service: await ctx.target.status(),
        deployments: ctx.supervisor.deployments(),
        tasks: ctx.supervisor.tasks(),
        targets: ctx.lb.snapshot(),
        recentEvents: ctx.recent,
      });
      return;
    }
    if (req.method === 'POST' && path === '/_slipway/rollback') {
      try {
        sendJson(res, 202, await ctx.target.rollback());
      } catch (err) {
        if (err instanceof RolloutError) {
          sendJson(res, 409, { code: err.code, error: err.message });
          return;
        }
        throw err;
      }
      return;
    }
    const match = /^\/_slipway\/deployments\/(.+)$/.exec(path);
    if (req.method === 'GET' && match) {
      const id = decodeURIComponent(match[1]!);
      const deployment = ctx.supervisor.deployments().find((d) => d.id === id);
      if (deployment) sendJson(res, 200, deployment);
      else sendJson(res, 404, { error: `no deployment ${id}` });
      return;
    }
    sendJson(res, 404, {
      error: `unknown control route ${req.method ?? ''} ${path}`,
      routes: [`GET ${CONTROL_STATUS_PATH}`, 'POST /_slipway/rollback', 'GET /_slipway/deployments/<id>'],
    });
  };
}
