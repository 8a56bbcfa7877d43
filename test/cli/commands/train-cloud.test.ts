import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { captureOutput } from '../../helpers/capture-output.ts';
import type { CapturedOutput } from '../../helpers/capture-output.ts';
import { runCli } from '../../../src/cli/program.ts';
import { STACK_OUTPUTS } from '../../../src/names.ts';

const cloudformation = mockClient(CloudFormationClient);
const sagemaker = mockClient(SageMakerClient);

const outputs: Record<string, string> = {
  [STACK_OUTPUTS.dataBucket]: 'acme-data',
  [STACK_OUTPUTS.modelsBucket]: 'acme-models',
  [STACK_OUTPUTS.trainingRoleArn]: 'arn:aws:iam::123456789012:role/training',
  [STACK_OUTPUTS.trainingImageUri]: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway-training:1',
  [STACK_OUTPUTS.trainingSubnets]: 'subnet-a,subnet-b',
  [STACK_OUTPUTS.trainingSecurityGroup]: 'sg-1',
  [STACK_OUTPUTS.fileSystemId]: 'fs-0123456789abcdef0',
};

let output: CapturedOutput;
beforeEach(() => {
  output = captureOutput();
  vi.stubEnv('AWS_REGION', 'eu-west-1');
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  cloudformation.reset();
  sagemaker.reset();
});

function stackWith(values: Record<string, string>): void {
  cloudformation.on(DescribeStacksCommand).resolves({
    Stacks: [
      {
        StackName: 'Slipway',
        CreationTime: new Date(),
        StackStatus: 'CREATE_COMPLETE',
        Outputs: Object.entries(values).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
      },
    ],
  });
}

/** The stack has every output; SageMaker launches `jobName` and reports it completed. */
function jobCompletes(jobName: string): void {
  stackWith(outputs);
  sagemaker.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn:job' });
  sagemaker.on(DescribeTrainingJobCommand).resolves({
    TrainingJobStatus: 'Completed',
    ModelArtifacts: { S3ModelArtifacts: `s3://acme-models/${jobName}/output/model.tar.gz` },
  });
}

describe('slipway train --cloud', () => {
  it('launches from the stack outputs, mounts EFS inside the VPC and prints the model URI', async () => {
    stackWith(outputs);
    sagemaker.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn:job' });
    sagemaker.on(DescribeTrainingJobCommand).resolves({
      TrainingJobStatus: 'Completed',
      SecondaryStatusTransitions: [
        { Status: 'Completed', StatusMessage: 'Training job completed', StartTime: new Date() },
      ],
      ModelArtifacts: { S3ModelArtifacts: 's3://acme-models/cloud-1/output/model.tar.gz' },
    });
    const code = await runCli([
      'node',
      'slipway',
      'train',
      '--cloud',
      '--job-name',
      'cloud-1',
      '--hp',
      'epochs=3',
      '--channel',
      'shared=efs:///datasets',
    ]);
    expect(output.stderr).toContain('[cloud-1] Completed: Training job completed');
    expect(code).toBe(0);
    expect(output.stdout).toBe('s3://acme-models/cloud-1/output/model.tar.gz\n');
    const input = sagemaker.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input;
    expect(input).toMatchObject({
      TrainingJobName: 'cloud-1',
      RoleArn: outputs[STACK_OUTPUTS.trainingRoleArn],
      AlgorithmSpecification: {
        TrainingImage: outputs[STACK_OUTPUTS.trainingImageUri],
        TrainingInputMode: 'File',
      },
      HyperParameters: { epochs: '3' },
      OutputDataConfig: { S3OutputPath: 's3://acme-models/' },
      CheckpointConfig: { S3Uri: 's3://acme-models/checkpoints/cloud-1/', LocalPath: '/opt/ml/checkpoints' },
      VpcConfig: { Subnets: ['subnet-a', 'subnet-b'], SecurityGroupIds: ['sg-1'] },
    });
    expect(input?.InputDataConfig?.map((c) => c.ChannelName)).toEqual(['shared', 'train']);
    expect(input?.InputDataConfig?.[0]?.DataSource?.FileSystemDataSource).toEqual({
      FileSystemId: 'fs-0123456789abcdef0',
      FileSystemAccessMode: 'ro',
      FileSystemType: 'EFS',
      DirectoryPath: '/datasets',
    });
    expect(input?.InputDataConfig?.[1]?.DataSource?.S3DataSource?.S3Uri).toBe('s3://acme-data/mnist/');
  });

  it('runs a job without EFS channels inside the stack VPC too', async () => {
    jobCompletes('cloud-2');
    expect(await runCli(['node', 'slipway', 'train', '--cloud', '--job-name', 'cloud-2'])).toBe(0);
    expect(sagemaker.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input.VpcConfig).toEqual({
      Subnets: ['subnet-a', 'subnet-b'],
      SecurityGroupIds: ['sg-1'],
    });
  });

  it('refuses an EFS channel when the stack has no training VPC, before launching', async () => {
    const { [STACK_OUTPUTS.trainingSecurityGroup]: _sg, ...noVpc } = outputs;
    stackWith(noVpc);
    const code = await runCli(['node', 'slipway', 'train', '--cloud', '--channel', 'shared=efs:///d']);
    expect(code).toBe(1);
    expect(output.stderr).toContain('EFS channel "shared" needs VPC config');
    expect(sagemaker.commandCalls(CreateTrainingJobCommand)).toHaveLength(0);
  });

  it('names the missing stack output', async () => {
    const { [STACK_OUTPUTS.trainingRoleArn]: _role, ...noRole } = outputs;
    stackWith(noRole);
    const code = await runCli(['node', 'slipway', 'train', '--cloud']);
    expect(code).toBe(1);
    expect(output.stderr).toBe(
      `slipway: stack Slipway has no output ${STACK_OUTPUTS.trainingRoleArn}; is it a Slipway stack?\n`,
    );
  });
});

