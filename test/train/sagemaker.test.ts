import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import type { DescribeTrainingJobCommandOutput } from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { TrainingError } from '../../src/train/index.ts';
import {
  buildCreateTrainingJobInput,
  followTrainingJob,
  launchTrainingJob,
} from '../../src/train/sagemaker.ts';
import type { TrainingJobSpec, TrainingJobStatus } from '../../src/train/sagemaker.ts';

const sagemaker = mockClient(SageMakerClient);
afterEach(() => {
  sagemaker.reset();
});

const base: TrainingJobSpec = {
  jobName: 'slipway-mnist-1',
  image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway-training:abc',
  roleArn: 'arn:aws:iam::123456789012:role/slipway-training',
  instanceType: 'ml.m5.large',
  channels: [{ type: 's3', name: 'train', s3Uri: 's3://acme-data/mnist/' }],
  outputPath: 's3://acme-models/',
  hyperparameters: { epochs: 5, 'learning-rate': 0.001, shuffle: true },
};

function specError(spec: TrainingJobSpec): TrainingError {
  try {
    buildCreateTrainingJobInput(spec);
  } catch (err) {
    expect(err).toBeInstanceOf(TrainingError);
    return err as TrainingError;
  }
  throw new Error('expected the spec to be refused');
}

describe('launchTrainingJob', () => {
  it('sends the exact CreateTrainingJob request for an S3-only job', async () => {
    sagemaker
      .on(CreateTrainingJobCommand)
      .resolves({ TrainingJobArn: 'arn:aws:sagemaker:job/slipway-mnist-1' });
    const result = await launchTrainingJob(new SageMakerClient({ region: 'eu-west-1' }), {
      ...base,
      tags: { project: 'slipway' },
    });
    expect(result).toEqual({ jobName: 'slipway-mnist-1', jobArn: 'arn:aws:sagemaker:job/slipway-mnist-1' });
    expect(sagemaker.commandCalls(CreateTrainingJobCommand)).toHaveLength(1);
    expect(sagemaker.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input).toEqual({
      TrainingJobName: 'slipway-mnist-1',
      RoleArn: 'arn:aws:iam::123456789012:role/slipway-training',
      AlgorithmSpecification: {
        TrainingImage: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway-training:abc',
        TrainingInputMode: 'File',
      },
      HyperParameters: { epochs: '5', 'learning-rate': '0.001', shuffle: 'true' },
      InputDataConfig: [
        {
          ChannelName: 'train',
          DataSource: {
            S3DataSource: {
              S3DataType: 'S3Prefix',
              S3Uri: 's3://acme-data/mnist/',
              S3DataDistributionType: 'FullyReplicated',
            },
          },
        },
      ],
      OutputDataConfig: { S3OutputPath: 's3://acme-models/' },
      ResourceConfig: { InstanceType: 'ml.m5.large', InstanceCount: 1, VolumeSizeInGB: 30 },
      StoppingCondition: { MaxRuntimeInSeconds: 86400 },
      Tags: [{ Key: 'project', Value: 'slipway' }],
    });
  });

  it('sends an EFS channel as FileSystemDataSource with the VPC config', async () => {
    sagemaker.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn' });
    await launchTrainingJob(new SageMakerClient({ region: 'eu-west-1' }), {
      ...base,
      channels: [
        {
          type: 's3',
          name: 'train',
          s3Uri: 's3://acme-data/mnist/',
          contentType: 'application/octet-stream',
        },
        {
          type: 'efs',
          name: 'shared',
          fileSystemId: 'fs-0123456789abcdef0',
          directoryPath: '/datasets/mnist',
        },
      ],
      vpc: { subnets: ['subnet-a', 'subnet-b'], securityGroupIds: ['sg-1'] },
      enableNetworkIsolation: true,
    });
    const input = sagemaker.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input;
    expect(input?.InputDataConfig).toEqual([
      {
        ChannelName: 'train',
        DataSource: {
          S3DataSource: {
            S3DataType: 'S3Prefix',
            S3Uri: 's3://acme-data/mnist/',
            S3DataDistributionType: 'FullyReplicated',
          },
        },
        ContentType: 'application/octet-stream',
      },
      {
        ChannelName: 'shared',
        DataSource: {
          FileSystemDataSource: {
            FileSystemId: 'fs-0123456789abcdef0',
            FileSystemAccessMode: 'ro',
            FileSystemType: 'EFS',
            DirectoryPath: '/datasets/mnist',
          },
        },
      },
    ]);
    expect(input?.VpcConfig).toEqual({ Subnets: ['subnet-a', 'subnet-b'], SecurityGroupIds: ['sg-1'] });
    expect(input?.EnableNetworkIsolation).toBe(true);
    expect(input?.EnableManagedSpotTraining).toBeUndefined();
  });

  it('sends managed spot training with checkpoints and a max wait', async () => {
    sagemaker.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn' });
    await launchTrainingJob(new SageMakerClient({ region: 'eu-west-1' }), {
      ...base,
      hyperparameters: {},
      instanceCount: 2,
      maxRuntimeSeconds: 3600,
      spot: { maxWaitSeconds: 7200 },
      checkpoint: { s3Uri: 's3://acme-models/checkpoints/slipway-mnist-1/' },
    });
    expect(sagemaker.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input).toEqual({
      TrainingJobName: 'slipway-mnist-1',
      RoleArn: 'arn:aws:iam::123456789012:role/slipway-training',
      AlgorithmSpecification: {
        TrainingImage: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway-training:abc',
        TrainingInputMode: 'File',
      },
      HyperParameters: {},
      InputDataConfig: [
        {
          ChannelName: 'train',
          DataSource: {
            S3DataSource: {
              S3DataType: 'S3Prefix',
              S3Uri: 's3://acme-data/mnist/',
              S3DataDistributionType: 'FullyReplicated',
            },
          },
        },
      ],
      OutputDataConfig: { S3OutputPath: 's3://acme-models/' },
      ResourceConfig: { InstanceType: 'ml.m5.large', InstanceCount: 2, VolumeSizeInGB: 30 },
      StoppingCondition: { MaxRuntimeInSeconds: 3600, MaxWaitTimeInSeconds: 7200 },
      CheckpointConfig: {
        S3Uri: 's3://acme-models/checkpoints/slipway-mnist-1/',
        LocalPath: '/opt/ml/checkpoints',
      },
      EnableManagedSpotTraining: true,
    });
  });

  it('refuses an EFS channel without VPC config, before calling SageMaker', async () => {
    const spec: TrainingJobSpec = {
      ...base,
      channels: [{ type: 'efs', name: 'shared', fileSystemId: 'fs-0123456789abcdef0', directoryPath: '/d' }],
    };
    await expect(launchTrainingJob(new SageMakerClient({ region: 'eu-west-1' }), spec)).rejects.toThrow(
      'EFS channel "shared" needs VPC config',
    );
    expect(sagemaker.commandCalls(CreateTrainingJobCommand)).toHaveLength(0);
  });

  it('refuses a spot wait shorter than the max runtime', () => {
    const err = specError({ ...base, maxRuntimeSeconds: 3600, spot: { maxWaitSeconds: 600 } });
    expect(err.message).toBe('spot.maxWaitSeconds (600) must be >= maxRuntimeSeconds (3600)');
  });

  it('refuses an invalid job name, a non-S3 output and a duplicate channel', () => {
    expect(specError({ ...base, jobName: '-bad' }).code).toBe('TRAINING_BAD_JOB_NAME');
    expect(specError({ ...base, outputPath: 'file:///tmp/x' }).message).toContain(
      'outputPath must be an s3://',
    );
    expect(specError({ ...base, channels: [...base.channels, ...base.channels] }).message).toBe(
      'channel "train" is listed twice',
    );
  });

  it('sends FastFile as the input mode of an S3 channel', () => {
    const input = buildCreateTrainingJobInput({
      ...base,
      channels: [{ type: 's3', name: 'train', s3Uri: 's3://acme-data/mnist/', inputMode: 'FastFile' }],
    });
    expect(input.InputDataConfig?.[0]?.InputMode).toBe('FastFile');
    expect(input.AlgorithmSpecification?.TrainingInputMode).toBe('File');
  });

  it('refuses a Pipe channel before calling SageMaker, naming the modes that work', async () => {
    // Pipe is outside the type; a JavaScript caller or a cast still reaches the run-time check.
    const pipe = { type: 's3', name: 'train', s3Uri: 's3://acme-data/mnist/', inputMode: 'Pipe' } as unknown;
    const spec: TrainingJobSpec = { ...base, channels: [pipe as TrainingJobSpec['channels'][number]] };
    const err = specError(spec);
    expect(err.code).toBe('TRAINING_BAD_SPEC');
    expect(err.message).toMatch(
      /^channel "train": input mode Pipe is not supported: .*reads each channel as files/,
    );
    expect(err.message).toContain('use File or FastFile');
    await expect(launchTrainingJob(new SageMakerClient({ region: 'eu-west-1' }), spec)).rejects.toThrow(
      'input mode Pipe is not supported',
    );
    expect(sagemaker.commandCalls(CreateTrainingJobCommand)).toHaveLength(0);
  });

  it('refuses an input mode SageMaker does not know, naming the ones that work', () => {
    const typo = { type: 's3', name: 'train', s3Uri: 's3://acme-data/mnist/', inputMode: 'file' } as unknown;
    expect(specError({ ...base, channels: [typo as TrainingJobSpec['channels'][number]] }).message).toBe(
      'channel "train": unknown input mode "file"; use File or FastFile',
    );
  });

  it("wraps SageMaker's refusal with its message", async () => {
    sagemaker.on(CreateTrainingJobCommand).rejects(new Error('Job name must be unique'));
    await expect(launchTrainingJob(new SageMakerClient({ region: 'eu-west-1' }), base)).rejects.toThrow(
      'SageMaker refused training job slipway-mnist-1: Error: Job name must be unique',
    );
  });
});

