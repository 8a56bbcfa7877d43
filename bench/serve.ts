// Benchmark of the inference service against raw in-process onnxruntime on the same thread budget.
//
// For a small MLP and a mid-size CNN it measures throughput and p50/p99 latency at concurrency 1, 8
// and 64, with JSON bodies and with the binary tensor extension, batching on and off, and prints
// the ratios to raw onnxruntime measured in this one run. Each point is the median of `--rounds`
// interleaved rounds (raw, then the servers, then raw again...), so a machine whose speed drifts
// during the run skews both sides alike. The server runs as the container runs it (the compiled
// `dist/` build, built first, with the image's node flags) and is warmed on every path before its
// points; the load comes from a separate process (bench/load-client.ts). A bare node:http server
// (bench/bare-http.ts) under the same load shows the HTTP ceiling of the machine.
//
// Run: npm run bench:serve [-- --seconds 2 --rounds 3]
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { SERVE_NODE_FLAGS, loadServeConfig } from '../src/serve/config.ts';
import { availableCpus, planThreads } from '../src/serve/cpu.ts';
import { buildCnn, buildMlp, writeModel } from '../test/serve/fixtures/onnx-builder.ts';
import { runLoad, summarize } from './load-client.ts';
import type { LoadResult, LoadSpec } from './load-client.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i > 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

const SECONDS = arg('--seconds', 2);
const ROUNDS = Math.round(arg('--rounds', 3));
const CONCURRENCY = [1, 8, 64] as const;
const ENCODINGS = ['json', 'binary'] as const;
const ROOT = resolve(import.meta.dirname, '..');
/** Load on each path of a fresh server before its points are measured. */
const WARMUP_MS = 1500;

type Encoding = (typeof ENCODINGS)[number];

interface Model {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly input: string;
  readonly shape: number[];
}

const MODELS: Model[] = [
  {
    name: 'mlp',
    bytes: buildMlp({ inputs: 64, hidden: 256, layers: 2, classes: 10 }),
    input: 'x',
    shape: [1, 64],
  },
  {
    name: 'cnn',
    bytes: buildCnn({ channels: 3, size: 64, filters: [32, 64, 64], classes: 10 }),
    input: 'image',
    shape: [1, 3, 64, 64],
  },
];

const MODES = [
  { label: 'batching on', args: [] as string[] },
  { label: 'batching off', args: ['--max-batch-size', '1'] },
] as const;

/** Input values as a client would send an image scaled to [0, 1]: float32, so long decimals in JSON. */
function inputValues(model: Model): Float32Array {
  const n = model.shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, (_, i) => (i % 17) / 17);
}

async function rawBaseline(model: Model, threads: number): Promise<LoadResult> {
  const session = await InferenceSession.create(model.bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const feeds = { [model.input]: new Tensor('float32', inputValues(model), model.shape) };
  for (let i = 0; i < 50; i++) await session.run(feeds);
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  while (performance.now() - start < SECONDS * 1000) {
    const t = performance.now();
    await session.run(feeds);
    latencies.push(performance.now() - t);
  }
  const result = summarize(latencies, performance.now() - start);
  const cpu = process.cpuUsage(cpuBefore);
  await session.release();
  return { ...result, loadCpuUs: (cpu.user + cpu.system) / latencies.length };
}

/** The request one model's clients send, in each encoding. */
function requestFor(model: Model, encoding: Encoding): Pick<LoadSpec, 'headers' | 'bodyBase64'> {
  const values = inputValues(model);
  if (encoding === 'json') {
    const body = JSON.stringify({
      inputs: [{ name: model.input, shape: model.shape, datatype: 'FP32', data: Array.from(values) }],
    });
    return {
      headers: { 'content-type': 'application/json' },
      bodyBase64: Buffer.from(body).toString('base64'),
    };
  }
  const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const header = Buffer.from(
    JSON.stringify({
      parameters: { binary_data_output: true },
      inputs: [
        {
          name: model.input,
          shape: model.shape,
          datatype: 'FP32',
          parameters: { binary_data_size: bytes.length },
        },
      ],
    }),
  );
  return {
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    },
    bodyBase64: Buffer.concat([header, bytes]).toString('base64'),
  };
}

/**
 * On-CPU time (µs) of every thread of a process so far, from Linux's schedstat (nanoseconds), or
 * undefined where /proc is not there.
 */
function processCpuUs(pid: number): number | undefined {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    return ns / 1000;
  } catch {
    return undefined;
  }
}

/** A load point with the server process's CPU time per response over it (µs), where it can be read. */
async function runLoadWithCpu(pid: number, spec: LoadSpec): Promise<Point> {
  const before = processCpuUs(pid);
  const result = await runLoad(spec);
  const after = processCpuUs(pid);
  if (before === undefined || after === undefined || !result.responses) return result;
  return { ...result, serverCpuUs: (after - before) / result.responses };
}

