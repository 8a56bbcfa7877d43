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
  /**
   * Whether the client is still there: a request still waiting for a worker when it goes away is
   * dropped, and one already running finishes (its answer has nobody to go to).
   */
  readonly client?: ClientPresence | undefined;
}

/**
 * How the scheduler learns that a request's client went away. Not an AbortSignal: in Node 20 a
 * listener on a fresh AbortSignal costs about 15 µs, more than a small model's whole inference.
 */
export interface ClientPresence {
  /** True once the client has gone away. */
  readonly gone: boolean;
  /** Sets the one function to call when the client goes away (`undefined`: none). */
  onGone(listener: (() => void) | undefined): void;
}

/** Observers for metrics. */
export interface SchedulerHooks {
  onBatch?(rows: number, requests: number): void;
  onQueueDepth?(depth: number): void;
  /** A request was dropped without running because its client went away. */
  onAbandon?(): void;
  /** A request was refused because the queue already held `maxQueuedBytes` of inputs. */
  onShed?(): void;
}

/** How the scheduler batches, and how much input it lets wait. */
export interface SchedulerPolicy extends BatchPolicy {
  /**
   * Most input bytes that may wait for a worker. A request that would go over it gets 503 with
   * Retry-After instead of queueing, unless the queue is empty: under overload memory stays bounded
   * and clients learn at once, instead of every queued request holding its body until it times out.
   * @default unlimited
   */
  readonly maxQueuedBytes?: number;
}

/** Seconds an overloaded server asks a client to wait before it tries again. */
const OVERLOADED_RETRY_AFTER_S = 1;

/** What the scheduler needs of the {@link WorkerPool}. */
export type SchedulerPool = Pick<WorkerPool, 'size' | 'idleWorkers' | 'recycler' | 'run' | 'onIdle'>;

interface Pending extends QueuedItem {
  readonly request: InferenceRequest;
  /** Input bytes it holds while it waits. */
  readonly bytes: number;
  readonly resolve: (outputs: InferenceOutputs) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * What a dropped request rejects with. Its client is gone, so nobody reads it; the route's
 * metrics count the request as 499 when its response closes.
 */
function abandoned(): ServeError {
  return new ServeError('SERVE_ABANDONED', 499, 'the client closed the connection before its inference ran');
}

/** Bytes of a request's inputs (a BYTES tensor counts its strings' UTF-16 length, about what it holds). */
function inputBytes(feeds: Record<string, WireTensor>): number {
  let bytes = 0;
  for (const { data } of Object.values(feeds)) {
    if (Array.isArray(data)) for (const value of data) bytes += value.length * 2;
    else bytes += data.byteLength;
  }
  return bytes;
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
  readonly #pool: SchedulerPool;
  readonly #policy: SchedulerPolicy;
  readonly #batchable: boolean;
  readonly #hooks: SchedulerHooks;
  readonly #queue: Pending[] = [];
  /** Input bytes of the requests in the queue. */
  #queuedBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #seq = 0;

  constructor(pool: SchedulerPool, policy: SchedulerPolicy, batchable: boolean, hooks: SchedulerHooks = {}) {
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

  /** Input bytes of the requests waiting for a worker. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Queues one inference and resolves with its own outputs. A request whose client goes away while
   * it waits for a worker leaves the queue at once and rejects with `SERVE_ABANDONED`; one that
   * would take the queue over `maxQueuedBytes` rejects at once with `SERVE_OVERLOADED` (503).
   */
  infer(request: InferenceRequest): Promise<InferenceOutputs> {
    return new Promise<InferenceOutputs>((resolve, reject) => {
      const bytes = inputBytes(request.feeds);
      const limit = this.#policy.maxQueuedBytes;
      if (limit !== undefined && this.#queue.length > 0 && this.#queuedBytes + bytes > limit) {
        this.#hooks.onShed?.();
        reject(
          new ServeError(
            'SERVE_OVERLOADED',
            503,
            `the server is overloaded: ${this.#queue.length} requests with ${this.#queuedBytes} bytes of inputs already wait for a worker (limit ${limit} bytes, SLIPWAY_MAX_QUEUED_BYTES); retry later`,
            { retryAfterSeconds: OVERLOADED_RETRY_AFTER_S },
          ),
        );
        return;
      }
      const batch = this.#batchable && this.#policy.maxBatchSize > 1 ? batchKey(request.feeds) : undefined;
      const item: Pending = {
        key: batch?.key ?? `solo:${this.#seq++}`,
        rows: batch?.rows ?? 1,
        batchable: batch !== undefined,
        enqueuedAt: performance.now(),
        request,
        bytes,
        resolve,
        reject,
      };
      const { client } = request;
      if (client?.gone) {
        this.#abandon(item);
        return;
      }
      client?.onGone(() => this.#withdraw(item));
      this.#queue.push(item);
      this.#queuedBytes += bytes;
      this.#hooks.onQueueDepth?.(this.#queue.length);
      this.#pump();
    });
  }

  /** Takes a request whose client went away out of the queue; one already taken is left to finish. */
  #withdraw(item: Pending): void {
    const index = this.#queue.indexOf(item);
    if (index < 0) return;
    this.#queue.splice(index, 1);
    this.#queuedBytes -= item.bytes;
    this.#hooks.onQueueDepth?.(this.#queue.length);
    this.#abandon(item);
  }

  #abandon(item: Pending): void {
    this.#hooks.onAbandon?.();
    item.reject(abandoned());
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
      for (const item of items) {
        item.request.client?.onGone(undefined);
        this.#queuedBytes -= item.bytes;
      }
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

  /** Runs one request of a failed or unsplittable batch again on its own, unless its client has left. */
  #runAlone(item: Pending): void {
    if (item.request.client?.gone) {
      this.#abandon(item);
      return;
    }
    this.#pool.run(item.request.feeds, item.request.fetches).then(item.resolve, item.reject);
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
          for (const item of items) this.#runAlone(item);
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
        for (const item of items) this.#runAlone(item);
      },
    );
  }

  /** Stops the batching timer (queued requests are settled by the pool closing). */
  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#queuedBytes = 0;
    for (const item of this.#queue.splice(0)) {
      item.request.client?.onGone(undefined);
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
