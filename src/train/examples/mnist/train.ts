import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { createManifest } from '../../../model/manifest.ts';
import { sha256File } from '../../../model/checksum.ts';
import { readOnnxSignature } from '../../../model/onnx-signature.ts';
import { ARTIFACT, ENV } from '../../../names.ts';
import { exportToOnnx } from '../../../onnx/index.ts';
import { hp, parseHyperparameters, runTrainingJob } from '../../index.ts';
import type { TrainingContext } from '../../index.ts';
import { useWasmBackend } from '../tfjs-wasm.ts';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import type { EpochPosition } from './checkpoint.ts';
import { readDigitsFile, TEST_FILE, TRAIN_FILE } from './data-format.ts';
import type { DigitSet } from './data-format.ts';
import { MnistCheckpointError, MnistDataError } from './errors.ts';
import { buildMnistModel, evaluate, fillBatch, INPUT_NAME, OUTPUT_NAME, PIXELS } from './model.ts';
import { seededRandom, shuffleInPlace } from './random.ts';

/** Hyperparameters of the MNIST example; every value arrives as a string and is parsed here. */
export const MNIST_HYPERPARAMETERS = {
  epochs: hp.int({ default: 12, min: 1, max: 1000 }),
  'batch-size': hp.int({ default: 128, min: 1, max: 8192 }),
  'learning-rate': hp.float({ default: 0.002, min: 1e-7, max: 1 }),
  /** Per-epoch learning-rate factor: epoch e (from 0) uses learning-rate * lr-decay^e (1 = constant). */
  'lr-decay': hp.float({ default: 0.8, min: 0.01, max: 1 }),
  /** Width of the first hidden layer; the second has half as many units. */
  'hidden-units': hp.int({ default: 256, min: 2, max: 4096 }),
  seed: hp.int({ default: 42, min: 0, max: 2 ** 31 - 1 }),
  /** Random translation of training images by up to this many pixels (0 turns augmentation off). */
  'max-shift': hp.int({ default: 2, min: 0, max: 8 }),
  /** Use only the first N training digits (0 = all); for quick runs. */
  'train-limit': hp.int({ default: 0, min: 0 }),
} as const;

/** Channel holding the training file (and the test file, unless a `test` channel is configured). */
export const TRAIN_CHANNEL = 'train';
/** Optional channel holding the held-out test file. */
export const TEST_CHANNEL = 'test';

async function locateTestFile(ctx: TrainingContext): Promise<string> {
  const candidates = [ctx.channels[TEST_CHANNEL], ctx.channel(TRAIN_CHANNEL)]
    .filter((dir): dir is string => dir !== undefined)
    .map((dir) => path.join(dir, TEST_FILE));
  for (const file of candidates) {
    if ((await stat(file).catch(() => undefined))?.isFile()) return file;
  }
  throw new MnistDataError(
    'MNIST_DATA_MISSING',
    `no held-out test file: looked for ${candidates.join(' and ')}; stage the data with prepare-data.`,
  );
}

function limit(set: DigitSet, count: number): DigitSet {
  if (count === 0 || count >= set.count) return set;
  return {
    ...set,
    count,
    labels: set.labels.subarray(0, count),
    pixels: set.pixels.subarray(0, count * set.rows * set.cols),
  };
}

/** What {@link trainMnist} produced. */
export interface MnistTrainResult {
  readonly testAccuracy: number;
  readonly epochsRun: number;
  readonly resumedFromEpoch: number;
}

/**
 * The MNIST training entrypoint body: trains a dense digit classifier with TensorFlow.js (wasm),
 * checkpoints every epoch (and on SIGTERM), resumes from a checkpoint, evaluates on the held-out
 * test digits, and writes `model.onnx` plus `manifest.json` into the model directory.
 */
