import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import { ArtifactError } from './errors.ts';
import type { Datatype, ModelSignature, TensorSpec } from './types.ts';

const { onnx } = onnxProto;

/** ONNX `TensorProto.DataType` values mapped to Open Inference Protocol v2 datatypes. */
export const ONNX_TO_DATATYPE: ReadonlyMap<number, Datatype> = new Map<number, Datatype>([
  [1, 'FP32'],
  [2, 'UINT8'],
  [3, 'INT8'],
  [4, 'UINT16'],
  [5, 'INT16'],
  [6, 'INT32'],
  [7, 'INT64'],
  [8, 'BYTES'],
  [9, 'BOOL'],
  [10, 'FP16'],
  [11, 'FP64'],
  [12, 'UINT32'],
  [13, 'UINT64'],
]);

const ONNX_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'UNDEFINED',
  14: 'COMPLEX64',
  15: 'COMPLEX128',
  16: 'BFLOAT16',
  17: 'FLOAT8E4M3FN',
  18: 'FLOAT8E4M3FNUZ',
  19: 'FLOAT8E5M2',
  20: 'FLOAT8E5M2FNUZ',
  21: 'UINT4',
  22: 'INT4',
};

// Field numbers from onnx.proto (ModelProto.graph, GraphProto.*, TensorProto.name).
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
const TENSOR_NAME = 8;
/** Inputs and outputs are small messages; anything bigger is not a ValueInfoProto we can trust. */
const MAX_VALUE_INFO_BYTES = 1 << 20;
const WINDOW_BYTES = 1 << 16;

function invalid(message: string, cause?: unknown): ArtifactError {
  return new ArtifactError('ARTIFACT_ONNX_INVALID', `model.onnx is not a valid ONNX model: ${message}`, {
    cause,
  });
}

/**
 * Random-access byte source. Initializers can hold gigabytes of weights, so the reader seeks past
 * them instead of decoding the whole ModelProto into memory.
 */
interface ByteSource {
  readonly size: number;
  read(pos: number, length: number): Promise<Uint8Array>;
}

function memorySource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read: (pos, length) => Promise.resolve(bytes.subarray(pos, Math.min(pos + length, bytes.length))),
  };
}

function fileSource(handle: FileHandle, size: number): ByteSource {
  let windowStart = 0;
  let window = new Uint8Array(0);
  return {
    size,
    async read(pos, length) {
      const end = Math.min(pos + length, size);
      if (pos >= windowStart && end <= windowStart + window.length) {
        return window.subarray(pos - windowStart, end - windowStart);
      }
      const want = Math.max(end - pos, WINDOW_BYTES);
      const buffer = Buffer.allocUnsafe(Math.min(want, size - pos));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, pos);
      windowStart = pos;
      window = buffer.subarray(0, bytesRead);
      return window.subarray(0, end - pos);
    },
  };
}

interface Field {
  readonly number: number;
  readonly wireType: number;
  /** Start of the payload (for length-delimited fields). */
  readonly start: number;
  /** End of the field (exclusive). */
  readonly end: number;
}

async function readVarint(
  src: ByteSource,
  pos: number,
  limit: number,
): Promise<{ value: number; next: number }> {
  const bytes = await src.read(pos, Math.min(10, limit - pos));
  let value = 0;
  let scale = 1;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) {
      if (!Number.isSafeInteger(value)) throw invalid(`varint at byte ${pos} is too large`);
      return { value, next: pos + i + 1 };
    }
  }
  throw invalid(`truncated varint at byte ${pos}`);
}

/** Iterates the fields of the message occupying [start, end), skipping payloads without reading them. */
async function* fields(src: ByteSource, start: number, end: number): AsyncGenerator<Field> {
  let pos = start;
  while (pos < end) {
    const tag = await readVarint(src, pos, end);
    const number = Math.floor(tag.value / 8);
    const wireType = tag.value % 8;
    if (number === 0) throw invalid(`field number 0 at byte ${pos}`);
    let fieldStart = tag.next;
    let fieldEnd: number;
    switch (wireType) {
      case 0:
        fieldEnd = (await readVarint(src, tag.next, end)).next;
        break;
      case 1:
        fieldEnd = tag.next + 8;
        break;
      case 2: {
        const length = await readVarint(src, tag.next, end);
        fieldStart = length.next;
        fieldEnd = length.next + length.value;
        break;
      }
      case 5:
        fieldEnd = tag.next + 4;
        break;
      default:
        throw invalid(`unsupported protobuf wire type ${wireType} at byte ${pos}`);
    }
    if (fieldEnd > end) throw invalid(`field ${number} at byte ${pos} runs past the end of its message`);
    yield { number, wireType, start: fieldStart, end: fieldEnd };
    pos = fieldEnd;
  }
}

