import { describe, expect, it } from 'vitest';
import { ServeError } from '../../src/serve/errors.ts';
import { fromFloat16Bits, toFloat16Bits } from '../../src/serve/float16.ts';
import {
  concatRows,
  decodeV2Input,
  encodeV2Output,
  flattenData,
  nest,
  sliceRows,
} from '../../src/serve/tensor-codec.ts';
import type { TensorSpec } from '../../src/model/types.ts';

const spec = (datatype: TensorSpec['datatype'], shape: number[]): TensorSpec => ({
  name: 'x',
  datatype,
  shape,
});

function rejects(fn: () => unknown, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ServeError);
  expect((caught as ServeError).statusCode).toBe(400);
  expect((caught as ServeError).message).toMatch(message);
}

describe('decodeV2Input', () => {
  it('decodes flat and nested FP32 data into a Float32Array with the given shape', () => {
    const flat = decodeV2Input(
      { name: 'x', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3, 4] },
      spec('FP32', [-1, 2]),
    );
    const nested = decodeV2Input(
      {
        name: 'x',
        shape: [2, 2],
        datatype: 'FP32',
        data: [
          [1, 2],
          [3, 4],
        ],
      },
      undefined,
    );
    expect(flat).toEqual({ type: 'float32', dims: [2, 2], data: new Float32Array([1, 2, 3, 4]) });
    expect(nested).toEqual(flat);
  });

  it('decodes every integer type, BOOL, BYTES and 64-bit integers given as strings', () => {
    expect(
      decodeV2Input({ name: 'x', shape: [2], datatype: 'INT8', data: [-128, 127] }, undefined).data,
    ).toEqual(new Int8Array([-128, 127]));
    expect(
      decodeV2Input({ name: 'x', shape: [1], datatype: 'UINT32', data: [4294967295] }, undefined).data,
    ).toEqual(new Uint32Array([4294967295]));
    expect(
      decodeV2Input(
        { name: 'x', shape: [2], datatype: 'INT64', data: [-5, '9223372036854775807'] },
        undefined,
      ).data,
    ).toEqual(new BigInt64Array([-5n, 9223372036854775807n]));
    expect(
      decodeV2Input({ name: 'x', shape: [2], datatype: 'BOOL', data: [true, false] }, undefined),
    ).toEqual({
      type: 'bool',
      dims: [2],
      data: new Uint8Array([1, 0]),
    });
    expect(decodeV2Input({ name: 'x', shape: [1], datatype: 'BYTES', data: ['hi'] }, undefined).data).toEqual(
      ['hi'],
    );
  });

  it('accepts NaN and Infinity spelled as strings for float types only', () => {
    const t = decodeV2Input(
      { name: 'x', shape: [3], datatype: 'FP64', data: ['NaN', 'Infinity', '-Infinity'] },
      undefined,
    );
    expect(Array.from(t.data as Float64Array)).toEqual([NaN, Infinity, -Infinity]);
    rejects(
      () => decodeV2Input({ name: 'x', shape: [1], datatype: 'INT32', data: ['NaN'] }, undefined),
      /data\[0\] = "NaN" is not a valid INT32/,
    );
  });

  it('rejects a shape that does not match the data length, naming both', () => {
    rejects(
      () => decodeV2Input({ name: 'x', shape: [2, 3], datatype: 'FP32', data: [1, 2, 3] }, undefined),
      /shape \[2,3\] needs 6 elements but data has 3/,
    );
  });

  it('rejects a datatype that is not v2, or not the one the model expects', () => {
    rejects(
      () => decodeV2Input({ name: 'x', shape: [1], datatype: 'FLOAT', data: [1] }, undefined),
      /"FLOAT" is not one of/,
    );
    rejects(
      () =>
        decodeV2Input({ name: 'x', shape: [1, 2], datatype: 'INT32', data: [1, 2] }, spec('FP32', [-1, 2])),
      /expects datatype FP32, got INT32/,
    );
  });

  it('rejects a shape that breaks the model signature', () => {
    rejects(
      () =>
        decodeV2Input({ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }, spec('FP32', [-1, 2])),
      /dim 1 must be 2/,
    );
    rejects(
      () => decodeV2Input({ name: 'x', shape: [2], datatype: 'FP32', data: [1, 2] }, spec('FP32', [-1, 2])),
      /rank 2/,
    );
  });

  it('rejects out-of-range and fractional integers and wrongly typed elements', () => {
    rejects(
      () => decodeV2Input({ name: 'x', shape: [1], datatype: 'UINT8', data: [256] }, undefined),
      /UINT8.*0 to 255/,
    );
    rejects(
      () => decodeV2Input({ name: 'x', shape: [1], datatype: 'INT16', data: [1.5] }, undefined),
      /INT16/,
    );
    rejects(
      () => decodeV2Input({ name: 'x', shape: [1], datatype: 'BOOL', data: [1] }, undefined),
      /true or false/,
    );
    rejects(
      () => decodeV2Input({ name: 'x', shape: [1], datatype: 'FP32', data: [null] }, undefined),
      /expected a number/,
    );
    rejects(
      () => decodeV2Input({ name: 'x', shape: [1], datatype: 'BYTES', data: [1] }, undefined),
      /expected a string/,
    );
  });

  it('rejects nested data whose structure is not the shape, even when the element count is', () => {
    const nested = (data: unknown[], shape: number[]) => () =>
      decodeV2Input({ name: 'x', shape, datatype: 'FP32', data }, undefined);
    rejects(
      nested([[1, 2, 3], [4]], [2, 2]),
      /data\[0\] has 3 elements but shape \[2,2\] needs 2 at depth 1/,
    );
    rejects(
      nested(
        [
          [1, 2],
          [3, 4],
        ],
        [1, 4],
      ),
      /data has 2 elements but shape \[1,4\] needs 1 at depth 0/,
    );
    rejects(nested([[1, 2], 3, 4], [3]), /data\[0\] is an array, but shape \[3\] has rank 1/);
    rejects(
      nested(
        [
          [1, 2],
          [3, [4]],
        ],
        [2, 2],
      ),
      /data\[1\]\[1\] is an array/,
    );
    rejects(
      nested([[[1]], [2]], [2, 1, 1]),
      /data\[1\]\[0\] is not an array, but shape \[2,1,1\] nests 3 levels/,
    );
    expect(
      nested(
        [
          [[1], [2]],
          [[3], [4]],
        ],
        [2, 2, 1],
      )().data,
    ).toEqual(new Float32Array([1, 2, 3, 4]));
    expect(nested([1, 2, 3, 4], [2, 2])().data).toEqual(new Float32Array([1, 2, 3, 4]));
  });

  it('rejects values the model would silently receive changed', () => {
    // 2^53 + 1 reached the server as 2^53: JSON numbers that large are not exact.
    rejects(
      () =>
        decodeV2Input(
          { name: 'x', shape: [2], datatype: 'INT64', data: [JSON.parse('9007199254740993') as number, 1] },
          undefined,
        ),
      /data\[0\] = 9007199254740992 is beyond 2\^53.*as decimal strings/,
    );
    expect(
      decodeV2Input(
        { name: 'x', shape: [2], datatype: 'UINT64', data: ['9007199254740993', 2 ** 53 - 1] },
        undefined,
      ).data,
    ).toEqual(new BigUint64Array([9007199254740993n, 9007199254740991n]));
    rejects(
      () => decodeV2Input({ name: 'x', shape: [2], datatype: 'FP32', data: [1, -1e39] }, undefined),
      /data\[1\] = -1e\+39 is outside the FP32 range/,
    );
    rejects(
      () => decodeV2Input({ name: 'x', shape: [1], datatype: 'FP16', data: [65520] }, undefined),
      /data\[0\] = 65520 is outside the FP16 range \(±65504\)/,
    );
    const edges = decodeV2Input(
      { name: 'x', shape: [3], datatype: 'FP16', data: [65504, '-Infinity', 'NaN'] },
      undefined,
    ).data as Uint16Array;
    expect([...edges].map(fromFloat16Bits)).toEqual([65504, -Infinity, NaN]);
    expect(
      decodeV2Input({ name: 'x', shape: [2], datatype: 'FP64', data: [1e300, 'Infinity'] }, undefined).data,
    ).toEqual(new Float64Array([1e300, Infinity]));
    rejects(
      () => decodeV2Input({ name: 'x', shape: [2], datatype: 'BYTES', data: ['ok', 'a\u0000bc'] }, undefined),
      /BYTES element 1 contains a NUL character/,
    );
  });
});

