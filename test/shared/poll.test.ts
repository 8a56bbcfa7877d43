import { describe, expect, it } from 'vitest';
import { pollUntil } from '../../src/shared/poll.ts';

describe('pollUntil', () => {
  it('reads until the value settles, waiting the interval between reads', async () => {
    const values = [1, 2, 3, 4];
    const sleeps: number[] = [];
    const waitedOn: number[] = [];
    const result = await pollUntil(
      () => Promise.resolve(values.shift()!),
      (v) => v === 3,
      {
        intervalMs: 100,
        timeoutMs: 1_000,
        sleep: (ms) => (sleeps.push(ms), Promise.resolve()),
        onWait: (v) => waitedOn.push(v),
      },
    );
    expect(result).toEqual({ value: 3, settled: true });
    expect(sleeps).toEqual([100, 100]);
    expect(waitedOn).toEqual([1, 2]);
  });

  it('reads a last time at the timeout, then gives the last value unsettled', async () => {
    const sleeps: number[] = [];
    let reads = 0;
    const result = await pollUntil(
      () => Promise.resolve(++reads),
      () => false,
      { intervalMs: 100, timeoutMs: 250, sleep: (ms) => (sleeps.push(ms), Promise.resolve()) },
    );
    expect(result).toEqual({ value: 4, settled: false });
    expect(sleeps).toEqual([100, 100, 50]);
  });

  it('passes a failed read on at once', async () => {
    await expect(
      pollUntil(
        () => Promise.reject(new Error('AccessDenied')),
        () => true,
        { intervalMs: 1, timeoutMs: 1 },
      ),
    ).rejects.toThrow('AccessDenied');
  });
});
