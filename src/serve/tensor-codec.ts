import { DATATYPES } from '../model/types.ts';
import type { Datatype, TensorSpec } from '../model/types.ts';
import { badRequest } from './errors.ts';
import { fromFloat16Bits, toFloat16Bits } from './float16.ts';

/** onnxruntime tensor element types the service handles. */
export type OrtType =
  | 'bool'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'float16'
  | 'float32'
  | 'float64'
  | 'string';

/** Element storage of a tensor: a typed array, or strings for BYTES. */
export type TensorData =
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Float32Array
  | Float64Array
  | string[];

/** A tensor in the form that crosses the worker-thread boundary (structured-cloneable). */
export interface WireTensor {
  readonly type: OrtType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

/** One v2 request input after JSON parsing (fields checked by the route schema). */
export interface V2Input {
  readonly name: string;
  readonly shape: readonly number[];
  readonly datatype: string;
  /** JSON elements; absent when the input travels as binary (`parameters.binary_data_size`). */
  readonly data?: unknown;
  readonly parameters?: Record<string, unknown>;
}

/** One v2 response output. */
export interface V2Output {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: (number | string | boolean)[];
}

/** v2 datatype to onnxruntime type. */
export const DATATYPE_TO_ORT: Readonly<Record<Datatype, OrtType>> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
};

/** onnxruntime type to v2 datatype. */
export const ORT_TO_DATATYPE: Readonly<Record<OrtType, Datatype>> = Object.fromEntries(
  Object.entries(DATATYPE_TO_ORT).map(([k, v]) => [v, k]),
) as Record<OrtType, Datatype>;

/** Deepest array nesting accepted in tensor data (a rank-32 tensor is already absurd). */
export const MAX_TENSOR_RANK = 32;

const INT_RANGES: Partial<Record<Datatype, readonly [number, number]>> = {
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
};

const INT64_RANGE = [-(2n ** 63n), 2n ** 63n - 1n] as const;
const UINT64_RANGE = [0n, 2n ** 64n - 1n] as const;

/** True when `value` names a v2 datatype. */
export function isDatatype(value: string): value is Datatype {
  return (DATATYPES as readonly string[]).includes(value);
}

/** Number of elements of a shape. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Typed-array storage of a numeric tensor. */
export type NumericData = Exclude<TensorData, string[]>;

/** The typed array that stores each fixed-width datatype (FP16 as its raw bits, BOOL as bytes). */
export const TYPED_ARRAYS: Readonly<
  Record<
    Exclude<Datatype, 'BYTES'>,
    {
      new (length: number): NumericData;
      new (buffer: ArrayBufferLike, offset?: number, length?: number): NumericData;
      readonly BYTES_PER_ELEMENT: number;
    }
  >
> = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  INT8: Int8Array,
  UINT16: Uint16Array,
  INT16: Int16Array,
  FP16: Uint16Array,
  UINT32: Uint32Array,
  INT32: Int32Array,
  FP32: Float32Array,
  UINT64: BigUint64Array,
  INT64: BigInt64Array,
  FP64: Float64Array,
};

/** Zero-filled storage for `n` elements of a datatype (empty strings for BYTES are the caller's job). */
export function allocateData(datatype: Datatype, n: number): TensorData {
  return datatype === 'BYTES' ? new Array<string>(n) : new TYPED_ARRAYS[datatype](n);
}

/**
 * The dimensions of nested arrays read along their first elements: `[[1, 2], [3, 4]]` gives
 * [2, 2], a number gives []. What a SageMaker instance's shape is taken to be.
 */
export function leadingDims(value: unknown): number[] {
  const dims: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0] as unknown) dims.push(v.length);
  return dims;
}

/**
 * Why nested `data` does not have the structure `shape` describes (each array at depth k has
 * shape[k] elements, numbers only at the innermost level), or undefined when it does or when the
 * data is flat (its length alone is checked against the shape). Without this, `[[1, 2, 3], [4]]`
 * would pass as shape [2, 2]. Iterative, so hostile nesting cannot overflow the stack.
 */
