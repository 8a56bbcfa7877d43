/**
 * `DeployTarget` for an ECS service: each deploy registers a task-definition revision that pins the
 * model and forces a new deployment of the service to it.
 */
import {
  DeregisterTaskDefinitionCommand,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  ListTaskDefinitionsCommand,
  RegisterTaskDefinitionCommand,
  TagResourceCommand,
  UpdateServiceCommand,
  type ContainerDefinition,
  type Deployment,
  type ECSClient,
  type KeyValuePair,
  type RegisterTaskDefinitionCommandInput,
  type Service,
  type Tag,
  type TaskDefinition,
} from '@aws-sdk/client-ecs';
import { ENV, INFERENCE_CONTAINER_NAME, REVISION_TAGS } from '../names.ts';
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
} from './deploy-target.ts';
import { RolloutError } from './errors.ts';
import { followByPolling } from './follow.ts';
import { modelEnvironment, pinnedModelFromEnvironment } from './pinned-model.ts';

/** Retry policy for throttled or failing ECS calls (exponential backoff with full jitter). */
export interface EcsRetryOptions {
  /** Attempts per ECS call, including the first. @default 5 */
  readonly attempts?: number;
  /** Backoff base: attempt n waits up to base * 2^(n-1). @default 250 */
  readonly baseDelayMs?: number;
  /** Cap on one wait. @default 5000 */
  readonly maxDelayMs?: number;
  /** How to wait (tests pass a recorder). @default a timer */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Props of `EcsDeployTarget`. */
export interface EcsDeployTargetProps {
  readonly client: ECSClient;
  /** Cluster name or ARN. */
  readonly cluster: string;
  /** Service name or ARN. */
  readonly service: string;
  /**
   * Container that serves the model, if more than one container carries MODEL_URI.
   * @default INFERENCE_CONTAINER_NAME ('inference')
   */
  readonly container?: string;
  /** @default 5 attempts, 250 ms base, 5 s cap */
  readonly retry?: EcsRetryOptions;
  /**
   * Told about best-effort clean-up that failed after the rollout's outcome was settled (a
   * revision left registered, a revision left untagged); the Lambda logs it.
   * @default process.emitWarning
   */
  readonly onWarning?: (message: string, error: unknown) => void;
}

/** The fields of a described task definition that RegisterTaskDefinition does not accept. */
const READ_ONLY_FIELDS = [
  'taskDefinitionArn',
  'revision',
  'status',
  'requiresAttributes',
  'compatibilities',
  'registeredAt',
  'registeredBy',
  'deregisteredAt',
  'deleteRequestedAt',
] as const;

type RegisterableFields = Omit<TaskDefinition, (typeof READ_ONLY_FIELDS)[number]>;
// Compile-time guard: if the SDK grows a TaskDefinition field that RegisterTaskDefinition does not
// take, this stops compiling instead of sending a request ECS rejects (add it to READ_ONLY_FIELDS).
const _everyFieldRegisterable: Record<
  Exclude<keyof RegisterableFields, keyof RegisterTaskDefinitionCommandInput>,
  never
> = {};
void _everyFieldRegisterable;

interface DescribedTaskDefinition {
  readonly taskDefinition: TaskDefinition;
  readonly tags: readonly Tag[];
}

/**
 * Most revisions one look over the family reads: newer ones for the models the service was rolled
 * back from (`describe`), older ones for the revision a code deploy replaced (`rollback`).
 */
const REVISION_SCAN = 10;

/** An ACTIVE revision of the family, as ListTaskDefinitions names it. */
interface Revision {
  readonly arn: string;
  readonly revision: number;
}

/** A revision on rollback's way back: its number, its tags and the model it pins. */
interface ChainLink {
  readonly revision: number;
  readonly tags: readonly Tag[];
  readonly model: PinnedModel | undefined;
}

/**
 * A family's ACTIVE revisions, newest first, listed one page at a time as walks reach them and
 * kept, so that the walks of one look read each page at most once and no page beyond what they need.
 */
class FamilyRevisions {
  readonly #listed: Revision[] = [];
  readonly #unlisted: AsyncIterator<Revision>;
  #complete = false;

