// Runs inside a worker thread: parses large JSON request bodies off the event loop, with the same
// checks (and the same 400 messages) as parsing on the event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { parseReply } from './json-parse-pool.ts';
import type { JsonParseRequest } from './json-parse-pool.ts';
import { MAX_TENSOR_RANK } from './tensor-codec.ts';
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
    const data = (input as { data?: unknown } | null)?.data;
    if (!Array.isArray(data) || data.length === 0) continue;
    const n = countNumbers(data, 1);
    if (n < 0) continue;
    const flat = new Float64Array(n);
    copyNumbers(data, flat, 0);
    (input as { data: unknown }).data = flat;
    moved.push(flat.buffer);
  }
  return moved;
}

port.on('message', ({ id, buffer, offset, length }: JsonParseRequest) => {
  const reply = parseReply(id, Buffer.from(buffer, offset, length));
  const moved = reply.error === undefined ? flattenInputs(reply.value) : [];
  // The body buffer goes back to the server thread for reuse, with the flattened inputs.
  port.postMessage(reply, [buffer, ...moved]);
});
