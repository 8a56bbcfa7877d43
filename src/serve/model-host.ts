import { readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyBaseLogger } from 'fastify';
import { ARTIFACT, NO_MODEL_URI } from '../names.ts';
import {
  ArtifactError,
  fetchModel,
  parseManifest,
  readOnnxBatchable,
  readOnnxSignature,
  servedSignature,
  sha256File,
  unpackModel,
} from '../model/index.ts';
import type { Manifest, ModelSignature, TensorSpec } from '../model/index.ts';
import { createStore } from '../store/index.ts';
import type { ServeConfig } from './config.ts';
import { isServeError } from './errors.ts';
import type { ServeMetrics } from './metrics.ts';
import { Scheduler } from './scheduler.ts';
import type { InferenceRequest } from './scheduler.ts';
import { DATATYPE_TO_ORT, allocateData, elementCount } from './tensor-codec.ts';
import type { WireTensor } from './tensor-codec.ts';
import type { InferenceOutputs } from './worker-pool.ts';
import { WorkerPool } from './worker-pool.ts';

/** The model being served, as `GET /` and the v2 metadata report it. */
export interface ModelInfo {
  readonly name: string;
  readonly version: string;
  /** Where the model came from: the exact object URI (with versionId) or the local path. */
  readonly sourceUri: string;
  readonly sha256: string;
  /** ISO-8601 time the model became ready. */
  readonly loadedAt: string;
  readonly signature: ModelSignature;
  readonly labels: readonly string[] | undefined;
  /** True when dim 0 of every input and output is dynamic, so requests may be batched. */
  readonly batchable: boolean;
}

/**
 * Lifecycle of the served model.
 *
 * - `none`: MODEL_URI is `none` (NO_MODEL_URI), the state of the very first ECS deployment before
 *   any model exists. The server is live AND ready (it finished loading what it was told to, so the
 *   first deployment's health checks pass); `GET /` says no model is deployed and every prediction
 *   answers 503 "no model is deployed yet". The rollout relies on this.
 * - `loading`: readiness and predictions answer 503 (predictions with Retry-After).
 * - `failed`: the artifact broke the contract or onnxruntime refused it; stays not ready and every
 *   health endpoint carries the reason. The process keeps running so the reason can be read.
 * - `ready`: serving.
 */
export type ModelState =
  | { readonly status: 'none' }
  | { readonly status: 'loading'; readonly uri: string }
  | { readonly status: 'failed'; readonly uri: string; readonly reason: string }
  | { readonly status: 'ready'; readonly model: ModelInfo };

/** The message every prediction gets while MODEL_URI is `none`. */
export const NO_MODEL_MESSAGE = 'no model is deployed yet; upload a model.tar.gz to the models bucket';

interface Resolved {
  readonly onnxPath: string;
  readonly manifest: Manifest | undefined;
  readonly signature: ModelSignature;
  readonly sha256: string;
  readonly sourceUri: string;
  /** A private extraction directory to remove when the model is unloaded. */
  readonly ownedDir: string | undefined;
  /** Default model name when there is no manifest. */
  readonly fallbackName: string;
}

function isBatchable(signature: ModelSignature): boolean {
  const dynamic0 = (t: TensorSpec): boolean => t.shape.length > 0 && (t.shape[0] ?? 0) < 0;
  return signature.inputs.length > 0 && signature.inputs.every(dynamic0) && signature.outputs.every(dynamic0);
}

async function readLocalDir(dir: string): Promise<Resolved> {
  const onnxPath = join(dir, ARTIFACT.onnx);
  const info = await stat(onnxPath).catch(() => undefined);
  if (!info?.isFile()) throw new ArtifactError('ARTIFACT_NO_ONNX', `${dir} has no ${ARTIFACT.onnx}`);
  const sha256 = await sha256File(onnxPath);
  let manifest: Manifest | undefined;
  const manifestText = await readFile(join(dir, ARTIFACT.manifest), 'utf8').catch(() => undefined);
  if (manifestText !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(manifestText);
    } catch (err) {
      throw new ArtifactError(
        'ARTIFACT_BAD_MANIFEST',
        `${ARTIFACT.manifest} is not JSON: ${(err as Error).message}`,
      );
    }
    manifest = parseManifest(json);
    if (manifest.sha256 !== sha256) {
      throw new ArtifactError(
        'ARTIFACT_CHECKSUM',
        `${ARTIFACT.onnx} has SHA-256 ${sha256} but ${ARTIFACT.manifest} says ${manifest.sha256}`,
      );
    }
  }
  return {
    onnxPath,
    manifest,
    signature: await servedSignature(onnxPath, manifest),
    sha256,
    sourceUri: dir,
    ownedDir: undefined,
    fallbackName: basename(dir),
  };
}