  /** @param newestFirst the family's revisions, newest first, listed lazily */
  constructor(newestFirst: AsyncIterable<Revision>) {
    this.#unlisted = newestFirst[Symbol.asyncIterator]();
  }

  /** Revisions numbered above `floor` and below `ceiling`, newest first, at most `limit` of them. */
  async *between(floor: number, ceiling: number, limit: number): AsyncGenerator<Revision> {
    let count = 0;
    for (let index = 0; count < limit; index++) {
      const listed = await this.#at(index);
      if (listed === undefined || listed.revision <= floor) return;
      if (listed.revision < ceiling) {
        count++;
        yield listed;
      }
    }
  }

  /** The newest revision numbered `revision` or lower, if any. */
  async newestUpTo(revision: number): Promise<Revision | undefined> {
    for await (const listed of this.between(0, revision + 1, 1)) return listed;
    return undefined;
  }

  async #at(index: number): Promise<Revision | undefined> {
    while (index >= this.#listed.length && !this.#complete) {
      const next = await this.#unlisted.next();
      if (next.done === true) this.#complete = true;
      else this.#listed.push(next.value);
    }
    return this.#listed[index];
  }
}

/**
 * Deploys to an ECS service by task-definition revisions.
 *
 * describe: DescribeServices -> DescribeTaskDefinition (with tags) -> ListTaskDefinitions (the
 * revisions around the current one: models the service was rolled back from).
 * deploy: DescribeServices -> DescribeTaskDefinition (with tags) -> RegisterTaskDefinition (every
 * field of the current revision copied, only the model environment changed, tagged with the base
 * revision) -> DescribeServices (re-check that nobody switched the service meanwhile) ->
 * UpdateService with forceNewDeployment -> TagResource (the deployment that switched to it). If
 * the service was not switched, the new revision is deregistered again (best effort).
 *
 * @example new EcsDeployTarget({ client: new ECSClient({}), cluster: 'slipway', service: 'inference' })
 */
export class EcsDeployTarget implements DeployTarget {
  readonly #client: ECSClient;
  readonly #cluster: string;
  readonly #service: string;
  readonly #container: string;
  readonly #retry: Required<EcsRetryOptions>;
  readonly #onWarning: (message: string, error: unknown) => void;
  // Task-definition revisions are immutable (only their status and tags change), so caching by ARN
  // is safe and saves one DescribeTaskDefinition per deploy and per follow poll. Where tags
  // matter (the deployment tag on newer revisions), `describe` reads fresh.
  readonly #taskDefinitions = new Map<string, DescribedTaskDefinition>();

