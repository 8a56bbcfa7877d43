import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../../../../src/model/checksum.ts';
import { parseManifest } from '../../../../src/model/manifest.ts';
import { ENV } from '../../../../src/names.ts';
import { formatLogLine, jobPaths, runTrainingJob } from '../../../../src/train/index.ts';
import { readDigitsFile, TEST_FILE, TRAIN_FILE } from '../../../../src/train/examples/mnist/data-format.ts';
import { prepareMnistData } from '../../../../src/train/examples/mnist/prepare-data.ts';
import { trainMnist } from '../../../../src/train/examples/mnist/train.ts';
import type { MnistTrainResult } from '../../../../src/train/examples/mnist/train.ts';
import type { DigitSet } from '../../../../src/train/examples/mnist/data-format.ts';

const TRAIN_SCRIPT = fileURLToPath(new URL('../../../../src/train/examples/mnist/train.ts', import.meta.url));
// Small and quick: enough to exercise every path, not to reach the accuracy target.
const QUICK = { 'train-limit': '1000', 'hidden-units': '32', 'batch-size': '50', 'learning-rate': '0.005' };

let base: string;
let dataDir: string;

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'slipway-mnist-train-'));
  dataDir = path.join(base, 'data');
  await prepareMnistData(dataDir, { trainCount: 2000, testCount: 500 });
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** A job root laid out like /opt/ml with the prepared data as the `train` channel. */
async function jobRoot(name: string, hyperparameters: Record<string, string>): Promise<string> {
  const root = path.join(base, name);
  const paths = jobPaths(root);
  await mkdir(paths.configDir, { recursive: true });
  await cp(dataDir, paths.channel('train'), { recursive: true });
  await writeFile(paths.hyperparameters, JSON.stringify(hyperparameters));
  await writeFile(paths.inputDataConfig, JSON.stringify({ train: { TrainingInputMode: 'File' } }));
  return root;
}

async function run(root: string, results: MnistTrainResult[] = []): Promise<number> {
  return runTrainingJob(
    async (ctx) => {
      results.push(await trainMnist(ctx));
    },
    { env: { [ENV.jobRoot]: root }, exit: false },
  );
}

/** Scores of the held-out digits from the job's model.onnx, run by onnxruntime. */
async function onnxScores(root: string, test: DigitSet): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(path.join(jobPaths(root).model, 'model.onnx'));
  try {
    const image = new ort.Tensor(
      'float32',
      Float32Array.from(test.pixels, (p) => p / 255),
      [test.count, 784],
    );
    return (await session.run({ image }))['scores']!.data as Float32Array;
  } finally {
    await session.release();
  }
}