export function nestedShapeProblem(data: readonly unknown[], shape: readonly number[]): string | undefined {
  if (!data.some((item) => Array.isArray(item))) return undefined;
  if (shape.length === 0) return 'data is nested, but shape [] is a scalar';
  interface Frame {
    readonly arr: readonly unknown[];
    readonly depth: number;
    readonly parent: Frame | undefined;
    readonly index: number;
  }
  const path = (frame: Frame, index?: number): string => {
    const at: number[] = index === undefined ? [] : [index];
    for (let f: Frame | undefined = frame; f?.parent; f = f.parent) at.unshift(f.index);
    return `data${at.map((i) => `[${i}]`).join('')}`;
  };
  const wanted = `shape [${shape.join(',')}]`;
  const stack: Frame[] = [{ arr: data, depth: 0, parent: undefined, index: 0 }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const { arr, depth } = frame;
    if (arr.length !== shape[depth]) {
      return `${path(frame)} has ${arr.length} elements but ${wanted} needs ${shape[depth]} at depth ${depth}`;
    }
    const innermost = depth === shape.length - 1;
    for (let i = arr.length - 1; i >= 0; i--) {
      const item = arr[i];
      if (Array.isArray(item) === innermost) {
        return innermost
          ? `${path(frame, i)} is an array, but ${wanted} has rank ${shape.length}`
          : `${path(frame, i)} is not an array, but ${wanted} nests ${shape.length} levels deep`;
      }
      if (!innermost) stack.push({ arr: item as unknown[], depth: depth + 1, parent: frame, index: i });
    }
  }
  return undefined;
}

/**
 * Flattens nested JSON arrays (row-major) without recursion, so hostile nesting cannot overflow
 * the stack; deeper than `maxDepth` is a 400.
 */
export function flattenData(data: unknown, what: string, maxDepth = MAX_TENSOR_RANK): unknown[] {
  if (!Array.isArray(data)) throw badRequest(`${what}.data must be an array`);
  let nested = false;
  for (const item of data) {
    if (Array.isArray(item)) {
      nested = true;
      break;
    }
  }
  if (!nested) return data as unknown[];
  const out: unknown[] = [];
  const stack: { arr: unknown[]; i: number }[] = [{ arr: data as unknown[], i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.arr.length) {
      stack.pop();
      continue;
    }
    const item = top.arr[top.i++];
    if (Array.isArray(item)) {
      if (stack.length >= maxDepth) throw badRequest(`${what}.data is nested deeper than ${maxDepth} levels`);
      stack.push({ arr: item as unknown[], i: 0 });
    } else {
      out.push(item);
    }
  }
  return out;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

function parseFloatElement(value: unknown, what: string, i: number, datatype: Datatype): number {
  if (typeof value === 'number') return value;
  // JSON has no NaN/Infinity literals; the string forms are the accepted spelling for float tensors.
  if (value === 'NaN') return NaN;
  if (value === 'Infinity' || value === 'inf') return Infinity;
  if (value === '-Infinity' || value === '-inf') return -Infinity;
  throw badRequest(`${what}.data[${i}] = ${describe(value)} is not a valid ${datatype} (expected a number)`);
}

function parseBigIntElement(value: unknown, what: string, i: number, datatype: 'INT64' | 'UINT64'): bigint {
  let big: bigint | undefined;
  if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) {
    // JSON.parse has already rounded it to the nearest double: the value the client meant is lost.
    throw badRequest(
      `${what}.data[${i}] = ${describe(value)} is beyond 2^53, where JSON numbers are not exact; send ${datatype} values that large as decimal strings`,
    );
  }
  if (typeof value === 'number' && Number.isInteger(value)) big = BigInt(value);
  else if (typeof value === 'string' && /^-?\d{1,20}$/.test(value)) big = BigInt(value);
  const [lo, hi] = datatype === 'INT64' ? INT64_RANGE : UINT64_RANGE;
  if (big === undefined || big < lo || big > hi) {
    throw badRequest(
      `${what}.data[${i}] = ${describe(value)} is not a valid ${datatype} (expected an integer)`,
    );
  }
  return big;
}