/** Turns MODEL_URI into an ONNX file on local disk plus what is known about it. */
async function resolveModel(uri: string, config: ServeConfig): Promise<Resolved> {
  const isS3 = /^s3:\/\//i.test(uri);
  const isFileUri = /^file:\/\//i.test(uri);
  if (!isS3) {
    const path = isFileUri ? fileURLToPath(uri) : resolve(uri);
    const info = await stat(path).catch((err: unknown) => {
      throw new ArtifactError('ARTIFACT_IO', `model ${uri} cannot be read: ${(err as Error).message}`);
    });
    if (info.isDirectory() && !uri.endsWith('/')) return readLocalDir(path);
    if (info.isFile() && path.endsWith('.onnx')) {
      return {
        onnxPath: path,
        manifest: undefined,
        signature: await readOnnxSignature(path),
        sha256: await sha256File(path),
        sourceUri: path,
        ownedDir: undefined,
        fallbackName: basename(path) === ARTIFACT.onnx ? basename(dirname(path)) : basename(path, '.onnx'),
      };
    }
    if (info.isFile() && !isFileUri) {
      const unpacked = await unpackModel(path);
      return { ...unpacked, sourceUri: path, ownedDir: unpacked.dir, fallbackName: 'model' };
    }
  }
  const store = createStore(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {});
  // The pinned ETag belongs to MODEL_URI, not to whatever else this host is asked to load.
  const ifMatch = uri === config.modelUri ? config.modelEtag : undefined;
  const fetched = await fetchModel(store, uri, ifMatch === undefined ? {} : { ifMatch });
  return { ...fetched, sourceUri: fetched.source.uri, ownedDir: fetched.dir, fallbackName: 'model' };
}

function zeroTensor(spec: TensorSpec): WireTensor {
  const dims = spec.shape.map((d) => (d < 0 ? 1 : d));
  const data = allocateData(spec.datatype, elementCount(dims));
  if (Array.isArray(data)) data.fill('');
  return { type: DATATYPE_TO_ORT[spec.datatype], dims, data };
}

/** Options of {@link ModelHost}. */
export interface ModelHostOptions {
  readonly config: ServeConfig;
  readonly log: FastifyBaseLogger;
  readonly metrics: ServeMetrics;
}

/**
 * Owns the served model: resolves and loads MODEL_URI in the background, the worker pool and the
 * batching scheduler, and the readiness state the health endpoints report.
 */
export class ModelHost {
  readonly #config: ServeConfig;
  readonly #log: FastifyBaseLogger;
  readonly #metrics: ServeMetrics;
  #state: ModelState = { status: 'loading', uri: '' };
  #pool: WorkerPool | undefined;
  #scheduler: Scheduler | undefined;
  #ownedDir: string | undefined;
  #draining = false;
  #generation = 0;

  constructor(options: ModelHostOptions) {
    this.#config = options.config;
    this.#log = options.log;
    this.#metrics = options.metrics;
    this.#metrics.modelReady.set(0);
  }

  /** Current model state. */
  get state(): ModelState {
    return this.#state;
  }

  /** True while shutting down: readiness reports 503 before the listener closes. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Ready to take traffic: a loaded model, or deliberately no model (`none`), and not draining. */
  get ready(): boolean {
    return !this.#draining && (this.#state.status === 'ready' || this.#state.status === 'none');
  }