  constructor(props: EcsDeployTargetProps) {
    for (const [name, value] of [
      [ENV.cluster, props.cluster],
      [ENV.service, props.service],
    ] as const) {
      if (!value?.trim())
        throw new RolloutError('ROLLOUT_CONFIG', `EcsDeployTarget needs a ${name} value, got "${value}"`);
    }
    this.#client = props.client;
    this.#cluster = props.cluster;
    this.#service = props.service;
    this.#container = props.container ?? INFERENCE_CONTAINER_NAME;
    this.#retry = {
      attempts: props.retry?.attempts ?? 5,
      baseDelayMs: props.retry?.baseDelayMs ?? 250,
      maxDelayMs: props.retry?.maxDelayMs ?? 5000,
      sleep: props.retry?.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
    };
    this.#onWarning =
      props.onWarning ??
      ((message, error) =>
        process.emitWarning(`${message}: ${error instanceof Error ? error.message : String(error)}`));
  }

  /** The task definition the service runs towards and the model it pins. */
  async describe(): Promise<ServiceState> {
    const service = await this.#describeService();
    const revision = requireTaskDefinition(service);
    const current = await this.#describeTaskDefinition(revision);
    return {
      revision,
      model: this.#modelOf(current.taskDefinition),
      rolledBack: await this.#rolledBackModels(current),
    };
  }

  /**
   * The models of the family's ACTIVE revisions the service ran and left: those newer than
   * `current` (it ran towards each of them and came back, by the circuit breaker or by hand), and
   * those between `current` and the revision it came from (see `#cameFrom`: left before `current`
   * was registered, so a late event of theirs must not replace it either). A revision the service
   * never ran (a rollout that failed, or died, between registering it and switching to it) does
   * not count: its event must still deploy when it is retried. Reads at most
   * {@link REVISION_SCAN} revisions on either side; with a base record next to `current` (every
   * rollout but one that found the service moved), none on the older side.
   */
  async #rolledBackModels(current: DescribedTaskDefinition): Promise<PinnedModel[]> {
    const { family, revision } = current.taskDefinition;
    if (family === undefined || revision === undefined) return [];
    const link: ChainLink = { revision, tags: current.tags, model: this.#modelOf(current.taskDefinition) };
    const revisions = new FamilyRevisions(this.#revisions(family));
    const newer: Revision[] = [];
    for await (const listed of revisions.between(revision, Infinity, REVISION_SCAN + 1)) newer.push(listed);
    const models: PinnedModel[] = [];
    // Read fresh: the deployment tag is added after registration, maybe by another instance.
    for await (const { model } of this.#modelsRun(newer.slice(0, REVISION_SCAN), { fresh: true })) {
      models.push(model);
    }
    // More newer revisions than one look reads: the scan stopped there, before the older side.
    if (newer.length > REVISION_SCAN) return models;
    models.push(...(await this.#cameFrom(link, revisions, { fresh: true })).left);
    return models;
  }

  /**
   * The revisions of `revisions` that pin a model and that the service ran, with their models, in
   * the order given; each one is described as the walk reaches it.
   */
  async *#modelsRun(
    revisions: AsyncIterable<Revision> | Iterable<Revision>,
    options: { readonly fresh?: boolean },
  ): AsyncGenerator<{ readonly revision: number; readonly model: PinnedModel }> {
    for await (const { arn, revision } of revisions) {
      const { taskDefinition, tags } = await this.#describeTaskDefinition(arn, options);
      const model = this.#modelOf(taskDefinition);
      if (model !== undefined && ranOnService(tags)) yield { revision, model };
    }
  }

  /** ACTIVE revisions of `family`, newest first, one ListTaskDefinitions page at a time. */
  async *#revisions(family: string): AsyncGenerator<Revision> {
    let nextToken: string | undefined;
    do {
      const page = await this.#call('ListTaskDefinitions', () =>
        this.#client.send(
          new ListTaskDefinitionsCommand({
            familyPrefix: family,
            status: 'ACTIVE',
            sort: 'DESC',
            ...(nextToken === undefined ? {} : { nextToken }),
          }),
        ),
      );
      for (const arn of page.taskDefinitionArns ?? []) {
        const parsed = parseTaskDefinitionArn(arn);
        // familyPrefix also matches longer family names.
        if (parsed?.family === family) yield { arn, revision: parsed.revision };
      }
      nextToken = page.nextToken;
    } while (nextToken !== undefined);
  }

  /**
   * Register a revision pinning `model` and force a new deployment of the service to it.
   *
   * "Rolled back" (`describe`) must mean that the service ran a revision and left it, or a retry
   * of a rollout that failed half-way would be skipped as rolled back and the model silently
   * never deployed. So the revision is tagged with its deployment only after UpdateService
   * accepted it, and a revision the service was not switched to is deregistered again. Tagging
   * after the switch (not before it) is what survives the Lambda dying in between: dying after
   * RegisterTaskDefinition leaves a revision with no deployment tag, which `describe` ignores, so
   * the retry deploys; dying after UpdateService but before TagResource leaves a revision the
   * service ran without the tag, so if it is then rolled back, a late event may deploy that model
   * once more (and fail visibly again) instead of being lost.
   */
  async deploy(model: PinnedModel, options: DeployOptions = {}): Promise<DeployResult> {
    const base = options.ifRevision ?? (await this.describe()).revision;
    const current = await this.#describeTaskDefinition(base);
    const registered = await this.#call('RegisterTaskDefinition', () =>
      this.#client.send(
        new RegisterTaskDefinitionCommand(
          registrationInput(current, this.#container, model, current.taskDefinition.revision),
        ),
      ),
    );
    const revision = registered.taskDefinition?.taskDefinitionArn;
    if (revision === undefined) {
      throw new RolloutError('ROLLOUT_AWS', 'RegisterTaskDefinition returned no task definition ARN');
    }
    this.#taskDefinitions.set(revision, {
      taskDefinition: registered.taskDefinition ?? {},
      tags: registered.tags ?? [],
    });

    let updated: Service | undefined;
    try {
      // ECS has no conditional UpdateService; checking as late as possible keeps the window small.
      const now = requireTaskDefinition(await this.#describeService());
      if (now !== base) {
        throw new RolloutError(
          'ROLLOUT_CONFLICT',
          `service ${this.#service} moved from ${base} to ${now} while deploying ${model.uri}`,
          { retryable: true },
        );
      }
      updated = await this.#updateService(revision);
    } catch (err) {
      // The service was not switched: a revision left behind would count for rollback. (Should an
      // UpdateService that failed have taken effect after all, the service runs a deregistered
      // revision, which ECS allows; a retry then finds its model live and skips as a duplicate.)
      await this.#deregister(revision);
      throw err;
    }
    const deploymentId = primaryDeploymentId(updated, revision);
    await this.#tagDeployment(revision, deploymentId);
    return { deploymentId, revision, previousRevision: base, model };
  }

  /** Best effort: deregister a revision the service was not switched to; a failure is only reported. */
  async #deregister(revision: string): Promise<void> {
    try {
      await this.#call('DeregisterTaskDefinition', () =>
        this.#client.send(new DeregisterTaskDefinitionCommand({ taskDefinition: revision })),
      );
    } catch (err) {
      this.#onWarning(`could not deregister ${revision}, which the service never ran`, err);
    }
  }

  /**
   * Best effort: record on `revision` the deployment that switched the service to it (what makes
   * it count as rolled back once the service leaves it). The switch already happened, so a failure
   * is reported, not thrown.
   */
  async #tagDeployment(revision: string, deploymentId: string): Promise<void> {
    const tag: Tag = { key: REVISION_TAGS.deployment, value: deploymentId };
    try {
      await this.#call('TagResource', () =>
        this.#client.send(new TagResourceCommand({ resourceArn: revision, tags: [tag] })),
      );
    } catch (err) {
      this.#onWarning(`could not tag ${revision} with its deployment ${deploymentId}`, err);
      return;
    }
    const cached = this.#taskDefinitions.get(revision);
    if (cached !== undefined) this.#taskDefinitions.set(revision, { ...cached, tags: [...cached.tags, tag] });
  }

  /**
   * Switch the service back to the revision it ran before the current one, with a different model.
   *
   * The way back is the chain of base revisions the rollout records (`slipway:base-revision`: what
   * the service ran when a revision was registered), not simply the next lower revision number: a
   * model the circuit breaker rejected sits between the two (A live, B deployed and rolled back to
   * A, C deployed from A: C's base is A, and B is never a rollback target). A revision with no
   * record (one a code deploy or a person registered) links to the newest older revision that pins
   * its model and ran (see `#cameFrom`), else to the next lower ACTIVE revision. Revisions that
   * pin the current model (or no model), and revisions the service never ran, are passed over.
   */
  async rollback(): Promise<DeployResult> {
    const currentArn = requireTaskDefinition(await this.#describeService());
    const current = await this.#describeTaskDefinition(currentArn);
    const currentModel = this.#modelOf(current.taskDefinition);
    const { family, revision: currentRevision } = current.taskDefinition;
    if (family === undefined || currentRevision === undefined) {
      throw new RolloutError('ROLLOUT_AWS', `task definition ${currentArn} has no family or revision`);
    }

    // Pages are read as the walk goes down: most rollbacks end on the first one.
    const revisions = new FamilyRevisions(this.#revisions(family));
    let link: ChainLink = { revision: currentRevision, tags: current.tags, model: currentModel };
    for (;;) {
      const before = (await this.#cameFrom(link, revisions)).revision;
      const next = await revisions.newestUpTo(before);
      if (next === undefined) break;
      const candidate = await this.#describeTaskDefinition(next.arn);
      const model = this.#modelOf(candidate.taskDefinition);
      if (model !== undefined && !sameModel(model, currentModel) && ranOnService(candidate.tags)) {
        const deploymentId = primaryDeploymentId(await this.#updateService(next.arn), next.arn);
        return { deploymentId, revision: next.arn, previousRevision: currentArn, model };
      }
      link = { revision: next.revision, tags: candidate.tags, model };
    }

    throw new RolloutError(
      'ROLLOUT_NO_PREVIOUS_MODEL',
      `no earlier ACTIVE revision of ${family} that the service ran pins a model other than ${currentModel?.uri ?? 'none'}`,
    );
  }

  /**
   * Where the service came to `link` from: `revision`, the highest revision number it may have
   * run before (the recorded base revision; else, for a revision with no record, the newest of the
   * next {@link REVISION_SCAN} older revisions that pins the same model and ran; else any lower
   * one), and `left`, the models of the revisions between the two that it ran, which it had left
   * by then.
   *
   * A revision with no record is a code deploy's (or a person's). A code deploy pins the model
   * that was live when it ran (deploy.yml reads it from the live deployment into
   * `initialModelUri`), so the revision it replaced is the newest older one that pins that model,
   * and the revisions between the two pin models the service had left by then: rolled back by the
   * circuit breaker or by hand, never a rollback target.
   */
  async #cameFrom(
    link: ChainLink,
    revisions: FamilyRevisions,
    options: { readonly fresh?: boolean } = {},
  ): Promise<{ readonly revision: number; readonly left: readonly PinnedModel[] }> {
    const recorded = recordedBaseRevision(link.revision, link.tags);
    const left: PinnedModel[] = [];
    if (recorded !== undefined || link.model !== undefined) {
      const between = revisions.between(recorded ?? 0, link.revision, REVISION_SCAN);
      for await (const { revision, model } of this.#modelsRun(between, options)) {
        if (recorded === undefined && sameModel(model, link.model)) return { revision, left };
        left.push(model);
      }
    }
    // With no record and no revision of the same model, nothing is known of what was left.
    return recorded === undefined ? { revision: link.revision - 1, left: [] } : { revision: recorded, left };
  }

  /** Poll DescribeServices until the deployment completes, fails, rolls back or is superseded. */
  follow(deploymentId: string, options?: FollowOptions): Promise<FollowResult> {
    return followByPolling(() => this.status(), deploymentId, options);
  }

  /** The service and each of its deployments, with the model each one's task definition pins. */
  async status(): Promise<ServiceStatus> {
    const service = await this.#describeService();
    const deployments: DeploymentInfo[] = [];
    const all = service.deployments ?? [];
    for (const deployment of all) {
      deployments.push(await this.#deploymentInfo(deployment, all.length));
    }
    deployments.sort(
      (a, b) =>
        Number(b.status === 'PRIMARY') - Number(a.status === 'PRIMARY') ||
        (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0),
    );
    return {
      service: service.serviceName ?? this.#service,
      serviceStatus: service.status ?? 'UNKNOWN',
      desiredCount: service.desiredCount ?? 0,
      runningCount: service.runningCount ?? 0,
      deployments,
    };
  }

  async #deploymentInfo(deployment: Deployment, deploymentCount: number): Promise<DeploymentInfo> {
    const revision = deployment.taskDefinition ?? '';
    const model = revision
      ? this.#modelOf((await this.#describeTaskDefinition(revision)).taskDefinition)
      : undefined;
    const status =
      deployment.status === 'PRIMARY' || deployment.status === 'ACTIVE' ? deployment.status : 'INACTIVE';
    const desiredCount = deployment.desiredCount ?? 0;
    const runningCount = deployment.runningCount ?? 0;
    const pendingCount = deployment.pendingCount ?? 0;
    // ECS leaves rolloutState unset for services it does not track that way; infer it from counts.
    const rolloutState =
      deployment.rolloutState ??
      (status === 'PRIMARY' && deploymentCount === 1 && runningCount === desiredCount && pendingCount === 0
        ? 'COMPLETED'
        : 'IN_PROGRESS');
    return {
      id: deployment.id ?? '',
      status,
      rolloutState,
      ...(deployment.rolloutStateReason === undefined ? {} : { reason: deployment.rolloutStateReason }),
      revision,
      model,
      desiredCount,
      runningCount,
      pendingCount,
      failedTasks: deployment.failedTasks ?? 0,
      ...(deployment.createdAt === undefined ? {} : { createdAt: deployment.createdAt }),
      ...(deployment.updatedAt === undefined ? {} : { updatedAt: deployment.updatedAt }),
    };
  }

  /** UpdateService to `taskDefinition` with forceNewDeployment; the service as ECS returned it. */
  async #updateService(taskDefinition: string): Promise<Service | undefined> {
    const updated = await this.#call('UpdateService', () =>
      this.#client.send(
        new UpdateServiceCommand({
          cluster: this.#cluster,
          service: this.#service,
          taskDefinition,
          forceNewDeployment: true,
        }),
      ),
    );
    return updated.service;
  }

  async #describeService(): Promise<Service> {
    const out = await this.#call('DescribeServices', () =>
      this.#client.send(new DescribeServicesCommand({ cluster: this.#cluster, services: [this.#service] })),
    );
    const service = out.services?.[0];
    if (service === undefined || service.status !== 'ACTIVE') {
      const failure = out.failures?.[0];
      const why = failure
        ? `${failure.reason ?? 'unknown reason'}${failure.detail ? ` (${failure.detail})` : ''}`
        : `status ${service?.status ?? 'unknown'}`;
      throw new RolloutError(
        'ROLLOUT_SERVICE_NOT_FOUND',
        `ECS service "${this.#service}" in cluster "${this.#cluster}" is not available: ${why}; check ${ENV.cluster} and ${ENV.service}`,
      );
    }
    return service;
  }

  async #describeTaskDefinition(
    arn: string,
    options: { readonly fresh?: boolean } = {},
  ): Promise<DescribedTaskDefinition> {
    const cached = options.fresh ? undefined : this.#taskDefinitions.get(arn);
    if (cached !== undefined) return cached;
    const out = await this.#call('DescribeTaskDefinition', () =>
      this.#client.send(new DescribeTaskDefinitionCommand({ taskDefinition: arn, include: ['TAGS'] })),
    );
    if (out.taskDefinition === undefined) {
      throw new RolloutError('ROLLOUT_AWS', `DescribeTaskDefinition returned nothing for ${arn}`);
    }
    const described = { taskDefinition: out.taskDefinition, tags: out.tags ?? [] };
    this.#taskDefinitions.set(arn, described);
    return described;
  }

  #modelOf(taskDefinition: TaskDefinition): PinnedModel | undefined {
    const container = modelContainer(taskDefinition, this.#container);
    return pinnedModelFromEnvironment(environmentRecord(container.environment));
  }

  /** One ECS call with retries on throttling and server errors, and typed errors for the rest. */
  async #call<T>(action: string, send: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (err) {
        const kind = classifyEcsError(err);
        if ((kind === 'throttled' || kind === 'server') && attempt < this.#retry.attempts) {
          const ceiling = Math.min(this.#retry.maxDelayMs, this.#retry.baseDelayMs * 2 ** (attempt - 1));
          await this.#retry.sleep(Math.round(Math.random() * ceiling));
          continue;
        }
        throw toRolloutError(action, err, kind, attempt);
      }
    }
  }
}

