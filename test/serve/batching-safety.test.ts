import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeModel } from './fixtures/onnx-builder.ts';
import { listenApp, postJson, testConfig } from './fixtures/serve-app.ts';
import type { ListeningApp } from './fixtures/serve-app.ts';

const { onnx } = onnxProto;

function valueInfo(name: string, dims: (number | string)[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

/** y[n, m] = a[n, 4] x b[m, 4]^T: two dynamic dims 0 that have nothing to do with each other. */
function scoresModel(): Uint8Array {
  const graph: onnxProto.onnx.IGraphProto = {
    name: 'scores',
    node: [
      { opType: 'Transpose', input: ['b'], output: ['bt'] },
      { opType: 'MatMul', input: ['a', 'bt'], output: ['y'] },
    ],
    input: [valueInfo('a', ['n', 4]), valueInfo('b', ['m', 4])],
    output: [valueInfo('y', ['n', 'm'])],
  };
  return onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ version: 17 }], graph }).finish();
}

let root: string;
let server: ListeningApp;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'slipway-batching-safety-'));
  const dir = await writeModel(join(root, 'scores'), scoresModel());
  server = await listenApp(testConfig({ workers: 1, maxBatchSize: 8, maxBatchDelayMs: 30 }));
  expect((await server.host.load(dir)).status).toBe('ready');
});
afterAll(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});

describe('a model whose inputs have independent dynamic dims 0', () => {
  it('runs concurrent requests one by one, so no request is answered with another one’s data', async () => {
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        postJson(`${server.url}/v2/models/scores/infer`, {
          id: `r${i}`,
          inputs: [
            { name: 'a', shape: [1, 4], datatype: 'FP32', data: [i, 1, 0, 0] },
            { name: 'b', shape: [1, 4], datatype: 'FP32', data: [1, i, 0, 0] },
          ],
        }),
      ),
    );
    answers.forEach((res, i) => {
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: `r${i}`, outputs: [{ name: 'y', shape: [1, 1], data: [2 * i] }] });
    });
    const batches = await server.metrics.batchRequests.get();
    const sum = batches.values.find((v) => v.metricName === 'slipway_batch_requests_sum')?.value;
    const count = batches.values.find((v) => v.metricName === 'slipway_batch_requests_count')?.value;
    expect(count).toBeGreaterThanOrEqual(6);
    expect(sum).toBe(count);
  });
});