describe('slipway train --cloud --instance-count', () => {
  it.each(['abc', '0', '1.5', ''])(
    'refuses %j before reading the stack or calling SageMaker',
    async (count) => {
      stackWith(outputs);

      const code = await runCli(['node', 'slipway', 'train', '--cloud', '--instance-count', count]);

      expect(code).toBe(1);
      expect(output.stderr).toBe(`slipway: --instance-count must be a whole number >= 1, got "${count}"\n`);
      expect(cloudformation.calls()).toHaveLength(0);
      expect(sagemaker.calls()).toHaveLength(0);
    },
  );
});

describe('slipway train --input-mode', () => {
  it.each(['Pipe', 'pipe'])(
    'refuses %s before reading the stack or calling SageMaker, naming the modes that work',
    async (mode) => {
      stackWith(outputs);

      const code = await runCli(['node', 'slipway', 'train', '--cloud', '--input-mode', mode]);

      expect(code).toBe(1);
      expect(output.stderr).toMatch(
        /^slipway: --input-mode: input mode Pipe is not supported: [^\n]*use File or FastFile[^\n]*\n$/,
      );
      expect(cloudformation.calls()).toHaveLength(0);
      expect(sagemaker.calls()).toHaveLength(0);
    },
  );

  it('refuses Pipe on a local run too, before training', async () => {
    const code = await runCli([
      'node',
      'slipway',
      'train',
      '--input-mode',
      'Pipe',
      '--entry',
      '/no/such/entry.ts',
    ]);

    expect(code).toBe(1);
    expect(output.stderr).toContain('input mode Pipe is not supported');
    expect(output.stderr).not.toContain('/no/such/entry.ts');
  });

  it('refuses an unknown mode, naming the modes that work', async () => {
    expect(await runCli(['node', 'slipway', 'train', '--cloud', '--input-mode', 'Stream'])).toBe(1);
    expect(output.stderr).toBe('slipway: --input-mode: unknown input mode "Stream"; use File or FastFile\n');
  });

  it('sets FastFile (in any case) on every S3 channel, and leaves EFS channels in File mode', async () => {
    jobCompletes('cloud-3');

    const code = await runCli([
      'node',
      'slipway',
      'train',
      '--cloud',
      '--job-name',
      'cloud-3',
      '--input-mode',
      'fastfile',
      '--channel',
      'extra=s3://acme-data/extra/',
      '--channel',
      'shared=efs:///datasets',
    ]);

    expect(code).toBe(0);
    const channels = sagemaker.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input.InputDataConfig ?? [];
    expect(Object.fromEntries(channels.map((c) => [c.ChannelName, c.InputMode]))).toEqual({
      extra: 'FastFile',
      shared: undefined,
      train: 'FastFile',
    });
  });
});
