import { describe, expect, it } from 'vitest';
import type { Datatype, TensorSpec } from '../../src/model/types.ts';
import type { ModelInfo } from '../../src/serve/model-host.ts';
import { invocationFeeds } from '../../src/serve/routes/sagemaker.ts';

const spec = (name: string, datatype: Datatype, shape: number[]): TensorSpec => ({ name, datatype, shape });
const pair: ModelInfo = {
  name: 'pair',
  version: '1',
  sourceUri: 'file:///pair',
  sha256: '0'.repeat(64),
  loadedAt: new Date(0).toISOString(),
  signature: { inputs: [spec('a', 'FP32', [-1, 2]), spec('b', 'FP32', [-1, 2])], outputs: [] },
  labels: undefined,
  batchable: true,
};

/** A single-input model whose input has the given shape. */
const single = (shape: number[]): ModelInfo => ({
  ...pair,
  name: 'single',
  signature: { inputs: [spec('x', 'FP32', shape)], outputs: [] },
});

describe('invocationFeeds', () => {
  it('takes plain numbers as instances of a model whose input is a batch of scalars', () => {
    const { feeds, count } = invocationFeeds({ instances: [1, 2, 3] }, single([-1]), 8);
    expect(count).toBe(3);
    expect(feeds.x).toEqual({ type: 'float32', dims: [3], data: new Float32Array([1, 2, 3]) });
  });

  it.each([
    [{ instances: [1, 2, 3, 4] }, "input 'x' has shape [4] but the model expects rank 2"],
    [{ inputs: [[1, 2], 3] }, "input 'x': instance 1 has 1 values but instance 0 has 2"],
  ])('refuses plain numbers where the model expects rows with a 400 (%j)', (body, message) => {
    expect(() => invocationFeeds(body, single([-1, 2]), 8)).toThrow(
      expect.objectContaining({ statusCode: 400, message: expect.stringContaining(message) as unknown }),
    );
  });

  it('stacks every input and counts its instances', () => {
    const { feeds, count } = invocationFeeds(
      {
        instances: [
          { a: [1, 2], b: [3, 4] },
          { a: [5, 6], b: [7, 8] },
        ],
      },
      pair,
      8,
    );
    expect(count).toBe(2);
    expect(feeds.a).toEqual({ type: 'float32', dims: [2, 2], data: new Float32Array([1, 2, 5, 6]) });
    expect(feeds.b).toEqual({ type: 'float32', dims: [2, 2], data: new Float32Array([3, 4, 7, 8]) });
  });

  it('refuses inputs with different numbers of instances, which onnxruntime would broadcast', () => {
    expect(() =>
      invocationFeeds(
        {
          inputs: {
            a: [
              [1, 2],
              [3, 4],
            ],
            b: [[5, 6]],
          },
        },
        pair,
        8,
      ),
    ).toThrow("input 'b' has 1 instance(s) but input 'a' has 2; give every input the same number");
  });
});
