// Runs inside a worker thread: parses large JSON request bodies off the event loop, with the same
// checks (and the same 400 messages) as parsing on the event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { parseReply } from './json-parse-pool.ts';
import type { FlatRows, FlattenKind, JsonParseRequest } from './json-parse-pool.ts';
import { MAX_TENSOR_RANK, leadingDims, nestedShapeProblem } from './tensor-codec.ts';
import { lowerThreadPriority } from './threads.ts';

const port = parentPort;
if (!port) throw new Error('json-parse-worker must run in a worker thread');
lowerThreadPriority((workerData as { nice: number }).nice);

/** Number of numbers in `data` (nested arrays counted through), or -1 if it holds anything else. */
function countNumbers(data: unknown[], depth: number): number {
  if (depth > MAX_TENSOR_RANK) return -1;
  let n = 0;
  for (const item of data) {
    if (typeof item === 'number') n++;
    else if (Array.isArray(item)) {
      const inner = countNumbers(item, depth + 1);
      if (inner < 0) return -1;
      n += inner;
    } else return -1;
  }
  return n;
}

function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((d) => Number.isSafeInteger(d) && (d as number) >= 0);
}

function copyNumbers(data: unknown[], out: Float64Array, at: number): number {
  for (const item of data) {
    if (typeof item === 'number') out[at++] = item;
    else at = copyNumbers(item as unknown[], out, at);
  }
  return at;
}

/**
 * Replaces each v2 input's `data` that holds only numbers with a Float64Array of them, flattened
 * row-major as the codec would. Cloning a JavaScript array of 10,000s of numbers back to the event
 * loop costs about as much as parsing it; a typed array moves without a copy. Anything else (BOOL,
 * BYTES, a mistake the codec must report) is left for the codec.
 */
function flattenInputs(value: unknown): ArrayBuffer[] {
  const inputs = (value as { inputs?: unknown } | null)?.inputs;
  if (!Array.isArray(inputs)) return [];
  const moved: ArrayBuffer[] = [];
  for (const input of inputs as unknown[]) {
    const { data, shape } = (input ?? {}) as { data?: unknown; shape?: unknown };
    if (!Array.isArray(data) || data.length === 0) continue;
    // Nesting that does not match the shape is left for the codec to report.
    if (!isShape(shape) || nestedShapeProblem(data, shape) !== undefined) continue;
    const n = countNumbers(data, 1);
    if (n < 0) continue;
    const flat = new Float64Array(n);
    copyNumbers(data, flat, 0);
    (input as { data: unknown }).data = flat;
    moved.push(flat.buffer);
  }
  return moved;
}

/**
 * Rows that are all nested arrays of numbers, flattened into one Float64Array; undefined when any
 * row is anything else (the route then reports it exactly as it would without this thread).
 */
function flatRows(rows: unknown): FlatRows | undefined {
  if (!Array.isArray(rows) || rows.length === 0) return undefined;
  const offsets = [0];
  for (const row of rows as unknown[]) {
    const n = Array.isArray(row) ? countNumbers(row, 1) : -1;
    if (n < 0) return undefined;
    offsets.push(offsets[offsets.length - 1]! + n);
  }
  const firstDims = leadingDims(rows[0]);
  // A row nested unlike row 0 is left for the route to report.
  if ((rows as unknown[][]).some((row) => nestedShapeProblem(row, firstDims) !== undefined)) return undefined;
  const values = new Float64Array(offsets[offsets.length - 1]!);
  (rows as unknown[][]).forEach((row, i) => copyNumbers(row, values, offsets[i]!));
  return { values, offsets, firstDims };
}

/**
 * Replaces the instance rows of a SageMaker body (`instances`, `inputs` as rows, or each input of
 * `inputs` as an object) with {@link FlatRows}, as {@link flattenInputs} does for v2 inputs.
 */
function flattenRows(value: unknown): ArrayBuffer[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  const moved: ArrayBuffer[] = [];
  const replace = (holder: Record<string, unknown>, key: string) => {
    const flat = flatRows(holder[key]);
    if (flat === undefined) return;
    holder[key] = flat;
    moved.push(flat.values.buffer);
  };
  const body = value as Record<string, unknown>;
  if ('instances' in body) replace(body, 'instances');
  else if (Array.isArray(body.inputs)) replace(body, 'inputs');
  else if (typeof body.inputs === 'object' && body.inputs !== null) {
    const inputs = body.inputs as Record<string, unknown>;
    for (const name of Object.keys(inputs)) replace(inputs, name);
  }
  return moved;
}

const FLATTEN: Record<FlattenKind, (value: unknown) => ArrayBuffer[]> = {
  v2: flattenInputs,
  rows: flattenRows,
};

port.on('message', ({ id, buffer, offset, length, flatten }: JsonParseRequest) => {
  const reply = parseReply(id, Buffer.from(buffer, offset, length));
  const moved = reply.error === undefined ? FLATTEN[flatten](reply.value) : [];
  // The body buffer goes back to the server thread for reuse, with the flattened inputs.
  port.postMessage(reply, [buffer, ...moved]);
});
