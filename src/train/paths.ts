import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { ENV } from '../names.ts';

/** The job root inside a SageMaker training container. */
export const DEFAULT_JOB_ROOT = '/opt/ml';

/**
 * The job root: `SLIPWAY_JOB_ROOT` when set (the local runner sets it), else `/opt/ml`.
 *
 * @example const root = resolveJobRoot(); // '/opt/ml' in the container
 */
export function resolveJobRoot(env: NodeJS.ProcessEnv = process.env): string {
  const value = env[ENV.jobRoot];
  return value !== undefined && value !== '' ? value : DEFAULT_JOB_ROOT;
}

/**
 * Bytes of `output/failure` that count: SageMaker shows only the first 1 KB as the failure reason, so
 * the toolkit writes no more and the local runner reads no more.
 */
export const FAILURE_REASON_MAX_BYTES = 1024;

/** The first `maxBytes` of UTF-8 `bytes` as text, never ending inside a character. */
export function utf8Head(bytes: Buffer, maxBytes: number): string {
  // The decoder holds back a character cut in half instead of emitting U+FFFD.
  return new StringDecoder('utf8').write(bytes.subarray(0, maxBytes));
}

/** Every path of SageMaker's training layout under one job root. */
export interface JobPaths {
  readonly root: string;
  /** `input/config/` */
  readonly configDir: string;
  /** `input/config/hyperparameters.json` (all values are strings). */
  readonly hyperparameters: string;
  /** `input/config/inputdataconfig.json` (channel name -> content type, input mode...). */
  readonly inputDataConfig: string;
  /** `input/config/resourceconfig.json` (current_host, hosts). */
  readonly resourceConfig: string;
  /** `input/data/` */
  readonly dataDir: string;
  /** `input/data/<name>/`: where a channel's files are. */
  channel(name: string): string;
  /** `model/`: everything here becomes model.tar.gz. */
  readonly model: string;
  /** `output/` */
  readonly output: string;
  /** `output/failure`: the reason SageMaker shows when the job fails (first 1 KB). */
  readonly failure: string;
  /** `checkpoints/`: synced to S3 when the job has a checkpoint config. */
  readonly checkpoints: string;
}

/**
 * The SageMaker training layout under `root`.
 *
 * @example jobPaths('/opt/ml').channel('train') // '/opt/ml/input/data/train'
 */
export function jobPaths(root: string): JobPaths {
  const configDir = join(root, 'input', 'config');
  const dataDir = join(root, 'input', 'data');
  const output = join(root, 'output');
  return {
    root,
    configDir,
    hyperparameters: join(configDir, 'hyperparameters.json'),
    inputDataConfig: join(configDir, 'inputdataconfig.json'),
    resourceConfig: join(configDir, 'resourceconfig.json'),
    dataDir,
    channel: (name: string) => join(dataDir, name),
    model: join(root, 'model'),
    output,
    failure: join(output, 'failure'),
    checkpoints: join(root, 'checkpoints'),
  };
}