describe('flattenData', () => {
  it('refuses nesting deeper than the limit instead of overflowing the stack', () => {
    let deep: unknown = [1];
    for (let i = 0; i < 10_000; i++) deep = [deep];
    rejects(() => flattenData(deep, 'input x'), /nested deeper than 32/);
  });
});

describe('encodeV2Output', () => {
  it('writes non-finite floats as strings and unsafe 64-bit integers as decimal strings', () => {
    const f = encodeV2Output('y', {
      type: 'float32',
      dims: [3],
      data: new Float32Array([1.5, NaN, -Infinity]),
    });
    expect(f).toEqual({ name: 'y', datatype: 'FP32', shape: [3], data: [1.5, 'NaN', '-Infinity'] });
    const i = encodeV2Output('z', { type: 'int64', dims: [2], data: new BigInt64Array([7n, 2n ** 62n]) });
    expect(i.data).toEqual([7, (2n ** 62n).toString()]);
    const b = encodeV2Output('b', { type: 'bool', dims: [2], data: new Uint8Array([0, 1]) });
    expect(b).toEqual({ name: 'b', datatype: 'BOOL', shape: [2], data: [false, true] });
  });
});

describe('float16', () => {
  it('round-trips half-precision values and rounds to nearest', () => {
    for (const v of [0, 1, -2.5, 65504, 0.0001, Infinity])
      expect(fromFloat16Bits(toFloat16Bits(v))).toBeCloseTo(v, 3);
    expect(toFloat16Bits(1)).toBe(0x3c00);
    expect(Number.isNaN(fromFloat16Bits(toFloat16Bits(NaN)))).toBe(true);
    expect(fromFloat16Bits(toFloat16Bits(1e6))).toBe(Infinity);
  });
});

describe('batch helpers', () => {
  it('concatenates along dim 0 and slices back the same rows', () => {
    const a = { type: 'float32' as const, dims: [1, 2], data: new Float32Array([1, 2]) };
    const b = { type: 'float32' as const, dims: [2, 2], data: new Float32Array([3, 4, 5, 6]) };
    const joined = concatRows([a, b]);
    expect(joined).toEqual({ type: 'float32', dims: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) });
    expect(sliceRows(joined, 1, 2)).toEqual(b);
    expect(nest([1, 2, 3, 4, 5, 6], [3, 2])).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
  });
});
