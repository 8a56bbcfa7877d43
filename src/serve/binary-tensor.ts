// The Open Inference Protocol's binary tensor data extension (KServe / Triton): a JSON inference
// header of `Inference-Header-Content-Length` bytes, then the raw bytes of each binary tensor in
// input order. Tensors travel little-endian, row-major, unpadded; BOOL is one byte (0 or 1), BYTES
// is a 4-byte little-endian length before each element. Typed arrays here use the platform's byte
// order, which is little-endian on every platform Node and Fargate run on (x86-64, arm64).
import type { TensorSpec } from '../model/types.ts';
import { badRequest } from './errors.ts';
import {
  DATATYPE_TO_ORT,
  TYPED_ARRAYS,
  checkByteString,
  checkShape,
  elementCount,
  isDatatype,
} from './tensor-codec.ts';
import type { WireTensor } from './tensor-codec.ts';

/** Request and response header naming the length of the JSON part of a binary body. */
export const INFERENCE_HEADER = 'inference-header-content-length';

/** Where a parsed request body keeps its binary part (a symbol, so schema validation never sees it). */
export const BINARY_PART: unique symbol = Symbol('slipway.binaryPart');

/** A parsed JSON body that may carry the binary part of the request. */
export interface WithBinaryPart {
  [BINARY_PART]?: Buffer;
}

/** The byte count an `Inference-Header-Content-Length` value gives, or undefined when it is not one. */
export function inferenceHeaderLength(headerValue: string): number | undefined {
  const text = headerValue.trim();
  return /^\d{1,15}$/.test(text) ? Number(text) : undefined;
}

/**
 * Splits a binary-extension body at the length given by the `Inference-Header-Content-Length`
 * header. The header value must be a decimal integer within the body.
 */
export function splitBinaryBody(body: Buffer, headerValue: string): { json: string; binary: Buffer } {
  const length = inferenceHeaderLength(headerValue);
  if (length === undefined) {
    throw badRequest(
      `the Inference-Header-Content-Length header must be a byte count, got ${JSON.stringify(headerValue.slice(0, 40))}`,
    );
  }
  if (length === 0 || length > body.length) {
    throw badRequest(
      `the Inference-Header-Content-Length header says the JSON part is ${length} bytes but the body has ${body.length}`,
    );
  }
  return { json: body.toString('utf8', 0, length), binary: body.subarray(length) };
}

/** The `binary_data_size` parameter of an input, or undefined when the input carries JSON data. */
export function binaryDataSize(parameters: unknown, what: string): number | undefined {
  if (parameters === null || typeof parameters !== 'object') return undefined;
  const size = (parameters as Record<string, unknown>).binary_data_size;
  if (size === undefined) return undefined;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw badRequest(`${what}: parameters.binary_data_size must be an integer >= 0`);
  }
  return size;
}

/**
 * Reads the next `size` bytes of the binary part as the input's tensor, with the same datatype and
 * shape checks as JSON data. The tensor views the body's memory when it can (no copy).
 */
export function decodeBinaryInput(
  input: { readonly name: string; readonly shape: readonly number[]; readonly datatype: string },
  spec: TensorSpec | undefined,
  bytes: Buffer,
): WireTensor {
  const what = `input '${input.name}'`;
  if (!isDatatype(input.datatype))
    throw badRequest(`${what}: datatype ${input.datatype} is not a v2 datatype`);
  const datatype = input.datatype;
  if (spec && spec.datatype !== datatype) {
    throw badRequest(`${what}: the model expects datatype ${spec.datatype}, got ${datatype}`);
  }
  if (spec) checkShape(input.shape, spec, what);
  const count = elementCount(input.shape);
  const dims = [...input.shape];
  if (datatype === 'BYTES') {
    // Each element takes at least its 4-byte length, which bounds what a shape may claim.
    if (count * 4 > bytes.length) {
      throw badRequest(
        `${what}: shape [${input.shape.join(',')}] has ${count} BYTES elements, but binary_data_size ${bytes.length} holds at most ${Math.floor(bytes.length / 4)}`,
      );
    }
    return { type: 'string', dims, data: readByteStrings(bytes, count, what) };
  }
  const Typed = TYPED_ARRAYS[datatype];
  const width = Typed.BYTES_PER_ELEMENT;
  if (bytes.length !== count * width) {
    throw badRequest(
      `${what}: shape [${input.shape.join(',')}] of ${datatype} needs ${count * width} bytes of binary data but binary_data_size is ${bytes.length}`,
    );
  }
  // A view in place when the bytes sit on an element boundary (the body reader aligns the binary
  // part for this), otherwise an aligned copy.
  const data =
    bytes.byteOffset % width === 0
      ? new Typed(bytes.buffer, bytes.byteOffset, count)
      : new Typed(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  if (datatype === 'BOOL') {
    const bad = (data as Uint8Array).findIndex((b) => b > 1);
    if (bad >= 0) {
      throw badRequest(`${what}: BOOL element ${bad} is byte ${data[bad]}, but must be 0 or 1`);
    }
  }
  return { type: DATATYPE_TO_ORT[datatype], dims, data };
}

/** Decodes UTF-8 and throws on malformed bytes instead of replacing them with U+FFFD. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function readByteStrings(bytes: Buffer, count: number, what: string): string[] {
  const out = new Array<string>(count);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > bytes.length) {
      throw badRequest(`${what}: the binary data ends at BYTES element ${i} of ${count}`);
    }
    const length = bytes.readUInt32LE(offset);
    offset += 4;
    if (offset + length > bytes.length) {
      throw badRequest(
        `${what}: BYTES element ${i} says ${length} bytes but only ${bytes.length - offset} remain`,
      );
    }
    let text: string;
    try {
      text = UTF8.decode(bytes.subarray(offset, offset + length));
    } catch {
      throw badRequest(
        `${what}: BYTES element ${i} is not valid UTF-8, which onnxruntime's string tensors need`,
      );
    }
    checkByteString(text, what, i);
    out[i] = text;
    offset += length;
  }
  if (offset !== bytes.length) {
    throw badRequest(
      `${what}: ${bytes.length - offset} bytes of binary data are left after its ${count} BYTES elements`,
    );
  }
  return out;
}

/** The raw bytes of a tensor in the extension's layout (views, not copies, for numeric tensors). */
export function encodeBinaryTensor(tensor: WireTensor): Buffer {
  const { data } = tensor;
  if (Array.isArray(data)) {
    const parts: Buffer[] = [];
    for (const s of data) {
      const bytes = Buffer.from(s, 'utf8');
      const length = Buffer.allocUnsafe(4);
      length.writeUInt32LE(bytes.length);
      parts.push(length, bytes);
    }
    return Buffer.concat(parts);
  }
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** True when the request asks for this output as binary (`binary_data` overrides `binary_data_output`). */
export function wantsBinaryOutput(requestParameters: unknown, outputParameters: unknown): boolean {
  const flag = (parameters: unknown, key: string, what: string): boolean | undefined => {
    if (parameters === null || typeof parameters !== 'object') return undefined;
    const value = (parameters as Record<string, unknown>)[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') throw badRequest(`${what}.${key} must be true or false`);
    return value;
  };
  // Both are checked even when the output's own flag decides, so a bad request-level value is
  // reported rather than silently ignored.
  const forAll = flag(requestParameters, 'binary_data_output', 'parameters');
  return flag(outputParameters, 'binary_data', 'output parameters') ?? forAll ?? false;
}
