import type { FastifyInstance } from 'fastify';
import type { TensorSpec } from '../../model/types.ts';
import { BINARY_PART } from '../binary-tensor.ts';
import { badRequest } from '../errors.ts';
import { INVOCATIONS_ROUTE } from '../json-body.ts';
import { isFlatRows } from '../json-parse-pool.ts';
import type { FlatRows } from '../json-parse-pool.ts';
import type { ModelInfo } from '../model-host.ts';
import {
  checkShape,
  elementCount,
  flattenData,
  leadingDims,
  nest,
  nestedShapeProblem,
  tensorFromValues,
  tensorValues,
} from '../tensor-codec.ts';
import type { WireTensor } from '../tensor-codec.ts';
import type { InferenceOutputs } from '../worker-pool.ts';
import type { RouteOptions } from './common.ts';
import { clientPresence, requireModel } from './common.ts';

/**
 * One classified instance: the top label, its index and every class score. Scores that are not
 * numbers come as "NaN"/"Infinity"/"-Infinity" (as in every JSON output); NaN never wins, and
 * when every score is NaN the label and index are null.
 */
export interface Classification {
  label: string | null;
  index: number | null;
  scores: (number | string)[];
}

function innerDims(value: unknown, what: string): number[] {
  const dims = leadingDims(value);
  if (dims.length > 32) throw badRequest(`${what} is nested deeper than 32 levels`);
  return dims;
}

/** One input's instance rows: as parsed, or flattened by a JSON parser thread. */
type Rows = readonly unknown[] | FlatRows;

function rowCount(rows: Rows): number {
  return isFlatRows(rows) ? rows.offsets.length - 1 : rows.length;
}

