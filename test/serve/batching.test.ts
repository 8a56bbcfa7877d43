import { describe, expect, it } from 'vitest';
import { decideBatch } from '../../src/serve/batching.ts';
import type { QueuedItem } from '../../src/serve/batching.ts';

const item = (key: string, rows: number, enqueuedAt = 0, batchable = true): QueuedItem => ({
  key,
  rows,
  enqueuedAt,
  batchable,
});
const policy = { maxBatchSize: 8, maxDelayMs: 5 };
const busy = { idleWorkers: 1, busyWorkers: 1 };

describe('decideBatch', () => {
  it('does nothing when the queue is empty or no worker is idle', () => {
    expect(decideBatch([], policy, busy, 0)).toEqual({ kind: 'idle' });
    expect(decideBatch([item('a', 1)], policy, { idleWorkers: 0, busyWorkers: 2 }, 0)).toEqual({
      kind: 'idle',
    });
  });

  it('runs at once when the whole pool is idle, since waiting would only add latency', () => {
    expect(decideBatch([item('a', 1, 0)], policy, { idleWorkers: 2, busyWorkers: 0 }, 0)).toEqual({
      kind: 'run',
      take: [0],
      rows: 1,
    });
  });

  it('waits for more requests while other batches run and the oldest is younger than the delay', () => {
    expect(decideBatch([item('a', 1, 10)], policy, busy, 12)).toEqual({ kind: 'wait', ms: 3 });
  });

  it('runs a partial batch once the oldest request has waited the maximum delay', () => {
    const queue = [item('a', 1, 0), item('a', 2, 1)];
    expect(decideBatch(queue, policy, busy, 5)).toEqual({ kind: 'run', take: [0, 1], rows: 3 });
  });

  it('coalesces only requests whose key matches the oldest one', () => {
    const queue = [item('a', 2), item('b', 2), item('a', 3), item('b', 1)];
    expect(decideBatch(queue, policy, busy, 100)).toEqual({ kind: 'run', take: [0, 2], rows: 5 });
  });

  it('runs as soon as the batch is full, without waiting for the delay', () => {
    const queue = [item('a', 4, 0), item('a', 4, 0), item('a', 1, 0)];
    expect(decideBatch(queue, policy, busy, 0)).toEqual({ kind: 'run', take: [0, 1], rows: 8 });
  });

  it('never exceeds the maximum batch size and leaves the overflow queued', () => {
    const queue = [item('a', 5), item('a', 4), item('a', 3)];
    expect(decideBatch(queue, policy, busy, 0)).toEqual({ kind: 'run', take: [0], rows: 5 });
  });

  it('runs unbatchable requests and oversize requests alone', () => {
    expect(decideBatch([item('s', 1, 0, false), item('s', 1)], policy, busy, 0)).toEqual({
      kind: 'run',
      take: [0],
      rows: 1,
    });
    expect(decideBatch([item('a', 20), item('a', 1)], policy, busy, 0)).toEqual({
      kind: 'run',
      take: [0],
      rows: 20,
    });
  });

  it('with batching off (max size 1) runs every request on its own immediately', () => {
    const off = { maxBatchSize: 1, maxDelayMs: 5 };
    expect(decideBatch([item('a', 1), item('a', 1)], off, busy, 0)).toEqual({
      kind: 'run',
      take: [0],
      rows: 1,
    });
  });
});
