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