/** Stacks per-instance rows of one input into a batch tensor shaped for the model. */
function stackRows(rows: Rows, spec: TensorSpec, maxRows: number): WireTensor {
  const what = `input '${spec.name}'`;
  const count = rowCount(rows);
  if (count === 0) throw badRequest('no instances given');
  if (count > maxRows)
    throw badRequest(`${count} instances exceed the limit of ${maxRows}; split the request`);
  const flatRows = isFlatRows(rows) ? rows : undefined;
  const dims = flatRows
    ? [...flatRows.firstDims]
    : innerDims((rows as readonly unknown[])[0], `${what} instance 0`);
  const per = elementCount(dims);
  const sameLength = (i: number, length: number) => {
    if (length !== per) {
      throw badRequest(`${what}: instance ${i} has ${length} values but instance 0 has ${per}`);
    }
  };
  let flat: ArrayLike<unknown>;
  if (flatRows) {
    for (let i = 0; i < count; i++) sameLength(i, flatRows.offsets[i + 1]! - flatRows.offsets[i]!);
    flat = flatRows.values;
  } else {
    const values: unknown[] = [];
    (rows as readonly unknown[]).forEach((row, i) => {
      // A plain number is an instance of one value; only an array can be mis-nested.
      const own = Array.isArray(row) ? flattenData(row, `${what} instance ${i}`) : [row];
      const nesting = Array.isArray(row) && own !== row ? nestedShapeProblem(row, dims) : undefined;
      if (nesting !== undefined) throw badRequest(`${what} instance ${i}: ${nesting}`);
      sameLength(i, own.length);
      for (const v of own) values.push(v);
    });
    flat = values;
  }
  // A model without a batch dimension takes one instance as the whole tensor.
  const shape = spec.shape.length === dims.length && count === 1 ? dims : [count, ...dims];
  checkShape(shape, spec, what);
  return tensorFromValues(spec.datatype, shape, flat, what);
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseCsv(text: string): number[][] {
  const rows: number[][] = [];
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  lines.forEach((line, i) => {
    rows.push(
      line.split(',').map((cell, j) => {
        const value = Number(cell.trim());
        // Number() also reads "0x10", "0b1" and "1e999" (Infinity): only decimal numbers are data.
        if (!DECIMAL.test(cell.trim()) || !Number.isFinite(value)) {
          throw badRequest(
            `CSV line ${i + 1}, column ${j + 1}: ${JSON.stringify(cell.trim())} is not a number`,
          );
        }
        return value;
      }),
    );
  });
  if (rows.length === 0) throw badRequest('the CSV body has no rows');
  return rows;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Turns a SageMaker-style body into per-input instance rows:
 * `{"instances": [row | {input: row}, ...]}`, `{"inputs": rows | {input: rows}}`, or CSV rows.
 */
export function instancesOf(body: unknown, model: ModelInfo): Map<string, Rows> {
  const inputs = model.signature.inputs;
  if (inputs.length === 0) {
    // Instances are rows of inputs; a model without inputs (a constant graph) has none to send.
    throw badRequest(
      `this model takes no inputs, so there are no instances to send: POST {"inputs": []} to /v2/models/${model.name}/infer`,
    );
  }
  const single = inputs.length === 1 ? inputs[0]! : undefined;
  const columns = new Map<string, Rows>();
  const needSingle = (form: string): TensorSpec => {
    if (!single) {
      throw badRequest(
        `${form} works only for single-input models; this model has inputs ${inputs.map((i) => i.name).join(', ')}: send {"instances": [{"<input>": ...}]} or use /v2/models/${model.name}/infer`,
      );
    }
    return single;
  };
  if (typeof body === 'string') {
    columns.set(needSingle('CSV').name, parseCsv(body));
    return columns;
  }
  if (!isRecord(body) || (!('instances' in body) && !('inputs' in body))) {
    throw badRequest('expected a JSON object {"instances": [...]} or {"inputs": ...}, or text/csv');
  }
  if ('instances' in body && 'inputs' in body) {
    throw badRequest('the body has both "instances" and "inputs"; send one of them');
  }
  if ('instances' in body) {
    const instances = body.instances;
    if (isFlatRows(instances)) {
      columns.set(needSingle('a list of plain instances').name, instances);
      return columns;
    }
    if (!Array.isArray(instances)) throw badRequest('"instances" must be an array');
    const byName = instances.length > 0 && instances.every(isRecord);
    if (!byName) {
      columns.set(needSingle('a list of plain instances').name, instances);
      return columns;
    }
    const named = new Map<string, unknown[]>(inputs.map((spec) => [spec.name, []]));
    instances.forEach((instance, i) => {
      const record = instance;
      for (const key of Object.keys(record)) {
        if (!named.has(key)) {
          throw badRequest(
            `instance ${i}: unknown input '${key}'; the model's inputs are ${inputs.map((s) => s.name).join(', ')}`,
          );
        }
      }
      for (const spec of inputs) {
        if (!(spec.name in record)) throw badRequest(`instance ${i}: missing input '${spec.name}'`);
        named.get(spec.name)!.push(record[spec.name]);
      }
    });
    return named;
  }
  const given = body.inputs;
  if (Array.isArray(given) || isFlatRows(given)) {
    columns.set(needSingle('"inputs" as an array').name, given);
    return columns;
  }
  if (!isRecord(given)) throw badRequest('"inputs" must be an array of rows or an object {input name: rows}');
  for (const key of Object.keys(given)) {
    if (!inputs.some((s) => s.name === key)) {
      throw badRequest(
        `unknown input '${key}'; the model's inputs are ${inputs.map((s) => s.name).join(', ')}`,
      );
    }
  }
  for (const spec of inputs) {
    const rows = given[spec.name];
    if (!Array.isArray(rows) && !isFlatRows(rows)) {
      throw badRequest(`missing input '${spec.name}' (an array of rows)`);
    }
    columns.set(spec.name, rows);
  }
  return columns;
}

/**
 * The model's feeds from an `/invocations` body (JSON as parsed, possibly with rows a parser
 * thread flattened, or CSV text), and how many instances it holds.
 */
export function invocationFeeds(
  body: unknown,
  model: ModelInfo,
  maxRows: number,
): { feeds: Record<string, WireTensor>; count: number } {
  const columns = instancesOf(body, model);
  const feeds: Record<string, WireTensor> = {};
  let first: { name: string; count: number } | undefined;
  for (const spec of model.signature.inputs) {
    const rows = columns.get(spec.name)!;
    const count = rowCount(rows);
    // onnxruntime would broadcast a single row against the others and answer for the wrong count.
    if (first && count !== first.count) {
      throw badRequest(
        `input '${spec.name}' has ${count} instance(s) but input '${first.name}' has ${first.count}; give every input the same number`,
      );
    }
    first ??= { name: spec.name, count };
    feeds[spec.name] = stackRows(rows, spec, maxRows);
  }
  return { feeds, count: first?.count ?? 0 };
}

function rowsOf(tensor: WireTensor, count: number): unknown[] {
  const values = tensorValues(tensor);
  if (tensor.dims[0] !== count) return [nest(values, tensor.dims)];
  const rowDims = tensor.dims.slice(1);
  const per = elementCount(rowDims);
  return Array.from({ length: count }, (_, i) => nest(values.slice(i * per, (i + 1) * per), rowDims));
}

/** Predictions per instance; with manifest labels, the top label and scores of each instance. */
export function predictionsOf(outputs: InferenceOutputs, model: ModelInfo, count: number): unknown[] {
  const labels = model.labels;
  if (labels && labels.length > 0) {
    const scoreName = model.signature.outputs.find(
      (s) => s.shape[s.shape.length - 1] === labels.length,
    )?.name;
    const scores = scoreName ? outputs[scoreName] : undefined;
    if (scores && scores.dims[0] === count && elementCount(scores.dims.slice(1)) === labels.length) {
      const values = tensorValues(scores) as (number | string)[];
      return Array.from({ length: count }, (_, i): Classification => {
        const row = values.slice(i * labels.length, (i + 1) * labels.length);
        let best: number | null = null;
        for (let j = 0; j < row.length; j++) {
          const v = Number(row[j]);
          if (!Number.isNaN(v) && (best === null || v > Number(row[best]))) best = j;
        }
        return { label: best === null ? null : labels[best]!, index: best, scores: row };
      });
    }
  }
  const names = Object.keys(outputs);
  const perOutput = new Map(names.map((name) => [name, rowsOf(outputs[name]!, count)]));
  if (names.length === 1) return perOutput.get(names[0]!)!;
  return Array.from({ length: count }, (_, i) =>
    Object.fromEntries(names.map((name) => [name, perOutput.get(name)![i] ?? perOutput.get(name)![0]])),
  );
}

/** The SageMaker hosting contract: `GET /ping` and `POST /invocations`. */
export function sagemakerRoutes(
  app: FastifyInstance,
  { host, config }: RouteOptions,
  done: (err?: Error) => void,
): void {
  app.get('/ping', (_request, reply) => {
    if (host.ready) return { status: 'ready' };
    return reply.code(503).send({ status: 'not ready', error: host.notReadyReason ?? 'not ready' });
  });

  app.post(INVOCATIONS_ROUTE, async (request, reply) => {
    const model = requireModel(host);
    if (isRecord(request.body) && BINARY_PART in request.body) {
      throw badRequest(
        'the binary tensor extension (Inference-Header-Content-Length) is for /v2/models/{name}/infer; send JSON or CSV to /invocations',
      );
    }
    const { feeds, count } = invocationFeeds(request.body, model, config.maxRequestRows);
    const outputs = await host.infer({ feeds, fetches: undefined, client: clientPresence(reply) });
    return { predictions: predictionsOf(outputs, model, count) };
  });
  done();
}
