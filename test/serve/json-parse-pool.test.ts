import { afterEach, describe, expect, it } from 'vitest';
import type { ServeError } from '../../src/serve/errors.ts';
import { decodeV2Input } from '../../src/serve/tensor-codec.ts';
import type { V2Input } from '../../src/serve/tensor-codec.ts';
import { JSON_OFFLOAD_BYTES } from '../../src/serve/json-body.ts';
import { JsonParsePool, isFlatRows } from '../../src/serve/json-parse-pool.ts';
import type { ModelInfo } from '../../src/serve/model-host.ts';
import { invocationFeeds } from '../../src/serve/routes/sagemaker.ts';
import type { Datatype, TensorSpec } from '../../src/model/types.ts';

const pools: JsonParsePool[] = [];
afterEach(async () => {
  for (const pool of pools.splice(0)) await pool.close();
});

function pool(options: Partial<ConstructorParameters<typeof JsonParsePool>[0]> = {}): JsonParsePool {
  const p = new JsonParsePool({ threads: 2, nice: 0, ...options });
  pools.push(p);
  return p;
}

/** A body in its own ArrayBuffer, as the server's body reader gives them. */
function body(text: string): Buffer {
  const bytes = Buffer.from(text);
  const own = Buffer.from(new ArrayBuffer(bytes.length));
  bytes.copy(own);
  return own;
}

/** A v2 request with a float array of `n` values: past the offload threshold for n in the thousands. */
function tensorRequest(n: number, id = 'r'): string {
  return JSON.stringify({
    id,
    inputs: [
      { name: 'x', shape: [1, n], datatype: 'FP32', data: Array.from({ length: n }, (_, i) => i / 7) },
    ],
  });
}