type EcsErrorKind = 'throttled' | 'server' | 'denied' | 'not-found' | 'other';

function classifyEcsError(err: unknown): EcsErrorKind {
  if (!(err instanceof Error)) return 'other';
  const meta = err as Error & {
    $retryable?: { throttling?: boolean };
    $metadata?: { httpStatusCode?: number };
  };
  if (
    meta.$retryable?.throttling === true ||
    ['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded'].includes(
      err.name,
    ) ||
    (err.name === 'ClientException' && /rate exceeded/i.test(err.message))
  ) {
    return 'throttled';
  }
  if (['AccessDeniedException', 'AccessDenied', 'UnauthorizedOperation'].includes(err.name)) return 'denied';
  if (
    ['ServiceNotFoundException', 'ClusterNotFoundException', 'ServiceNotActiveException'].includes(err.name)
  ) {
    return 'not-found';
  }
  if (err.name === 'ServerException' || (meta.$metadata?.httpStatusCode ?? 0) >= 500) return 'server';
  return 'other';
}

function toRolloutError(action: string, err: unknown, kind: EcsErrorKind, attempts: number): RolloutError {
  const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  switch (kind) {
    case 'throttled':
      return new RolloutError(
        'ROLLOUT_THROTTLED',
        `ecs:${action} still throttled after ${attempts} attempts (${detail})`,
        {
          cause: err,
          retryable: true,
        },
      );
    case 'denied':
      return new RolloutError(
        'ROLLOUT_ACCESS_DENIED',
        `ecs:${action} was denied (${detail}); grant it to the role running the rollout`,
        { cause: err },
      );
    case 'not-found':
      return new RolloutError('ROLLOUT_SERVICE_NOT_FOUND', `ecs:${action} failed: ${detail}`, { cause: err });
    case 'server':
      return new RolloutError('ROLLOUT_AWS', `ecs:${action} failed after ${attempts} attempts (${detail})`, {
        cause: err,
        retryable: true,
      });
    case 'other':
      return new RolloutError('ROLLOUT_AWS', `ecs:${action} failed (${detail})`, { cause: err });
  }
}