function describeOutput(
  status: string,
  transitions: [string, string][],
  extra: Partial<DescribeTrainingJobCommandOutput> = {},
): DescribeTrainingJobCommandOutput {
  return {
    $metadata: {},
    TrainingJobStatus: status,
    SecondaryStatusTransitions: transitions.map(([Status, StatusMessage]) => ({
      Status,
      StatusMessage,
      StartTime: new Date('2026-01-01T00:00:00Z'),
    })),
    ...extra,
  } as DescribeTrainingJobCommandOutput;
}

describe('followTrainingJob', () => {
  it('reports each secondary status once and returns the model artifact URI', async () => {
    sagemaker
      .on(DescribeTrainingJobCommand)
      .resolvesOnce(describeOutput('InProgress', [['Starting', 'Preparing the instances']]))
      .resolvesOnce(
        describeOutput('InProgress', [
          ['Starting', 'Preparing the instances'],
          ['Downloading', 'Downloading input data'],
          ['Training', 'Training image download completed'],
        ]),
      )
      .resolves(
        describeOutput(
          'Completed',
          [
            ['Starting', 'Preparing the instances'],
            ['Downloading', 'Downloading input data'],
            ['Training', 'Training image download completed'],
            ['Completed', 'Training job completed'],
          ],
          { ModelArtifacts: { S3ModelArtifacts: 's3://acme-models/slipway-mnist-1/output/model.tar.gz' } },
        ),
      );
    const seen: TrainingJobStatus[] = [];
    const uri = await followTrainingJob(new SageMakerClient({ region: 'eu-west-1' }), 'slipway-mnist-1', {
      pollMs: 0,
      onStatus: (s) => seen.push(s),
    });
    expect(uri).toBe('s3://acme-models/slipway-mnist-1/output/model.tar.gz');
    expect(seen.map((s) => s.secondaryStatus)).toEqual(['Starting', 'Downloading', 'Training', 'Completed']);
    expect(sagemaker.commandCalls(DescribeTrainingJobCommand)).toHaveLength(3);
    expect(sagemaker.commandCalls(DescribeTrainingJobCommand)[0]?.args[0].input).toEqual({
      TrainingJobName: 'slipway-mnist-1',
    });
  });

  it('throws the failure reason of a failed job', async () => {
    sagemaker.on(DescribeTrainingJobCommand).resolves(
      describeOutput('Failed', [['Failed', 'Training job failed']], {
        FailureReason: 'AlgorithmError: unknown hyperparameter "epoks"; known: epochs',
      }),
    );
    const err = await followTrainingJob(new SageMakerClient({ region: 'eu-west-1' }), 'j', {
      pollMs: 0,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingError);
    expect((err as TrainingError).code).toBe('TRAINING_FAILED');
    expect((err as TrainingError).message).toBe(
      'training job j failed: AlgorithmError: unknown hyperparameter "epoks"; known: epochs',
    );
  });

  it('throws TRAINING_STOPPED for a stopped job', async () => {
    sagemaker
      .on(DescribeTrainingJobCommand)
      .resolvesOnce(describeOutput('Stopping', [['Stopping', 'Stopping the training job']]))
      .resolves(
        describeOutput('Stopped', [
          ['Stopping', 'Stopping the training job'],
          ['Stopped', 'Stopped'],
        ]),
      );
    const seen: string[] = [];
    const err = await followTrainingJob(new SageMakerClient({ region: 'eu-west-1' }), 'j', {
      pollMs: 0,
      onStatus: (s) => seen.push(s.secondaryStatus),
    }).catch((e: unknown) => e);
    expect((err as TrainingError).code).toBe('TRAINING_STOPPED');
    expect((err as TrainingError).message).toBe('training job j was stopped');
    expect(seen).toEqual(['Stopping', 'Stopped']);
  });
});
