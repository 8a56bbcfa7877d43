import type { FastifyInstance } from 'fastify';
import { BINARY_PART, INFERENCE_HEADER, splitBinaryBody } from './binary-tensor.ts';
import type { WithBinaryPart } from './binary-tensor.ts';
import { badRequest } from './errors.ts';

/** Deepest JSON nesting a request body may have (tensor rank + envelope, with room to spare). */
export const MAX_JSON_DEPTH = 64;

const STRUCTURAL = /["[\]{}]/g;
const STRING_END = /["\\]/g;

/**
 * True when `text` nests arrays/objects deeper than `maxDepth`. Run before JSON.parse so a hostile
 * body (10,000 `[`) is refused cheaply and no later recursive walk can overflow the stack.
 *
 * It hops between structural characters with a regular expression rather than visiting every
 * character in JavaScript: a tensor body is mostly digits, and this keeps the scan of a 230 KB
 * float array to a small fraction of the JSON.parse that follows.
 */
export function jsonDepthExceeds(text: string, maxDepth: number): boolean {
  let depth = 0;
  STRUCTURAL.lastIndex = 0;
  for (let m = STRUCTURAL.exec(text); m !== null; m = STRUCTURAL.exec(text)) {
    const c = text.charCodeAt(m.index);
    if (c === 34 /* " */) {
      // Skip the string: find its closing quote, stepping over escapes.
      STRING_END.lastIndex = m.index + 1;
      for (;;) {
        const e = STRING_END.exec(text);
        if (e === null) return false; // unterminated: JSON.parse reports it
        if (text.charCodeAt(e.index) === 92 /* \ */) {
          STRING_END.lastIndex = e.index + 2;
          continue;
        }
        STRUCTURAL.lastIndex = e.index + 1;
        break;
      }
    } else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > maxDepth) return true;
    } else depth--;
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

/**
 * Parses a request body that may use the binary tensor extension: with the
 * `Inference-Header-Content-Length` header, the JSON part is parsed and the bytes after it are kept
 * under {@link BINARY_PART} for the v2 inference route.
 */
export function parseInferenceBody(body: Buffer, headerValue: string | string[] | undefined): unknown {
  if (headerValue === undefined) return parseJsonBody(body.toString('utf8'));
  const { json, binary } = splitBinaryBody(
    body,
    Array.isArray(headerValue) ? headerValue.join(',') : headerValue,
  );
  const parsed = parseJsonBody(json);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw badRequest('the JSON part of a binary request must be an object');
  }
  (parsed as WithBinaryPart)[BINARY_PART] = binary;
  return parsed;
}

/**
 * Replaces Fastify's JSON parser with the depth-checked one (which also reads binary-extension
 * bodies), accepts `application/octet-stream` for binary-extension bodies, and CSV as text (for
 * /invocations).
 */
export function registerBodyParsers(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      done(null, parseInferenceBody(body as Buffer, request.headers[INFERENCE_HEADER]));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (request, body, done) => {
    const header = request.headers[INFERENCE_HEADER];
    if (header === undefined) {
      done(
        badRequest(
          'an application/octet-stream body must use the binary tensor extension: send the Inference-Header-Content-Length header with the length of its JSON part',
        ),
        undefined,
      );
      return;
    }
    try {
      done(null, parseInferenceBody(body as Buffer, header));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser('text/csv', { parseAs: 'string' }, (_request, body, done) => {
    done(null, body);
  });
}
