/**
 * The rollout Lambda: EventBridge delivers an S3 "Object Created" event for the models bucket;
 * this pins that exact object in a new task-definition revision and redeploys the ECS service.
 * deploy.yml also invokes it directly with a restore request (`./restore.ts`) after a failed code
 * deploy, to pin again the model CloudFormation's rollback took from the service.
 *
 * Bundled by the CDK app with esbuild (entry `src/rollout/lambda.ts`, export `handler`), so its
 * imports stay lean: no model runtime, no web server, and of S3 only the client that HEADs an
 * uploaded object whose event key reads two ways (`./event-key.ts`).
 *
 * Configuration (environment variables, names from src/names.ts `ENV`):
 * - SLIPWAY_CLUSTER: ECS cluster name or ARN (required)
 * - SLIPWAY_SERVICE: ECS service name or ARN (required)
 * - SLIPWAY_MODELS_BUCKET: the models bucket; events for other buckets are rejected (required)
 * - SLIPWAY_CONTAINER: the container serving the model (default `inference`)
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { ECSClient } from '@aws-sdk/client-ecs';
import { S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { ENV, INFERENCE_CONTAINER_NAME, modelUploadEventPattern } from '../names.ts';
import type { DeployTarget } from './deploy-target.ts';
import { EcsDeployTarget } from './ecs-target.ts';
import { RolloutError } from './errors.ts';
import { headWithS3, resolveObjectKey, type HeadObject } from './event-key.ts';
import { eventField, matchesEventPattern } from './event.ts';
import { restoreModel, rolloutModelEvent, type RolloutOutcome } from './operations.ts';
import { ROLLOUT_LOG_MESSAGES, loggedObjectOf } from './outcome-log.ts';
import type { LoggedObject } from './outcome-log.ts';
import { isRestoreRequest, parseRestoreRequest, RESTORE_LOG_MESSAGES } from './restore.ts';

/** The handler's configuration, read from the environment. */
export interface RolloutConfig {
  readonly cluster: string;
  readonly service: string;
  readonly modelsBucket: string;
  readonly container: string;
}

/** Read the handler's configuration; throws `ROLLOUT_CONFIG` naming every missing variable. */
export function readRolloutConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
): RolloutConfig {
  const required = [ENV.cluster, ENV.service, ENV.modelsBucket] as const;
  const missing = required.filter((name) => !env[name]?.trim());
  if (missing.length > 0) {
    throw new RolloutError('ROLLOUT_CONFIG', `missing environment variable(s) ${missing.join(', ')}`);
  }
  return {
    cluster: env[ENV.cluster]!.trim(),
    service: env[ENV.service]!.trim(),
    modelsBucket: env[ENV.modelsBucket]!.trim(),
    container: env[ENV.container]?.trim() || INFERENCE_CONTAINER_NAME,
  };
}

/** What the handler returns (EventBridge ignores it; tests and direct invocations read it). */
export type RolloutHandlerResult =
  | {
      readonly action: 'deployed';
      readonly modelUri: string;
      readonly deploymentId: string;
      readonly revision: string;
    }
  | { readonly action: 'skipped'; readonly reason: string; readonly modelUri?: string };

/** Dependencies of a rollout handler. */
export interface RolloutHandlerDeps {
  readonly target: DeployTarget;
  readonly modelsBucket: string;
  readonly logger: Logger;
  /**
   * HEADs an uploaded object, to tell which object an event whose key reads differently decoded
   * and raw names (`resolveObjectKey`). @default none: the key is decoded, unchecked
   */
  readonly headObject?: HeadObject;
}

/**
 * Build a handler around a deploy target. Deploys and skips resolve; rejected events and every
 * failure throw, so the invocation counts as failed and EventBridge/Lambda retries (and the
 * failure destination) apply. Not-a-model objects are logged and ignored.
 */
