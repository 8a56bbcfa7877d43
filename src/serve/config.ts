import { DEFAULT_PORT, ENV, NO_MODEL_URI } from '../names.ts';
import { UsageError } from '../errors.ts';
import { isStoreError } from '../store/errors.ts';
import { looksLikeUri, parseStoreUri } from '../store/uri.ts';
import { availableCpus, planThreads } from './cpu.ts';

/**
 * Default nice value of the inference threads. Measured on the bench (2 vCPUs, A/B in alternating
 * rounds): CNN at 64 clients 1,404 -> 1,685 req/s, at 8 clients 834 -> 1,377; MLP at 64 clients
 * 11,004 -> 14,871; lone-request latency unchanged.
 */
export const DEFAULT_WORKER_NICE = 10;

/**
 * Node flags the inference service runs with: the image's ENTRYPOINT, the twin's tasks and the
 * bench all start `serve` with them (V8 reads them only at start-up; `--initial-old-space-size`
 * is not allowed in NODE_OPTIONS).
 *
 * V8 sizes the old generation from the live heap, about 20 MB here. Under load, requests queued
 * for a batch outlive two scavenges and are promoted, so the old generation filled every few
 * hundred milliseconds: about 3 full mark-compacts a second on the event loop, each 6-10 ms plus
 * concurrent marking on the helper threads. Starting it at 64 MB: 1 mark-compact in 14 s of the
 * same load. A/B on the bench (2 vCPUs, 6 alternating rounds, binary, 64 clients): CNN +18%, MLP
 * +27% (medians).
 */
export const SERVE_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];

/**
 * Default of {@link ServeConfig.maxQueuedBytes}: 256 MiB, an eighth of the service's default 2 GiB
 * task. At the benchmark's 64 clients the CNN's queue holds about 3 MB.
 */
export const DEFAULT_MAX_QUEUED_BYTES = 256 * 1024 * 1024;

/** Where SageMaker hosting puts the unpacked model; served when MODEL_URI is unset. */
export const SAGEMAKER_MODEL_DIR = '/opt/ml/model';

/** Everything the inference service needs to start. */
export interface ServeConfig {
  /** `s3://`, `file://`, a prefix ending in `/`, a local directory or `.onnx` file, or `none`. */
  readonly modelUri: string;
  /** Overrides the model name clients use (default: manifest name, else the file/directory name). */
  readonly modelName: string | undefined;
  /** Version reported when the artifact has no manifest (MODEL_VERSION). */
  readonly modelVersion: string | undefined;
  /**
   * SLIPWAY_MODEL_ETAG: the ETag the rollout pinned for MODEL_URI; an S3 object that no longer has
   * it is refused (not served under the old pin). Ignored when --model overrides MODEL_URI.
   */
  readonly modelEtag: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly workers: number;
  readonly intraOpThreads: number;
  /** onnxruntime threads for a run that starts while every other worker is idle (see planThreads). */
  readonly idleIntraOpThreads: number;
  /**
   * Nice value of the inference threads (Linux): above the event loop's 0, so parsing, dispatch
   * and health checks never queue behind a long inference on a busy CPU. 0 turns it off.
   */
  readonly workerNice: number;
  /** Largest dynamic batch (rows along dim 0); 1 turns batching off. */
  readonly maxBatchSize: number;
  /**
   * Longest a request waits for its batch to fill while other batches are running. The default, 0,
   * never holds a request while a worker is idle: batches form from what queued while every worker
   * was busy (measured on CPU to beat any fixed wait, see bench/serve.ts).
   */
  readonly maxBatchDelayMs: number;
  /** Largest number of rows one request may carry along a dynamic dim 0. */
  readonly maxRequestRows: number;
  /** Maximum request body in bytes (413 above it). */
  readonly bodyLimit: number;
  /**
   * Most input bytes that may wait for a worker; a request that would go over it gets 503 with
   * Retry-After. Bounds memory under overload (each waiting request holds its inputs).
   */
  readonly maxQueuedBytes: number;
  /** How long SIGTERM waits for in-flight requests. */
  readonly shutdownTimeoutMs: number;
  /** Custom S3 endpoint (s3rver, MinIO). */
  readonly s3Endpoint: string | undefined;
}

