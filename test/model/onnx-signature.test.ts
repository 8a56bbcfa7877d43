import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ArtifactError,
  assertOnnxLoads,
  readOnnxBatchable,
  readOnnxSignature,
} from '../../src/model/index.ts';
import { conformanceModel } from '../helpers/conformance.ts';

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;

function tensorInput(
  name: string,
  elemType: number,
  dims: (number | string | null)[],
): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: dims.map((d) =>
            typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {},
          ),
        },
      },
    },
  };
}

function encodeModel(graph: onnxProto.onnx.IGraphProto): Uint8Array {
  return onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ version: 17 }], graph }).finish();
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'slipway-onnx-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('readOnnxSignature on real exported models', () => {
  it('reads names, types and shapes of an ONNX backend model', async () => {
    const signature = await readOnnxSignature(conformanceModel('simple/test_expand_shape_model1/model.onnx'));
    expect(signature).toEqual({
      inputs: [
        { name: 'X', datatype: 'FP32', shape: [1, 3, 1] },
        { name: 'shape', datatype: 'INT64', shape: [2] },
      ],
      outputs: [{ name: 'Y', datatype: 'FP32', shape: [1, 3, 1] }],
    });
  });

  it('leaves initializers out of the inputs of a PyTorch export that lists weights as graph inputs', async () => {
    const path = conformanceModel('pytorch-converted/test_Conv2d/model.onnx');
    const graph = onnx.ModelProto.decode(await readFile(path)).graph!;
    expect(graph.input?.length).toBeGreaterThan(1);
    const signature = await readOnnxSignature(path);
    expect(signature.inputs).toEqual([{ name: '0', datatype: 'FP32', shape: [2, 3, 7, 5] }]);
    expect(signature.outputs.map((o) => o.name)).toEqual(graph.output?.map((o) => o.name));
  });

  it('maps int64 and string inputs of PyTorch and string models', async () => {
    const embedding = await readOnnxSignature(
      conformanceModel('pytorch-converted/test_Embedding/model.onnx'),
    );
    expect(embedding.inputs).toEqual([{ name: '0', datatype: 'INT64', shape: [1, 4] }]);
    const strings = await readOnnxSignature(
      conformanceModel('simple/test_strnorm_model_monday_casesensintive_lower/model.onnx'),
    );
    expect(strings.inputs[0]?.datatype).toBe('BYTES');
  });

  it('gives the same answer for a path and for the bytes', async () => {
    const path = conformanceModel('pytorch-converted/test_Linear/model.onnx');
    expect(await readOnnxSignature(await readFile(path))).toEqual(await readOnnxSignature(path));
  });

  it('agrees with onnxruntime on input and output names for every PyTorch-converted model it loads', async () => {
    const { InferenceSession } = await import('onnxruntime-node');
    const root = conformanceModel('pytorch-converted');
    let compared = 0;
    for (const name of (await readdir(root)).sort()) {
      const path = join(root, name, 'model.onnx');
      let session;
      try {
        session = await InferenceSession.create(path, { logSeverityLevel: 3 });
      } catch {
        continue; // some exports use opsets onnxruntime dropped; they say nothing about the reader
      }
      const signature = await readOnnxSignature(path);
      expect(
        signature.inputs.map((i) => i.name),
        name,
      ).toEqual([...session.inputNames]);
      expect(
        signature.outputs.map((o) => o.name),
        name,
      ).toEqual([...session.outputNames]);
      await session.release();
      compared++;
    }
    expect(compared).toBeGreaterThan(40);
  });
});