  /** Why the server is not ready (undefined when ready). */
  get notReadyReason(): string | undefined {
    if (this.#draining) return 'the server is shutting down';
    const state = this.#state;
    if (state.status === 'loading') return `the model ${state.uri} is still loading`;
    if (state.status === 'failed') return `the model ${state.uri} failed to load: ${state.reason}`;
    return undefined;
  }

  /** Marks the server as shutting down (readiness goes false at once). */
  startDraining(): void {
    this.#draining = true;
    this.#metrics.modelReady.set(0);
  }

  /**
   * Loads (or replaces) the model named by `uri`. Never throws: failures leave the state `failed`
   * with the reason, logged. Resolves once the state is final.
   */
  async load(uri: string): Promise<ModelState> {
    const generation = ++this.#generation;
    if (uri.trim().toLowerCase() === NO_MODEL_URI) {
      await this.#unload();
      this.#state = { status: 'none' };
      this.#metrics.modelReady.set(1);
      this.#log.info(
        { event: 'model_none' },
        'no model deployed yet (MODEL_URI=none): ready, predictions answer 503',
      );
      return this.#state;
    }
    this.#state = { status: 'loading', uri };
    this.#metrics.modelReady.set(0);
    const started = performance.now();
    let resolved: Resolved | undefined;
    try {
      resolved = await resolveModel(uri, this.#config);
      await this.#unload();
      this.#ownedDir = resolved.ownedDir;
      this.#pool ??= new WorkerPool({
        workers: this.#config.workers,
        intraOpThreads: this.#config.intraOpThreads,
        idleIntraOpThreads: this.#config.idleIntraOpThreads,
        nice: this.#config.workerNice,
        onWorkerExit: (err) =>
          this.#log.error({ event: 'worker_exit', err }, 'inference worker died; replaced'),
      });
      try {
        await this.#pool.load(resolved.onnxPath);
      } catch (err) {
        throw new ArtifactError(
          'ARTIFACT_ONNX_INVALID',
          `onnxruntime cannot load the model: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      const model: ModelInfo = {
        name: this.#config.modelName ?? resolved.manifest?.name ?? resolved.fallbackName,
        version: resolved.manifest?.version ?? this.#config.modelVersion ?? '1',
        sourceUri: resolved.sourceUri,
        sha256: resolved.sha256,
        loadedAt: '',
        signature: resolved.signature,
        labels: resolved.manifest?.labels,
        batchable: isBatchable(resolved.signature) && (await readOnnxBatchable(resolved.onnxPath)),
      };
      this.#scheduler?.close();
      this.#scheduler = new Scheduler(
        this.#pool,
        {
          maxBatchSize: this.#config.maxBatchSize,
          maxDelayMs: this.#config.maxBatchDelayMs,
          maxQueuedBytes: this.#config.maxQueuedBytes,
        },
        model.batchable,
        {
          onBatch: (rows, requests) => {
            this.#metrics.batchSize.observe(rows);
            this.#metrics.batchRequests.observe(requests);
          },
          onQueueDepth: (depth) => this.#metrics.queueDepth.set(depth),
          onAbandon: () => this.#metrics.abandoned.inc(),
          onShed: () => this.#metrics.shed.inc(),
        },
      );
      await this.#warmUp(model.signature);
      if (generation !== this.#generation) return this.#state;
      const ready: ModelInfo = { ...model, loadedAt: new Date().toISOString() };
      this.#state = { status: 'ready', model: ready };
      this.#metrics.modelInfo.reset();
      this.#metrics.modelInfo.set(
        { name: ready.name, version: ready.version, sha256: ready.sha256, source: ready.sourceUri },
        1,
      );
      this.#metrics.modelReady.set(this.#draining ? 0 : 1);
      this.#log.info(
        {
          event: 'model_ready',
          name: ready.name,
          version: ready.version,
          sourceUri: ready.sourceUri,
          sha256: ready.sha256,
          batchable: ready.batchable,
          loadMs: Math.round(performance.now() - started),
        },
        'model ready',
      );
    } catch (err) {
      if (resolved?.ownedDir && resolved.ownedDir !== this.#ownedDir) {
        await rm(resolved.ownedDir, { recursive: true, force: true });
      }
      if (generation !== this.#generation) return this.#state;
      const reason = err instanceof Error ? err.message : String(err);
      this.#state = { status: 'failed', uri, reason };
      this.#log.error(
        { event: 'model_failed', uri, code: (err as { code?: unknown }).code, reason },
        'model failed to load; the server stays not ready',
      );
    }
    return this.#state;
  }

  async #warmUp(signature: ModelSignature): Promise<void> {
    // The first run pays for lazy allocations; warming every worker keeps that off client requests.
    // A zero tensor may be invalid input for some models (e.g. indices), so failure is only logged.
    if (!this.#scheduler || !this.#pool) return;
    const feeds: Record<string, WireTensor> = {};
    for (const spec of signature.inputs) feeds[spec.name] = zeroTensor(spec);
    const runs = Array.from({ length: this.#pool.size }, () =>
      this.#pool!.run(feeds).catch((err: unknown) => {
        this.#log.warn(
          { event: 'warmup_failed', reason: (err as Error).message },
          'warm-up inference failed',
        );
      }),
    );
    await Promise.all(runs);
  }

  /**
   * Runs one inference on the worker pool (batched when the model allows). One whose client goes
   * away before it reaches a worker is dropped and rejects with `SERVE_ABANDONED`.
   */
  async infer(request: InferenceRequest): Promise<InferenceOutputs> {
    if (!this.#scheduler) throw new Error('no model loaded');
    const end = this.#metrics.inferenceDuration.startTimer({
      model: this.#state.status === 'ready' ? this.#state.model.name : '',
    });
    try {
      const outputs = await this.#scheduler.infer(request);
      end();
      return outputs;
    } catch (err) {
      // A request dropped before it ran has no inference to time.
      if (!isServeError(err) || err.code !== 'SERVE_ABANDONED') end();
      throw err;
    }
  }

  async #unload(): Promise<void> {
    this.#scheduler?.close();
    this.#scheduler = undefined;
    if (this.#ownedDir) await rm(this.#ownedDir, { recursive: true, force: true });
    this.#ownedDir = undefined;
  }

  /** Stops the workers and removes the extraction directory. */
  async close(): Promise<void> {
    this.#generation++;
    await this.#unload();
    await this.#pool?.close();
    this.#pool = undefined;
  }
}
