import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { readOnnxSignature } from '../../src/model/index.ts';
import { BATCH_DIM_PARAM, exportToOnnx, OnnxExportError } from '../../src/onnx/index.ts';
import { useWasmBackend } from '../../src/train/examples/tfjs-wasm.ts';
import { randomizeWeights, seededRandom, uniform } from './seeded.ts';

const SAMPLES = 100;
const TOLERANCE = 1e-4;

beforeAll(async () => {
  await useWasmBackend();
});

/** Runs the exported model in onnxruntime and TF.js on the same seeded inputs; returns the max abs difference. */
async function maxDifference(model: tf.LayersModel, seed: number, opset?: number): Promise<number> {
  const bytes = exportToOnnx(model, { inputName: 'x', outputName: 'y', ...(opset ? { opset } : {}) });
  const featureShape = model.inputs[0]!.shape.slice(1) as number[];
  const perSample = featureShape.reduce((a, b) => a * b, 1);
  const data = uniform(seededRandom(seed), SAMPLES * perSample, 1);

  const expected = tf.tidy(() =>
    (model.predict(tf.tensor(data, [SAMPLES, ...featureShape])) as tf.Tensor).dataSync(),
  );
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run({ x: new ort.Tensor('float32', data, [SAMPLES, ...featureShape]) });
    const actual = out['y']!.data as Float32Array;
    expect(actual.length).toBe(expected.length);
    let worst = 0;
    for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
    return worst;
  } finally {
    await session.release();
  }
}

function mlp(): tf.LayersModel {
  const model = tf.sequential({ name: 'mlp' });
  model.add(tf.layers.dense({ inputShape: [20], units: 32, activation: 'relu' }));
  model.add(tf.layers.dropout({ rate: 0.5 }));
  model.add(tf.layers.dense({ units: 16, activation: 'tanh' }));
  model.add(tf.layers.dense({ units: 12, activation: 'sigmoid' }));
  model.add(tf.layers.dense({ units: 8, activation: 'elu' }));
  model.add(tf.layers.activation({ activation: 'relu6' }));
  model.add(tf.layers.dense({ units: 5, activation: 'softmax' }));
  randomizeWeights(model, 1, 1.5);
  return model;
}

function cnn(): tf.LayersModel {
  const model = tf.sequential({ name: 'cnn' });
  model.add(
    tf.layers.conv2d({
      inputShape: [12, 11, 3],
      filters: 4,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
    }),
  );
  model.add(
    tf.layers.conv2d({ filters: 5, kernelSize: [3, 2], strides: 2, padding: 'valid', activation: 'tanh' }),
  );
  model.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 1, padding: 'same' }));
  model.add(tf.layers.conv2d({ filters: 6, kernelSize: 2, dilationRate: 2, padding: 'same' }));
  model.add(tf.layers.averagePooling2d({ poolSize: 2, padding: 'same' }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dropout({ rate: 0.25 }));
  model.add(tf.layers.dense({ units: 10 }));
  model.add(tf.layers.activation({ activation: 'softmax' }));
  randomizeWeights(model, 2);
  return model;
}

