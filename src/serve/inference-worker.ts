// Runs inside a worker thread: owns one onnxruntime session, so session.run blocks this thread,
// never the server's event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { WorkerReply, WorkerRequest, WorkerInit } from './worker-protocol.ts';
import { transferables } from './tensor-codec.ts';
import { lowerThreadPriority } from './threads.ts';
import type { OrtType, WireTensor } from './tensor-codec.ts';

const port = parentPort;
if (!port) throw new Error('inference-worker must run in a worker thread');
const init = workerData as WorkerInit;
lowerThreadPriority(init.nice);
let session: InferenceSession | undefined;
/** The same model with idleIntraOpThreads, for runs that start while the rest of the pool is idle. */
let wideSession: InferenceSession | undefined;

function reply(message: WorkerReply): void {
  // Result buffers are this thread's own copies: move them to the server thread instead of cloning.
  const transfer =
    message.kind === 'result' ? [...transferables(Object.values(message.outputs)), ...message.recycled] : [];
  port!.postMessage(message, transfer);
}

/** The feeds' buffers to hand back for reuse (never one an output also uses). */
function recyclable(feeds: Record<string, WireTensor>, outputs: Record<string, WireTensor>): ArrayBuffer[] {
  const used = new Set(
    Object.values(outputs).map((t) => (Array.isArray(t.data) ? undefined : t.data.buffer)),
  );
  const out = new Set<ArrayBuffer>();
  for (const { data } of Object.values(feeds)) {
    if (!Array.isArray(data) && data.buffer instanceof ArrayBuffer && !used.has(data.buffer))
      out.add(data.buffer);
  }
  return [...out];
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function createSession(path: string, threads: number): Promise<InferenceSession> {
  return InferenceSession.create(path, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Warnings (e.g. old opsets) go to stderr outside the JSON log; errors reach the client anyway.
    logSeverityLevel: 3,
    // Idle pool threads must sleep, not spin: sessions of several workers share the CPUs.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
}

async function load(path: string): Promise<void> {
  const next = await createSession(path, init.intraOpThreads);
  const nextWide =
    init.idleIntraOpThreads > init.intraOpThreads
      ? await createSession(path, init.idleIntraOpThreads)
      : undefined;
  const previous = [session, wideSession];
  session = next;
  wideSession = nextWide;
  for (const old of previous) await old?.release();
}

async function run(feeds: Record<string, WireTensor>, fetches: readonly string[] | undefined, wide: boolean) {
  const chosen = (wide ? wideSession : undefined) ?? session;
  if (!chosen) throw new Error('no model loaded in this worker');
  const inputs: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) {
    inputs[name] = new Tensor(t.type, t.data, t.dims);
  }
  const results = fetches ? await chosen.run(inputs, [...fetches]) : await chosen.run(inputs);
  const outputs: Record<string, WireTensor> = {};
  for (const [name, tensor] of Object.entries(results)) {
    outputs[name] = { type: tensor.type as OrtType, dims: [...tensor.dims], data: tensor.data };
  }
  return outputs;
}

port.on('message', (message: WorkerRequest) => {
  if (message.kind === 'load') {
    load(message.path).then(
      () => reply({ kind: 'loaded' }),
      (err: unknown) => reply({ kind: 'load-error', message: messageOf(err) }),
    );
  } else {
    run(message.feeds, message.fetches, message.wide).then(
      (outputs) =>
        reply({
          kind: 'result',
          id: message.id,
          outputs,
          recycled: message.recycle ? recyclable(message.feeds, outputs) : [],
        }),
      (err: unknown) => reply({ kind: 'run-error', id: message.id, message: messageOf(err) }),
    );
  }
});