async function initializerName(src: ByteSource, field: Field): Promise<string | undefined> {
  for await (const inner of fields(src, field.start, field.end)) {
    if (inner.number === TENSOR_NAME && inner.wireType === 2) {
      return Buffer.from(await src.read(inner.start, inner.end - inner.start)).toString('utf8');
    }
  }
  return undefined;
}

type ValueInfo = ReturnType<typeof onnx.ValueInfoProto.decode>;

async function decodeValueInfo(src: ByteSource, field: Field): Promise<ValueInfo> {
  if (field.wireType !== 2) throw invalid(`graph field ${field.number} has wire type ${field.wireType}`);
  if (field.end - field.start > MAX_VALUE_INFO_BYTES)
    throw invalid('a graph input/output is implausibly large');
  try {
    return onnx.ValueInfoProto.decode(await src.read(field.start, field.end - field.start));
  } catch (err) {
    throw invalid(`cannot decode a graph input/output (${(err as Error).message})`, err);
  }
}

type TensorResult = { spec: TensorSpec } | { problem: string };

function toTensorSpec(info: ValueInfo): TensorResult {
  const name = info.name ?? '';
  const tensor = info.type?.tensorType;
  if (!tensor) {
    const kind = info.type?.sequenceType
      ? 'a sequence'
      : info.type?.mapType
        ? 'a map'
        : info.type?.optionalType
          ? 'an optional'
          : 'not a tensor';
    return { problem: `"${name}" is ${kind}` };
  }
  const elemType = tensor.elemType ?? 0;
  const datatype = ONNX_TO_DATATYPE.get(elemType);
  if (!datatype) {
    return { problem: `"${name}" has element type ${ONNX_TYPE_NAMES[elemType] ?? elemType}` };
  }
  // Unknown rank: the protocol has no way to say so; one dynamic dimension is the loosest honest shape.
  const shape = tensor.shape
    ? (tensor.shape.dim ?? []).map((dim) => {
        if (dim.dimParam) return -1;
        if (dim.dimValue === null || dim.dimValue === undefined) return -1;
        const value = Number(dim.dimValue);
        return Number.isSafeInteger(value) && value >= 0 ? value : -1;
      })
    : [-1];
  return { spec: { name, datatype, shape } };
}

/** The graph's request inputs (initializers left out) and outputs, as ONNX value infos. */
interface GraphValueInfos {
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
}

async function readGraphValueInfos(src: ByteSource): Promise<GraphValueInfos> {
  let graph: Field | undefined;
  for await (const field of fields(src, 0, src.size)) {
    if (field.number === MODEL_GRAPH && field.wireType === 2) graph = field;
  }
  if (!graph) throw invalid('no graph in the ModelProto');
  const initializers = new Set<string>();
  const inputs: ValueInfo[] = [];
  const outputs: ValueInfo[] = [];
  for await (const field of fields(src, graph.start, graph.end)) {
    if (field.number === GRAPH_INITIALIZER && field.wireType === 2) {
      const name = await initializerName(src, field);
      if (name !== undefined) initializers.add(name);
    } else if (field.number === GRAPH_INPUT) {
      inputs.push(await decodeValueInfo(src, field));
    } else if (field.number === GRAPH_OUTPUT) {
      outputs.push(await decodeValueInfo(src, field));
    }
  }
  if (outputs.length === 0) throw invalid('the graph has no outputs');
  // Older exporters list initializers among the graph inputs; they are weights, not request inputs.
  return { inputs: inputs.filter((info) => !initializers.has(info.name ?? '')), outputs };
}

