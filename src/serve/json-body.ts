import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BINARY_PART, INFERENCE_HEADER, inferenceHeaderLength, splitBinaryBody } from './binary-tensor.ts';
import { BufferRecycler } from './buffer-recycler.ts';
import type { WithBinaryPart } from './binary-tensor.ts';
import { ServeError, badRequest } from './errors.ts';
import type { JsonParsePool } from './json-parse-pool.ts';

/** Deepest JSON nesting a request body may have (tensor rank + envelope, with room to spare). */
export const MAX_JSON_DEPTH = 64;

/**
 * Most arrays and objects a JSON request body may hold. Each costs about 200 bytes once parsed
 * and cloned back from a parser thread; a legitimate body is tensor data, where one array holds a
 * row of numbers (40 nested 3x224x224 images, about 30 MB of JSON, hold 27,000 arrays).
 */
export const MAX_JSON_CONTAINERS = 262_144;

/** JSON bodies at least this large are parsed on a worker thread (smaller ones parse faster than a hand-off). */
export const JSON_OFFLOAD_BYTES = 64 * 1024;

const STRUCTURAL = /["[\]{}]/g;
const STRING_END = /["\\]/g;

/**
 * What is wrong with the structure of `text` before it is parsed: arrays/objects nested deeper
 * than `maxDepth` (10,000 `[` must not reach a recursive walk and overflow the stack), or more
 * than `maxContainers` of them (parsed, and cloned back from a parser thread, 30 MB of `{},`
 * took 2 GB and 24 s). Undefined when neither.
 *
 * It hops between structural characters with a regular expression rather than visiting every
 * character in JavaScript: a tensor body is mostly digits, and this keeps the scan of a 230 KB
 * float array to a small fraction of the JSON.parse that follows.
 */
export function jsonStructureProblem(
  text: string,
  maxDepth: number,
  maxContainers = Infinity,
): 'depth' | 'containers' | undefined {
  // Either limit needs more opening brackets than it allows: most bodies (a few objects around
  // flat arrays) are cleared by counting them, without the scan.
  const enough = Math.min(maxDepth, maxContainers);
  let opening = 0;
  for (const bracket of ['[', '{']) {
    for (let i = text.indexOf(bracket); i >= 0 && opening <= enough; i = text.indexOf(bracket, i + 1))
      opening++;
  }
  if (opening <= enough) return undefined;
  let depth = 0;
  let containers = 0;
  STRUCTURAL.lastIndex = 0;
  for (let m = STRUCTURAL.exec(text); m !== null; m = STRUCTURAL.exec(text)) {
    const c = text.charCodeAt(m.index);
    if (c === 34 /* " */) {
      // Skip the string: find its closing quote, stepping over escapes.
      STRING_END.lastIndex = m.index + 1;
      for (;;) {
        const e = STRING_END.exec(text);
        if (e === null) return undefined; // unterminated: JSON.parse reports it
        if (text.charCodeAt(e.index) === 92 /* \ */) {
          STRING_END.lastIndex = e.index + 2;
          continue;
        }
        STRUCTURAL.lastIndex = e.index + 1;
        break;
      }
    } else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > maxDepth) return 'depth';
      if (++containers > maxContainers) return 'containers';
    } else depth--;
  }
  return undefined;
}

/** True when `text` nests arrays/objects deeper than `maxDepth` (see {@link jsonStructureProblem}). */
export function jsonDepthExceeds(text: string, maxDepth: number): boolean {
  return jsonStructureProblem(text, maxDepth) === 'depth';
}

/**
 * Parses a JSON request body, turning every way it can be wrong into a 400 that says how. A leading
 * UTF-8 byte order mark (some Windows tools write one) is ignored, as RFC 8259 allows.
 */
export function parseJsonBody(
  body: string,
  maxDepth = MAX_JSON_DEPTH,
  maxContainers = MAX_JSON_CONTAINERS,
): unknown {
  const text = body.charCodeAt(0) === 0xfeff ? body.slice(1) : body;
  if (text.trim() === '') throw badRequest('the request body is empty; send a JSON document');
  switch (jsonStructureProblem(text, maxDepth, maxContainers)) {
    case 'depth':
      throw badRequest(`the JSON body is nested deeper than ${maxDepth} levels`);
    case 'containers':
      throw badRequest(
        `the JSON body has more than ${maxContainers} arrays and objects; send tensor data flat (its shape gives the structure) or use the binary tensor extension`,
      );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw badRequest(`malformed JSON: ${(err as Error).message}`);
  }
}

/**
 * Reads a request body into one buffer the parser owns. `lead` bytes of room are left in front
 * of it, so a caller that knows where binary data starts can place it on an 8-byte boundary and
 * view tensors in place rather than copy them. With a Content-Length the body is read straight
 * into its final buffer (one copy from the socket); a chunked body is gathered, then copied once.
 */
