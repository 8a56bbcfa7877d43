import { describe, expect, it } from 'vitest';
import { BufferRecycler } from '../../src/serve/buffer-recycler.ts';
import { Scheduler } from '../../src/serve/scheduler.ts';
import type { ClientPresence, InferenceRequest, SchedulerPool } from '../../src/serve/scheduler.ts';
import type { WireTensor } from '../../src/serve/tensor-codec.ts';
import type { InferenceOutputs } from '../../src/serve/worker-pool.ts';

interface Run {
  readonly feeds: Record<string, WireTensor>;
  readonly resolve: (outputs: InferenceOutputs) => void;
  readonly reject: (err: Error) => void;
}

/** A one-worker pool whose runs finish only when the test says so. */
class HeldPool implements SchedulerPool {
  readonly size = 1;
  readonly recycler = new BufferRecycler();
  readonly runs: Run[] = [];
  onIdle: (() => void) | undefined;

  get idleWorkers(): number {
    return this.runs.length === 0 ? 1 : 0;
  }

  run(feeds: Record<string, WireTensor>): Promise<InferenceOutputs> {
    return new Promise((resolve, reject) => this.runs.push({ feeds, resolve, reject }));
  }

  /** Finishes the oldest run, echoing its input `x` as output `y` (or failing it). */
  finish(fail = false): void {
    const run = this.runs.shift()!;
    if (fail) run.reject(new Error('bad batch'));
    else run.resolve({ y: run.feeds.x! });
    this.onIdle?.();
  }
}

/** A client the test sends away with `leave()`. */
class Client implements ClientPresence {
  gone = false;
  #listener: (() => void) | undefined;

  onGone(listener: (() => void) | undefined): void {
    this.#listener = listener;
  }

  leave(): void {
    this.gone = true;
    this.#listener?.();
  }
}

const row = (value: number): WireTensor => ({
  type: 'float32',
  dims: [1, 1],
  data: new Float32Array([value]),
});

function setUp(maxQueuedBytes?: number) {
  const pool = new HeldPool();
  const seen = { depths: [] as number[], abandoned: 0, shed: 0 };
  const scheduler = new Scheduler(pool, { maxBatchSize: 8, maxDelayMs: 0, maxQueuedBytes }, true, {
    onQueueDepth: (depth) => seen.depths.push(depth),
    onAbandon: () => seen.abandoned++,
    onShed: () => seen.shed++,
  });
  const infer = (value: number | WireTensor, client?: Client) => {
    const x = typeof value === 'number' ? row(value) : value;
    const request: InferenceRequest = { feeds: { x }, fetches: undefined, client };
    const outcome = scheduler.infer(request).then(
      (outputs) => ({ value: Array.from(outputs.y!.data as Float32Array) }),
      (err: unknown) => ({ error: err as { code?: string; statusCode?: number } }),
    );
    return outcome;
  };
  return { pool, seen, scheduler, infer };
}

