/**
 * Reading something again until it settles, with waits between the reads: what `slipway status
 * --wait` and the restore after a failed deploy do. No AWS or store imports, so the Lambda bundle
 * and the scripts can share it.
 */

/** Options of `pollUntil`. */
export interface PollOptions<T = unknown> {
  /** Time between two reads. */
  readonly intervalMs: number;
  /** Give up after waiting this long in all (the last wait is cut to it, so it is read at the end). */
  readonly timeoutMs: number;
  /** @default a timer */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Called with each unsettled value before a wait (progress output). */
  readonly onWait?: (value: T) => void;
}

/**
 * Reads with `read` until `settled` holds for the value; `{ settled: false }` with the last value
 * once `timeoutMs` of waiting has passed. The time is counted in waits, not by the clock (each read
 * adds its own moment on top), so a test's `sleep` decides.
 */
export async function pollUntil<T>(
  read: () => Promise<T>,
  settled: (value: T) => boolean,
  options: PollOptions<T>,
): Promise<{ readonly value: T; readonly settled: boolean }> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let waited = 0; ;) {
    const value = await read();
    if (settled(value)) return { value, settled: true };
    const wait = Math.min(options.intervalMs, options.timeoutMs - waited);
    if (wait <= 0) return { value, settled: false };
    options.onWait?.(value);
    await sleep(wait);
    waited += wait;
  }
}