async function readSignatureFrom(src: ByteSource): Promise<ModelSignature> {
  const { inputs, outputs } = await readGraphValueInfos(src);
  const inputSpecs: TensorSpec[] = [];
  for (const info of inputs) {
    const result = toTensorSpec(info);
    if ('problem' in result) {
      throw new ArtifactError(
        'ARTIFACT_ONNX_UNSUPPORTED',
        `model input ${result.problem}, which the inference protocol cannot carry`,
      );
    }
    inputSpecs.push(result.spec);
  }
  // Outputs the protocol cannot carry (e.g. scikit-learn's ZipMap) are left out: clients can still
  // request the tensor outputs, which onnxruntime computes on their own.
  const outputSpecs: TensorSpec[] = [];
  const skipped: string[] = [];
  for (const info of outputs) {
    const result = toTensorSpec(info);
    if ('spec' in result) outputSpecs.push(result.spec);
    else skipped.push(result.problem);
  }
  if (outputSpecs.length === 0) {
    throw new ArtifactError(
      'ARTIFACT_ONNX_UNSUPPORTED',
      `no model output is a tensor the inference protocol can carry (${skipped.join('; ')})`,
    );
  }
  return { inputs: inputSpecs, outputs: outputSpecs };
}

/**
 * Reads a model's inputs (excluding initializers) and outputs from an ONNX file or its bytes.
 *
 * Weights are skipped, not loaded, so memory stays small for large models. Outputs that are not
 * tensors (sequences, maps) are omitted; such inputs fail with `ARTIFACT_ONNX_UNSUPPORTED`.
 *
 * @example const { inputs } = await readOnnxSignature('/tmp/m/model.onnx');
 */
export function readOnnxSignature(source: string | Uint8Array): Promise<ModelSignature> {
  return readFrom(source, readSignatureFrom);
}

/** A tensor's dimensions: a size, a symbolic name (`dim_param`), or null for an unnamed dynamic one. */
type Dims = readonly (number | string | null)[];

function dimsOf(info: ValueInfo): Dims | undefined {
  const tensor = info.type?.tensorType;
  if (!tensor?.shape) return undefined;
  return (tensor.shape.dim ?? []).map((dim) => {
    if (dim.dimParam) return dim.dimParam;
    if (dim.dimValue === null || dim.dimValue === undefined) return null;
    return Number(dim.dimValue);
  });
}

/**
 * Whether requests to this model may be batched along dim 0: stacking rows of several requests
 * must give each request the rows it would get alone. The graph must say that dim 0 of every
 * input and (tensor) output is one and the same dynamic dimension:
 * - every dim 0 is dynamic;
 * - the named ones (`dim_param`) all have one name, which appears in no other position (a model
 *   `y[n, m] = a[n, 4] x b[m, 4]^T` has two independent dynamic dims 0, and batching would
 *   answer each request with the other requests' columns);
 * - a model with several inputs names dim 0 on every input (unnamed dims cannot be shown equal).
 * Whether the model mixes rows (a softmax over dim 0, say) the graph cannot tell; such models
 * must run with batching off.
 */
export function readOnnxBatchable(source: string | Uint8Array): Promise<boolean> {
  return readFrom(source, async (src) => {
    const { inputs, outputs } = await readGraphValueInfos(src);
    const tensors = [...inputs.map(dimsOf), ...outputs.filter((o) => o.type?.tensorType).map(dimsOf)];
    if (inputs.length === 0) return false;
    const firsts: (string | null)[] = [];
    for (const dims of tensors) {
      const first = dims?.[0];
      if (first === undefined || typeof first === 'number') return false;
      firsts.push(first);
    }
    const names = new Set(firsts.filter((d) => d !== null));
    if (names.size > 1) return false;
    const [batch] = names;
    if (batch !== undefined && tensors.some((dims) => dims!.slice(1).includes(batch))) return false;
    return inputs.length === 1 || firsts.slice(0, inputs.length).every((d) => d !== null);
  });
}