/**
 * The container that serves the model: the one named `preferred` if it carries MODEL_URI, else the
 * only container that does. Throws `ROLLOUT_NO_MODEL_CONTAINER` when there is none or several.
 */
export function modelContainer(taskDefinition: TaskDefinition, preferred: string): ContainerDefinition {
  const containers = taskDefinition.containerDefinitions ?? [];
  const carriers = containers.filter((c) => (c.environment ?? []).some((e) => e.name === ENV.modelUri));
  const named = carriers.find((c) => c.name === preferred);
  if (named !== undefined) return named;
  if (carriers.length === 1 && carriers[0] !== undefined) return carriers[0];
  const arn = taskDefinition.taskDefinitionArn ?? taskDefinition.family ?? '(unknown task definition)';
  const names = containers.map((c) => c.name ?? '?').join(', ') || 'none';
  throw new RolloutError(
    'ROLLOUT_NO_MODEL_CONTAINER',
    carriers.length === 0
      ? `task definition ${arn} has no container with a ${ENV.modelUri} environment variable (containers: ${names}); ` +
          `give the inference container ${ENV.modelUri}=none so rollouts can pin models`
      : `task definition ${arn} has several containers with ${ENV.modelUri} (${carriers.map((c) => c.name).join(', ')}) ` +
          `and none is named "${preferred}"; set ${ENV.container}`,
  );
}