describe('exportToOnnx', () => {
  it('exports an MLP whose onnxruntime outputs match model.predict on 100 random inputs', async () => {
    expect(await maxDifference(mlp(), 11)).toBeLessThan(TOLERANCE);
  });

  it('exports a CNN (NHWC input, conv, pooling, flatten) that matches model.predict on 100 random inputs', async () => {
    expect(await maxDifference(cnn(), 12)).toBeLessThan(TOLERANCE);
  });

  it('exports Reshape, a capped ReLU layer, a Softmax layer and a spatial Dense the way TF.js computes them', async () => {
    const input = tf.input({ shape: [48] });
    let x = tf.layers.reshape({ targetShape: [4, 4, 3] }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU({ maxValue: 0.4 }).apply(x) as tf.SymbolicTensor;
    // Dense on a rank-4 tensor acts on the channel axis; Softmax on it as well.
    x = tf.layers.dense({ units: 3 }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.softmax({ axis: -1 }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.flatten().apply(x) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: x });
    randomizeWeights(model, 3);
    expect(await maxDifference(model, 13, 21)).toBeLessThan(TOLERANCE);
  });

  it('names the graph input and output and makes the batch dimension dynamic', async () => {
    const model = cnn();
    const bytes = exportToOnnx(model, { inputName: 'image', outputName: 'scores', modelName: 'digits' });

    const proto = onnxProto.onnx.ModelProto.decode(bytes);
    expect(proto.graph?.name).toBe('digits');
    const inputDims = proto.graph?.input?.[0]?.type?.tensorType?.shape?.dim ?? [];
    expect(inputDims[0]?.dimParam).toBe(BATCH_DIM_PARAM);
    expect(inputDims.slice(1).map((d) => Number(d.dimValue))).toEqual([12, 11, 3]);
    expect(await readOnnxSignature(bytes)).toEqual({
      inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 12, 11, 3] }],
      outputs: [{ name: 'scores', datatype: 'FP32', shape: [-1, 10] }],
    });

    const session = await ort.InferenceSession.create(bytes);
    try {
      expect(session.inputNames).toEqual(['image']);
      expect(session.outputNames).toEqual(['scores']);
      for (const batch of [1, 7]) {
        const image = new ort.Tensor('float32', uniform(seededRandom(batch), batch * 12 * 11 * 3), [
          batch,
          12,
          11,
          3,
        ]);
        const out = await session.run({ image });
        expect(out['scores']!.dims).toEqual([batch, 10]);
      }
    } finally {
      await session.release();
    }
  });

  it('adds an Identity when the model computes nothing but dropout', async () => {
    const model = tf.sequential();
    model.add(tf.layers.dropout({ inputShape: [3], rate: 0.5 }));
    const session = await ort.InferenceSession.create(exportToOnnx(model));
    try {
      const out = await session.run({
        input: new ort.Tensor('float32', Float32Array.from([1, 2, 3]), [1, 3]),
      });
      expect(Array.from(out['output']!.data as Float32Array)).toEqual([1, 2, 3]);
    } finally {
      await session.release();
    }
  });

  it('rejects an unsupported layer with an OnnxExportError naming its class and name', () => {
    const model = tf.sequential();
    model.add(tf.layers.dense({ inputShape: [4], units: 3 }));
    model.add(tf.layers.batchNormalization({ name: 'bn_1' }));
    const error = catchError(() => exportToOnnx(model));
    expect(error).toBeInstanceOf(OnnxExportError);
    expect(error).toMatchObject({ code: 'ONNX_UNSUPPORTED_LAYER' });
    expect((error as Error).message).toMatch(/'bn_1' \(BatchNormalization\)/);
  });

  it('rejects an unsupported activation, naming the layer and the activation', () => {
    const model = tf.sequential();
    model.add(tf.layers.dense({ inputShape: [4], units: 3, activation: 'selu', name: 'hidden' }));
    const error = catchError(() => exportToOnnx(model));
    expect(error).toMatchObject({ code: 'ONNX_UNSUPPORTED_CONFIG' });
    expect((error as Error).message).toMatch(/'hidden' \(Dense\).*activation 'selu'/);
  });

  it('rejects merge layers and multi-input models as unsupported topologies', () => {
    const a = tf.input({ shape: [2] });
    const b = tf.input({ shape: [2] });
    const merged = tf.layers.concatenate().apply([a, b]) as tf.SymbolicTensor;
    const twoInputs = tf.model({ inputs: [a, b], outputs: merged });
    expect(catchError(() => exportToOnnx(twoInputs))).toMatchObject({ code: 'ONNX_UNSUPPORTED_TOPOLOGY' });

    const x = tf.input({ shape: [2] });
    const sum = tf.layers.add().apply([x, tf.layers.dense({ units: 2 }).apply(x) as tf.SymbolicTensor]);
    const residual = tf.model({ inputs: x, outputs: sum as tf.SymbolicTensor });
    const error = catchError(() => exportToOnnx(residual));
    expect(error).toMatchObject({ code: 'ONNX_UNSUPPORTED_TOPOLOGY' });
    expect((error as Error).message).toMatch(/\(Add\).*2 inputs/);
  });

  it('rejects bad options: an opset below 13, an empty name, equal input and output names', () => {
    const model = mlp();
    expect(catchError(() => exportToOnnx(model, { opset: 12 }))).toMatchObject({ code: 'ONNX_BAD_OPTION' });
    expect(catchError(() => exportToOnnx(model, { inputName: ' ' }))).toMatchObject({
      code: 'ONNX_BAD_OPTION',
    });
    expect(catchError(() => exportToOnnx(model, { inputName: 'a', outputName: 'a' }))).toMatchObject({
      code: 'ONNX_BAD_OPTION',
    });
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}