function fill(datatype: Datatype, flat: ArrayLike<unknown>, what: string): TensorData {
  const n = flat.length;
  const out = allocateData(datatype, n);
  if (datatype === 'FP32' || datatype === 'FP64') {
    const arr = out as Float32Array | Float64Array;
    for (let i = 0; i < n; i++) {
      const v = flat[i];
      const x = typeof v === 'number' ? v : parseFloatElement(v, what, i, datatype);
      arr[i] = x;
      // A finite number too large for FP32 would silently become an infinity.
      if (!Number.isFinite(arr[i]!) && Number.isFinite(x)) throw outOfRange(what, i, v, 'FP32');
    }
  } else if (datatype === 'FP16') {
    const arr = out as Uint16Array;
    for (let i = 0; i < n; i++) {
      const x = parseFloatElement(flat[i], what, i, datatype);
      arr[i] = toFloat16Bits(x);
      if ((arr[i]! & 0x7fff) === 0x7c00 && Number.isFinite(x)) throw outOfRange(what, i, flat[i], 'FP16');
    }
  } else if (datatype === 'BOOL') {
    const arr = out as Uint8Array;
    for (let i = 0; i < n; i++) {
      const v = flat[i];
      if (typeof v !== 'boolean') {
        throw badRequest(`${what}.data[${i}] = ${describe(v)} is not a valid BOOL (expected true or false)`);
      }
      arr[i] = v ? 1 : 0;
    }
  } else if (datatype === 'BYTES') {
    const arr = out as string[];
    for (let i = 0; i < n; i++) {
      const v = flat[i];
      if (typeof v !== 'string') {
        throw badRequest(
          `${what}.data[${i}] = ${describe(v)} is not a valid BYTES element (expected a string)`,
        );
      }
      checkByteString(v, what, i);
      arr[i] = v;
    }
  } else if (datatype === 'INT64' || datatype === 'UINT64') {
    const arr = out as BigInt64Array | BigUint64Array;
    for (let i = 0; i < n; i++) arr[i] = parseBigIntElement(flat[i], what, i, datatype);
  } else {
    const [lo, hi] = INT_RANGES[datatype]!;
    const arr = out as Int32Array;
    for (let i = 0; i < n; i++) {
      const v = flat[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
        throw badRequest(
          `${what}.data[${i}] = ${describe(v)} is not a valid ${datatype} (expected an integer from ${lo} to ${hi})`,
        );
      }
      arr[i] = v;
    }
  }
  return out;
}

function outOfRange(what: string, i: number, value: unknown, datatype: 'FP32' | 'FP16'): Error {
  const max = datatype === 'FP32' ? '3.4028235e38' : '65504';
  return badRequest(
    `${what}.data[${i}] = ${describe(value)} is outside the ${datatype} range (±${max}); send "Infinity" or "-Infinity" if that is what you mean`,
  );
}

/**
 * Refuses a BYTES element onnxruntime would change: its string tensors end each element at the
 * first NUL character, so "a\u0000bc" would silently reach the model as "a".
 */
export function checkByteString(value: string, what: string, i: number): void {
  if (value.includes('\0')) {
    throw badRequest(
      `${what}: BYTES element ${i} contains a NUL character, which onnxruntime's string tensors cannot hold`,
    );
  }
}

