// A small closed-loop HTTP/1.1 load generator in the spirit of wrk: `concurrency` keep-alive
// connections, each sending one pre-encoded request and waiting for its response before the next.
// It runs in its own process (see runLoad) so its CPU use never shares an event loop with the
// server or the raw onnxruntime baseline, and its per-request cost is a buffer write plus a scan
// for the response header: far cheaper than node:http's client.
import { fork } from 'node:child_process';
import { connect } from 'node:net';
import type { Socket } from 'node:net';

/** One load point: what to send, how hard and how long. */
export interface LoadSpec {
  readonly port: number;
  /** @default 'POST' */
  readonly method?: 'GET' | 'POST';
  readonly path: string;
  readonly headers: Record<string, string>;
  /** Request body, base64 (it crosses a process boundary as JSON). */
  readonly bodyBase64: string;
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

/** Latency (ms) and throughput (req/s) of one load point. */
export interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  readonly throughput: number;
  readonly p50: number;
  readonly p99: number;
  /** CPU time per request (µs) of whoever produced the load: the load client, or raw's own process. */
  readonly loadCpuUs?: number;
  /** Responses over the whole run, warm-up included (what per-request CPU over the run divides by). */
  readonly responses?: number;
}

/** Throughput and p50/p99 of a list of latencies measured over `elapsedMs`. */
export function summarize(latencies: readonly number[], elapsedMs: number, errors = 0): LoadResult {
  const sorted = Float64Array.from(latencies).sort();
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  return {
    requests: latencies.length,
    errors,
    throughput: (latencies.length / elapsedMs) * 1000,
    p50: at(0.5),
    p99: at(0.99),
  };
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Drives one connection: writes `request`, reads exactly one response (Content-Length framed),
 * reports its status and latency, and repeats until `stopAt`.
 */
function drive(
  socket: Socket,
  request: Buffer,
  stopAt: () => number,
  onResponse: (status: number, ms: number) => void,
): Promise<void> {
  return new Promise<void>((done, fail) => {
    let pending: Buffer = Buffer.alloc(0);
    let sentAt = 0;
    const send = () => {
      if (performance.now() >= stopAt()) {
        socket.end();
        done();
        return;
      }
      sentAt = performance.now();
      socket.write(request);
    };
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        const headerEnd = pending.indexOf(CRLFCRLF);
        if (headerEnd < 0) return;
        const head = pending.toString('latin1', 0, headerEnd);
        const match = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (!match) {
          fail(new Error(`response without Content-Length: ${head.slice(0, 200)}`));
          socket.destroy();
          return;
        }
        const total = headerEnd + 4 + Number(match[1]);
        if (pending.length < total) return;
        const status = Number(head.slice(9, 12));
        pending = pending.subarray(total);
        onResponse(status, performance.now() - sentAt);
        send();
      }
    });
    socket.on('error', fail);
    socket.on('close', () => done());
    send();
  });
}

/** Runs one load point in this process. */
export async function load(spec: LoadSpec): Promise<LoadResult> {
  const body = Buffer.from(spec.bodyBase64, 'base64');
  const head = [
    `${spec.method ?? 'POST'} ${spec.path} HTTP/1.1`,
    `host: 127.0.0.1:${spec.port}`,
    `content-length: ${body.length}`,
    ...Object.entries(spec.headers).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');
  const request = Buffer.concat([Buffer.from(head, 'latin1'), body]);
  const sockets = await Promise.all(
    Array.from(
      { length: spec.concurrency },
      () =>
        new Promise<Socket>((ok, fail) => {
          const s = connect({ host: '127.0.0.1', port: spec.port, noDelay: true }, () => ok(s));
          s.once('error', fail);
        }),
    ),
  );
  const cpuBefore = process.cpuUsage();
  let responses = 0;
  const start = performance.now();
  const measureFrom = start + spec.warmupMs;
  const stopAt = measureFrom + spec.durationMs;
  const latencies: number[] = [];
  let errors = 0;
  let firstError = '';
  await Promise.all(
    sockets.map((socket) =>
      drive(
        socket,
        request,
        () => stopAt,
        (status, ms) => {
          responses++;
          if (performance.now() < measureFrom) return;
          if (status === 200) latencies.push(ms);
          else {
            errors++;
            firstError ||= `HTTP ${status}`;
          }
        },
      ),
    ),
  );
  const elapsed = performance.now() - measureFrom;
  if (errors > 0 && latencies.length === 0) throw new Error(`every request failed (${firstError})`);
  const cpu = process.cpuUsage(cpuBefore);
  return {
    ...summarize(latencies, elapsed, errors),
    loadCpuUs: (cpu.user + cpu.system) / responses,
    responses,
  };
}

/** Runs one load point in a child process, so the client never shares the measured process's CPU time. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise<LoadResult>((resolve, reject) => {
    const child = fork(new URL(import.meta.url), ['--child'], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: LoadResult | undefined;
    child.on('message', (message: { result?: LoadResult; error?: string }) => {
      if (message.error !== undefined) reject(new Error(message.error));
      result = message.result;
    });
    child.on('exit', (code) => {
      if (result) resolve(result);
      else reject(new Error(`load client exited with code ${code}`));
    });
    child.send(spec);
  });
}

if (process.argv.includes('--child')) {
  process.once('message', (spec: LoadSpec) => {
    load(spec).then(
      (result) => process.send!({ result }, () => process.exit(0)),
      (err: unknown) => process.send!({ error: (err as Error).message }, () => process.exit(1)),
    );
  });
}