export function readBody(
  payload: Readable,
  contentLength: number | undefined,
  limit: number,
  lead: number,
  allocate: (bytes: number) => ArrayBuffer = (bytes) => new ArrayBuffer(bytes),
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    if (contentLength !== undefined && contentLength > limit) {
      reject(tooLarge(limit));
      payload.resume();
      return;
    }
    // Allocating a declared length up front is bounded, so a client that announces a large body and
    // sends little cannot make the server reserve the whole limit per connection.
    const whole =
      contentLength === undefined || contentLength > PREALLOCATE_MAX
        ? undefined
        : Buffer.from(allocate(lead + contentLength), 0, lead + contentLength);
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (err?: Error) => {
      payload.off('data', onData);
      payload.off('end', onEnd);
      payload.off('error', onError);
      payload.off('close', onClose);
      if (err) {
        payload.resume();
        reject(err);
      }
    };
    const onData = (chunk: Buffer) => {
      if (received + chunk.length > limit) return finish(tooLarge(limit));
      if (contentLength !== undefined && received + chunk.length > contentLength) {
        return finish(badRequest(`the body is longer than its Content-Length of ${contentLength} bytes`));
      }
      if (whole) chunk.copy(whole, lead + received);
      else chunks.push(chunk);
      received += chunk.length;
    };
    const onEnd = () => {
      finish();
      if (contentLength !== undefined && received !== contentLength) {
        reject(badRequest(`the body ended after ${received} of its ${contentLength} bytes`));
        return;
      }
      if (whole) {
        resolve(whole.subarray(lead));
        return;
      }
      const out = Buffer.allocUnsafeSlow(lead + received);
      let at = lead;
      for (const c of chunks) at += c.copy(out, at);
      resolve(out.subarray(lead));
    };
    const onClose = () => finish(badRequest('the client closed the connection before the body ended'));
    const onError = (err: Error) => finish(badRequest(`the request body could not be read: ${err.message}`));
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
    // A client that goes away mid-body must not leave this promise (and its buffer) pending.
    payload.on('close', onClose);
  });
}

/** The SageMaker inference route: its large JSON bodies come back from a parser thread as rows. */
export const INVOCATIONS_ROUTE = '/invocations';

/** Largest body read straight into a buffer of its declared length; larger ones are gathered as they come. */
const PREALLOCATE_MAX = 4 * 1024 * 1024;

function tooLarge(limit: number): ServeError {
  return new ServeError(
    'SERVE_BAD_REQUEST',
    413,
    `the request body is larger than the limit of ${limit} bytes`,
  );
}

/**
 * Bytes to leave in front of a binary-extension body so its binary part starts 8-byte aligned
 * (0 when the header is absent or not a plain number; the parser reports a bad header itself).
 */
function alignmentLead(header: string | string[] | undefined): number {
  const length = typeof header === 'string' ? inferenceHeaderLength(header) : undefined;
  return length === undefined ? 0 : (8 - (length % 8)) % 8;
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
 * /invocations). With `jsonPool`, JSON bodies of {@link JSON_OFFLOAD_BYTES} or more are parsed
 * on its threads instead of the event loop.
 */
export function registerBodyParsers(app: FastifyInstance, bodyLimit: number, jsonPool?: JsonParsePool): void {
  app.removeContentTypeParser('application/json');
  // Fastify reads text/plain as a string by default; no route here takes it, so it gets the 415
  // that names what is accepted rather than being read as CSV or failing the schema.
  app.removeContentTypeParser('text/plain');
  // Request bodies are read into recycled buffers: at inference rates, a fresh buffer per request
  // is what drives V8 into major collections. A JSON body's buffer is free once it is parsed; a
  // binary body's, once its response is sent (its tensors view the buffer until then).
  const bodies = new BufferRecycler(32 * 1024 * 1024);
  const held = new WeakMap<FastifyRequest, ArrayBuffer>();
  const parseInference = async (request: FastifyRequest, payload: Readable): Promise<unknown> => {
    const header = request.headers[INFERENCE_HEADER];
    if (header === undefined && !/json/i.test(request.headers['content-type'] ?? '')) {
      payload.resume();
      throw badRequest(
        'an application/octet-stream body must use the binary tensor extension: send the Inference-Header-Content-Length header with the length of its JSON part',
      );
    }
    const length = request.headers['content-length'];
    const body = await readBody(
      payload,
      length === undefined ? undefined : Number(length),
      bodyLimit,
      alignmentLead(header),
      bodies.allocate,
    );
    if (header !== undefined) {
      held.set(request, body.buffer as ArrayBuffer);
      return parseInferenceBody(body, header);
    }
    if (jsonPool && body.length >= JSON_OFFLOAD_BYTES) {
      return jsonPool.parse(
        body,
        (buffer) => bodies.release(buffer),
        request.routeOptions.url === INVOCATIONS_ROUTE ? 'rows' : 'v2',
      );
    }
    try {
      return parseInferenceBody(body, header);
    } finally {
      bodies.release(body.buffer as ArrayBuffer);
    }
  };
  app.addHook('onResponse', (request, reply, done) => {
    const buffer = held.get(request);
    // Only after a response that went out whole: an aborted request may still be queued.
    if (buffer && reply.raw.writableFinished) bodies.release(buffer);
    done();
  });
  app.addContentTypeParser('application/json', (request: FastifyRequest, payload: IncomingMessage) =>
    parseInference(request, payload),
  );
  app.addContentTypeParser('application/octet-stream', (request: FastifyRequest, payload: IncomingMessage) =>
    parseInference(request, payload),
  );
  app.addContentTypeParser('text/csv', { parseAs: 'string' }, (_request, body, done) => {
    done(null, body);
  });
}
