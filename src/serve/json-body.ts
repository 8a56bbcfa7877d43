import type { FastifyInstance } from 'fastify';
import { badRequest } from './errors.ts';

/** Deepest JSON nesting a request body may have (tensor rank + envelope, with room to spare). */
export const MAX_JSON_DEPTH = 64;

/**
 * True when `text` nests arrays/objects deeper than `maxDepth`. A linear scan that skips string
 * contents, run before JSON.parse so a hostile body (10,000 `[`) is refused cheaply and no later
 * recursive walk can overflow the stack.
 */
export function jsonDepthExceeds(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > maxDepth) return true;
    } else if (c === 93 /* ] */ || c === 125 /* } */) depth--;
  }
  return false;
}

/** Parses a JSON request body, turning every way it can be wrong into a 400 that says how. */
export function parseJsonBody(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  if (text.trim() === '') throw badRequest('the request body is empty; send a JSON document');
  if (jsonDepthExceeds(text, maxDepth)) {
    throw badRequest(`the JSON body is nested deeper than ${maxDepth} levels`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw badRequest(`malformed JSON: ${(err as Error).message}`);
  }
}

/** Replaces Fastify's JSON parser with the depth-checked one and accepts CSV as text (for /invocations). */
export function registerBodyParsers(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser('text/csv', { parseAs: 'string' }, (_request, body, done) => {
    done(null, body);
  });
}