/** Checks a request shape against the model's declared shape (-1 = any size). */
export function checkShape(shape: readonly number[], spec: TensorSpec, what: string): void {
  if (shape.length !== spec.shape.length) {
    throw badRequest(
      `${what} has shape [${shape.join(',')}] but the model expects rank ${spec.shape.length} ([${spec.shape.join(',')}], -1 = any)`,
    );
  }
  for (let i = 0; i < shape.length; i++) {
    const want = spec.shape[i]!;
    if (want >= 0 && shape[i] !== want) {
      throw badRequest(
        `${what} has shape [${shape.join(',')}] but the model expects [${spec.shape.join(',')}] (dim ${i} must be ${want})`,
      );
    }
  }
}

/**
 * Decodes one v2 request input into a tensor, validating datatype, shape and every element
 * against the model's spec. Every problem is a 400 that names the input and the element.
 */
export function decodeV2Input(input: V2Input, spec: TensorSpec | undefined): WireTensor {
  const what = `input '${input.name}'`;
  if (!isDatatype(input.datatype)) {
    throw badRequest(`${what}: datatype ${describe(input.datatype)} is not one of ${DATATYPES.join(', ')}`);
  }
  const datatype = input.datatype;
  if (spec && spec.datatype !== datatype) {
    throw badRequest(`${what}: the model expects datatype ${spec.datatype}, got ${datatype}`);
  }
  for (const d of input.shape) {
    if (!Number.isInteger(d) || d < 0) throw badRequest(`${what}: shape dims must be integers >= 0`);
  }
  if (spec) checkShape(input.shape, spec, what);
  const count = elementCount(input.shape);
  // A Float64Array holds numbers a JSON parser thread already flattened (json-parse-worker.ts),
  // which it does only for data nested as the shape says.
  const flat = input.data instanceof Float64Array ? input.data : flattenData(input.data, what);
  const nesting =
    Array.isArray(input.data) && flat !== input.data
      ? nestedShapeProblem(input.data, input.shape)
      : undefined;
  if (nesting !== undefined) throw badRequest(`${what}: ${nesting}`);
  if (flat.length !== count) {
    throw badRequest(
      `${what}: shape [${input.shape.join(',')}] needs ${count} elements but data has ${flat.length}`,
    );
  }
  return { type: DATATYPE_TO_ORT[datatype], dims: [...input.shape], data: fill(datatype, flat, what) };
}

/** Builds a tensor from already-flat JSON values (used by /invocations), validating elements. */
export function tensorFromValues(
  datatype: Datatype,
  dims: readonly number[],
  flat: ArrayLike<unknown>,
  what: string,
): WireTensor {
  return { type: DATATYPE_TO_ORT[datatype], dims: [...dims], data: fill(datatype, flat, what) };
}

function floatOut(v: number): number | string {
  if (Number.isFinite(v)) return v;
  return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
}

/**
 * Flat JSON values of a tensor: non-finite floats become "NaN"/"Infinity"/"-Infinity" (JSON has
 * no literals for them), 64-bit integers outside the safe range become decimal strings.
 */
export function tensorValues(tensor: WireTensor): (number | string | boolean)[] {
  const { data, type } = tensor;
  const n = data.length;
  const out = new Array<number | string | boolean>(n);
  switch (type) {
    case 'float32':
    case 'float64': {
      const arr = data as Float32Array;
      for (let i = 0; i < n; i++) {
        const v = arr[i]!;
        out[i] = Number.isFinite(v) ? v : floatOut(v);
      }
      break;
    }
    case 'float16': {
      const arr = data as Uint16Array;
      for (let i = 0; i < n; i++) out[i] = floatOut(fromFloat16Bits(arr[i]!));
      break;
    }
    case 'bool': {
      const arr = data as Uint8Array;
      for (let i = 0; i < n; i++) out[i] = arr[i] !== 0;
      break;
    }
    case 'int64':
    case 'uint64': {
      const arr = data as BigInt64Array;
      for (let i = 0; i < n; i++) {
        const v = arr[i]!;
        const num = Number(v);
        out[i] = Number.isSafeInteger(num) ? num : v.toString();
      }
      break;
    }
    case 'string': {
      const arr = data as string[];
      for (let i = 0; i < n; i++) out[i] = arr[i]!;
      break;
    }
    default: {
      const arr = data as Int32Array;
      for (let i = 0; i < n; i++) out[i] = arr[i]!;
    }
  }
  return out;
}

