import type { Worker } from 'node:worker_threads';
import { ServeError } from './errors.ts';
import { BufferRecycler } from './buffer-recycler.ts';
import { startWorker, workerScript } from './threads.ts';
import type { WireTensor } from './tensor-codec.ts';
import type { WorkerInit, WorkerReply, WorkerRequest } from './worker-protocol.ts';

/** Options of {@link WorkerPool}. */
export interface WorkerPoolOptions {
  readonly workers: number;
  readonly intraOpThreads: number;
  /** Threads for a run that starts while every other worker is idle (defaults to intraOpThreads). */
  readonly idleIntraOpThreads?: number;
  /** Nice value of the worker threads (Linux; 0 or absent leaves them at the process's priority). */
  readonly nice?: number;
  /** Called when a worker dies unexpectedly (it is replaced). */
  readonly onWorkerExit?: (error: Error) => void;
}

/** Outputs of one inference, by output name. */
export type InferenceOutputs = Record<string, WireTensor>;

interface Job {
  readonly id: number;
  readonly feeds: Record<string, WireTensor>;
  readonly fetches: readonly string[] | undefined;
  /** Buffers that move to the worker instead of being copied (the caller never reads them again). */
  readonly transfer: readonly ArrayBuffer[];
  /** The worker hands the feeds' buffers back to {@link WorkerPool.recycler}. */
  readonly recycle: boolean;
  readonly resolve: (outputs: InferenceOutputs) => void;
  readonly reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
  loading: { resolve: () => void; reject: (err: Error) => void } | undefined;
  /** Set once the worker has answered; a worker that dies before that is not respawned (no crash loop). */
  healthy: boolean;
}

/**
 * Inference worker threads, each with its own onnxruntime session. `run` hands a job to an idle
 * worker (or queues it); a worker that dies is replaced and reloads the current model.
 */
