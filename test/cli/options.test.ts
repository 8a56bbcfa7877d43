import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import { intOption, secondsOption } from '../../src/cli/options.ts';

describe('secondsOption', () => {
  it.each([
    ['900', 900_000],
    ['0.5', 500],
    ['0.001', 1],
    ['0.0015', 2],
    ['.25', 250],
  ])('reads %s seconds as %d ms', (value, ms) => {
    expect(secondsOption(value, '--timeout')).toBe(ms);
  });

  it.each(['0.0001', '0.0004', '0', '-1', '', 'abc', '1e3', '0x10', 'Infinity'])(
    'refuses %j instead of rounding it to a 0 ms timeout or reading it loosely',
    (value) => {
      expect(() => secondsOption(value, '--timeout')).toThrow(UsageError);
      expect(() => secondsOption(value, '--timeout')).toThrow(
        `--timeout must be a number of seconds of at least 0.001 (1 ms), got "${value}"`,
      );
    },
  );
});

describe('intOption', () => {
  it('takes decimal whole numbers within the bounds', () => {
    expect(intOption('8', '--tasks', 1, 16)).toBe(8);
    expect(intOption(' 3 ', '--instance-count', 1)).toBe(3);
  });

  it.each(['', '0x2', '1e0', '2.0', '-1', '17'])('refuses %j with the flag and the range', (value) => {
    expect(() => intOption(value, '--tasks', 1, 16)).toThrow(
      `--tasks must be a whole number from 1 to 16, got "${value}"`,
    );
  });
});
