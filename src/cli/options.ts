import { UsageError } from '../errors.ts';
import { checkInt } from '../serve/config.ts';

/** Parses a whole-number flag within bounds, or throws a UsageError naming the flag (as `serve` does). */
export function intOption(value: string, flag: string, min: number, max?: number): number {
  return checkInt(value, flag, min, max);
}

/** Parses a TCP port flag (0 = any free port). */
export function portOption(value: string, flag = '--port'): number {
  return intOption(value, flag, 0, 65_535);
}

/**
 * Parses a duration in seconds (decimal, e.g. `90` or `0.5`) into whole milliseconds. Values below
 * 1 ms are refused rather than rounded to a timeout of 0 that expires at once.
 */
export function secondsOption(value: string, flag: string): number {
  const text = value.trim();
  const n = Number(text);
  if (!/^(\d+\.?\d*|\.\d+)$/.test(text) || !Number.isFinite(n) || n < 0.001) {
    throw new UsageError(`${flag} must be a number of seconds of at least 0.001 (1 ms), got "${value}"`);
  }
  return Math.round(n * 1000);
}

/** Writes one line of JSON (for `--json`). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints lines to stdout. */
export function printLines(lines: readonly string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}