async function readFrom<T>(source: string | Uint8Array, read: (src: ByteSource) => Promise<T>): Promise<T> {
  if (typeof source !== 'string') return read(memorySource(source));
  let handle: FileHandle;
  try {
    handle = await open(source, 'r');
  } catch (err) {
    throw new ArtifactError('ARTIFACT_IO', `cannot open ${source}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    const { size } = await handle.stat();
    return await read(fileSource(handle, size));
  } finally {
    await handle.close();
  }
}

/**
 * The signature an artifact serves: the manifest's, once checked against the graph
 * ({@link checkManifestSignature}), or the graph's own when there is no manifest.
 */
export async function servedSignature(
  onnxPath: string,
  manifest: (ModelSignature & { readonly labels?: readonly string[] | undefined }) | undefined,
): Promise<ModelSignature> {
  const graph = await readOnnxSignature(onnxPath);
  if (!manifest) return graph;
  checkManifestSignature(manifest, graph);
  return { inputs: manifest.inputs, outputs: manifest.outputs };
}

/** Whether a manifest tensor's shape fits the graph's: same rank, and every fixed graph dim kept. */
function shapeProblem(declared: readonly number[], graph: readonly number[]): string | undefined {
  // An unknown rank reads as one dynamic dim (see toTensorSpec): nothing to compare against.
  if (graph.length === 1 && graph[0] === -1) return undefined;
  if (declared.length !== graph.length) {
    return `shape [${declared.join(',')}] but the graph's has rank ${graph.length} ([${graph.join(',')}])`;
  }
  for (let i = 0; i < graph.length; i++) {
    if (graph[i]! >= 0 && declared[i] !== graph[i]) {
      return `shape [${declared.join(',')}] but the graph fixes dim ${i} at ${graph[i]} ([${graph.join(',')}])`;
    }
  }
  return undefined;
}

/**
 * Checks a manifest's signature and labels against the ONNX graph's, so that an artifact whose
 * manifest describes another model is refused when it is unpacked rather than failing every
 * request: the same input names, each output the manifest lists present in the graph, the same
 * datatypes, shapes that keep every dimension the graph fixes, and labels that some output's last
 * dimension can carry. Throws `ARTIFACT_SIGNATURE_MISMATCH` naming each disagreement.
 */
export function checkManifestSignature(
  manifest: {
    readonly inputs: readonly TensorSpec[];
    readonly outputs: readonly TensorSpec[];
    readonly labels?: readonly string[] | undefined;
  },
  graph: ModelSignature,
): void {
  const problems: string[] = [];
  const compare = (
    kind: 'input' | 'output',
    declared: readonly TensorSpec[],
    actual: readonly TensorSpec[],
  ) => {
    const byName = new Map(actual.map((t) => [t.name, t]));
    const seen = new Set<string>();
    for (const t of declared) {
      if (seen.has(t.name)) problems.push(`${kind} '${t.name}' is listed twice`);
      seen.add(t.name);
      const g = byName.get(t.name);
      if (!g) {
        problems.push(
          `${kind} '${t.name}' is not in the graph (its ${kind}s: ${[...byName.keys()].join(', ') || 'none'})`,
        );
        continue;
      }
      if (t.datatype !== g.datatype)
        problems.push(`${kind} '${t.name}' is ${t.datatype} but the graph's is ${g.datatype}`);
      const shape = shapeProblem(t.shape, g.shape);
      if (shape) problems.push(`${kind} '${t.name}' has ${shape}`);
    }
    return seen;
  };
  const inputs = compare('input', manifest.inputs, graph.inputs);
  for (const g of graph.inputs) {
    if (!inputs.has(g.name)) problems.push(`the graph's input '${g.name}' is missing from the manifest`);
  }
  compare('output', manifest.outputs, graph.outputs);
  const labels = manifest.labels;
  if (labels && labels.length > 0) {
    const fits = manifest.outputs.some((t) => {
      const last = t.shape[t.shape.length - 1];
      return last === labels.length || last === -1;
    });
    if (!fits) {
      problems.push(
        `${labels.length} labels, but no output's last dimension is ${labels.length} (${manifest.outputs.map((t) => `${t.name} [${t.shape.join(',')}]`).join(', ')})`,
      );
    }
  }
  if (problems.length > 0) {
    throw new ArtifactError(
      'ARTIFACT_SIGNATURE_MISMATCH',
      `manifest.json does not describe model.onnx: ${problems.join('; ')}`,
    );
  }
}
