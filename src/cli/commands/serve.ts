import type { Command } from 'commander';
import { loadServeConfig } from '../../serve/config.ts';
import type { ServeOverrides } from '../../serve/config.ts';
import { startServer } from '../../serve/server.ts';
import { intOption, portOption } from '../options.ts';

interface ServeFlags {
  model?: string;
  port?: string;
  host?: string;
  workers?: string;
  threads?: string;
  maxBatchSize?: string;
  maxBatchDelayMs?: string;
}

/** Registers `slipway serve`: run the inference service (flags override the environment). */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(
      'Run the inference service (SageMaker /ping + /invocations, Open Inference Protocol v2, /metrics).\n' +
        'Configured by MODEL_URI, PORT, SLIPWAY_* environment variables; flags win.',
    )
    .option(
      '--model <uri>',
      's3://, file://, a prefix ending in /, a local directory or .onnx file, or "none"',
    )
    .option('--port <n>', 'port to listen on (default: SAGEMAKER_BIND_TO_PORT, PORT, or 8080)')
    .option('--host <h>', 'address to bind', '0.0.0.0')
    .option('--workers <n>', 'inference worker threads (default: from the CPU quota)')
    .option('--threads <n>', 'onnxruntime intra-op threads per worker (default: from the CPU quota)')
    .option('--max-batch-size <n>', 'largest dynamic batch in rows; 1 turns batching off')
    .option('--max-batch-delay-ms <n>', 'longest a request waits for its batch to fill')
    .action(async (flags: ServeFlags) => {
      const overrides: ServeOverrides = {
        ...(flags.model !== undefined && { modelUri: flags.model }),
        ...(flags.port !== undefined && { port: portOption(flags.port) }),
        ...(flags.host !== undefined && { host: flags.host }),
        ...(flags.workers !== undefined && { workers: intOption(flags.workers, '--workers', 1, 64) }),
        ...(flags.threads !== undefined && { intraOpThreads: intOption(flags.threads, '--threads', 1, 256) }),
        ...(flags.maxBatchSize !== undefined && {
          maxBatchSize: intOption(flags.maxBatchSize, '--max-batch-size', 1, 4096),
        }),
        ...(flags.maxBatchDelayMs !== undefined && {
          maxBatchDelayMs: intOption(flags.maxBatchDelayMs, '--max-batch-delay-ms', 0, 10_000),
        }),
      };
      const server = await startServer(loadServeConfig(process.env, overrides), { handleSignals: true });
      await server.closed;
    });
}