export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  readonly #url = workerScript('inference-worker');
  #modelPath: string | undefined;
  #nextId = 1;
  #closed = false;
  /** Called whenever a worker becomes idle (the scheduler uses it to form the next batch). */
  onIdle: (() => void) | undefined;
  /** Batch buffers that come back from the workers, for the next batches. */
  readonly recycler = new BufferRecycler();

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
    for (let i = 0; i < options.workers; i++) this.#slots.push(this.#spawn());
  }

  /** Number of workers. */
  get size(): number {
    return this.#slots.length;
  }

  /** Workers without a job. */
  get idleWorkers(): number {
    return this.#slots.filter((s) => !s.job && !s.loading).length;
  }

  /** Jobs waiting for a worker. */
  get queued(): number {
    return this.#queue.length;
  }

  #spawn(): Slot {
    const init: WorkerInit = {
      intraOpThreads: this.#options.intraOpThreads,
      idleIntraOpThreads: this.#options.idleIntraOpThreads ?? this.#options.intraOpThreads,
      nice: this.#options.nice ?? 0,
    };
    const worker = startWorker(this.#url, init);
    const slot: Slot = { worker, job: undefined, loading: undefined, healthy: false };
    worker.on('message', (reply: WorkerReply) => this.#onReply(slot, reply));
    worker.on('error', (err) => this.#onExit(slot, err));
    worker.on('exit', (code) => this.#onExit(slot, new Error(`inference worker exited with code ${code}`)));
    return slot;
  }

  #onReply(slot: Slot, reply: WorkerReply): void {
    slot.healthy = true;
    if (reply.kind === 'loaded' || reply.kind === 'load-error') {
      const loading = slot.loading;
      slot.loading = undefined;
      if (reply.kind === 'loaded') loading?.resolve();
      else loading?.reject(new Error(reply.message));
      this.#dispatch();
      return;
    }
    const job = slot.job;
    slot.job = undefined;
    if (reply.kind === 'result') for (const buffer of reply.recycled) this.recycler.release(buffer);
    if (job && job.id === reply.id) {
      if (reply.kind === 'result') job.resolve(reply.outputs);
      else {
        job.reject(new ServeError('SERVE_INFERENCE_FAILED', 400, `inference failed: ${reply.message}`));
      }
    }
    this.#dispatch();
  }

  #onExit(slot: Slot, err: Error): void {
    const index = this.#slots.indexOf(slot);
    if (index < 0) return;
    this.#slots.splice(index, 1);
    slot.job?.reject(
      new ServeError('SERVE_INFERENCE_FAILED', 500, 'inference worker crashed', { cause: err }),
    );
    slot.loading?.reject(err);
    slot.job = undefined;
    slot.loading = undefined;
    if (this.#closed) return;
    this.#options.onWorkerExit?.(err);
    if (!slot.healthy) return;
    const fresh = this.#spawn();
    this.#slots.push(fresh);
    if (this.#modelPath !== undefined) this.#loadInto(fresh, this.#modelPath).catch(() => undefined);
  }

  #loadInto(slot: Slot, path: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      slot.loading = { resolve, reject };
      const message: WorkerRequest = { kind: 'load', path };
      slot.worker.postMessage(message);
    });
  }

  /** Loads (or replaces) the model in every worker; rejects with onnxruntime's reason. */
  async load(onnxPath: string): Promise<void> {
    this.#modelPath = onnxPath;
    await Promise.all(this.#slots.map((slot) => this.#loadInto(slot, onnxPath)));
  }

  /**
   * Runs one inference on a worker thread. Buffers in `transfer` move to the worker instead of
   * being copied, and the caller must not read them again; with `recycle`, the worker returns the
   * feeds' buffers to {@link recycler} afterwards (for buffers that came from it).
   */
  run(
    feeds: Record<string, WireTensor>,
    fetches?: readonly string[],
    options: { transfer?: readonly ArrayBuffer[]; recycle?: boolean } = {},
  ): Promise<InferenceOutputs> {
    if (this.#closed) {
      return Promise.reject(new ServeError('SERVE_UNAVAILABLE', 503, 'the server is shutting down'));
    }
    if (this.#slots.length === 0) {
      return Promise.reject(new ServeError('SERVE_INFERENCE_FAILED', 500, 'no inference worker is running'));
    }
    return new Promise<InferenceOutputs>((resolve, reject) => {
      this.#queue.push({
        id: this.#nextId++,
        feeds,
        fetches,
        transfer: options.transfer ?? [],
        recycle: options.recycle ?? false,
        resolve,
        reject,
      });
      this.#dispatch();
    });
  }

  #dispatch(): void {
    for (const slot of this.#slots) {
      if (this.#queue.length === 0) break;
      if (slot.job || slot.loading) continue;
      const job = this.#queue.shift()!;
      // A lone job (nothing else running or waiting) may use every thread; under load each worker
      // keeps to its share, so the pool never oversubscribes the CPUs for long.
      const wide = this.#queue.length === 0 && this.#slots.every((s) => s === slot || (!s.job && !s.loading));
      slot.job = job;
      const message: WorkerRequest = {
        kind: 'run',
        id: job.id,
        feeds: job.feeds,
        fetches: job.fetches,
        recycle: job.recycle,
        wide,
      };
      try {
        slot.worker.postMessage(message, job.transfer);
      } catch (err) {
        // E.g. a buffer that cannot be cloned or moved: this job fails, the worker stays free.
        slot.job = undefined;
        job.reject(
          new ServeError('SERVE_INFERENCE_FAILED', 500, 'the request could not be passed to a worker', {
            cause: err,
          }),
        );
      }
    }
    if (this.idleWorkers > 0) this.onIdle?.();
  }

  /** Stops every worker (jobs still queued are rejected). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) {
      job.reject(new ServeError('SERVE_UNAVAILABLE', 503, 'the server is shutting down'));
    }
    await Promise.all(this.#slots.map((slot) => slot.worker.terminate()));
  }
}