/** The codec's 400 message for an input, or 'accepted'. */
function codecMessage(input: V2Input): string {
  try {
    decodeV2Input(input, undefined);
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
}

describe('JsonParsePool', () => {
  it('parses a large body as JSON.parse does and hands its buffer back for reuse', async () => {
    // A SageMaker-style body: only v2 inputs' data is flattened (next test).
    const text = JSON.stringify({
      instances: Array.from({ length: 20 }, (_, r) => Array.from({ length: 784 }, (_, i) => (r + i) / 7)),
    });
    expect(text.length).toBeGreaterThan(JSON_OFFLOAD_BYTES);
    const released: number[] = [];
    const value = await pool().parse(body(text), (buffer) => released.push(buffer.byteLength));
    expect(value).toEqual(JSON.parse(text));
    expect(released).toEqual([Buffer.byteLength(text)]);
  });

  it('hands numeric data back flattened, and the codec decodes it exactly as it decodes the parsed JSON', async () => {
    const rows = Array.from({ length: 100 }, (_, r) => Array.from({ length: 100 }, (_, c) => r * 1000 - c));
    const request = {
      inputs: [
        { name: 'ints', shape: [100, 100], datatype: 'INT32', data: rows },
        {
          name: 'floats',
          shape: [2, 3000],
          datatype: 'FP32',
          data: Array.from({ length: 6000 }, (_, i) => i / 3),
        },
        { name: 'flags', shape: [3], datatype: 'BOOL', data: [true, false, true] },
        { name: 'words', shape: [2], datatype: 'BYTES', data: ['a', 'b'] },
      ],
    };
    const text = JSON.stringify(request);
    expect(text.length).toBeGreaterThan(JSON_OFFLOAD_BYTES);
    const offloaded = (await pool().parse(body(text), () => {})) as { inputs: V2Input[] };
    expect(offloaded.inputs.map((i) => i.data?.constructor.name)).toEqual([
      'Float64Array',
      'Float64Array',
      'Array',
      'Array',
    ]);
    const inline = JSON.parse(text) as { inputs: V2Input[] };
    for (let i = 0; i < inline.inputs.length; i++) {
      expect(decodeV2Input(offloaded.inputs[i]!, undefined)).toEqual(
        decodeV2Input(inline.inputs[i]!, undefined),
      );
    }
  });

  it('leaves data nested unlike its shape to the codec, which reports it as it would inline', async () => {
    const rows = Array.from({ length: 100 }, (_, r) => Array.from({ length: 100 }, (_, c) => r + c));
    rows[42] = [...rows[42]!, ...rows[43]!];
    rows[43] = [];
    const text = JSON.stringify({
      inputs: [{ name: 'x', shape: [100, 100], datatype: 'INT32', data: rows }],
    });
    const offloaded = (await pool().parse(body(text), () => {})) as { inputs: V2Input[] };
    expect(Array.isArray(offloaded.inputs[0]!.data)).toBe(true);
    const inline = JSON.parse(text) as { inputs: V2Input[] };
    expect(codecMessage(offloaded.inputs[0]!)).toBe(codecMessage(inline.inputs[0]!));
    expect(codecMessage(offloaded.inputs[0]!)).toMatch(
      /data\[42\] has 200 elements but shape \[100,100\] needs 100/,
    );
  });

  it('leaves data with a mistake in it to the codec, which reports it as it would inline', async () => {
    const data: unknown[] = Array.from({ length: 20_000 }, (_, i) => i);
    data[12_345] = 'twelve';
    const text = JSON.stringify({ inputs: [{ name: 'x', shape: [20_000], datatype: 'INT64', data }] });
    const offloaded = (await pool().parse(body(text), () => {})) as { inputs: V2Input[] };
    const inline = JSON.parse(text) as { inputs: V2Input[] };
    expect(codecMessage(offloaded.inputs[0]!)).toMatch(/data\[12345\]/);
    expect(codecMessage(offloaded.inputs[0]!)).toBe(codecMessage(inline.inputs[0]!));
    const fractional = JSON.stringify({
      inputs: [
        { name: 'x', shape: [20_000], datatype: 'INT64', data: data.map((v, i) => (i === 7 ? 7.5 : i)) },
      ],
    });
    const offloadedFraction = (await pool().parse(body(fractional), () => {})) as { inputs: V2Input[] };
    expect(codecMessage(offloadedFraction.inputs[0]!)).toBe(
      codecMessage((JSON.parse(fractional) as { inputs: V2Input[] }).inputs[0]!),
    );
    expect(codecMessage(offloadedFraction.inputs[0]!)).toMatch(/data\[7\]/);
  });

  it('hands SageMaker instance rows back flattened, and /invocations reads them exactly as the parsed JSON', async () => {
    const spec = (name: string, datatype: Datatype, shape: number[]): TensorSpec => ({
      name,
      datatype,
      shape,
    });
    const modelWith = (...inputs: TensorSpec[]): ModelInfo => ({
      name: 'm',
      version: '1',
      sourceUri: 'file:///m',
      sha256: '0'.repeat(64),
      loadedAt: new Date(0).toISOString(),
      signature: { inputs, outputs: [spec('y', 'FP32', [-1, 1])] },
      labels: undefined,
      batchable: true,
    });
    const image = modelWith(spec('x', 'FP32', [-1, 3, 16, 16]));
    const ints = modelWith(spec('x', 'INT32', [-1, 1000]));
    const pair = modelWith(spec('a', 'FP32', [-1, 600]), spec('b', 'INT64', [-1, 600]));
    const row = (n: number, r: number) => Array.from({ length: n }, (_, i) => (r * n + i) / 7);
    const pixels = (r: number) =>
      Array.from({ length: 3 }, (_, c) =>
        Array.from({ length: 16 }, (_, y) => row(16, r * 100 + c * 16 + y)),
      );
    const integers = (r: number) => Array.from({ length: 1000 }, (_, i) => r * 1000 - i);
    const ragged = Array.from({ length: 20 }, (_, r) => integers(r));
    ragged[13] = ragged[13]!.slice(1);
    const fractional = Array.from({ length: 20 }, (_, r) => integers(r));
    fractional[4]![9] = 9.5;
    const worded: unknown[][] = Array.from({ length: 20 }, (_, r) => integers(r));
    worded[2]![3] = 'three';
    const cases: [string, ModelInfo, unknown][] = [
      ['instances of 3-d images', image, { instances: Array.from({ length: 12 }, (_, r) => pixels(r)) }],
      ['"inputs" as rows', ints, { inputs: Array.from({ length: 20 }, (_, r) => integers(r)) }],
      [
        '"inputs" by name',
        pair,
        {
          inputs: {
            a: Array.from({ length: 20 }, (_, r) => row(600, r)),
            b: ragged.map((r) => r.slice(0, 600)),
          },
        },
      ],
      ['a ragged instance', ints, { instances: ragged }],
      ['a fractional INT32', ints, { instances: fractional }],
      ['a string among the numbers', ints, { instances: worded }],
      [
        'plain rows for a two-input model',
        pair,
        { instances: Array.from({ length: 20 }, (_, r) => row(600, r)) },
      ],
      [
        'a row nested unlike row 0',
        image,
        {
          instances: [
            ...Array.from({ length: 11 }, (_, r) => pixels(r)),
            [pixels(11)[0], pixels(11)[1], pixels(11)[2]!.flat()],
          ],
        },
      ],
    ];
    const outcome = (body: unknown, model: ModelInfo) => {
      try {
        return invocationFeeds(body, model, 64);
      } catch (err) {
        return (err as Error).message;
      }
    };
    const p = pool();
    const kinds: string[] = [];
    for (const [name, model, request] of cases) {
      const text = JSON.stringify(request);
      expect(text.length, name).toBeGreaterThan(JSON_OFFLOAD_BYTES);
      const offloaded = (await p.parse(body(text), () => {}, 'rows')) as Record<string, unknown>;
      const rows = offloaded.instances ?? offloaded.inputs;
      kinds.push(
        isFlatRows(rows)
          ? 'flat'
          : isFlatRows((rows as Record<string, unknown>).a)
            ? 'flat by name'
            : 'as parsed',
      );
      expect(outcome(offloaded, model), name).toEqual(outcome(JSON.parse(text), model));
    }
    expect(kinds).toEqual(['flat', 'flat', 'flat by name', 'flat', 'flat', 'as parsed', 'flat', 'as parsed']);
    expect(outcome(JSON.parse(JSON.stringify(cases[7]![2])), image)).toMatch(
      /input 'x' instance 11: data\[2\] has 256 elements but shape \[3,16,16\] needs 16 at depth 1/,
    );
    expect(outcome(JSON.parse(JSON.stringify(cases[3]![2])), ints)).toMatch(/instance 13 has 999 values/);
    expect(outcome(JSON.parse(JSON.stringify(cases[4]![2])), ints)).toMatch(/data\[4009\]/);
  });

  it('answers each of many concurrent bodies with its own value', async () => {
    const p = pool();
    const texts = Array.from({ length: 24 }, (_, i) => tensorRequest(3_000 + i, `r${i}`));
    const values = (await Promise.all(texts.map((t) => p.parse(body(t), () => {})))) as Array<{ id: string }>;
    expect(values.map((v) => v.id)).toEqual(texts.map((_, i) => `r${i}`));
  });

  it('refuses malformed, empty and deeply nested bodies with the 400 the event loop would give', async () => {
    const p = pool();
    const refusal = (text: string) =>
      p
        .parse(body(text), () => {})
        .then(
          () => undefined,
          (err: unknown) => err as ServeError,
        );
    const truncated = await refusal(tensorRequest(20_000).slice(0, -2));
    expect(truncated).toMatchObject({ statusCode: 400, message: expect.stringMatching(/^malformed JSON: /) });
    const blank = await refusal(' '.repeat(JSON_OFFLOAD_BYTES));
    expect(blank).toMatchObject({ statusCode: 400, message: expect.stringMatching(/body is empty/) });
    const deep = await refusal('['.repeat(40_000) + ']'.repeat(40_000));
    expect(deep).toMatchObject({
      statusCode: 400,
      message: expect.stringMatching(/nested deeper than 64 levels/),
    });
  });

  it('fails the bodies of a thread that dies with a 500, reports it, and parses the next body on a new thread', async () => {
    const exits: Error[] = [];
    const p = pool({
      threads: 1,
      script: new URL('./fixtures/dying-json-worker.ts', import.meta.url),
      onThreadExit: (err) => exits.push(err),
    });
    expect(await p.parse(body('{"before": true}'), () => {})).toEqual({ before: true });
    const died = await p.parse(body('die'), () => {}).catch((err: unknown) => err as ServeError);
    expect(died).toMatchObject({
      statusCode: 500,
      code: 'SERVE_INTERNAL',
      message: 'the JSON parser thread stopped',
    });
    expect(exits.map((e) => e.message)).toEqual(['JSON parser thread exited with code 3']);
    expect(await p.parse(body('{"after": true}'), () => {})).toEqual({ after: true });
  });

  it('parses on the event loop, losing no body, when its threads cannot start at all', async () => {
    const exits: Error[] = [];
    const p = pool({
      threads: 2,
      script: new URL('./fixtures/broken-json-worker.ts', import.meta.url),
      onThreadExit: (err) => exits.push(err),
    });
    const first = body(tensorRequest(20_000, 'first'));
    const released: ArrayBuffer[] = [];
    const value = (await p.parse(first, (buffer) => released.push(buffer))) as { id: string };
    expect(value.id).toBe('first');
    expect(released).toEqual([first.buffer]);
    expect(exits.map((e) => e.message)).toEqual(['JSON parser thread exited with code 4']);
    // From then on it parses here, without starting (and losing) another thread.
    expect(await p.parse(body('{"second": 2}'), () => {})).toEqual({ second: 2 });
    await expect(p.parse(body('{"third": '), () => {})).rejects.toMatchObject({ statusCode: 400 });
    expect(exits).toHaveLength(1);
  });

  it('fails bodies still being parsed with a 503 when closed, and refuses new ones', async () => {
    const p = pool({ threads: 1 });
    const pending = p.parse(body(tensorRequest(200_000)), () => {}).catch((err: unknown) => err);
    await p.close();
    expect(await pending).toMatchObject({ statusCode: 503 });
    await expect(p.parse(body('{}'), () => {})).rejects.toMatchObject({ statusCode: 503 });
  });
});