export function createRolloutHandler(
  deps: RolloutHandlerDeps,
): (event: unknown, context?: Context) => Promise<RolloutHandlerResult> {
  const { target, modelsBucket, logger, headObject } = deps;
  const pattern = modelUploadEventPattern(modelsBucket);
  return async (event, context) => {
    if (context !== undefined) logger.addContext(context);
    if (isRestoreRequest(event)) return restore(event, target, modelsBucket, logger);
    let outcome: RolloutOutcome;
    let objectKey: string | undefined;
    try {
      // Only model uploads to the models bucket: anything else is judged (rejected) as it is.
      if (headObject !== undefined && matchesEventPattern(pattern, event)) {
        objectKey = await resolveObjectKey(event, headObject);
      }
      outcome = await rolloutModelEvent(
        event,
        target,
        { modelsBucket },
        objectKey === undefined ? {} : { objectKey },
      );
    } catch (err) {
      const object = loggedObjectOf(event, objectKey);
      logger.error(ROLLOUT_LOG_MESSAGES.failed, {
        error: err instanceof Error ? err : String(err),
        code: err instanceof RolloutError ? err.code : undefined,
        modelUri: modelUriOf(object),
        object,
        eventId: eventField(event, 'id'),
      });
      throw err;
    }
    switch (outcome.kind) {
      case 'deploy': {
        const { result, decision } = outcome;
        logger.info(ROLLOUT_LOG_MESSAGES.deployed, {
          modelUri: decision.model.uri,
          object: loggedObjectOf(event, objectKey),
          deploymentId: result.deploymentId,
          revision: result.revision,
          previousRevision: result.previousRevision,
          eventId: decision.event.id,
        });
        return {
          action: 'deployed',
          modelUri: decision.model.uri,
          deploymentId: result.deploymentId,
          revision: result.revision,
        };
      }
      case 'skip': {
        const { decision } = outcome;
        const object = loggedObjectOf(event, objectKey);
        logger.info(ROLLOUT_LOG_MESSAGES.skipped, {
          reason: decision.reason,
          detail: decision.detail,
          modelUri: decision.event?.uri ?? modelUriOf(object),
          object,
          eventId: eventField(event, 'id'),
        });
        return {
          action: 'skipped',
          reason: decision.reason,
          ...(decision.event === undefined ? {} : { modelUri: decision.event.uri }),
        };
      }
      case 'reject': {
        const object = loggedObjectOf(event, objectKey);
        logger.error(ROLLOUT_LOG_MESSAGES.rejected, {
          reason: outcome.decision.reason,
          modelUri: modelUriOf(object),
          object,
          eventId: eventField(event, 'id'),
        });
        // Thrown so the bad event lands in the failure destination instead of vanishing.
        throw new RolloutError('ROLLOUT_EVENT_INVALID', outcome.decision.reason);
      }
    }
  };
}

/**
 * Handle a restore request: pin its model again unless it (or a newer one) is live. A malformed
 * request and every failure throw, so the caller (deploy.yml) sees the invocation fail.
 */
async function restore(
  request: unknown,
  target: DeployTarget,
  modelsBucket: string,
  logger: Logger,
): Promise<RolloutHandlerResult> {
  let modelUri: string | undefined;
  try {
    const { model, reason } = parseRestoreRequest(request, modelsBucket);
    modelUri = model.uri;
    const outcome = await restoreModel(model, target);
    if (outcome.kind === 'skip') {
      const { decision } = outcome;
      logger.info(RESTORE_LOG_MESSAGES.skipped, {
        reason: decision.reason,
        detail: decision.detail,
        modelUri,
      });
      return { action: 'skipped', reason: decision.reason, modelUri };
    }
    const { result } = outcome;
    logger.info(RESTORE_LOG_MESSAGES.restored, {
      modelUri,
      deploymentId: result.deploymentId,
      revision: result.revision,
      previousRevision: result.previousRevision,
      requestReason: reason,
    });
    return { action: 'deployed', modelUri, deploymentId: result.deploymentId, revision: result.revision };
  } catch (err) {
    logger.error(RESTORE_LOG_MESSAGES.failed, {
      error: err instanceof Error ? err : String(err),
      code: err instanceof RolloutError ? err.code : undefined,
      modelUri,
    });
    throw err;
  }
}

let cached: { key: string; handle: ReturnType<typeof createRolloutHandler> } | undefined;

/**
 * The Lambda entry point. Configuration is read on the first invocation (and again if it
 * changes), so a misconfigured function fails each invocation with a clear error.
 */
export async function handler(event: unknown, context?: Context): Promise<RolloutHandlerResult> {
  const config = readRolloutConfig();
  const key = JSON.stringify(config);
  if (cached?.key !== key) {
    const logger = new Logger({ serviceName: 'slipway-rollout' });
    logger.appendPersistentKeys({ ecsCluster: config.cluster, ecsService: config.service });
    const target = new EcsDeployTarget({
      client: new ECSClient({}),
      cluster: config.cluster,
      service: config.service,
      container: config.container,
      onWarning: (message, error) =>
        logger.warn(message, { error: error instanceof Error ? error : String(error) }),
    });
    cached = {
      key,
      handle: createRolloutHandler({
        target,
        modelsBucket: config.modelsBucket,
        logger,
        headObject: headWithS3(new S3Client({})),
      }),
    };
  }
  return cached.handle(event, context);
}

/** The logged object as a URI for the logs (its resolved key, or its key made readable). */
function modelUriOf(object: LoggedObject | undefined): string | undefined {
  return object && `s3://${object.bucket}/${object.key}`;
}
