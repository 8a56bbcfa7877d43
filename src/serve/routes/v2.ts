import type { FastifyInstance, FastifyReply } from 'fastify';
import {
  BINARY_PART,
  INFERENCE_HEADER,
  binaryDataSize,
  decodeBinaryInput,
  encodeBinaryTensor,
  wantsBinaryOutput,
} from '../binary-tensor.ts';
import type { WithBinaryPart } from '../binary-tensor.ts';
import { badRequest } from '../errors.ts';
import { ORT_TO_DATATYPE, decodeV2Input, encodeV2Output } from '../tensor-codec.ts';
import type { V2Input, V2Output, WireTensor } from '../tensor-codec.ts';
import type { ModelInfo } from '../model-host.ts';
import type { RouteOptions } from './common.ts';
import { clientPresence, requireModel } from './common.ts';

/** Server name and version reported by `GET /v2`. */
export const SERVER_METADATA = {
  name: 'slipway',
  version: '0.1.0',
  extensions: ['binary_tensor_data'],
} as const;

/** A v2 inference request after schema validation. */
export interface V2InferRequest {
  readonly id?: string;
  readonly parameters?: Record<string, unknown>;
  readonly inputs: readonly V2Input[];
  readonly outputs?: readonly { readonly name: string; readonly parameters?: Record<string, unknown> }[];
}

/** A v2 inference response. */
export interface V2InferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: V2Output[];
}

const parametersSchema = { type: 'object' } as const;

/** JSON schema of the inference request (the OpenAPI document's, with element checks left to the codec). */
export const inferRequestSchema = {
  type: 'object',
  required: ['inputs'],
  properties: {
    id: { type: 'string', maxLength: 1024 },
    parameters: parametersSchema,
    inputs: {
      // No minItems: the protocol sets none, and a model without inputs (a constant graph) takes [].
      type: 'array',
      maxItems: 1024,
      items: {
        type: 'object',
        required: ['name', 'shape', 'datatype'],
        properties: {
          name: { type: 'string' },
          shape: { type: 'array', maxItems: 32, items: { type: 'integer', minimum: 0 } },
          datatype: { type: 'string' },
          parameters: parametersSchema,
          // An array (the codec says so when it is not): or, for a large body parsed off the event
          // loop, the Float64Array its parser thread flattened the numbers into.
          data: {},
        },
      },
    },
    outputs: {
      type: 'array',
      maxItems: 1024,
      items: {
        type: 'object',
        required: ['name'],
        properties: { name: { type: 'string' }, parameters: parametersSchema },
      },
    },
  },
} as const;

interface ModelParams {
  name: string;
  version?: string;
}

const modelParamsSchema = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string' }, version: { type: 'string' } },
} as const;

function modelMetadata(model: ModelInfo) {
  return {
    name: model.name,
    versions: [model.version],
    platform: 'onnxruntime_onnx',
    inputs: model.signature.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: [...t.shape] })),
    outputs: model.signature.outputs.map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: [...t.shape],
    })),
  };
}

/** A v2 request decoded to tensors, with what the response must contain. */
export interface DecodedV2Request {
  readonly feeds: Record<string, WireTensor>;
  /** Output names to compute, in request order; all outputs when undefined. */
  readonly fetches: string[] | undefined;
  /** Outputs to return as binary data (binary tensor extension). */
  readonly binaryOutputs: ReadonlySet<string>;
}

/**
 * Validates a v2 request against the model's signature and decodes it to tensors:
 * unknown, duplicate or missing inputs, unknown requested outputs and oversized batches are 400s.
 * Inputs may carry JSON `data` or, with the binary tensor extension, `binary_data_size` bytes of
 * the request's binary part, consumed in input order.
 */
export function decodeV2Request(
  body: V2InferRequest,
  model: ModelInfo,
  maxRequestRows: number,
): DecodedV2Request {
  const specs = new Map(model.signature.inputs.map((s) => [s.name, s]));
  const expected = [...specs.keys()].join(', ');
  const binary = (body as WithBinaryPart)[BINARY_PART];
  let offset = 0;
  const feeds: Record<string, WireTensor> = {};
  for (const input of body.inputs) {
    const spec = specs.get(input.name);
    const what = `input '${input.name}'`;
    if (!spec) throw badRequest(`unknown input '${input.name}'; the model's inputs are: ${expected}`);
    if (Object.hasOwn(feeds, input.name)) throw badRequest(`${what} is given more than once`);
    if (model.batchable && (input.shape[0] ?? 0) > maxRequestRows) {
      throw badRequest(
        `${what} has a batch of ${input.shape[0]} rows, over the limit of ${maxRequestRows}; split the request`,
      );
    }
    const size = binaryDataSize(input.parameters, what);
    if (size === undefined) {
      if (input.data === undefined) {
        throw badRequest(
          `${what} has no data: give "data", or parameters.binary_data_size with a binary body (Inference-Header-Content-Length)`,
        );
      }
      feeds[input.name] = decodeV2Input(input, spec);
      continue;
    }
    if (input.data !== undefined) throw badRequest(`${what} has both "data" and binary_data_size; give one`);
    if (binary === undefined) {
      throw badRequest(
        `${what} has binary_data_size but the request has no binary part (send the Inference-Header-Content-Length header)`,
      );
    }
    if (offset + size > binary.length) {
      throw badRequest(
        `${what} has binary_data_size ${size} but only ${binary.length - offset} bytes of binary data remain`,
      );
    }
    feeds[input.name] = decodeBinaryInput(input, spec, binary.subarray(offset, offset + size));
    offset += size;
  }
  const missing = [...specs.keys()].filter((name) => !Object.hasOwn(feeds, name));
  if (missing.length > 0)
    throw badRequest(`missing input(s): ${missing.join(', ')}; the model's inputs are: ${expected}`);
  if (binary !== undefined && offset !== binary.length) {
    throw badRequest(
      `the binary part has ${binary.length - offset} bytes after the last binary input; binary_data_size values must add up to the binary part`,
    );
  }
  let fetches: string[] | undefined;
  const binaryOutputs = new Set<string>();
  const known = model.signature.outputs.map((s) => s.name);
  if (body.outputs && body.outputs.length > 0) {
    fetches = [];
    for (const { name, parameters } of body.outputs) {
      if (!known.includes(name)) {
        throw badRequest(`unknown output '${name}'; the model's outputs are: ${known.join(', ')}`);
      }
      if (!fetches.includes(name)) fetches.push(name);
      if (wantsBinaryOutput(body.parameters, parameters)) binaryOutputs.add(name);
    }
  } else if (wantsBinaryOutput(body.parameters, undefined)) {
    for (const name of known) binaryOutputs.add(name);
  }
  return { feeds, fetches, binaryOutputs };
}

