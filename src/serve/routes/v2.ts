import type { FastifyInstance } from 'fastify';
import { badRequest } from '../errors.ts';
import { decodeV2Input, encodeV2Output } from '../tensor-codec.ts';
import type { V2Input, V2Output, WireTensor } from '../tensor-codec.ts';
import type { ModelInfo } from '../model-host.ts';
import type { RouteOptions } from './common.ts';
import { requireModel } from './common.ts';

/** Server name and version reported by `GET /v2`. */
export const SERVER_METADATA = { name: 'slipway', version: '0.1.0', extensions: [] as string[] } as const;

/** A v2 inference request after schema validation. */
export interface V2InferRequest {
  readonly id?: string;
  readonly parameters?: Record<string, unknown>;
  readonly inputs: readonly V2Input[];
  readonly outputs?: readonly { readonly name: string }[];
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
      type: 'array',
      minItems: 1,
      maxItems: 1024,
      items: {
        type: 'object',
        required: ['name', 'shape', 'datatype', 'data'],
        properties: {
          name: { type: 'string' },
          shape: { type: 'array', maxItems: 32, items: { type: 'integer', minimum: 0 } },
          datatype: { type: 'string' },
          parameters: parametersSchema,
          data: { type: 'array' },
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

/**
 * Validates a v2 request against the model's signature and decodes it to tensors:
 * unknown, duplicate or missing inputs, unknown requested outputs and oversized batches are 400s.
 */
export function decodeV2Request(
  body: V2InferRequest,
  model: ModelInfo,
  maxRequestRows: number,
): { feeds: Record<string, WireTensor>; fetches: string[] | undefined } {
  const specs = new Map(model.signature.inputs.map((s) => [s.name, s]));
  const expected = [...specs.keys()].join(', ');
  const feeds: Record<string, WireTensor> = {};
  for (const input of body.inputs) {
    const spec = specs.get(input.name);
    if (!spec) throw badRequest(`unknown input '${input.name}'; the model's inputs are: ${expected}`);
    if (Object.hasOwn(feeds, input.name)) throw badRequest(`input '${input.name}' is given more than once`);
    if (model.batchable && (input.shape[0] ?? 0) > maxRequestRows) {
      throw badRequest(
        `input '${input.name}' has a batch of ${input.shape[0]} rows, over the limit of ${maxRequestRows}; split the request`,
      );
    }
    feeds[input.name] = decodeV2Input(input, spec);
  }
  const missing = [...specs.keys()].filter((name) => !Object.hasOwn(feeds, name));
  if (missing.length > 0)
    throw badRequest(`missing input(s): ${missing.join(', ')}; the model's inputs are: ${expected}`);
  let fetches: string[] | undefined;
  if (body.outputs && body.outputs.length > 0) {
    const known = new Set(model.signature.outputs.map((s) => s.name));
    fetches = [];
    for (const { name } of body.outputs) {
      if (!known.has(name)) {
        throw badRequest(`unknown output '${name}'; the model's outputs are: ${[...known].join(', ')}`);
      }
      if (!fetches.includes(name)) fetches.push(name);
    }
  }
  return { feeds, fetches };
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

  const infer = async (request: { params: ModelParams; body: V2InferRequest }): Promise<V2InferResponse> => {
    const model = requireModel(host, request.params.name, request.params.version);
    const { feeds, fetches } = decodeV2Request(request.body, model, config.maxRequestRows);
    const outputs = await host.infer({ feeds, fetches });
    const order = model.signature.outputs.map((s) => s.name);
    const names = fetches ?? [
      ...order.filter((n) => outputs[n] !== undefined),
      ...Object.keys(outputs).filter((n) => !order.includes(n)),
    ];
    const response: V2InferResponse = {
      model_name: model.name,
      model_version: model.version,
      outputs: names.map((name) => encodeV2Output(name, outputs[name]!)),
    };
    if (request.body.id !== undefined) response.id = request.body.id;
    return response;
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
