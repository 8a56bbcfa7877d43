import { describe, expect, it } from 'vitest';
import { compareKeysNaturally, compareUploads } from '../../src/shared/upload-order.ts';

describe('compareKeysNaturally', () => {
  it('sorts digit runs as numbers and everything else as plain strings, into one order from any start', () => {
    const sorted = ['a/b', 'a', 'job-10', 'job-09', 'job-9', 'job-1', 'job--', 'job-x', 'v10/', 'v2/', 'Z'];
    const expected = ['Z', 'a', 'a/b', 'job--', 'job-1', 'job-09', 'job-9', 'job-10', 'job-x', 'v2/', 'v10/'];
    expect([...sorted].sort(compareKeysNaturally)).toEqual(expected);
    expect([...sorted].reverse().sort(compareKeysNaturally)).toEqual(expected);
    expect(compareKeysNaturally('job-7', 'job-7')).toBe(0);
  });
});

describe('compareUploads', () => {
  const second = Date.parse('2026-01-01T00:00:10Z');

  it('calls the later time newer, whatever the keys', () => {
    expect(compareUploads({ time: second + 1000, key: 'job-1' }, { time: second, key: 'job-9' })).toBe(1);
    expect(compareUploads({ time: second, key: 'job-9' }, { time: second + 1000, key: 'job-1' })).toBe(-1);
  });

  it('orders uploads of the same instant by key in natural order, and the same key as a tie', () => {
    expect(compareUploads({ time: second, key: 'job-10' }, { time: second, key: 'job-9' })).toBeGreaterThan(
      0,
    );
    expect(compareUploads({ time: second, key: 'job-9' }, { time: second, key: 'job-10' })).toBeLessThan(0);
    expect(compareUploads({ time: second, key: 'job-9' }, { time: second, key: 'job-9' })).toBe(0);
  });
});
