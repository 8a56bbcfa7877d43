import { describe, expect, it } from 'vitest';
import {
  decodeBinaryInput,
  encodeBinaryTensor,
  splitBinaryBody,
  wantsBinaryOutput,
} from '../../src/serve/binary-tensor.ts';
import { decodeTensorBytes, encodeTensorBytes } from './fixtures/binary-client.ts';

const input = (datatype: string, shape: number[]) => ({ name: 't', datatype, shape });

describe('decodeBinaryInput', () => {
  it('reads every fixed-width datatype little-endian, aligned or not', () => {
    const cases = [
      ['INT8', [-128, 0, 127]],
      ['UINT16', [0, 65535, 7]],
      ['INT32', [-2147483648, 2147483647, 0]],
      ['INT64', ['-9223372036854775808', 9007199254740991, 1]],
      ['UINT64', ['18446744073709551615', 0, 2]],
      ['FP16', [1.5, -2, 'Infinity']],
      ['FP64', [Math.PI, 'NaN', -0.25]],
      ['BOOL', [true, false, true]],
    ] as const;
    for (const [datatype, values] of cases) {
      const bytes = encodeTensorBytes(datatype, values);
      // An odd offset inside a larger buffer: decoding must not depend on alignment.
      const padded = Buffer.concat([Buffer.alloc(1), bytes]).subarray(1);
      const tensor = decodeBinaryInput(input(datatype, [3]), undefined, padded);
      expect(tensor.dims).toEqual([3]);
      expect(decodeTensorBytes(datatype, encodeBinaryTensor(tensor)), datatype).toEqual(values);
    }
  });

  it('views aligned bytes in place and copies unaligned ones', () => {
    const body = Buffer.alloc(24);
    const aligned = decodeBinaryInput(input('FP32', [4]), undefined, body.subarray(8, 24));
    body.writeFloatLE(2.5, 8);
    expect((aligned.data as Float32Array)[0]).toBe(2.5);
    const unaligned = decodeBinaryInput(input('FP32', [4]), undefined, body.subarray(6, 22));
    body.writeFloatLE(7, 6);
    expect((unaligned.data as Float32Array)[0]).not.toBe(7);
  });

  it('rejects BOOL bytes other than 0 and 1', () => {
    expect(() => decodeBinaryInput(input('BOOL', [3]), undefined, Buffer.from([1, 0, 2]))).toThrow(
      /BOOL element 2 is byte 2, but must be 0 or 1/,
    );
  });

  it('reads length-prefixed BYTES and rejects framing that does not add up', () => {
    const bytes = encodeTensorBytes('BYTES', ['héllo', '', 'x']);
    expect(decodeBinaryInput(input('BYTES', [3]), undefined, bytes).data).toEqual(['héllo', '', 'x']);
    expect(() => decodeBinaryInput(input('BYTES', [4]), undefined, bytes)).toThrow(
      /ends at BYTES element 3 of 4/,
    );
    expect(() => decodeBinaryInput(input('BYTES', [2]), undefined, bytes)).toThrow(
      /5 bytes of binary data are left after its 2 BYTES elements/,
    );
    const lying = Buffer.from([200, 0, 0, 0, 65]);
    expect(() => decodeBinaryInput(input('BYTES', [1]), undefined, lying)).toThrow(
      /BYTES element 0 says 200 bytes but only 1 remain/,
    );
  });

  it('refuses BYTES a shape cannot hold, that are not UTF-8 or that hold a NUL, before allocating', () => {
    const bytes = encodeTensorBytes('BYTES', ['a', 'b']);
    for (const shape of [
      [1, 4294967296],
      [1, 1e300],
    ]) {
      expect(() => decodeBinaryInput(input('BYTES', shape), undefined, bytes)).toThrow(
        /BYTES elements, but binary_data_size 10 holds at most 2/,
      );
    }
    const latin1 = Buffer.from([1, 0, 0, 0, 0xff, 1, 0, 0, 0, 0x61]);
    expect(() => decodeBinaryInput(input('BYTES', [2]), undefined, latin1)).toThrow(
      /BYTES element 0 is not valid UTF-8/,
    );
    const nul = encodeTensorBytes('BYTES', ['x', 'a\u0000b']);
    expect(() => decodeBinaryInput(input('BYTES', [2]), undefined, nul)).toThrow(
      /BYTES element 1 contains a NUL character/,
    );
  });

  it('checks the shape against the model before reading', () => {
    const spec = { name: 't', datatype: 'FP32' as const, shape: [-1, 2] };
    expect(() => decodeBinaryInput(input('FP32', [1, 3]), spec, Buffer.alloc(12))).toThrow(/dim 1 must be 2/);
    expect(() => decodeBinaryInput(input('FP32', [2, 2]), spec, Buffer.alloc(12))).toThrow(
      /needs 16 bytes of binary data but binary_data_size is 12/,
    );
  });
});

describe('splitBinaryBody and wantsBinaryOutput', () => {
  it('splits at the header length and refuses lengths that do not fit the body', () => {
    const { json, binary } = splitBinaryBody(Buffer.from('{"a":1}\x01\x02'), '7');
    expect(json).toBe('{"a":1}');
    expect([...binary]).toEqual([1, 2]);
    expect(() => splitBinaryBody(Buffer.from('{}'), '0')).toThrow(/JSON part is 0 bytes/);
    expect(() => splitBinaryBody(Buffer.from('{}'), '-1')).toThrow(/must be a byte count/);
  });

  it('lets binary_data on an output override binary_data_output', () => {
    expect(wantsBinaryOutput(undefined, undefined)).toBe(false);
    expect(wantsBinaryOutput({ binary_data_output: true }, undefined)).toBe(true);
    expect(wantsBinaryOutput({ binary_data_output: true }, { binary_data: false })).toBe(false);
    expect(wantsBinaryOutput({}, { binary_data: true })).toBe(true);
    expect(() => wantsBinaryOutput({}, { binary_data: 1 })).toThrow(/binary_data must be true or false/);
    expect(() => wantsBinaryOutput({ binary_data_output: 'yes' }, { binary_data: true })).toThrow(
      /parameters.binary_data_output must be true or false/,
    );
  });
});
