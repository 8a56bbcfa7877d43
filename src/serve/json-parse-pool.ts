import type { Worker } from 'node:worker_threads';
import { ServeError, badRequest } from './errors.ts';
import { parseJsonBody } from './json-body.ts';
import { startWorker, workerScript } from './threads.ts';

/**
 * Which numbers a parser thread flattens into Float64Arrays (they move back without a copy):
 * `v2`, each v2 input's `data`; `rows`, the instance rows of a SageMaker `/invocations` body
 * (see {@link FlatRows}).
 */
export type FlattenKind = 'v2' | 'rows';

/** A body handed to a parser thread: its buffer moves there and comes back with the reply. */
export interface JsonParseRequest {
  readonly id: number;
  readonly buffer: ArrayBuffer;
  readonly offset: number;
  readonly length: number;
  readonly flatten: FlattenKind;
}

/**
 * SageMaker instance rows (each a nested array of numbers) that a parser thread flattened:
 * row i is `values[offsets[i]]` up to `values[offsets[i + 1]]`, row-major, and `firstDims` are
 * row 0's dimensions as the route reads them (following each first element). JSON cannot produce
 * a Float64Array, so a client cannot send one of these.
 */
export interface FlatRows {
  readonly values: Float64Array<ArrayBuffer>;
  readonly offsets: readonly number[];
  readonly firstDims: readonly number[];
}

/** Whether `value` is rows a parser thread flattened. */
export function isFlatRows(value: unknown): value is FlatRows {
  return (
    typeof value === 'object' && value !== null && (value as Partial<FlatRows>).values instanceof Float64Array
  );
}

/** A parser thread's answer: the value, or the 400 message of what was wrong with the body. */
export type JsonParseReply =
  | { readonly id: number; readonly buffer: ArrayBuffer; readonly value: unknown; readonly error?: undefined }
  | { readonly id: number; readonly buffer: ArrayBuffer; readonly error: string };

interface Pending {
  readonly settle: (reply: JsonParseReply | Error) => void;
  /** The body, kept (and sent as a copy) until the thread has answered once: see `#spawn`. */
  readonly body: Buffer | undefined;
}

interface Thread {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
  /** Set by the thread's first reply: it started and works. */
  answered: boolean;
}

/** Parses `body` on the calling thread: what a parser thread answers, and the pool's fallback. */
export function parseReply(id: number, body: Buffer): JsonParseReply {
  const buffer = body.buffer as ArrayBuffer;
  try {
    return { id, buffer, value: parseJsonBody(body.toString('utf8')) };
  } catch (err) {
    return { id, buffer, error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Threads that parse large JSON request bodies, so a 200 KB float array (about 1.5 ms of
 * JSON.parse) never blocks the event loop: health checks, binary requests and dispatch to the
 * inference workers go on meanwhile. The threads start on the first large body and run at the
 * inference threads' nice value. A thread that dies is replaced (the bodies it held get a 500);
 * if one dies before it ever answered, threads are not working here at all, and every body is
 * parsed on the event loop from then on, as it would be without the pool.
 */
export class JsonParsePool {
  readonly #size: number;
  readonly #nice: number;
  readonly #onThreadExit: ((error: Error) => void) | undefined;
  readonly #script: URL;
  #threads: Thread[] = [];
  #nextId = 1;
  #closed = false;
  /** A thread died before answering: parse on the calling thread instead. */
  #broken = false;

  constructor(options: {
    readonly threads: number;
    readonly nice: number;
    /** Called when a thread dies unexpectedly (it is replaced on the next large body). */
    readonly onThreadExit?: (error: Error) => void;
    /** The thread's script (tests). @default json-parse-worker */
    readonly script?: URL;
  }) {
    this.#script = options.script ?? workerScript('json-parse-worker');
    this.#size = Math.max(1, options.threads);
    this.#nice = options.nice;
    this.#onThreadExit = options.onThreadExit;
  }

  /**
   * Parses `body` (which must own its ArrayBuffer: it moves to the parser thread) and calls
   * `release` with that buffer once it is back. Rejects with a 400 naming what is wrong. Numbers
   * come back flattened as `flatten` says; bodies parsed on this thread (the fallback) are not.
   */
  parse(body: Buffer, release: (buffer: ArrayBuffer) => void, flatten: FlattenKind = 'v2'): Promise<unknown> {
    if (this.#closed) {
      return Promise.reject(new ServeError('SERVE_UNAVAILABLE', 503, 'the server is shutting down'));
    }
    const id = this.#nextId++;
    return new Promise<unknown>((resolve, reject) => {
      const settle = (reply: JsonParseReply | Error) => {
        if (reply instanceof Error) return reject(reply);
        release(reply.buffer);
        if (reply.error !== undefined) reject(badRequest(reply.error));
        else resolve(reply.value);
      };
      if (this.#broken) return settle(parseReply(id, body));
      const thread = this.#leastBusy();
      const request: JsonParseRequest = {
        id,
        buffer: body.buffer as ArrayBuffer,
        offset: body.byteOffset,
        length: body.length,
        flatten,
      };
      // Until the thread has answered once, the body is copied, not moved, so that if the thread
      // never starts the body is still here to parse.
      thread.pending.set(id, { settle, body: thread.answered ? undefined : body });
      thread.worker.postMessage(request, thread.answered ? [request.buffer] : []);
    });
  }

  /** Stops the threads; bodies still being parsed fail with a 503. */
  async close(): Promise<void> {
    this.#closed = true;
    const threads = this.#threads.splice(0);
    const closing = new ServeError('SERVE_UNAVAILABLE', 503, 'the server is shutting down');
    for (const thread of threads) this.#settleAll(thread, closing);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  #settleAll(thread: Thread, error: Error): void {
    for (const { settle } of thread.pending.values()) settle(error);
    thread.pending.clear();
  }

  #leastBusy(): Thread {
    if (this.#threads.length < this.#size) return this.#spawn();
    return this.#threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  #spawn(): Thread {
    const thread: Thread = {
      worker: startWorker(this.#script, { nice: this.#nice }),
      pending: new Map(),
      answered: false,
    };
    const fail = (err: Error) => {
      const index = this.#threads.indexOf(thread);
      if (index < 0) return;
      this.#threads.splice(index, 1);
      this.#onThreadExit?.(err);
      if (!thread.answered) {
        // It never worked (a missing script, no threads allowed): parse here from now on; the
        // bodies it was sent are still here.
        this.#broken = true;
        for (const [id, { settle, body }] of thread.pending) if (body) settle(parseReply(id, body));
        thread.pending.clear();
        return;
      }
      this.#settleAll(
        thread,
        new ServeError('SERVE_INTERNAL', 500, 'the JSON parser thread stopped', { cause: err }),
      );
    };
    thread.worker.on('message', (reply: JsonParseReply) => {
      thread.answered = true;
      const pending = thread.pending.get(reply.id);
      thread.pending.delete(reply.id);
      // A copied body came back as a copy: the original is the one to release.
      pending?.settle(pending.body ? { ...reply, buffer: pending.body.buffer as ArrayBuffer } : reply);
    });
    thread.worker.on('error', fail);
    thread.worker.on('exit', (code) => fail(new Error(`JSON parser thread exited with code ${code}`)));
    // An idle parser thread must not keep the process alive.
    thread.worker.unref();
    this.#threads.push(thread);
    return thread;
  }
}