/**
 * The RegisterTaskDefinition input for a revision identical to `current` except for the model
 * environment of the model container and the rollout's own tags: those of `current` are not
 * copied (they describe that revision), and `baseRevision`, when given, is recorded. AWS-reserved
 * `aws:` tags are left out too, since no caller may set them.
 */
export function registrationInput(
  current: { readonly taskDefinition: TaskDefinition; readonly tags: readonly Tag[] },
  containerName: string,
  model: PinnedModel | undefined,
  baseRevision?: number,
): RegisterTaskDefinitionCommandInput {
  const registerable: Partial<TaskDefinition> = { ...current.taskDefinition };
  for (const field of READ_ONLY_FIELDS) delete registerable[field];
  const target = modelContainer(current.taskDefinition, containerName);
  // `aws:`-prefixed tags (CloudFormation's stack tags, for one) are AWS's own: describable, but
  // RegisterTaskDefinition refuses them. AWS re-applies them where they apply.
  const rolloutTags: readonly string[] = Object.values(REVISION_TAGS);
  const tags = current.tags.filter(
    (tag) => !tag.key?.toLowerCase().startsWith('aws:') && !rolloutTags.includes(tag.key ?? ''),
  );
  if (baseRevision !== undefined) tags.push({ key: REVISION_TAGS.base, value: String(baseRevision) });
  return {
    ...(registerable as RegisterableFields),
    family: current.taskDefinition.family,
    containerDefinitions: (current.taskDefinition.containerDefinitions ?? []).map((container) =>
      container === target
        ? { ...container, environment: withModelEnvironment(container.environment ?? [], model) }
        : container,
    ),
    ...(tags.length > 0 ? { tags } : {}),
  };
}

