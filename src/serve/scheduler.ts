import { decideBatch } from './batching.ts';
import { ServeError } from './errors.ts';
import type { BatchPolicy, QueuedItem } from './batching.ts';
import { concatRows, sliceRows, transferables } from './tensor-codec.ts';
import type { WireTensor } from './tensor-codec.ts';
import type { InferenceOutputs, WorkerPool } from './worker-pool.ts';

/** One inference as the routes submit it. */
export interface InferenceRequest {
  readonly feeds: Record<string, WireTensor>;
  /** Output names to compute; all outputs when undefined. */
  readonly fetches: readonly string[] | undefined;
}

/** Observers for metrics. */
export interface SchedulerHooks {
  onBatch?(rows: number, requests: number): void;
  onQueueDepth?(depth: number): void;
}

interface Pending extends QueuedItem {
  readonly request: InferenceRequest;
  readonly resolve: (outputs: InferenceOutputs) => void;
  readonly reject: (err: unknown) => void;
}

function batchKey(feeds: Record<string, WireTensor>): { key: string; rows: number } | undefined {
  let rows: number | undefined;
  const parts: string[] = [];
  for (const name of Object.keys(feeds).sort()) {
    const t = feeds[name]!;
    const d0 = t.dims[0];
    if (d0 === undefined || (rows !== undefined && d0 !== rows)) return undefined;
    rows = d0;
    parts.push(`${name}:${t.type}:${t.dims.slice(1).join('x')}`);
  }
  return rows === undefined || rows === 0 ? undefined : { key: parts.join('|'), rows };
}

function pick(outputs: InferenceOutputs, fetches: readonly string[] | undefined): InferenceOutputs {
  if (!fetches) return outputs;
  const picked: InferenceOutputs = {};
  for (const name of fetches) {
    const t = outputs[name];
    if (t) picked[name] = t;
  }
  return picked;
}

/**
 * Dynamic batching in front of the worker pool: coalesces concurrent requests whose inputs agree
 * on everything but dim 0 (see {@link decideBatch}), runs them as one batch and splits the outputs
 * back per request. `batchable` is false when the model's dim 0 is fixed, so each request runs alone.
 */
export class Scheduler {
  readonly #pool: WorkerPool;
  readonly #policy: BatchPolicy;
  readonly #batchable: boolean;
  readonly #hooks: SchedulerHooks;
  readonly #queue: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;
  #seq = 0;

  constructor(pool: WorkerPool, policy: BatchPolicy, batchable: boolean, hooks: SchedulerHooks = {}) {
    this.#pool = pool;
    this.#policy = policy;
    this.#batchable = batchable;
    this.#hooks = hooks;
    pool.onIdle = () => this.#pump();
  }

  /** Requests waiting for a worker. */
  get depth(): number {
    return this.#queue.length;
  }

  /** Queues one inference and resolves with its own outputs. */
  infer(request: InferenceRequest): Promise<InferenceOutputs> {
    return new Promise<InferenceOutputs>((resolve, reject) => {
      const batch = this.#batchable && this.#policy.maxBatchSize > 1 ? batchKey(request.feeds) : undefined;
      this.#queue.push({
        key: batch?.key ?? `solo:${this.#seq++}`,
        rows: batch?.rows ?? 1,
        batchable: batch !== undefined,
        enqueuedAt: performance.now(),
        request,
        resolve,
        reject,
      });
      this.#hooks.onQueueDepth?.(this.#queue.length);
      this.#pump();
    });
  }

  #pump(): void {
    for (;;) {
      const idle = this.#pool.idleWorkers;
      const decision = decideBatch(
        this.#queue,
        this.#policy,
        { idleWorkers: idle, busyWorkers: this.#pool.size - idle },
        performance.now(),
      );
      if (decision.kind === 'idle') return;
      if (decision.kind === 'wait') {
        this.#timer ??= setTimeout(() => {
          this.#timer = undefined;
          this.#pump();
        }, decision.ms);
        return;
      }
      const taken = new Set(decision.take);
      const items = decision.take.map((i) => this.#queue[i]!);
      let w = 0;
      for (let i = 0; i < this.#queue.length; i++) {
        if (!taken.has(i)) this.#queue[w++] = this.#queue[i]!;
      }
      this.#queue.length = w;
      this.#hooks.onQueueDepth?.(this.#queue.length);
      this.#hooks.onBatch?.(decision.rows, items.length);
      this.#execute(items);
    }
  }

  #execute(items: readonly Pending[]): void {
    if (items.length === 1) {
      const item = items[0]!;
      this.#pool
        .run(item.request.feeds, item.request.fetches, {
          transfer: transferables(Object.values(item.request.feeds)),
        })
        .then(item.resolve, item.reject);
      return;
    }
    const feeds: Record<string, WireTensor> = {};
    for (const name of Object.keys(items[0]!.request.feeds)) {
      feeds[name] = concatRows(
        items.map((item) => item.request.feeds[name]!),
        this.#pool.recycler.allocate,
      );
    }
    const total = items.reduce((sum, item) => sum + item.rows, 0);
    // The batch buffers are the scheduler's own (from the recycler): they move to the worker and
    // come back with the result for the next batch.
    const batchBuffers = Object.values(feeds).flatMap((t) =>
      Array.isArray(t.data) ? [] : [t.data.buffer as ArrayBuffer],
    );
    this.#pool.run(feeds, undefined, { transfer: batchBuffers, recycle: true }).then(
      (outputs) => {
        // An output whose dim 0 is not the batch (e.g. a global statistic) cannot be split:
        // fall back to running each request on its own rather than answer wrongly.
        if (Object.values(outputs).some((t) => t.dims[0] !== total)) {
          for (const item of items) {
            this.#pool.run(item.request.feeds, item.request.fetches).then(item.resolve, item.reject);
          }
          return;
        }
        let offset = 0;
        for (const item of items) {
          const own: InferenceOutputs = {};
          for (const [name, t] of Object.entries(outputs)) own[name] = sliceRows(t, offset, item.rows);
          offset += item.rows;
          item.resolve(pick(own, item.request.fetches));
        }
      },
      () => {
        // One bad request must not fail its batch-mates: retry each alone so only it fails.
        for (const item of items) {
          this.#pool.run(item.request.feeds, item.request.fetches).then(item.resolve, item.reject);
        }
      },
    );
  }

  /** Stops the batching timer (queued requests are settled by the pool closing). */
  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    for (const item of this.#queue.splice(0)) {
      item.reject(
        new ServeError(
          'SERVE_UNAVAILABLE',
          503,
          'the model is being replaced or the server is shutting down',
        ),
      );
    }
  }
}
