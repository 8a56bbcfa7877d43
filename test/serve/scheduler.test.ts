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

function setUp() {
  const pool = new HeldPool();
  const seen = { depths: [] as number[], abandoned: 0 };
  const scheduler = new Scheduler(pool, { maxBatchSize: 8, maxDelayMs: 0 }, true, {
    onQueueDepth: (depth) => seen.depths.push(depth),
    onAbandon: () => seen.abandoned++,
  });
  const infer = (value: number, client?: Client) => {
    const request: InferenceRequest = { feeds: { x: row(value) }, fetches: undefined, client };
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