/** Replace the model variables in place (keeping the others and their order); append missing ones. */
function withModelEnvironment(
  environment: readonly KeyValuePair[],
  model: PinnedModel | undefined,
): KeyValuePair[] {
  const wanted: Record<string, string | undefined> = modelEnvironment(model);
  const written = new Set<string>();
  const result: KeyValuePair[] = [];
  for (const entry of environment) {
    if (entry.name === undefined || !(entry.name in wanted)) {
      result.push(entry);
      continue;
    }
    const value = wanted[entry.name];
    if (value !== undefined && !written.has(entry.name)) result.push({ name: entry.name, value });
    written.add(entry.name);
  }
  for (const [name, value] of Object.entries(wanted)) {
    if (value !== undefined && !written.has(name)) result.push({ name, value });
  }
  return result;
}

function environmentRecord(
  environment: readonly KeyValuePair[] | undefined,
): Record<string, string | undefined> {
  const record: Record<string, string | undefined> = {};
  for (const entry of environment ?? []) if (entry.name !== undefined) record[entry.name] = entry.value;
  return record;
}

function requireTaskDefinition(service: Service): string {
  if (service.taskDefinition === undefined) {
    throw new RolloutError(
      'ROLLOUT_AWS',
      `ECS service ${service.serviceName ?? '?'} reports no task definition`,
    );
  }
  return service.taskDefinition;
}

