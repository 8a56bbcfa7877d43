import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  URL_REWRITE_SOURCE,
  handler,
  type ViewerRequestEvent,
} from '../../../src/infra/docs-site/url-rewrite.ts';

// Evaluate the exact source CloudFront receives, in a fresh context with no module scope.
const deployed = runInNewContext(`${URL_REWRITE_SOURCE}\nhandler;`) as typeof handler;

const cases: Array<[string, string]> = [
  ['/', '/index.html'],
  ['/a/', '/a/index.html'],
  ['/a', '/a/index.html'],
  ['/v1.2/a', '/v1.2/a/index.html'],
  ['/v1.2/', '/v1.2/index.html'],
  ['/a/b/c', '/a/b/c/index.html'],
  ['/a/app.js', '/a/app.js'],
  ['/assets/style.4f2a.css', '/assets/style.4f2a.css'],
  ['/index.html', '/index.html'],
];

function event(uri: string): ViewerRequestEvent {
  return { request: { uri } };
}

describe('docs URL rewrite (CloudFront Function)', () => {
  for (const [input, output] of cases) {
    it(`maps ${input} to ${output}`, () => {
      expect(handler(event(input)).uri).toBe(output);
    });
  }

  it('ships source that behaves the same outside this module', () => {
    for (const [input, output] of cases) expect(deployed(event(input)).uri).toBe(output);
  });

  it('ships a plain function named handler with no imports', () => {
    expect(URL_REWRITE_SOURCE).toMatch(/^function handler\(/);
    expect(URL_REWRITE_SOURCE).not.toMatch(/\b(import|require|export)\b/);
  });

  it('returns the request object itself so CloudFront forwards it', () => {
    const e = event('/a');
    expect(handler(e)).toBe(e.request);
  });
});
