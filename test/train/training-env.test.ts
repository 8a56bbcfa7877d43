import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TrainingError, jobPaths, readTrainingEnv, resolveJobRoot } from '../../src/train/index.ts';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'slipway-train-env-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function writeJson(file: string, value: unknown): Promise<void> {
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
}

async function failure(promise: Promise<unknown>): Promise<TrainingError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TrainingError);
  return err as TrainingError;
}

describe('resolveJobRoot and jobPaths', () => {
  it('defaults to /opt/ml and honours SLIPWAY_JOB_ROOT', () => {
    expect(resolveJobRoot({})).toBe('/opt/ml');
    expect(resolveJobRoot({ SLIPWAY_JOB_ROOT: '/tmp/job' })).toBe('/tmp/job');
  });

  it('lays out the SageMaker paths', () => {
    const paths = jobPaths('/opt/ml');
    expect(paths.hyperparameters).toBe('/opt/ml/input/config/hyperparameters.json');
    expect(paths.inputDataConfig).toBe('/opt/ml/input/config/inputdataconfig.json');
    expect(paths.resourceConfig).toBe('/opt/ml/input/config/resourceconfig.json');
    expect(paths.channel('train')).toBe('/opt/ml/input/data/train');
    expect(paths.model).toBe('/opt/ml/model');
    expect(paths.failure).toBe('/opt/ml/output/failure');
    expect(paths.checkpoints).toBe('/opt/ml/checkpoints');
  });
});

describe('readTrainingEnv', () => {
  it('reads the three config files and the configured channels', async () => {
    const paths = jobPaths(root);
    await writeJson(paths.hyperparameters, { epochs: '3' });
    await writeJson(paths.inputDataConfig, { train: { TrainingInputMode: 'File' } });
    await writeJson(paths.resourceConfig, { current_host: 'algo-2', hosts: ['algo-1', 'algo-2'] });
    await mkdir(join(paths.channel('train'), 'nested'), { recursive: true });
    await writeFile(join(paths.channel('train'), 'nested', 'a.bin'), 'x');

    const env = await readTrainingEnv(root);
    expect(env.hyperparameters).toEqual({ epochs: '3' });
    expect(env.resourceConfig).toMatchObject({ current_host: 'algo-2', hosts: ['algo-1', 'algo-2'] });
    expect(env.channels).toEqual({ train: paths.channel('train') });
  });

  it('defaults to one host and treats each data folder as a channel when configs are absent', async () => {
    const paths = jobPaths(root);
    await mkdir(paths.channel('test'), { recursive: true });
    await writeFile(join(paths.channel('test'), 'x'), 'y');
    const env = await readTrainingEnv(root);
    expect(env.hyperparameters).toEqual({});
    expect(env.resourceConfig).toEqual({ current_host: 'algo-1', hosts: ['algo-1'] });
    expect(Object.keys(env.channels)).toEqual(['test']);
  });

  it('reports a configured channel whose directory is missing', async () => {
    await writeJson(jobPaths(root).inputDataConfig, { train: {} });
    const err = await failure(readTrainingEnv(root));
    expect(err.code).toBe('TRAINING_MISSING_CHANNEL');
    expect(err.message).toContain('channel "train" is configured but');
  });

  it('reports a channel with no files', async () => {
    const paths = jobPaths(root);
    await writeJson(paths.inputDataConfig, { train: {} });
    await mkdir(join(paths.channel('train'), 'empty-subdir'), { recursive: true });
    const err = await failure(readTrainingEnv(root));
    expect(err.code).toBe('TRAINING_EMPTY_CHANNEL');
    expect(err.message).toContain('channel "train" is empty');
  });

  it('refuses a Pipe-mode channel (a job launched elsewhere), naming the modes that work', async () => {
    const paths = jobPaths(root);
    await writeJson(paths.inputDataConfig, { train: { TrainingInputMode: 'Pipe' } });
    // SageMaker gives a Pipe channel a FIFO per epoch (train_0, ...), never a train/ directory.
    await mkdir(paths.dataDir, { recursive: true });
    await writeFile(`${paths.channel('train')}_0`, '');
    const err = await failure(readTrainingEnv(root));
    expect(err.code).toBe('TRAINING_BAD_CONFIG');
    expect(err.message).toMatch(/^channel "train": input mode Pipe is not supported/);
    expect(err.message).toContain('use File or FastFile');
  });

  it('reads a FastFile channel like a File one', async () => {
    const paths = jobPaths(root);
    await writeJson(paths.inputDataConfig, { train: { TrainingInputMode: 'FastFile' } });
    await mkdir(paths.channel('train'), { recursive: true });
    await writeFile(join(paths.channel('train'), 'a.bin'), 'x');
    expect((await readTrainingEnv(root)).channels).toEqual({ train: paths.channel('train') });
  });

  it('reports a config file that is not JSON, naming the file', async () => {
    const paths = jobPaths(root);
    await writeJson(paths.hyperparameters, '{"epochs": ');
    const err = await failure(readTrainingEnv(root));
    expect(err.code).toBe('TRAINING_BAD_CONFIG');
    expect(err.message).toContain('hyperparameters.json is not valid JSON');
  });

  it('reports a malformed resource config', async () => {
    await writeJson(jobPaths(root).resourceConfig, { current_host: 'algo-1', hosts: [] });
    const err = await failure(readTrainingEnv(root));
    expect(err.message).toContain('resourceconfig.json is malformed at hosts');
  });
});
