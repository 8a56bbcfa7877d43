import { createReadStream } from 'node:fs';
import { basename, join } from 'node:path';
import type { ObjectStore } from '../store/types.ts';
import { defaultJobName } from '../train/job-name.ts';
import { prepareMnistData } from '../train/examples/mnist/prepare-data.ts';
import type { Bootstrap, BootstrapContext } from './twin.ts';

/** What a training runner gets from the bootstrap. */
export interface TrainingRun {
  readonly jobName: string;
  /** Channel name -> data prefix URI. */
  readonly channels: Readonly<Record<string, string>>;
  /** Output prefix: the job uploads `<output><jobName>/output/model.tar.gz`. */
  readonly output: string;
  readonly hyperparameters: Readonly<Record<string, string>>;
  /** Where the job directory (laid out like /opt/ml) goes. */
  readonly workDir: string;
  /** Environment for the job's child process (the S3 endpoint and credentials). */
  readonly env: Readonly<Record<string, string>>;
  /** The twin's object store (channels are copied from it, the model is uploaded to it). */
  readonly store: ObjectStore;
  readonly signal: AbortSignal;
  readonly log: (message: string) => void;
  /** Called with the pid (and process group id) of the job's trainer once it runs. */
  readonly onStart?: (pid: number) => void;
}

/** Runs one training job to completion and returns the uploaded model's URI. */
export type TrainingRunner = (run: TrainingRun) => Promise<{ readonly modelUri: string }>;

/** Options of {@link mnistBootstrap}. */
export interface MnistBootstrapOptions {
  /** Hyperparameters of the MNIST example (strings, as SageMaker passes them). */
  readonly hyperparameters?: Readonly<Record<string, string>>;
  /** The job runner (default: the local SageMaker-contract runner from src/train). */
  readonly runner?: TrainingRunner;
}

/**
 * The twin's first-run bootstrap: stage the MNIST digits in the data bucket and run the example
 * training job through the local job runner; the job's upload of `model.tar.gz` to the models
 * bucket is what starts the first rollout.
 */
export function mnistBootstrap(options: MnistBootstrapOptions = {}): Bootstrap {
  return async (ctx: BootstrapContext) => {
    const channel = `${ctx.dataPrefix}mnist/`;
    ctx.log('training: staging the MNIST digits (8000 train, 2000 held out)');
    const prepared = await prepareMnistData(join(ctx.paths.data, 'mnist'));
    for (const file of [prepared.trainFile, prepared.testFile]) {
      ctx.signal.throwIfAborted();
      await ctx.store.put(`${channel}${basename(file)}`, createReadStream(file));
    }
    ctx.log(`training: data staged at ${channel}`);
    const runner = options.runner ?? (await defaultRunner());
    const jobName = defaultJobName('slipway-mnist');
    const result = await runner({
      jobName,
      channels: { train: channel },
      output: ctx.modelsPrefix,
      hyperparameters: options.hyperparameters ?? {},
      workDir: ctx.paths.jobs,
      env: ctx.s3Env,
      store: ctx.store,
      signal: ctx.signal,
      log: (line) => ctx.log(`training: ${line}`),
      onStart: (pgid) => ctx.onTrainer?.({ pgid, jobName }),
    });
    ctx.log(`training: job ${jobName} uploaded ${result.modelUri}`);
  };
}

async function defaultRunner(): Promise<TrainingRunner> {
  const { localTrainingRunner } = await import('./training-runner.ts');
  return localTrainingRunner;
}
