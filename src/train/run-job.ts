import { mkdir, writeFile } from 'node:fs/promises';
import { isSlipwayError } from '../errors.ts';
import { TrainingError } from './errors.ts';
import { FAILURE_REASON_MAX_BYTES, jobPaths, resolveJobRoot, utf8Head } from './paths.ts';
import type { JobPaths } from './paths.ts';
import { readTrainingEnv } from './training-env.ts';
import type { ChannelConfig, ResourceConfig } from './training-env.ts';

/** Fields appended to a log line as `key=value` (SageMaker metric regexes match these). */
export type LogFields = Readonly<Record<string, string | number | boolean>>;

/** What a training entrypoint gets from {@link runTrainingJob}. */
export interface TrainingContext {
  readonly root: string;
  readonly paths: JobPaths;
  /** hyperparameters.json as read; parse it with `parseHyperparameters`. */
  readonly hyperparameters: Readonly<Record<string, unknown>>;
  readonly inputDataConfig: Readonly<Record<string, ChannelConfig>>;
  readonly resourceConfig: ResourceConfig;
  /** Channel name -> directory (each exists and holds files). */
  readonly channels: Readonly<Record<string, string>>;
  /** The directory of a channel; a TrainingError naming the available channels when it is absent. */
  channel(name: string): string;
  /** Write model.onnx and manifest.json here; it becomes model.tar.gz. */
  readonly modelDir: string;
  /** Save checkpoints here (SageMaker syncs it to S3 when checkpointing is configured). */
  readonly checkpointDir: string;
  /** One plain line on stdout: `msg key=value ...`. */
  log(message: string, fields?: LogFields): void;
  /** Registers a handler run on SIGTERM/SIGINT before the job exits (e.g. save a checkpoint). */
  onTerminate(handler: () => void | Promise<void>): void;
  /** Aborted when SIGTERM/SIGINT arrives, so long loops can stop early. */
  readonly signal: AbortSignal;
}

/** Options of {@link runTrainingJob} (tests and embedders; the entrypoint normally passes none). */
export interface RunTrainingJobOptions {
  /** Where to read SLIPWAY_JOB_ROOT from. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** Call process.exit with the result code. @default true */
  readonly exit?: boolean;
}

/** Exit codes of a training entrypoint run through {@link runTrainingJob}. */
export const TRAINING_EXIT_CODES = {
  success: 0,
  failure: 1,
  /** 128 + SIGINT(2), as a shell reports it. */
  interrupted: 130,
  /** 128 + SIGTERM(15): SageMaker's StopTrainingJob sends SIGTERM, then SIGKILL after 120 s. */
  terminated: 143,
} as const;

