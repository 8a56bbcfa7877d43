import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import {
  INVOCATIONS_ROUTE,
  MAX_JSON_CONTAINERS,
  jsonDepthExceeds,
  parseJsonBody,
  readBody,
  registerBodyParsers,
} from '../../src/serve/json-body.ts';
import type { FlattenKind, JsonParsePool } from '../../src/serve/json-parse-pool.ts';

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

  it('ignores a leading byte order mark, as RFC 8259 allows (and only a leading one)', () => {
    expect(parseJsonBody('\uFEFF{"a":1}')).toEqual({ a: 1 });
    expect(() => parseJsonBody('\uFEFF')).toThrow(/empty/);
    expect(() => parseJsonBody('{"a":1}\uFEFF')).toThrow(/malformed JSON/);
  });

  it('rejects empty and malformed bodies with a message that says what is wrong', () => {
    expect(() => parseJsonBody('  ')).toThrow(/empty/);
    expect(() => parseJsonBody('{"a":')).toThrow(/malformed JSON/);
  });
});

describe('parseJsonBody on bodies of many arrays and objects', () => {
  it('refuses more arrays and objects than the limit before parsing, counting none inside strings', () => {
    const empties = `{"instances":[${Array(MAX_JSON_CONTAINERS).fill('{}').join(',')}]}`;
    expect(() => parseJsonBody(empties)).toThrow(
      `the JSON body has more than ${MAX_JSON_CONTAINERS} arrays and objects; send tensor data flat`,
    );
    const justUnder = `[${Array(MAX_JSON_CONTAINERS - 1)
      .fill('[]')
      .join(',')}]`;
    expect(parseJsonBody(justUnder)).toHaveLength(MAX_JSON_CONTAINERS - 1);
    const inStrings = JSON.stringify({ s: '[{'.repeat(MAX_JSON_CONTAINERS) });
    expect(parseJsonBody(inStrings)).toEqual({ s: '[{'.repeat(MAX_JSON_CONTAINERS) });
  });

  it('accepts nested tensor data of the largest size the default body limit allows', () => {
    // 40 images of 3x224x224 nested by row: about 27,000 arrays.
    const image = Array.from({ length: 3 }, () =>
      Array.from({ length: 224 }, () => new Array<number>(224).fill(0.5)),
    );
    const text = JSON.stringify({ instances: new Array(40).fill(image) });
    expect((parseJsonBody(text) as { instances: unknown[] }).instances).toHaveLength(40);
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

describe('readBody', () => {
  const stream = (...chunks: string[]) => Readable.from(chunks.map((c) => Buffer.from(c)));

  it('reads a body with or without a Content-Length, leaving `lead` bytes of room in front', async () => {
    for (const length of [11, undefined]) {
      const body = await readBody(stream('hello', ' ', 'world'), length, 100, 3);
      expect(body.toString()).toBe('hello world');
      expect(body.byteOffset).toBe(3);
    }
  });

  it('answers 413 past the limit, declared or streamed, and 400 when the length does not match', async () => {
    await expect(readBody(stream('x'.repeat(10)), 10, 5, 0)).rejects.toMatchObject({
      statusCode: 413,
      message: 'the request body is larger than the limit of 5 bytes',
    });
    await expect(readBody(stream('abc', 'def'), undefined, 5, 0)).rejects.toMatchObject({ statusCode: 413 });
    await expect(readBody(stream('abcdef'), 4, 100, 0)).rejects.toThrow(
      /longer than its Content-Length of 4 bytes/,
    );
    await expect(readBody(stream('ab'), 4, 100, 0)).rejects.toThrow(/ended after 2 of its 4 bytes/);
  });
});

describe('readBody on a client that goes away', () => {
  it('rejects when the stream closes before the body ends', async () => {
    const payload = new Readable({ read() {} });
    const reading = readBody(payload, 100, 1000, 0);
    payload.push(Buffer.from('{"inputs":'));
    payload.destroy();
    await expect(reading).rejects.toThrow(/closed the connection before the body ended/);
  });
});

describe('registerBodyParsers', () => {
  it('asks the parser threads for flattened rows on /invocations and for flattened v2 inputs elsewhere', async () => {
    const app = Fastify();
    const kinds: string[] = [];
    const pool = {
      parse: (body: Buffer, release: (buffer: ArrayBuffer) => void, kind: FlattenKind) => {
        kinds.push(kind);
        release(body.buffer as ArrayBuffer);
        return Promise.resolve(JSON.parse(body.toString('utf8')) as unknown);
      },
    } as unknown as JsonParsePool;
    registerBodyParsers(app, 1 << 20, pool);
    app.post(INVOCATIONS_ROUTE, () => ({ ok: true }));
    app.post('/v2/models/:name/infer', () => ({ ok: true }));
    const large = JSON.stringify({ instances: [Array.from({ length: 20_000 }, (_, i) => i)] });
    for (const url of [INVOCATIONS_ROUTE, '/v2/models/m/infer']) {
      const res = await app.inject({
        method: 'POST',
        url,
        payload: large,
        headers: { 'content-type': 'application/json' },
      });
      expect(res.statusCode).toBe(200);
    }
    await app.inject({
      method: 'POST',
      url: INVOCATIONS_ROUTE,
      payload: '{"instances": [[1]]}',
      headers: { 'content-type': 'application/json' },
    });
    expect(kinds).toEqual(['rows', 'v2']);
    await app.close();
  });
});