/** The id of the PRIMARY deployment of `taskDefinition` in an UpdateService response. */
function primaryDeploymentId(service: Service | undefined, taskDefinition: string): string {
  const primary = service?.deployments?.find(
    (d) => d.status === 'PRIMARY' && d.taskDefinition === taskDefinition,
  );
  if (primary?.id === undefined) {
    throw new RolloutError(
      'ROLLOUT_AWS',
      `UpdateService accepted ${taskDefinition} but reported no PRIMARY deployment of it`,
    );
  }
  return primary.id;
}

/**
 * Whether the service ran a revision, read from the rollout's tags: it carries the deployment
 * that switched to it. A revision without the rollout's base tag was registered by hand or by an
 * earlier version of the rollout, which did not tag; it counts as run, as it always did.
 */
function ranOnService(tags: readonly Tag[]): boolean {
  const keys = new Set(tags.map((tag) => tag.key));
  return keys.has(REVISION_TAGS.deployment) || !keys.has(REVISION_TAGS.base);
}

/** The base revision recorded on `revision`, if it carries a usable one (a lower number). */
function recordedBaseRevision(revision: number, tags: readonly Tag[]): number | undefined {
  const recorded = tags.find((tag) => tag.key === REVISION_TAGS.base)?.value ?? '';
  return /^\d+$/.test(recorded) && Number(recorded) < revision ? Number(recorded) : undefined;
}

function parseTaskDefinitionArn(arn: string): { family: string; revision: number } | undefined {
  const match = /task-definition\/([^:]+):(\d+)$/.exec(arn);
  return match?.[1] && match[2] ? { family: match[1], revision: Number(match[2]) } : undefined;
}

function sameModel(a: PinnedModel, b: PinnedModel | undefined): boolean {
  return b !== undefined && a.uri === b.uri && (a.etag ?? '') === (b.etag ?? '');
}