export async function trainMnist(ctx: TrainingContext): Promise<MnistTrainResult> {
  const hpv = parseHyperparameters(MNIST_HYPERPARAMETERS, ctx.hyperparameters);
  const trainFile = path.join(ctx.channel(TRAIN_CHANNEL), TRAIN_FILE);
  const train = limit(await readDigitsFile(trainFile), hpv['train-limit']);
  const test = await readDigitsFile(await locateTestFile(ctx));
  ctx.log('data loaded', { train_count: train.count, test_count: test.count });

  await useWasmBackend();
  const model = buildMnistModel(hpv['hidden-units'], hpv.seed, hpv['learning-rate']);
  const resumed = await loadCheckpoint(ctx.checkpointDir, model, hpv['hidden-units']);
  const startEpoch = resumed?.epoch ?? 0;
  const batchSize = hpv['batch-size'];
  const position = resumed?.position;
  if (position && (position.batchSize !== batchSize || position.trainCount !== train.count)) {
    throw new MnistCheckpointError(
      `the checkpoint in ${ctx.checkpointDir} was taken inside an epoch with batch-size=${position.batchSize} ` +
        `over ${position.trainCount} digits; this job has batch-size=${batchSize} over ${train.count}. ` +
        'Use the same hyperparameters or an empty checkpoint directory.',
    );
  }
  if (resumed) ctx.log('resumed from checkpoint', { epoch: resumed.epoch, batch: position?.batches ?? 0 });
  // Inside an epoch, start from that epoch's state to replay its shuffle, then continue from the saved one.
  let random = seededRandom(position?.epochRngState ?? resumed?.rngState ?? hpv.seed);

  let completed = startEpoch;
  let stepped = resumed !== undefined;
  // Where the loop is inside the current epoch; undefined between epochs.
  let current: Omit<EpochPosition, 'batchSize' | 'trainCount'> | undefined;
  let stopped: (() => void) | undefined;
  const loopDone = new Promise<void>((resolve) => (stopped = resolve));
  ctx.onTerminate(async () => {
    // Wait for the batch in flight, then save exactly where training stands (weights, optimizer,
    // generator and place in the epoch), so a resumed job trains the rest of the epoch in the same order.
    await loopDone;
    if (!stepped) return;
    await saveCheckpoint(ctx.checkpointDir, model, {
      epoch: completed,
      rngState: random.state(),
      hiddenUnits: hpv['hidden-units'],
      ...(current ? { position: { ...current, batchSize, trainCount: train.count } } : {}),
    });
    ctx.log('checkpoint saved on termination', { epoch: completed, batch: current?.batches ?? 0 });
  });

  const order = Uint32Array.from({ length: train.count }, (_, i) => i);
  const xs = new Float32Array(batchSize * PIXELS);
  const ys = new Float32Array(batchSize);
  try {
    for (let epoch = startEpoch; epoch < hpv.epochs; epoch++) {
      const started = performance.now();
      // A function of the epoch alone, so a resumed job continues the same schedule.
      const learningRate = hpv['learning-rate'] * hpv['lr-decay'] ** epoch;
      setLearningRate(model, learningRate);
      // Each epoch's order depends only on the generator state, so a resumed run sees the same batches.
      const epochRngState = random.state();
      order.forEach((_, i) => (order[i] = i));
      shuffleInPlace(order, random);
      const resumeAt = epoch === startEpoch ? position : undefined;
      if (resumed && resumeAt) random = seededRandom(resumed.rngState);
      current = {
        batches: resumeAt?.batches ?? 0,
        epochRngState,
        lossSum: resumeAt?.lossSum ?? 0,
        accSum: resumeAt?.accSum ?? 0,
        seen: resumeAt?.seen ?? 0,
      };
      for (let start = current.batches * batchSize; start < train.count; start += batchSize) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        const n = Math.min(batchSize, train.count - start);
        fillBatch(train, order.subarray(start, start + n), xs, ys, random, hpv['max-shift']);
        const x = tf.tensor2d(xs.subarray(0, n * PIXELS), [n, PIXELS]);
        const y = tf.tensor1d(ys.subarray(0, n));
        try {
          const [loss = NaN, acc = NaN] = (await model.trainOnBatch(x, y)) as number[];
          stepped = true;
          current = {
            ...current,
            batches: current.batches + 1,
            lossSum: current.lossSum + loss * n,
            accSum: current.accSum + acc * n,
            seen: current.seen + n,
          };
        } finally {
          tf.dispose([x, y]);
        }
        // trainOnBatch runs synchronously in wasm; yield so a SIGTERM can be handled between batches.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const { lossSum, accSum, seen } = current;
      current = undefined;
      completed = epoch + 1;
      await saveCheckpoint(ctx.checkpointDir, model, {
        epoch: completed,
        rngState: random.state(),
        hiddenUnits: hpv['hidden-units'],
      });
      ctx.log('epoch', {
        epoch: completed,
        epochs: hpv.epochs,
        loss: round(lossSum / seen),
        accuracy: round(accSum / seen),
        learning_rate: Number(learningRate.toPrecision(4)),
        seconds: round((performance.now() - started) / 1000, 1),
      });
    }
  } finally {
    stopped?.();
  }

  const metrics = evaluate(model, test);
  ctx.log('test', { test_accuracy: round(metrics.accuracy), test_loss: round(metrics.loss) });

  const onnxPath = path.join(ctx.modelDir, ARTIFACT.onnx);
  const onnx = exportToOnnx(model, { inputName: INPUT_NAME, outputName: OUTPUT_NAME, modelName: 'mnist' });
  await writeFile(onnxPath, onnx);
  // The signature comes from the exported graph itself, read the way serving reads models.
  const signature = await readOnnxSignature(onnx);
  const createdAt = new Date();
  const manifest = createManifest({
    name: 'mnist',
    version: process.env[ENV.trainingJobName] ?? `mnist-${createdAt.toISOString().replace(/[-:.TZ]/g, '')}`,
    createdAt,
    inputs: signature.inputs,
    outputs: signature.outputs,
    labels: Array.from({ length: 10 }, (_, i) => String(i)),
    metrics: {
      test_accuracy: metrics.accuracy,
      test_loss: metrics.loss,
      epochs: hpv.epochs,
      train_count: train.count,
      test_count: test.count,
    },
    sha256: await sha256File(onnxPath),
    framework: `TensorFlow.js ${tf.version.tfjs} (wasm backend), exported to ONNX by Slipway`,
  });
  await writeFile(path.join(ctx.modelDir, ARTIFACT.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
  ctx.log('model written', { dir: ctx.modelDir, test_accuracy: round(metrics.accuracy) });
  model.dispose();
  return { testAccuracy: metrics.accuracy, epochsRun: hpv.epochs - startEpoch, resumedFromEpoch: startEpoch };
}

/** Adam reads its `learningRate` field on every step, so assigning it changes the step size from now on. */
function setLearningRate(model: tf.LayersModel, learningRate: number): void {
  const optimizer = model.optimizer as tf.Optimizer & { learningRate?: number };
  if (typeof optimizer.learningRate !== 'number') {
    throw new Error('the MNIST model is expected to use an optimizer with a learningRate field (Adam)');
  }
  optimizer.learningRate = learningRate;
}

function round(value: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

// Run as the training entrypoint: `tsx train.ts` (or `node dist/.../train.js`) under the job root.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // runTrainingJob exits the process when done, which also closes anything TF.js's wasm runtime keeps open.
  await runTrainingJob(async (ctx) => {
    await trainMnist(ctx);
  });
}