/**
 * Encodes the inference response: plain JSON, or with the binary tensor extension when any
 * output is asked for as binary (the JSON header, then each binary output's bytes in order).
 */
export function encodeV2Response(
  response: Omit<V2InferResponse, 'outputs'>,
  names: readonly string[],
  outputs: Record<string, WireTensor>,
  binaryOutputs: ReadonlySet<string>,
): { json: V2InferResponse } | { headerLength: number; body: Buffer } {
  if (binaryOutputs.size === 0) {
    return { json: { ...response, outputs: names.map((name) => encodeV2Output(name, outputs[name]!)) } };
  }
  const parts: Buffer[] = [];
  const encoded = names.map((name): V2Output | BinaryV2Output => {
    const tensor = outputs[name]!;
    if (!binaryOutputs.has(name)) return encodeV2Output(name, tensor);
    const bytes = encodeBinaryTensor(tensor);
    parts.push(bytes);
    return {
      name,
      datatype: ORT_TO_DATATYPE[tensor.type],
      shape: [...tensor.dims],
      parameters: { binary_data_size: bytes.length },
    };
  });
  const header = Buffer.from(JSON.stringify({ ...response, outputs: encoded }), 'utf8');
  return { headerLength: header.length, body: Buffer.concat([header, ...parts]) };
}

/** A response output whose data follows the JSON header as binary. */
interface BinaryV2Output {
  name: string;
  datatype: V2Output['datatype'];
  shape: number[];
  parameters: { binary_data_size: number };
}

/** Open Inference Protocol v2 (KServe / Triton REST) endpoints. */
export function v2Routes(
  app: FastifyInstance,
  { host, config }: RouteOptions,
  done: (err?: Error) => void,
): void {
  const serverMetadata = () => SERVER_METADATA;
  app.get('/v2', serverMetadata);
  app.get('/v2/', serverMetadata);

  app.get('/v2/health/live', () => ({ live: true }));
  app.get('/v2/health/ready', (_request, reply) => {
    if (host.ready) return { ready: true };
    return reply.code(503).send({ ready: false, error: host.notReadyReason ?? 'not ready' });
  });

  const metadata = (request: { params: ModelParams }) =>
    modelMetadata(requireModel(host, request.params.name, request.params.version));
  app.get<{ Params: ModelParams }>('/v2/models/:name', { schema: { params: modelParamsSchema } }, metadata);
  app.get<{ Params: ModelParams }>(
    '/v2/models/:name/versions/:version',
    { schema: { params: modelParamsSchema } },
    metadata,
  );

  const ready = (request: { params: ModelParams }) => {
    requireModel(host, request.params.name, request.params.version);
    return { name: request.params.name, ready: true };
  };
  app.get<{ Params: ModelParams }>(
    '/v2/models/:name/ready',
    { schema: { params: modelParamsSchema } },
    ready,
  );
  app.get<{ Params: ModelParams }>(
    '/v2/models/:name/versions/:version/ready',
    { schema: { params: modelParamsSchema } },
    ready,
  );

  const infer = async (
    request: { params: ModelParams; body: V2InferRequest },
    reply: FastifyReply,
  ): Promise<V2InferResponse | Buffer> => {
    const model = requireModel(host, request.params.name, request.params.version);
    const { feeds, fetches, binaryOutputs } = decodeV2Request(request.body, model, config.maxRequestRows);
    const outputs = await host.infer({ feeds, fetches, client: clientPresence(reply) });
    const order = model.signature.outputs.map((s) => s.name);
    const names = fetches ?? [
      ...order.filter((n) => outputs[n] !== undefined),
      ...Object.keys(outputs).filter((n) => !order.includes(n)),
    ];
    const head: Omit<V2InferResponse, 'outputs'> = {
      model_name: model.name,
      model_version: model.version,
      ...(request.body.id === undefined ? {} : { id: request.body.id }),
    };
    const encoded = encodeV2Response(head, names, outputs, binaryOutputs);
    if ('json' in encoded) return encoded.json;
    void reply.header(INFERENCE_HEADER, String(encoded.headerLength));
    void reply.type('application/octet-stream');
    return encoded.body;
  };
  const inferSchema = { params: modelParamsSchema, body: inferRequestSchema };
  app.post<{ Params: ModelParams; Body: V2InferRequest }>(
    '/v2/models/:name/infer',
    { schema: inferSchema },
    infer,
  );
  app.post<{ Params: ModelParams; Body: V2InferRequest }>(
    '/v2/models/:name/versions/:version/infer',
    { schema: inferSchema },
    infer,
  );
  done();
}
