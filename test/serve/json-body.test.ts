import { describe, expect, it } from 'vitest';
import { jsonDepthExceeds, parseJsonBody } from '../../src/serve/json-body.ts';

describe('parseJsonBody', () => {
  it('parses ordinary JSON', () => {
    expect(parseJsonBody('{"a":[[1,2],[3]]}')).toEqual({ a: [[1, 2], [3]] });
  });

  it('rejects 10,000-deep nesting with a 400 before parsing', () => {
    expect(() => parseJsonBody('['.repeat(10_000) + ']'.repeat(10_000))).toThrow(/nested deeper than 64/);
  });

  it('ignores brackets inside strings when measuring depth', () => {
    expect(jsonDepthExceeds(JSON.stringify({ s: '['.repeat(100) + '\\"[' }), 3)).toBe(false);
    expect(jsonDepthExceeds('[[[[1]]]]', 3)).toBe(true);
  });

  it('rejects empty and malformed bodies with a message that says what is wrong', () => {
    expect(() => parseJsonBody('  ')).toThrow(/empty/);
    expect(() => parseJsonBody('{"a":')).toThrow(/malformed JSON/);
  });
});

describe('jsonDepthExceeds', () => {
  it('agrees with the nesting JSON.parse sees, whatever strings and escapes sit between brackets', () => {
    const depthOf = (value: unknown): number =>
      Array.isArray(value)
        ? 1 + Math.max(0, ...value.map(depthOf))
        : value !== null && typeof value === 'object'
          ? 1 + Math.max(0, ...Object.values(value).map(depthOf))
          : 0;
    const bodies = [
      '{"a":"x\\\\"}',
      '{"a":"\\\\\\"[[[","b":[[1]]}',
      '[{"k\\"{":[{"x":"]]]"}]}]',
      '[[],[[]],{"a":{}}]',
      JSON.stringify({ s: '\\'.repeat(7) + '"[[' }),
    ];
    for (const body of bodies) {
      const depth = depthOf(JSON.parse(body));
      expect(jsonDepthExceeds(body, depth), body).toBe(false);
      expect(jsonDepthExceeds(body, depth - 1), body).toBe(true);
    }
  });

  it('leaves an unterminated string to JSON.parse', () => {
    expect(jsonDepthExceeds('["abc', 1)).toBe(false);
    expect(() => parseJsonBody('["abc')).toThrow(/malformed JSON/);
  });
});