/** Encodes a result tensor as a v2 response output. */
export function encodeV2Output(name: string, tensor: WireTensor): V2Output {
  return {
    name,
    datatype: ORT_TO_DATATYPE[tensor.type],
    shape: [...tensor.dims],
    data: tensorValues(tensor),
  };
}

/** Nests flat values into arrays following `dims` (for /invocations predictions). */
export function nest(values: readonly unknown[], dims: readonly number[]): unknown {
  if (dims.length === 0) return values[0];
  const build = (offset: number, level: number): unknown[] => {
    const size = dims[level]!;
    if (level === dims.length - 1) return values.slice(offset, offset + size);
    const stride = elementCount(dims.slice(level + 1));
    const out: unknown[] = [];
    for (let i = 0; i < size; i++) out.push(build(offset + i * stride, level + 1));
    return out;
  };
  return build(0, 0);
}

/** Supplies the memory for a batch: at least `bytes` long, owned by the caller (see BufferRecycler). */
export type BatchAllocator = (bytes: number) => ArrayBuffer;

const freshBuffer: BatchAllocator = (bytes) => new ArrayBuffer(bytes);

/**
 * Concatenates tensors of equal type and trailing dims along dim 0, into memory from `allocate`
 * (a view from offset 0, so the buffer may be longer than the batch).
 */
export function concatRows(
  tensors: readonly WireTensor[],
  allocate: BatchAllocator = freshBuffer,
): WireTensor {
  const first = tensors[0]!;
  if (tensors.length === 1) return first;
  const rows = tensors.reduce((sum, t) => sum + (t.dims[0] ?? 0), 0);
  const dims = [rows, ...first.dims.slice(1)];
  if (first.type === 'string') {
    return { type: first.type, dims, data: tensors.flatMap((t) => t.data as string[]) };
  }
  const total = tensors.reduce((sum, t) => sum + t.data.length, 0);
  const Ctor = (first.data as Float32Array).constructor as new (
    buffer: ArrayBuffer,
    offset: number,
    length: number,
  ) => Float32Array;
  const out = new Ctor(allocate(total * (first.data as Float32Array).BYTES_PER_ELEMENT), 0, total);
  let offset = 0;
  for (const t of tensors) {
    out.set(t.data as Float32Array, offset);
    offset += t.data.length;
  }
  return { type: first.type, dims, data: out };
}

/** Rows [start, start + count) of a tensor along dim 0 (copied, so each request owns its data). */
export function sliceRows(tensor: WireTensor, start: number, count: number): WireTensor {
  const total = tensor.dims[0] ?? 0;
  const per = total === 0 ? 0 : tensor.data.length / total;
  const dims = [count, ...tensor.dims.slice(1)];
  const data =
    tensor.type === 'string'
      ? (tensor.data as string[]).slice(start * per, (start + count) * per)
      : (tensor.data as Float32Array).slice(start * per, (start + count) * per);
  return { type: tensor.type, dims, data };
}

/**
 * The buffers of these tensors that may be transferred (moved, not copied) to another thread:
 * only a typed array that spans its whole, unshared ArrayBuffer, so a transfer never detaches
 * memory that something else (a request body, a Buffer pool slab, another tensor) still uses.
 */
export function transferables(tensors: Iterable<WireTensor>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const { data } of tensors) {
    if (Array.isArray(data)) continue;
    const { buffer } = data;
    if (buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === buffer.byteLength) {
      out.add(buffer);
    }
  }
  return [...out];
}