// Training on 2 shared cores: generous per-test limits so a busy machine does not fail the suite.
describe('MNIST example trainer', { timeout: 120_000 }, () => {
  it('writes an ONNX model that onnxruntime loads with the manifest signature and whose accuracy matches the manifest', async () => {
    const root = await jobRoot('quick', { ...QUICK, epochs: '2' });
    expect(await run(root)).toBe(0);

    const { model } = jobPaths(root);
    const manifest = parseManifest(JSON.parse(await readFile(path.join(model, 'manifest.json'), 'utf8')));
    expect(manifest.inputs).toEqual([{ name: 'image', datatype: 'FP32', shape: [-1, 784] }]);
    expect(manifest.outputs).toEqual([{ name: 'scores', datatype: 'FP32', shape: [-1, 10] }]);
    expect(manifest.labels).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(manifest.sha256).toBe(await sha256File(path.join(model, 'model.onnx')));

    // The held-out digits, scored by onnxruntime, give the accuracy TF.js reported.
    const test = await readDigitsFile(path.join(dataDir, TEST_FILE));
    const session = await ort.InferenceSession.create(path.join(model, 'model.onnx'));
    expect([session.inputNames, session.outputNames]).toEqual([['image'], ['scores']]);
    await session.release();
    const scores = await onnxScores(root, test);
    let correct = 0;
    for (let i = 0; i < test.count; i++) {
      const row = Array.from(scores.subarray(i * 10, i * 10 + 10));
      if (row.indexOf(Math.max(...row)) === test.labels[i]) correct++;
    }
    expect(correct / test.count).toBeCloseTo(manifest.metrics!['test_accuracy']!, 2);
    expect(manifest.metrics!['test_accuracy']).toBeGreaterThan(0.6);
  });

  it('resumes from its checkpoint and ends where an uninterrupted run ends', async () => {
    const straight = await jobRoot('straight', { ...QUICK, epochs: '2' });
    const resumed = await jobRoot('resumed', { ...QUICK, epochs: '1' });
    expect(await run(straight)).toBe(0);
    expect(await run(resumed)).toBe(0);
    await writeFile(jobPaths(resumed).hyperparameters, JSON.stringify({ ...QUICK, epochs: '2' }));
    const results: MnistTrainResult[] = [];
    expect(await run(resumed, results)).toBe(0);
    expect(results).toMatchObject([{ resumedFromEpoch: 1, epochsRun: 1 }]);

    // Not bit-identical: Adam's restored beta powers are recomputed with pow() instead of
    // accumulated products, so float32 rounding differs slightly.
    const test = await readDigitsFile(path.join(dataDir, TEST_FILE));
    const a = await onnxScores(straight, test);
    const b = await onnxScores(resumed, test);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    expect(worst).toBeLessThan(1e-3);
  });

  it('stopped inside an epoch, then resumed, ends where an uninterrupted run ends', async () => {
    const hyperparameters = { ...QUICK, epochs: '2' };
    const straight = await jobRoot('straight-2', hyperparameters);
    const stopped = await jobRoot('stopped-mid-epoch', hyperparameters);
    expect(await run(straight)).toBe(0);

    // 1000 digits in batches of 50: 20 batches an epoch. The loop checks its signal before each
    // batch, so this one reads as aborted before batch 8 of the second epoch, as a SIGTERM would.
    let checks = 0;
    const signal = {
      get aborted() {
        return ++checks > 27;
      },
      reason: new Error('stopped for the test'),
    } as unknown as AbortSignal;
    const logs: string[] = [];
    await runTrainingJob(
      async (ctx) => {
        const handlers: (() => void | Promise<void>)[] = [];
        const stop = trainMnist({
          ...ctx,
          signal,
          onTerminate: (handler) => void handlers.push(handler),
          log: (message, fields) => void logs.push(formatLogLine(message, fields)),
        });
        // What runTrainingJob does on SIGTERM: the handlers run once the loop has stopped.
        await expect(stop).rejects.toThrow('stopped for the test');
        for (const handler of handlers) await handler();
      },
      { env: { [ENV.jobRoot]: stopped }, exit: false },
    );
    expect(logs).toContain('checkpoint saved on termination epoch=1 batch=7');

    const results: MnistTrainResult[] = [];
    expect(await run(stopped, results)).toBe(0);
    expect(results).toMatchObject([{ resumedFromEpoch: 1, epochsRun: 1 }]);

    // Within float32 noise of Adam's restored beta powers (see the test above).
    const test = await readDigitsFile(path.join(dataDir, TEST_FILE));
    const a = await onnxScores(straight, test);
    const b = await onnxScores(stopped, test);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    expect(worst).toBeLessThan(1e-3);
  });

  it('fails with the reason in the failure file when the training data is corrupt', async () => {
    const root = await jobRoot('corrupt', { ...QUICK, epochs: '1' });
    const file = path.join(jobPaths(root).channel('train'), TRAIN_FILE);
    const bytes = await readFile(file);
    bytes[5000]! ^= 0xff;
    await writeFile(file, bytes);

    expect(await run(root)).toBe(1);
    const failure = await readFile(jobPaths(root).failure, 'utf8');
    expect(failure).toMatch(/MnistDataError: .*mnist-train\.digits: payload checksum mismatch/);
  });

  it('fails with the reason in the failure file when the data is truncated or the test split is missing', async () => {
    const truncated = await jobRoot('truncated', { ...QUICK, epochs: '1' });
    const file = path.join(jobPaths(truncated).channel('train'), TRAIN_FILE);
    await writeFile(file, (await readFile(file)).subarray(0, 100_000));
    expect(await run(truncated)).toBe(1);
    expect(await readFile(jobPaths(truncated).failure, 'utf8')).toMatch(/truncated/);

    const noTest = await jobRoot('no-test', { ...QUICK, epochs: '1' });
    await rm(path.join(jobPaths(noTest).channel('train'), TEST_FILE));
    expect(await run(noTest)).toBe(1);
    expect(await readFile(jobPaths(noTest).failure, 'utf8')).toMatch(/no held-out test file/);
  });

  it('rejects a hyperparameter that is not a number, naming it', async () => {
    const root = await jobRoot('bad-hp', { ...QUICK, epochs: 'many' });
    expect(await run(root)).toBe(1);
    expect(await readFile(jobPaths(root).failure, 'utf8')).toMatch(/"epochs" = "many" is not an integer/);
  });

  it('saves a checkpoint and exits 143 promptly when SIGTERM arrives mid-training', async () => {
    const root = await jobRoot('sigterm', { ...QUICK, epochs: '500' });
    const child = spawn(process.execPath, ['--import', 'tsx', TRAIN_SCRIPT], {
      env: { ...process.env, [ENV.jobRoot]: root },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      let stdout = '';
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          if (/^epoch epoch=1 /m.test(stdout)) resolve();
        });
        child.on('exit', () => reject(new Error(`trainer exited before its first epoch:\n${stdout}`)));
      });
      child.kill('SIGTERM');

      expect(await exited).toBe(143);
      expect(stdout).toMatch(/checkpoint saved on termination epoch=\d+/);
      expect(await readFile(jobPaths(root).failure, 'utf8')).toMatch(/stopped by SIGTERM/);
      const checkpoint = JSON.parse(
        await readFile(path.join(jobPaths(root).checkpoints, 'mnist-checkpoint.json'), 'utf8'),
      );
      expect(checkpoint.epoch).toBeGreaterThanOrEqual(1);
    } finally {
      // Never leave a trainer running if an assertion failed before it exited.
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
