/**
 * How a pinned model is written into, and read back from, a service's environment variables.
 * ECS task definitions and the local twin's supervised processes use the same keys, so both
 * record the ordering data the (stateless) rollout needs to judge the next event.
 */
import { z } from 'zod';
import { ENV, NO_MODEL_URI } from '../names.ts';
import type { PinnedModel } from './deploy-target.ts';
import { parseS3ModelUri } from './event.ts';

/**
 * A pinned model's ordering record as JSON: what `scripts/live-model-uri.ts --record` prints,
 * `cdk deploy -c initialModelRecord=...` pins, and a restore request carries.
 */
export const ModelRecordSchema = z.strictObject({
  etag: z
    .string()
    .regex(/^[0-9a-f]{32}(-\d+)?$/, 'must be an S3 ETag without quotes')
    .optional(),
  sequencer: z
    .string()
    .regex(/^[0-9A-Fa-f]{1,64}$/, 'must be an S3 sequencer (hex)')
    .optional(),
  eventTime: z.iso.datetime({ offset: true }).optional(),
});

/** Every environment key a rollout writes; a revision's other variables are never touched. */
export const MODEL_ENV_KEYS = [
  ENV.modelUri,
  ENV.modelVersion,
  ENV.modelEtag,
  ENV.modelSequencer,
  ENV.modelEventTime,
] as const;

/** One of `MODEL_ENV_KEYS`. */
export type ModelEnvKey = (typeof MODEL_ENV_KEYS)[number];

/**
 * The model environment for a revision: MODEL_URI plus the version and ordering record.
 * `undefined` values mean "remove this variable" (so no stale ordering data survives).
 * `undefined` as the model gives the no-model state (MODEL_URI = `none`).
 */
export function modelEnvironment(model: PinnedModel | undefined): Record<ModelEnvKey, string | undefined> {
  return {
    [ENV.modelUri]: model?.uri ?? NO_MODEL_URI,
    // MODEL_VERSION is the human-readable pin: the version id when there is one, else the ETag.
    [ENV.modelVersion]: model?.versionId ?? model?.etag,
    [ENV.modelEtag]: model?.etag,
    [ENV.modelSequencer]: model?.sequencer,
    [ENV.modelEventTime]: model?.eventTime,
  };
}

/**
 * Read the pinned model back from environment variables; undefined in the no-model state
 * (MODEL_URI is `none` or empty).
 */
export function pinnedModelFromEnvironment(
  env: Readonly<Record<string, string | undefined>>,
): PinnedModel | undefined {
  const uri = env[ENV.modelUri];
  if (uri === undefined || uri === '' || uri === NO_MODEL_URI) return undefined;
  const s3 = parseS3ModelUri(uri);
  const etag = env[ENV.modelEtag] || (s3?.versionId === undefined ? env[ENV.modelVersion] : undefined);
  const sequencer = env[ENV.modelSequencer];
  const eventTime = env[ENV.modelEventTime];
  return {
    uri,
    ...(s3 ?? {}),
    ...(etag ? { etag } : {}),
    ...(sequencer ? { sequencer } : {}),
    ...(eventTime ? { eventTime } : {}),
  };
}
