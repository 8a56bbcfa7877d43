import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import type { Command } from 'commander';
import { UsageError } from '../../errors.ts';
import { DEFAULT_STACK_NAME, STACK_OUTPUTS } from '../../names.ts';
import { prepareMnistData } from '../../train/examples/mnist/prepare-data.ts';
import { defaultJobName, validateJobName } from '../../train/job-name.ts';
import { runLocalTrainingJob } from '../../train/local-runner.ts';
import type { LocalJobProgress } from '../../train/local-runner.ts';
import { SUPPORTED_INPUT_MODES, unsupportedInputMode, type InputMode } from '../../train/input-mode.ts';
import { followTrainingJob, launchTrainingJob } from '../../train/sagemaker.ts';
import type { ChannelSpec } from '../../train/sagemaker.ts';
import { describeStackOutputs } from '../cloud.ts';
import { intOption, printJson } from '../options.ts';

interface TrainFlags {
  output?: string;
  data?: string;
  channel: string[];
  hp: string[];
  jobName?: string;
  entry?: string;
  cloud?: boolean;
  stack: string;
  instanceType: string;
  instanceCount: string;
  inputMode?: string;
  json?: boolean;
  keepJobDir?: boolean;
}

/** The one place that decides where `slipway train` writes models when --output is not given. */
export function defaultTrainOutput(cwd: string = process.cwd()): string {
  return `${pathToFileURL(join(cwd, '.slipway', 'models')).href}/`;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** `--input-mode`, in any case, as the SageMaker value; Pipe and unknown modes are refused. */
export function inputModeOption(value: string): InputMode {
  const mode = SUPPORTED_INPUT_MODES.find((m) => m.toLowerCase() === value.trim().toLowerCase());
  if (mode === undefined) throw new UsageError(unsupportedInputMode(value, '--input-mode'));
  return mode;
}

/** Splits `key=value` (the value may itself contain `=`). */
function keyValue(flag: string, text: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new UsageError(`${flag} expects key=value, got "${text}"`);
  return [text.slice(0, at), text.slice(at + 1)];
}

function pairs(flag: string, list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const [key, value] = keyValue(flag, item);
    if (Object.hasOwn(out, key)) throw new UsageError(`${flag} ${key} is given twice`);
    out[key] = value;
  }
  return out;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Progress on stderr: rewritten in place on a terminal, one line per finished step otherwise. */
function progressPrinter(quiet: boolean): (p: LocalJobProgress) => void {
  const tty = process.stderr.isTTY;
  return (p) => {
    if (quiet) return;
    let line: string;
    let done: boolean;
    if (p.phase === 'download') {
      line = `copying channel ${p.channel}: ${p.files}/${p.totalFiles} files, ${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)}`;
      done = p.files === p.totalFiles;
    } else if (p.phase === 'upload') {
      line = `uploading model.tar.gz: ${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)}`;
      done = p.bytes >= p.totalBytes;
    } else {
      line = 'training...';
      done = true;
    }
    if (tty) process.stderr.write(`\r\x1b[2K${line}${done ? '\n' : ''}`);
    else if (done) process.stderr.write(`${line}\n`);
  };
}

async function trainLocally(flags: TrainFlags, hyperparameters: Record<string, string>): Promise<void> {
  const channels = pairs('--channel', flags.channel);
  if (flags.data !== undefined) {
    if (channels.train !== undefined)
      throw new UsageError('give the train channel once: --data or --channel train=...');
    channels.train = flags.data;
  }
  const jobName = flags.jobName === undefined ? defaultJobName() : validateJobName(flags.jobName);
  const controller = new AbortController();
  const stop = (signal: NodeJS.Signals): void => controller.abort(new Error(`interrupted by ${signal}`));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  let staged: string | undefined;
  try {
    if (channels.train === undefined && flags.entry === undefined) {
      // The MNIST example reads one `train` channel holding both its training and held-out files.
      staged = await mkdtemp(join(tmpdir(), 'slipway-mnist-data-'));
      if (!flags.json) process.stderr.write('staging the MNIST digits into a local data channel...\n');
      await prepareMnistData(staged);
      channels.train = `${pathToFileURL(staged).href}/`;
    }
    const result = await runLocalTrainingJob({
      jobName,
      ...(flags.entry === undefined ? {} : { entry: resolve(flags.entry) }),
      channels,
      output: flags.output ?? defaultTrainOutput(),
      hyperparameters,
      keepJobDir: flags.keepJobDir ?? false,
      onProgress: progressPrinter(false),
      signal: controller.signal,
    });
    if (flags.json) printJson(result);
    else process.stdout.write(`${result.modelUri}\n`);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    if (staged !== undefined) await rm(staged, { recursive: true, force: true });
  }
}

async function trainOnSageMaker(
  flags: TrainFlags,
  hyperparameters: Record<string, string>,
  inputMode: InputMode | undefined,
): Promise<void> {
  if (flags.entry !== undefined)
    throw new UsageError('--entry is local only; on SageMaker the image runs `train`');
  const instanceCount = intOption(flags.instanceCount, '--instance-count', 1);
  const outputs = await describeStackOutputs(flags.stack);
  const need = (key: string): string => {
    const value = outputs[key];
    if (!value) throw new UsageError(`stack ${flags.stack} has no output ${key}; is it a Slipway stack?`);
    return value;
  };
  const modelsBucket = need(STACK_OUTPUTS.modelsBucket);
  const channelUris = pairs('--channel', flags.channel);
  channelUris.train ??= flags.data ?? `s3://${need(STACK_OUTPUTS.dataBucket)}/mnist/`;
  const channels: ChannelSpec[] = Object.entries(channelUris).map(([name, uri]): ChannelSpec => {
    // efs:///datasets/x mounts that directory of the stack's file system.
    if (uri.startsWith('efs://')) {
      return {
        type: 'efs',
        name,
        fileSystemId: need(STACK_OUTPUTS.fileSystemId),
        directoryPath: uri.slice('efs://'.length) || '/',
      };
    }
    return { type: 's3', name, s3Uri: uri, ...(inputMode === undefined ? {} : { inputMode }) };
  });
  const subnets = outputs[STACK_OUTPUTS.trainingSubnets]?.split(',').filter(Boolean) ?? [];
  const securityGroup = outputs[STACK_OUTPUTS.trainingSecurityGroup];
  const jobName = flags.jobName ?? defaultJobName();
  const client = new SageMakerClient({});
  try {
    await launchTrainingJob(client, {
      jobName,
      image: need(STACK_OUTPUTS.trainingImageUri),
      roleArn: need(STACK_OUTPUTS.trainingRoleArn),
      instanceType: flags.instanceType,
      instanceCount,
      channels,
      outputPath: flags.output ?? `s3://${modelsBucket}/`,
      hyperparameters,
      checkpoint: { s3Uri: `s3://${modelsBucket}/checkpoints/${jobName}/` },
      // Jobs run in the stack's private subnets whenever it has them, EFS or not: behind its flow
      // logs, S3 gateway endpoint and egress controls, not on SageMaker's open network.
      ...(subnets.length > 0 && securityGroup !== undefined
        ? { vpc: { subnets, securityGroupIds: [securityGroup] } }
        : {}),
      tags: { project: 'slipway' },
    });
    if (!flags.json) process.stderr.write(`launched SageMaker training job ${jobName}\n`);
    const modelUri = await followTrainingJob(client, jobName, {
      onStatus: (s) => {
        if (!flags.json) process.stderr.write(`[${jobName}] ${s.secondaryStatus}: ${s.message}\n`);
      },
    });
    if (flags.json) printJson({ jobName, modelUri });
    else process.stdout.write(`${modelUri}\n`);
  } finally {
    client.destroy();
  }
}

/** Registers `slipway train`: run the training job locally (default) or on SageMaker (`--cloud`). */
export function registerTrain(program: Command): void {
  program
    .command('train')
    .description(
      'Train a model under the SageMaker training contract and upload <output>/<job-name>/output/model.tar.gz.\n' +
        'Locally the entrypoint runs as a child process in a job directory laid out like /opt/ml; ' +
        'without --data the MNIST digits are staged as the train channel.',
    )
    .option(
      '--output <uri>',
      'output prefix (s3:// or file://); default file://<cwd>/.slipway/models/, or the models bucket with --cloud',
    )
    .option('--data <uri>', 'the train channel (s3:// or file:// prefix)')
    .option(
      '--channel <name=uri>',
      'another channel (repeatable); with --cloud, efs:///dir mounts the stack EFS',
      collect,
      [],
    )
    .option('--hp <key=value>', 'hyperparameter (repeatable), passed as a string', collect, [])
    .option('--job-name <name>', 'job name: 1-63 of [a-zA-Z0-9-] (default slipway-mnist-<timestamp>)')
    .option('--entry <file>', 'training entrypoint (local only; default: the MNIST example)')
    .option('--cloud', 'launch on SageMaker using the deployed stack outputs')
    .option('--stack <name>', 'CloudFormation stack name (with --cloud)', DEFAULT_STACK_NAME)
    .option('--instance-type <type>', 'SageMaker instance type (with --cloud)', 'ml.m5.large')
    .option('--instance-count <n>', 'SageMaker instance count (with --cloud)', '1')
    .option(
      '--input-mode <mode>',
      `input mode of the S3 channels (with --cloud): ${SUPPORTED_INPUT_MODES.join(' or ')} (default File: ` +
        'copied before training; FastFile: streamed on read). Not Pipe: the toolkit reads channels as files',
    )
    .option('--keep-job-dir', 'keep the local job directory after success')
    .option('--json', 'print the result as JSON')
    .action(async (flags: TrainFlags) => {
      const hyperparameters = pairs('--hp', flags.hp);
      if (flags.jobName !== undefined) validateJobName(flags.jobName);
      const inputMode = flags.inputMode === undefined ? undefined : inputModeOption(flags.inputMode);
      if (flags.cloud) await trainOnSageMaker(flags, hyperparameters, inputMode);
      else await trainLocally(flags, hyperparameters);
    });
}
