import { setTimeout as sleep } from 'node:timers/promises';
import { CreateTrainingJobCommand, DescribeTrainingJobCommand } from '@aws-sdk/client-sagemaker';
import type {
  Channel,
  CreateTrainingJobCommandInput,
  DescribeTrainingJobCommandOutput,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { TrainingError } from './errors.ts';
import { toHyperparameterStrings } from './hyperparameters.ts';
import { validateJobName } from './job-name.ts';
import { isSupportedInputMode, unsupportedInputMode, type InputMode } from './input-mode.ts';
import { DEFAULT_JOB_ROOT } from './paths.ts';

/** A channel read from S3 (every object under the prefix). */
export interface S3ChannelSpec {
  readonly type: 's3';
  readonly name: string;
  /** `s3://bucket/prefix/` */
  readonly s3Uri: string;
  readonly contentType?: string;
  /** @default 'FullyReplicated' */
  readonly distribution?: 'FullyReplicated' | 'ShardedByS3Key';
  /**
   * File copies the channel before training; FastFile streams each file from S3 on read. Pipe is
   * refused: the toolkit reads channels as files (see input-mode.ts).
   * @default the job's input mode ('File')
   */
  readonly inputMode?: InputMode;
}

/** A channel mounted from EFS (FileSystemDataSource); the job must run in a VPC that reaches it. */
export interface EfsChannelSpec {
  readonly type: 'efs';
  readonly name: string;
  /** `fs-...` */
  readonly fileSystemId: string;
  /** Absolute path inside the file system, e.g. `/datasets/mnist`. */
  readonly directoryPath: string;
  /** @default 'ro' */
  readonly accessMode?: 'ro' | 'rw';
}

/** One input channel of a SageMaker training job. */
export type ChannelSpec = S3ChannelSpec | EfsChannelSpec;

/** Everything Slipway needs to launch a SageMaker training job. */
export interface TrainingJobSpec {
  readonly jobName: string;
  /** ECR image URI of the training image (runs `<image> train`). */
  readonly image: string;
  /** Execution role SageMaker assumes. */
  readonly roleArn: string;
  readonly instanceType: string;
  /** @default 1 */
  readonly instanceCount?: number;
  /** @default 30 */
  readonly volumeSizeGb?: number;
  readonly channels: readonly ChannelSpec[];
  /** `s3://bucket/prefix/`: the model lands at `<outputPath>/<job-name>/output/model.tar.gz`. */
  readonly outputPath: string;
  readonly hyperparameters?: Readonly<Record<string, string | number | boolean>>;
  /** Required by EFS channels. */
  readonly vpc?: { readonly subnets: readonly string[]; readonly securityGroupIds: readonly string[] };
  /** Synced with the container's checkpoint dir (resume after a spot interruption). */
  readonly checkpoint?: { readonly s3Uri: string; readonly localPath?: string };
  /** @default 86400 (one day) */
  readonly maxRuntimeSeconds?: number;
  /** Managed spot training; `maxWaitSeconds` (runtime plus waiting for capacity) must be >= the max runtime. */
  readonly spot?: { readonly maxWaitSeconds: number };
  readonly tags?: Readonly<Record<string, string>>;
  /** @default false */
  readonly enableNetworkIsolation?: boolean;
  readonly environment?: Readonly<Record<string, string>>;
}

function bad(message: string): TrainingError {
  return new TrainingError('TRAINING_BAD_SPEC', message);
}

function requireS3(what: string, uri: string): void {
  if (!/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(uri)) {
    throw bad(`${what} must be an s3://bucket/prefix URI, got ${JSON.stringify(uri)}`);
  }
}

function positiveInt(what: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw bad(`${what} must be a positive integer, got ${value}`);
  return value;
}

function channelInput(channel: ChannelSpec): Channel {
  if (channel.type === 's3') {
    requireS3(`channel "${channel.name}"`, channel.s3Uri);
    // The type already excludes Pipe; JavaScript callers and casts get the same answer at run time.
    if (channel.inputMode !== undefined && !isSupportedInputMode(channel.inputMode)) {
      throw bad(unsupportedInputMode(channel.inputMode, `channel "${channel.name}"`));
    }
    return {
      ChannelName: channel.name,
      DataSource: {
        S3DataSource: {
          S3DataType: 'S3Prefix',
          S3Uri: channel.s3Uri,
          S3DataDistributionType: channel.distribution ?? 'FullyReplicated',
        },
      },
      ...(channel.contentType === undefined ? {} : { ContentType: channel.contentType }),
      ...(channel.inputMode === undefined ? {} : { InputMode: channel.inputMode }),
    };
  }
  if (!/^fs-[0-9a-f]{8,40}$/.test(channel.fileSystemId)) {
    throw bad(`channel "${channel.name}": ${JSON.stringify(channel.fileSystemId)} is not an EFS id (fs-...)`);
  }
  if (!channel.directoryPath.startsWith('/')) {
    throw bad(
      `channel "${channel.name}": directoryPath must be absolute, got ${JSON.stringify(channel.directoryPath)}`,
    );
  }
  return {
    ChannelName: channel.name,
    DataSource: {
      FileSystemDataSource: {
        FileSystemId: channel.fileSystemId,
        FileSystemAccessMode: channel.accessMode ?? 'ro',
        FileSystemType: 'EFS',
        DirectoryPath: channel.directoryPath,
      },
    },
  };
}

/**
 * Turns a typed job spec into CreateTrainingJob's input, refusing specs SageMaker would reject late
 * or that could not work (an EFS channel without VPC config, spot wait shorter than the runtime).
 *
 * @example const input = buildCreateTrainingJobInput({ jobName, image, roleArn, instanceType: 'ml.m5.large', channels, outputPath });
 */
export function buildCreateTrainingJobInput(spec: TrainingJobSpec): CreateTrainingJobCommandInput {
  validateJobName(spec.jobName);
  requireS3('outputPath', spec.outputPath);
  if (spec.channels.length === 0) throw bad('a training job needs at least one channel');
  const names = new Set<string>();
  for (const channel of spec.channels) {
    if (!/^[A-Za-z0-9.\-_]{1,64}$/.test(channel.name))
      throw bad(`invalid channel name ${JSON.stringify(channel.name)}`);
    if (names.has(channel.name)) throw bad(`channel "${channel.name}" is listed twice`);
    names.add(channel.name);
  }
  const efs = spec.channels.filter((c) => c.type === 'efs');
  if (
    efs.length > 0 &&
    (spec.vpc === undefined || spec.vpc.subnets.length === 0 || spec.vpc.securityGroupIds.length === 0)
  ) {
    throw bad(
      `EFS channel "${efs[0]?.name ?? ''}" needs VPC config (subnets and security groups that reach the file system); ` +
        'add vpc: { subnets, securityGroupIds }',
    );
  }
  if (spec.vpc !== undefined && (spec.vpc.subnets.length === 0 || spec.vpc.securityGroupIds.length === 0)) {
    throw bad('vpc needs at least one subnet and one security group');
  }
  const maxRuntime = positiveInt('maxRuntimeSeconds', spec.maxRuntimeSeconds ?? 86_400);
  if (spec.spot !== undefined) {
    positiveInt('spot.maxWaitSeconds', spec.spot.maxWaitSeconds);
    if (spec.spot.maxWaitSeconds < maxRuntime) {
      throw bad(
        `spot.maxWaitSeconds (${spec.spot.maxWaitSeconds}) must be >= maxRuntimeSeconds (${maxRuntime})`,
      );
    }
  }
  if (spec.checkpoint !== undefined) requireS3('checkpoint.s3Uri', spec.checkpoint.s3Uri);
  const hyperparameters = toHyperparameterStrings(spec.hyperparameters ?? {});
  if (Object.keys(hyperparameters).length > 100) throw bad('SageMaker accepts at most 100 hyperparameters');
  for (const [key, value] of Object.entries(hyperparameters)) {
    if (key.length > 256 || value.length > 2500) {
      throw bad(`hyperparameter "${key.slice(0, 40)}" is too long (keys <= 256, values <= 2500 characters)`);
    }
  }
  const tags = Object.entries(spec.tags ?? {});

  return {
    TrainingJobName: spec.jobName,
    RoleArn: spec.roleArn,
    AlgorithmSpecification: { TrainingImage: spec.image, TrainingInputMode: 'File' },
    HyperParameters: hyperparameters,
    InputDataConfig: spec.channels.map(channelInput),
    OutputDataConfig: { S3OutputPath: spec.outputPath },
    ResourceConfig: {
      InstanceType: spec.instanceType as NonNullable<
        CreateTrainingJobCommandInput['ResourceConfig']
      >['InstanceType'],
      InstanceCount: positiveInt('instanceCount', spec.instanceCount ?? 1),
      VolumeSizeInGB: positiveInt('volumeSizeGb', spec.volumeSizeGb ?? 30),
    },
    StoppingCondition: {
      MaxRuntimeInSeconds: maxRuntime,
      ...(spec.spot === undefined ? {} : { MaxWaitTimeInSeconds: spec.spot.maxWaitSeconds }),
    },
    ...(spec.vpc === undefined
      ? {}
      : { VpcConfig: { Subnets: [...spec.vpc.subnets], SecurityGroupIds: [...spec.vpc.securityGroupIds] } }),
    ...(spec.checkpoint === undefined
      ? {}
      : {
          CheckpointConfig: {
            S3Uri: spec.checkpoint.s3Uri,
            LocalPath: spec.checkpoint.localPath ?? `${DEFAULT_JOB_ROOT}/checkpoints`,
          },
        }),
    ...(spec.spot === undefined ? {} : { EnableManagedSpotTraining: true }),
    ...(spec.enableNetworkIsolation === undefined
      ? {}
      : { EnableNetworkIsolation: spec.enableNetworkIsolation }),
    ...(spec.environment === undefined ? {} : { Environment: { ...spec.environment } }),
    ...(tags.length === 0 ? {} : { Tags: tags.map(([Key, Value]) => ({ Key, Value })) }),
  };
}

/** The subset of SageMakerClient the launcher uses (tests pass a mocked client). */
export type SageMakerSend = Pick<SageMakerClient, 'send'>;

/**
 * Validates the spec and calls CreateTrainingJob; SDK errors become a TrainingError with SageMaker's message.
 *
 * @example const { jobName } = await launchTrainingJob(new SageMakerClient({}), spec);
 */
export async function launchTrainingJob(
  client: SageMakerSend,
  spec: TrainingJobSpec,
): Promise<{ jobName: string; jobArn: string }> {
  const input = buildCreateTrainingJobInput(spec);
  try {
    const out = await client.send(new CreateTrainingJobCommand(input));
    return { jobName: spec.jobName, jobArn: out.TrainingJobArn ?? '' };
  } catch (err) {
    throw new TrainingError(
      'TRAINING_BAD_SPEC',
      `SageMaker refused training job ${spec.jobName}: ${(err as Error).name}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** A progress report while following a job. */
export interface TrainingJobStatus {
  /** InProgress, Completed, Failed, Stopping, Stopped. */
  readonly status: string;
  /** Starting, Downloading, Training, Uploading, ... */
  readonly secondaryStatus: string;
  readonly message: string;
  readonly time?: Date;
}

/** Options of {@link followTrainingJob}. */
export interface FollowOptions {
  /** Called once per new secondary status transition, in order. */
  readonly onStatus?: (status: TrainingJobStatus) => void;
  /** @default 30000 */
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Polls DescribeTrainingJob until the job ends, reporting each secondary status transition once.
 * Returns the model artifact URI on Completed; throws TrainingError with SageMaker's FailureReason
 * on Failed (`TRAINING_FAILED`) or Stopped (`TRAINING_STOPPED`).
 *
 * @example const uri = await followTrainingJob(client, 'slipway-mnist-...', { onStatus: (s) => console.error(s.message) });
 */
export async function followTrainingJob(
  client: SageMakerSend,
  jobName: string,
  options: FollowOptions = {},
): Promise<string> {
  let reported = 0;
  for (;;) {
    const job: DescribeTrainingJobCommandOutput = await client.send(
      new DescribeTrainingJobCommand({ TrainingJobName: jobName }),
    );
    const transitions = job.SecondaryStatusTransitions ?? [];
    for (const transition of transitions.slice(reported)) {
      options.onStatus?.({
        status: job.TrainingJobStatus ?? 'Unknown',
        secondaryStatus: transition.Status ?? 'Unknown',
        message: transition.StatusMessage ?? '',
        ...(transition.StartTime === undefined ? {} : { time: transition.StartTime }),
      });
    }
    reported = Math.max(reported, transitions.length);
    switch (job.TrainingJobStatus) {
      case 'Completed': {
        const uri = job.ModelArtifacts?.S3ModelArtifacts;
        if (uri === undefined) {
          throw new TrainingError(
            'TRAINING_FAILED',
            `training job ${jobName} completed without a model artifact`,
          );
        }
        return uri;
      }
      case 'Failed':
        throw new TrainingError(
          'TRAINING_FAILED',
          `training job ${jobName} failed: ${job.FailureReason ?? 'no failure reason reported'}`,
        );
      case 'Stopped':
        throw new TrainingError(
          'TRAINING_STOPPED',
          `training job ${jobName} was stopped${job.FailureReason ? `: ${job.FailureReason}` : ''}`,
        );
      default:
        await sleep(options.pollMs ?? 30_000, undefined, { signal: options.signal });
    }
  }
}