function formatValue(value: string | number | boolean): string {
  const text = String(value);
  return /[\s="]/.test(text) || text === '' ? JSON.stringify(text) : text;
}

/** Formats a log line: the message, then `key=value` pairs (values with spaces are JSON-quoted). */
export function formatLogLine(message: string, fields?: LogFields): string {
  const pairs = fields ? Object.entries(fields).map(([k, v]) => `${k}=${formatValue(v)}`) : [];
  return [message.replace(/\r?\n/g, ' '), ...pairs].join(' ');
}

/** Reason text of an error for the failure file: the message first (SageMaker shows 1 KB). */
function failureReason(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

const TRUNCATED = ' [truncated]';

/** `text` cut to at most `maxBytes` of UTF-8, never inside a character. */
function utf8Prefix(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length <= maxBytes ? text : utf8Head(bytes, maxBytes);
}

/**
 * Writes the failure file SageMaker (and the local runner) reports as the job's failure reason,
 * cut to {@link FAILURE_REASON_MAX_BYTES} (what SageMaker shows) and marked `[truncated]` when cut.
 *
 * @example await writeFailure(jobPaths('/opt/ml'), 'channel "train" is empty');
 */
export async function writeFailure(paths: JobPaths, reason: string): Promise<void> {
  let text = reason.endsWith('\n') ? reason : `${reason}\n`;
  if (Buffer.byteLength(text, 'utf8') > FAILURE_REASON_MAX_BYTES) {
    const room = FAILURE_REASON_MAX_BYTES - Buffer.byteLength(`${TRUNCATED}\n`);
    text = `${utf8Prefix(reason, room)}${TRUNCATED}\n`;
  }
  await mkdir(paths.output, { recursive: true });
  await writeFile(paths.failure, text);
}

/**
 * Runs a training entrypoint under the SageMaker contract: resolves the job root, reads the config and
 * channels, runs `main`, and exits 0 on success. On error it writes the reason to output/failure and
 * exits 1. On SIGTERM (SageMaker's stop) or SIGINT it aborts `ctx.signal`, runs the `onTerminate`
 * handlers in order, writes "stopped by SIGTERM" to the failure file and exits 143 (130 for SIGINT).
 *
 * @example
 * await runTrainingJob(async (ctx) => {
 *   const { epochs } = parseHyperparameters({ epochs: hp.int({ default: 5, min: 1 }) }, ctx.hyperparameters);
 *   ctx.onTerminate(() => saveCheckpoint(ctx.checkpointDir));
 *   ...; ctx.log('epoch done', { epoch: 1, loss: 0.12 });
 * });
 */
export async function runTrainingJob(
  main: (ctx: TrainingContext) => Promise<void>,
  options: RunTrainingJobOptions = {},
): Promise<number> {
  const paths = jobPaths(resolveJobRoot(options.env ?? process.env));
  const handlers: (() => void | Promise<void>)[] = [];
  const controller = new AbortController();
  const log = (message: string, fields?: LogFields): void => {
    process.stdout.write(`${formatLogLine(message, fields)}\n`);
  };

  let terminating: Promise<number> | undefined;
  let signalled!: () => void;
  // Settles when a signal's handlers have run, so a main() that ignores ctx.signal cannot keep the job alive.
  const stopped = new Promise<void>((resolve) => (signalled = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    // A second signal while handlers run changes nothing; the runner escalates to SIGKILL if it must.
    if (terminating) return;
    terminating = (async () => {
      log(`received ${signal}, stopping`, { handlers: handlers.length });
      controller.abort(new TrainingError('TRAINING_STOPPED', `stopped by ${signal}`));
      for (const handler of handlers) {
        try {
          await handler();
        } catch (err) {
          process.stderr.write(`onTerminate handler failed: ${failureReason(err)}\n`);
        }
      }
      await writeFailure(paths, `stopped by ${signal}`).catch(() => undefined);
      return signal === 'SIGINT' ? TRAINING_EXIT_CODES.interrupted : TRAINING_EXIT_CODES.terminated;
    })();
    void terminating.then(signalled);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let code: number;
  try {
    await Promise.all(
      [paths.model, paths.output, paths.checkpoints].map((d) => mkdir(d, { recursive: true })),
    );
    const env = await readTrainingEnv(paths.root);
    const ctx: TrainingContext = {
      root: paths.root,
      paths,
      hyperparameters: env.hyperparameters,
      inputDataConfig: env.inputDataConfig,
      resourceConfig: env.resourceConfig,
      channels: env.channels,
      channel(name) {
        const dir = env.channels[name];
        if (dir === undefined) {
          const known = Object.keys(env.channels);
          throw new TrainingError(
            'TRAINING_MISSING_CHANNEL',
            `this job needs a channel named "${name}"; configured channels: ${known.length > 0 ? known.join(', ') : '(none)'}`,
          );
        }
        return dir;
      },
      modelDir: paths.model,
      checkpointDir: paths.checkpoints,
      log,
      onTerminate: (handler) => void handlers.push(handler),
      signal: controller.signal,
    };
    await Promise.race([main(ctx), stopped]);
    code = terminating ? await terminating : TRAINING_EXIT_CODES.success;
  } catch (err) {
    if (terminating) {
      code = await terminating;
    } else {
      // An error raised on purpose (a bad hyperparameter, a missing channel) is the user's to fix:
      // its message says what is wrong, and a stack would bury it. Bugs keep their stack.
      process.stderr.write(
        `${isSlipwayError(err) ? failureReason(err) : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      await writeFailure(paths, failureReason(err)).catch((writeErr: unknown) => {
        process.stderr.write(`cannot write ${paths.failure}: ${failureReason(writeErr)}\n`);
      });
      code = TRAINING_EXIT_CODES.failure;
    }
  } finally {
    if (!terminating) {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
  }
  if (options.exit ?? true) process.exit(code);
  return code;
}