describe('readOnnxSignature type and shape mapping', () => {
  it('maps every ONNX tensor type the protocol carries', async () => {
    const cases: [number, string][] = [
      [T.FLOAT, 'FP32'],
      [T.DOUBLE, 'FP64'],
      [T.FLOAT16, 'FP16'],
      [T.INT8, 'INT8'],
      [T.INT16, 'INT16'],
      [T.INT32, 'INT32'],
      [T.INT64, 'INT64'],
      [T.UINT8, 'UINT8'],
      [T.UINT16, 'UINT16'],
      [T.UINT32, 'UINT32'],
      [T.UINT64, 'UINT64'],
      [T.BOOL, 'BOOL'],
      [T.STRING, 'BYTES'],
    ];
    const bytes = encodeModel({
      input: cases.map(([type], i) => tensorInput(`in${i}`, type, [1])),
      output: [tensorInput('out', T.FLOAT, [1])],
    });
    const signature = await readOnnxSignature(bytes);
    expect(signature.inputs.map((i) => i.datatype)).toEqual(cases.map(([, datatype]) => datatype));
  });

  it('marks symbolic and missing dimensions as -1', async () => {
    const bytes = encodeModel({
      input: [tensorInput('x', T.FLOAT, ['batch', 3, null])],
      output: [tensorInput('y', T.FLOAT, ['batch', 10])],
    });
    const signature = await readOnnxSignature(bytes);
    expect(signature.inputs[0]?.shape).toEqual([-1, 3, -1]);
    expect(signature.outputs[0]?.shape).toEqual([-1, 10]);
  });

  it('excludes initializers listed as inputs', async () => {
    const bytes = encodeModel({
      input: [tensorInput('x', T.FLOAT, [1, 2]), tensorInput('w', T.FLOAT, [2, 2])],
      initializer: [{ name: 'w', dataType: T.FLOAT, dims: [2, 2], rawData: new Uint8Array(16) }],
      output: [tensorInput('y', T.FLOAT, [1, 2])],
    });
    expect((await readOnnxSignature(bytes)).inputs.map((i) => i.name)).toEqual(['x']);
  });

  it('omits non-tensor outputs such as a scikit-learn ZipMap but keeps the tensor ones', async () => {
    const bytes = encodeModel({
      input: [tensorInput('x', T.FLOAT, [-1, 4])],
      output: [
        tensorInput('label', T.INT64, ['N']),
        { name: 'probabilities', type: { sequenceType: { elemType: { mapType: { keyType: T.INT64 } } } } },
      ],
    });
    expect((await readOnnxSignature(bytes)).outputs.map((o) => o.name)).toEqual(['label']);
  });

  it('rejects an input type the protocol cannot carry with ARTIFACT_ONNX_UNSUPPORTED', async () => {
    const bytes = encodeModel({
      input: [tensorInput('x', T.BFLOAT16, [1])],
      output: [tensorInput('y', T.FLOAT, [1])],
    });
    await expect(readOnnxSignature(bytes)).rejects.toMatchObject({
      code: 'ARTIFACT_ONNX_UNSUPPORTED',
      message: expect.stringMatching(/"x" has element type BFLOAT16/) as unknown,
    });
  });
});

describe('readOnnxSignature and assertOnnxLoads on bad files', () => {
  it.each([
    ['text', Buffer.from('this is not a model')],
    ['empty', Buffer.alloc(0)],
    ['truncated protobuf', Buffer.from([0x3a, 0xff, 0xff, 0x03, 0x01])],
    ['a model without outputs', Buffer.from(encodeModel({ input: [tensorInput('x', T.FLOAT, [1])] }))],
  ])('rejects %s with ARTIFACT_ONNX_INVALID', async (_name, bytes) => {
    const error: unknown = await readOnnxSignature(bytes).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ArtifactError);
    expect((error as ArtifactError).code).toBe('ARTIFACT_ONNX_INVALID');
  });

  it('reports a missing file as ARTIFACT_IO', async () => {
    await expect(readOnnxSignature(join(work, 'missing.onnx'))).rejects.toMatchObject({
      code: 'ARTIFACT_IO',
    });
  });

  it('assertOnnxLoads accepts a real model', async () => {
    const path = join(work, 'good.onnx');
    await copyFile(conformanceModel('simple/test_single_relu_model/model.onnx'), path);
    await expect(assertOnnxLoads(path)).resolves.toBeUndefined();
  });

  it("assertOnnxLoads rejects a file onnxruntime cannot load, with onnxruntime's reason", async () => {
    const path = join(work, 'bad.onnx');
    await writeFile(path, 'not an onnx model');
    const error: unknown = await assertOnnxLoads(path).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ArtifactError);
    expect((error as ArtifactError).code).toBe('ARTIFACT_ONNX_INVALID');
    expect((error as ArtifactError).message).toMatch(/onnxruntime cannot load .*bad\.onnx: .+/);
  });
});

describe('readOnnxBatchable', () => {
  const model = (inputs: (number | string | null)[][], outputs: (number | string | null)[][]) =>
    encodeModel({
      name: 'g',
      input: inputs.map((dims, i) => tensorInput(`in${i}`, T.FLOAT, dims)),
      output: outputs.map((dims, i) => tensorInput(`out${i}`, T.FLOAT, dims)),
    });

  it.each([
    ['one named batch dim everywhere', [['N', 4]], [['N', 10]], true],
    ['one input with an unnamed dynamic dim 0', [[null, 3, 64, 64]], [[null, 10]], true],
    [
      'a sequence model: batch and sequence dims named apart',
      [
        ['batch', 'seq'],
        ['batch', 'seq'],
      ],
      [['batch', 'seq', 768]],
      true,
    ],
    [
      'two inputs whose dims 0 are independent (y[n, m] = a[n, 4] x b[m, 4]^T)',
      [
        ['n', 4],
        ['m', 4],
      ],
      [['n', 'm']],
      false,
    ],
    ['the batch name reappearing in another position', [['N', 4]], [['N', 'N']], false],
    [
      'two inputs with unnamed dims 0',
      [
        [null, 4],
        [null, 4],
      ],
      [[null, 4]],
      false,
    ],
    ['a fixed dim 0', [[1, 4]], [[1, 10]], false],
    ['a fixed output dim 0', [['N', 4]], [[1, 10]], false],
    ['a scalar input', [[]], [['N']], false],
  ] as const)('%s -> %s', async (_name, inputs, outputs, expected) => {
    const bytes = model(
      inputs.map((d) => [...d]),
      outputs.map((d) => [...d]),
    );
    expect(await readOnnxBatchable(bytes)).toBe(expected);
  });
});