describe('Scheduler, when a request is abandoned (its client went away)', () => {
  it('drops it from the queue, so no worker runs it, and rejects it with SERVE_ABANDONED', async () => {
    const { pool, seen, scheduler, infer } = setUp();
    const busy = infer(0);
    const client = new Client();
    const dropped = infer(1, client);
    const kept = infer(2);
    expect(scheduler.depth).toBe(2);

    client.leave();
    expect(scheduler.depth).toBe(1);
    expect(seen.depths.at(-1)).toBe(1);
    expect(seen.abandoned).toBe(1);
    expect(await dropped).toEqual({
      error: expect.objectContaining({ code: 'SERVE_ABANDONED', statusCode: 499 }),
    });

    pool.finish();
    expect(await busy).toEqual({ value: [0] });
    expect(pool.runs.map((run) => Array.from(run.feeds.x!.data as Float32Array))).toEqual([[2]]);
    pool.finish();
    expect(await kept).toEqual({ value: [2] });
    expect(seen.abandoned).toBe(1);
  });

  it('still answers a request whose client goes away once it is running (the route drops the answer)', async () => {
    const { pool, seen, infer } = setUp();
    const client = new Client();
    const running = infer(5, client);
    client.leave();
    pool.finish();
    expect(await running).toEqual({ value: [5] });
    expect(seen.abandoned).toBe(0);
  });

  it('never queues a request whose client is already gone', async () => {
    const { pool, seen, scheduler, infer } = setUp();
    const gone = new Client();
    gone.leave();
    const dropped = await infer(1, gone);
    expect(dropped).toEqual({ error: expect.objectContaining({ code: 'SERVE_ABANDONED' }) });
    expect(scheduler.depth).toBe(0);
    expect(pool.runs).toEqual([]);
    expect(seen.abandoned).toBe(1);
  });

  it('does not rerun it alone when the batch it ran in fails, while its batch-mates are retried', async () => {
    const { pool, seen, infer } = setUp();
    const busy = infer(0);
    const client = new Client();
    const dropped = infer(1, client);
    const kept = infer(2);
    pool.finish();
    await busy;
    expect(pool.runs).toHaveLength(1); // 1 and 2, as one batch

    client.leave();
    pool.finish(true);
    expect(await dropped).toEqual({ error: expect.objectContaining({ code: 'SERVE_ABANDONED' }) });
    expect(pool.runs.map((run) => Array.from(run.feeds.x!.data as Float32Array))).toEqual([[2]]);
    pool.finish();
    expect(await kept).toEqual({ value: [2] });
    expect(seen.abandoned).toBe(1);
  });
});

describe('Scheduler, with a limit on the input bytes waiting for a worker', () => {
  it('refuses a request that would go over it with 503 and Retry-After, and takes requests again once the queue drains', async () => {
    const { pool, seen, scheduler, infer } = setUp(8);
    const running = infer(0); // taken by the worker at once: not queued
    const queued = [infer(1), infer(2)]; // 4 bytes each: the queue is at the limit
    expect(scheduler.queuedBytes).toBe(8);
    const refused = await infer(3);
    expect(refused).toEqual({
      error: expect.objectContaining({ code: 'SERVE_OVERLOADED', statusCode: 503, retryAfterSeconds: 1 }),
    });
    expect((refused as { error: Error }).error.message).toMatch(
      /2 requests with 8 bytes .*SLIPWAY_MAX_QUEUED_BYTES/,
    );
    expect(seen.shed).toBe(1);

    pool.finish(); // the worker takes both queued rows as one batch
    expect(scheduler.queuedBytes).toBe(0);
    const later = infer(4);
    pool.finish();
    pool.finish();
    expect(await running).toEqual({ value: [0] });
    expect(await Promise.all(queued)).toEqual([{ value: [1] }, { value: [2] }]);
    expect(await later).toEqual({ value: [4] });
    expect(pool.runs).toHaveLength(0);
  });

  it('queues a request larger than the limit when nothing waits (the body limit bounds one request)', async () => {
    const { pool, scheduler, infer } = setUp(8);
    const running = infer(0);
    const big: WireTensor = { type: 'float32', dims: [4, 1], data: new Float32Array([1, 2, 3, 4]) };
    const queued = infer(big);
    expect(scheduler.queuedBytes).toBe(16);
    pool.finish();
    pool.finish();
    expect(await running).toEqual({ value: [0] });
    expect(await queued).toEqual({ value: [1, 2, 3, 4] });
  });

  it('frees the bytes of a request whose client went away', async () => {
    const { pool, seen, scheduler, infer } = setUp(8);
    const running = infer(0);
    const client = new Client();
    const leaving = infer(1, client);
    const staying = infer(2);
    client.leave();
    expect(scheduler.queuedBytes).toBe(4);
    const admitted = infer(3); // fits again: 8 bytes
    expect(seen.shed).toBe(0);
    pool.finish();
    pool.finish();
    expect(await running).toEqual({ value: [0] });
    expect(await leaving).toEqual({ error: expect.objectContaining({ code: 'SERVE_ABANDONED' }) });
    expect(await Promise.all([staying, admitted])).toEqual([{ value: [2] }, { value: [3] }]);
  });
});