/** Settings given on the command line; they win over the environment. */
export type ServeOverrides = Partial<
  Pick<
    ServeConfig,
    'modelUri' | 'host' | 'port' | 'workers' | 'intraOpThreads' | 'maxBatchSize' | 'maxBatchDelayMs'
  >
>;

function intFrom(
  env: NodeJS.ProcessEnv,
  key: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const raw = env[key];
  if (raw === undefined || raw.trim() === '') return undefined;
  return checkInt(raw, key, min, max);
}

/**
 * Parses a whole-number setting (a flag or an environment variable), throwing a UsageError that
 * names the setting and the allowed range. Only decimal digits count: `''`, `0x2`, `1e0`, `2.0`
 * and `-1` are refused rather than read the way Number() reads them. The CLI's flags of the other
 * commands parse through this too (`intOption`).
 */
export function checkInt(
  raw: string | number,
  what: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const text = typeof raw === 'number' ? String(raw) : raw.trim();
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    const range =
      max === Number.MAX_SAFE_INTEGER ? `a whole number >= ${min}` : `a whole number from ${min} to ${max}`;
    throw new UsageError(`${what} must be ${range}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * Checks that a model location meant as a URI is one the store can read, so that `s3:/typo` or
 * `http://host/model.tar.gz` is refused at start with the setting named, instead of being looked
 * up as a local path. Local paths and `none` pass as they are.
 */
function checkModelUri(uri: string, what: string): string {
  if (uri === NO_MODEL_URI || !looksLikeUri(uri)) return uri;
  try {
    parseStoreUri(uri);
  } catch (err) {
    if (isStoreError(err, 'STORE_BAD_URI')) throw new UsageError(`${what}: ${err.message}`, { cause: err });
    throw err;
  }
  return uri;
}

/**
 * Builds the service configuration from the environment (container, SageMaker) and CLI overrides.
 *
 * @example const config = loadServeConfig(process.env, { port: 9000 });
 */
export function loadServeConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: ServeOverrides = {},
): ServeConfig {
  const sagemakerPort = intFrom(env, ENV.sagemakerPort, 1, 65535);
  const port = overrides.port ?? sagemakerPort ?? intFrom(env, ENV.port, 0, 65535) ?? DEFAULT_PORT;
  const cpus = availableCpus();
  const plan = planThreads(
    cpus,
    overrides.workers ?? intFrom(env, ENV.workers, 1, 64),
    overrides.intraOpThreads ?? intFrom(env, ENV.intraOpThreads, 1, 256),
    intFrom(env, ENV.idleIntraOpThreads, 1, 256),
  );
  const maxBatchSize = overrides.maxBatchSize ?? intFrom(env, ENV.maxBatchSize, 1, 4096) ?? 32;
  return {
    modelUri:
      overrides.modelUri !== undefined
        ? checkModelUri(overrides.modelUri, '--model')
        : checkModelUri(env[ENV.modelUri]?.trim() || SAGEMAKER_MODEL_DIR, ENV.modelUri),
    modelName: env[ENV.modelName]?.trim() || undefined,
    modelVersion: env[ENV.modelVersion]?.trim() || undefined,
    modelEtag: overrides.modelUri === undefined ? env[ENV.modelEtag]?.trim() || undefined : undefined,
    host: overrides.host ?? '0.0.0.0',
    port,
    workers: plan.workers,
    intraOpThreads: plan.intraOpThreads,
    idleIntraOpThreads: plan.idleIntraOpThreads,
    workerNice: intFrom(env, ENV.workerNice, 0, 19) ?? DEFAULT_WORKER_NICE,
    maxBatchSize,
    maxBatchDelayMs: overrides.maxBatchDelayMs ?? intFrom(env, ENV.maxBatchDelayMs, 0, 10_000) ?? 0,
    maxRequestRows: Math.max(maxBatchSize, 1024),
    bodyLimit: intFrom(env, ENV.bodyLimit, 1024) ?? 32 * 1024 * 1024,
    maxQueuedBytes: intFrom(env, ENV.maxQueuedBytes, 1) ?? DEFAULT_MAX_QUEUED_BYTES,
    shutdownTimeoutMs: intFrom(env, ENV.shutdownTimeoutMs, 0) ?? 20_000,
    s3Endpoint: env[ENV.s3Endpoint]?.trim() || undefined,
  };
}