/** Throughput of a bare node:http server (bench/bare-http.ts) under the model's binary requests at c=64. */
async function bareHttpCeiling(model: Model): Promise<Point> {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/bare-http.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((done) => proc.on('exit', () => done()));
  try {
    const port = await new Promise<number>((ready, fail) => {
      createInterface({ input: proc.stdout }).once('line', (line) => ready(Number(JSON.parse(line).port)));
      void exited.then(() => fail(new Error('bench/bare-http.ts exited')));
    });
    return await runLoadWithCpu(proc.pid!, {
      port,
      ...requestFor(model, 'binary'),
      path: `/v2/models/${model.name}/infer`,
      concurrency: 64,
      warmupMs: 500,
      durationMs: SECONDS * 1000,
    });
  } finally {
    proc.kill('SIGTERM');
    await exited;
  }
}

async function startServer(
  modelDir: string,
  args: readonly string[],
): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const proc = spawn(
    process.execPath,
    [
      ...SERVE_NODE_FLAGS,
      join(ROOT, 'dist/cli/main.js'),
      'serve',
      '--model',
      modelDir,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      ...args,
    ],
    { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((done) => proc.on('exit', () => done()));
  let port = 0;
  await new Promise<void>((ready, fail) => {
    createInterface({ input: proc.stdout }).on('line', (line) => {
      try {
        const log = JSON.parse(line) as { event?: string; port?: number };
        if (log.event === 'listening') port = log.port ?? 0;
        if (log.event === 'model_ready') ready();
        if (log.event === 'model_failed') fail(new Error(line));
      } catch {
        // not a log line
      }
    });
    void exited.then(() => fail(new Error('server exited')));
  });
  return {
    port,
    pid: proc.pid!,
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** One measured point: a load result, with the server's CPU time per request where it was read. */
type Point = LoadResult & { readonly serverCpuUs?: number };

function median(results: readonly Point[]): Point {
  const mid = (key: keyof Point) => {
    const sorted = results
      .map((r) => r[key])
      .filter((v) => v !== undefined)
      .sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  };
  return {
    requests: mid('requests')!,
    errors: mid('errors')!,
    throughput: mid('throughput')!,
    p50: mid('p50')!,
    p99: mid('p99')!,
    loadCpuUs: mid('loadCpuUs'),
    serverCpuUs: mid('serverCpuUs'),
  };
}

/** Collects each point's results over the rounds. */
class Points {
  readonly #points = new Map<string, Point[]>();
  add(key: string, result: Point): void {
    this.#points.set(key, [...(this.#points.get(key) ?? []), result]);
  }
  get(key: string): Point {
    return median(this.#points.get(key) ?? []);
  }
}

const f = (v: number, digits = 2) => v.toFixed(digits).padStart(9);
const us = (v: number | undefined) => (v === undefined ? '?' : `${v.toFixed(0)} µs`);

async function measureServer(
  model: Model,
  dir: string,
  mode: (typeof MODES)[number],
  points: Points,
): Promise<void> {
  const server = await startServer(dir, mode.args);
  try {
    const base = { port: server.port, warmupMs: 500, durationMs: SECONDS * 1000 };
    // A fresh process spends its first seconds compiling hot code (V8's helper threads used about
    // 0.2 of the 2 CPUs for that under load); a service in production is long past it, so every
    // path is warmed first.
    for (const encoding of ENCODINGS) {
      await runLoad({
        ...base,
        ...requestFor(model, encoding),
        path: `/v2/models/${model.name}/infer`,
        concurrency: 8,
        durationMs: WARMUP_MS,
      });
    }
    if (mode.label === 'batching on') {
      // The cost of HTTP alone: an empty GET, same client, same concurrency as the top point.
      const floor = await runLoad({
        ...base,
        method: 'GET',
        path: '/v2/health/live',
        headers: {},
        bodyBase64: '',
        concurrency: 64,
      });
      points.add('floor', floor);
    }
    for (const encoding of ENCODINGS) {
      const request = requestFor(model, encoding);
      for (const c of CONCURRENCY) {
        const r = await runLoadWithCpu(server.pid, {
          ...base,
          ...request,
          path: `/v2/models/${model.name}/infer`,
          concurrency: c,
        });
        points.add(`${mode.label}/${encoding}/${c}`, r);
      }
    }
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const cpus = availableCpus();
  const plan = planThreads(cpus);
  const defaults = loadServeConfig({});
  console.log('building dist/ (the server is measured as the container runs it)...');
  const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');
  const root = await mkdtemp(join(tmpdir(), 'slipway-bench-'));
  const report: Record<string, unknown> = { cpus, plan, seconds: SECONDS, rounds: ROUNDS };
  console.log(
    `CPU budget ${cpus}: server ${plan.workers} worker(s) x ${plan.intraOpThreads} thread(s) (${plan.idleIntraOpThreads} for a run while the others are idle), default batching (max ${defaults.maxBatchSize} rows, ${defaults.maxBatchDelayMs} ms delay); raw session ${cpus} intra-op thread(s), one request at a time. ${SECONDS} s per point, median of ${ROUNDS} interleaved rounds; load from a separate process.`,
  );
  try {
    for (const model of MODELS) {
      const dir = join(root, model.name);
      await writeModel(dir, model.bytes);
      const points = new Points();
      for (let round = 1; round <= ROUNDS; round++) {
        process.stdout.write(`${model.name}: round ${round}/${ROUNDS}...\n`);
        points.add('raw', await rawBaseline(model, cpus));
        points.add('bare', await bareHttpCeiling(model));
        for (const mode of MODES) await measureServer(model, dir, mode, points);
      }
      const raw = points.get('raw');
      const floor = points.get('floor');
      const bare = points.get('bare');
      console.log(
        `\n${model.name}: raw onnxruntime (in-process, batch 1): ${f(raw.throughput, 0)} req/s  p50 ${f(raw.p50)} ms  p99 ${f(raw.p99)} ms`,
      );
      console.log(
        `  HTTP floor (GET /v2/health/live, c=64): ${f(floor.throughput, 0)} req/s (x${(floor.throughput / raw.throughput).toFixed(2)} raw)`,
      );
      console.log(
        `  bare node:http, no framework, no inference (binary POST, c=64): ${f(bare.throughput, 0)} req/s (x${(bare.throughput / raw.throughput).toFixed(2)} raw): the most any service on one event loop could reach here`,
      );
      const served = points.get('batching on/binary/64');
      if (bare.serverCpuUs !== undefined && served.serverCpuUs !== undefined) {
        // The load client shares the CPUs: each request costs its CPU time too.
        const bound = (cpus * 1e6) / (bare.serverCpuUs + (bare.loadCpuUs ?? 0));
        console.log(
          `  CPU per request, c=64 binary: raw onnxruntime ${us(raw.loadCpuUs)} (its whole process); bare node:http ${us(bare.serverCpuUs)} + client ${us(bare.loadCpuUs)}; service (batching on) ${us(served.serverCpuUs)} + client ${us(served.loadCpuUs)}. ${cpus} CPUs / (bare + client) = ${bound.toFixed(0)} req/s (x${(bound / raw.throughput).toFixed(2)} raw)`,
        );
      }
      const rows: Record<string, unknown>[] = [];
      for (const mode of MODES) {
        for (const encoding of ENCODINGS) {
          for (const c of CONCURRENCY) {
            const r = points.get(`${mode.label}/${encoding}/${c}`);
            rows.push({ mode: mode.label, encoding, concurrency: c, ...r });
            const delta = r.p50 - raw.p50;
            console.log(
              `  ${mode.label.padEnd(12)} ${encoding.padEnd(6)} c=${String(c).padStart(2)}: ${f(r.throughput, 0)} req/s (x${(r.throughput / raw.throughput).toFixed(2)} raw)  p50 ${f(r.p50)} ms (${delta >= 0 ? '+' : ''}${delta.toFixed(2)} ms vs raw)  p99 ${f(r.p99)} ms  server CPU ${us(r.serverCpuUs)}/req${r.errors > 0 ? `  ${r.errors} errors` : ''}`,
            );
          }
        }
      }
      const best64 = Math.max(...ENCODINGS.map((e) => points.get(`batching on/${e}/64`).throughput));
      const best1 = Math.min(...ENCODINGS.map((e) => points.get(`batching on/${e}/1`).p50));
      const throughputMet = best64 >= raw.throughput;
      const latencyMet = best1 - raw.p50 <= 1;
      console.log(
        `  targets (batching on): c=64 throughput >= raw: ${throughputMet ? 'met' : 'NOT met'} (best x${(best64 / raw.throughput).toFixed(2)}); c=1 p50 within 1 ms of raw: ${latencyMet ? 'met' : 'NOT met'} (best +${(best1 - raw.p50).toFixed(2)} ms)`,
      );
      report[model.name] = { raw, floor, bare, server: rows, targets: { throughputMet, latencyMet } };
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  const out = resolve(import.meta.dirname, 'out');
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'serve.json'), JSON.stringify(report, null, 2));
  console.log(`\nwrote ${join(out, 'serve.json')}`);
}

await main();
