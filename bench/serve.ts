// Benchmark of the inference service against raw in-process onnxruntime on the same thread budget.
// Prints throughput and p50/p99 latency for an MLP and a CNN at concurrency 1, 8 and 64, and the
// ratios measured in this one run. Run: npm run bench:serve [-- --seconds 4]
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { availableCpus, planThreads } from '../src/serve/cpu.ts';
import { buildCnn, buildMlp, writeModel } from '../test/serve/fixtures/onnx-builder.ts';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 3;
const CONCURRENCY = [1, 8, 64];
const BIN = resolve(import.meta.dirname, '../bin/slipway.js');

interface Model {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly input: string;
  readonly shape: number[];
}

interface Result {
  readonly throughput: number;
  readonly p50: number;
  readonly p99: number;
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

function summarize(latencies: number[], elapsedMs: number): Result {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  return { throughput: (latencies.length / elapsedMs) * 1000, p50: at(0.5), p99: at(0.99) };
}

async function rawBaseline(model: Model, threads: number): Promise<Result> {
  const session = await InferenceSession.create(model.bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const n = model.shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => (i % 17) / 17);
  const feeds = { [model.input]: new Tensor('float32', data, model.shape) };
  for (let i = 0; i < 20; i++) await session.run(feeds);
  const latencies: number[] = [];
  const start = performance.now();
  while (performance.now() - start < SECONDS * 1000) {
    const t = performance.now();
    await session.run(feeds);
    latencies.push(performance.now() - t);
  }
  const result = summarize(latencies, performance.now() - start);
  await session.release();
  return result;
}

async function startServer(
  modelDir: string,
  args: string[],
): Promise<{ port: number; stop: () => Promise<void> }> {
  const proc = spawn(
    process.execPath,
    [BIN, 'serve', '--model', modelDir, '--host', '127.0.0.1', '--port', '0', ...args],
    {
      env: { ...process.env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
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
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

async function load(port: number, model: Model, concurrency: number): Promise<Result> {
  const n = model.shape.reduce((a, b) => a * b, 1);
  const body = JSON.stringify({
    inputs: [
      {
        name: model.input,
        shape: model.shape,
        datatype: 'FP32',
        data: Array.from({ length: n }, (_, i) => (i % 17) / 17),
      },
    ],
  });
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const path = `/v2/models/${model.name}/infer`;
  const once = () =>
    new Promise<void>((done, fail) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? done() : fail(new Error(`HTTP ${res.statusCode}`))));
        },
      );
      req.on('error', fail);
      req.end(body);
    });
  const run = async (ms: number, latencies: number[]) => {
    const start = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() - start < ms) {
          const t = performance.now();
          await once();
          latencies.push(performance.now() - t);
        }
      }),
    );
    return performance.now() - start;
  };
  await run(500, []);
  const latencies: number[] = [];
  const elapsed = await run(SECONDS * 1000, latencies);
  agent.destroy();
  return summarize(latencies, elapsed);
}

const f = (v: number, digits = 2) => v.toFixed(digits).padStart(8);

async function main(): Promise<void> {
  const cpus = availableCpus();
  const plan = planThreads(cpus);
  const root = await mkdtemp(join(tmpdir(), 'slipway-bench-'));
  const report: Record<string, unknown> = { cpus, plan, seconds: SECONDS };
  console.log(
    `CPU budget ${cpus}: server ${plan.workers} worker(s) x ${plan.intraOpThreads} thread(s); raw session ${cpus} intra-op thread(s); ${SECONDS}s per point`,
  );
  try {
    for (const model of MODELS) {
      const dir = join(root, model.name);
      await writeModel(dir, model.bytes);
      const raw = await rawBaseline(model, cpus);
      console.log(
        `\n${model.name}: raw onnxruntime (in-process, batch 1): ${f(raw.throughput, 0)} req/s  p50 ${f(raw.p50)} ms  p99 ${f(raw.p99)} ms`,
      );
      const rows: Record<string, unknown>[] = [];
      for (const [label, args] of [
        ['batching on ', ['--max-batch-size', '32', '--max-batch-delay-ms', '2']],
        ['batching off', ['--max-batch-size', '1']],
      ] as const) {
        const server = await startServer(dir, [...args]);
        try {
          for (const c of CONCURRENCY) {
            const r = await load(server.port, model, c);
            rows.push({ mode: label.trim(), concurrency: c, ...r });
            console.log(
              `  server ${label} c=${String(c).padStart(2)}: ${f(r.throughput, 0)} req/s (x${(r.throughput / raw.throughput).toFixed(2)} raw)  p50 ${f(r.p50)} ms (${r.p50 - raw.p50 >= 0 ? '+' : ''}${(r.p50 - raw.p50).toFixed(2)} ms vs raw)  p99 ${f(r.p99)} ms`,
            );
          }
        } finally {
          await server.stop();
        }
      }
      report[model.name] = { raw, server: rows };
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
