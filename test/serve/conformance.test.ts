import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOnnxSignature } from '../../src/model/index.ts';
import type { ModelSignature } from '../../src/model/index.ts';
import { decodeV2Input } from '../../src/serve/tensor-codec.ts';
import { binaryRequest, postBinary } from './fixtures/binary-client.ts';
import { assertMatchesSchema, SHARED_DIR } from './fixtures/openapi.ts';
import { listenApp, postJson, testConfig } from './fixtures/serve-app.ts';
import type { ListeningApp } from './fixtures/serve-app.ts';
import { firstMismatch, readTensorProto } from './fixtures/tensor-proto.ts';
import type { ReferenceTensor } from './fixtures/tensor-proto.ts';

const CORPUS = join(SHARED_DIR, 'conformance/onnx-backend');
const SUITES = ['simple', 'pytorch-converted'];

interface Case {
  readonly name: string;
  readonly dir: string;
  readonly inputs: ReferenceTensor[];
  readonly outputs: ReferenceTensor[];
}

async function loadCase(dir: string, name: string): Promise<Case> {
  const data = join(dir, 'test_data_set_0');
  const files = (await readdir(data)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const inputs = await Promise.all(
    files.filter((f) => f.startsWith('input_')).map((f) => readTensorProto(join(data, f))),
  );
  const outputs = await Promise.all(
    files.filter((f) => f.startsWith('output_')).map((f) => readTensorProto(join(data, f))),
  );
  return { name, dir, inputs, outputs };
}

/** The corpus defines scope: a case counts iff onnxruntime-node itself loads and runs it in-process. */
async function ortRunsIt(c: Case, signature: ModelSignature): Promise<boolean> {
  let session: InferenceSession | undefined;
  try {
    session = await InferenceSession.create(join(c.dir, 'model.onnx'), { logSeverityLevel: 3 });
    const feeds: Record<string, Tensor> = {};
    c.inputs.forEach((ref, i) => {
      const name = signature.inputs[i]?.name ?? ref.name;
      const t = decodeV2Input({ ...ref, name }, undefined);
      feeds[name] = new Tensor(t.type, t.data, t.dims);
    });
    await session.run(feeds);
    return true;
  } catch {
    return false;
  } finally {
    await session?.release();
  }
}

describe('ONNX backend conformance corpus over /v2/models/{name}/infer, as JSON and as binary tensors', () => {
  let server: ListeningApp;

  beforeAll(async () => {
    server = await listenApp(testConfig({ maxBatchSize: 1, bodyLimit: 64 * 1024 * 1024 }));
  });
  afterAll(async () => {
    await server.close();
  });

  it(
    'serves every case onnxruntime-node runs and matches the reference outputs',
    { timeout: 150_000 },
    async () => {
      const served: string[] = [];
      const outOfScope: string[] = [];
      const failures: string[] = [];
      for (const suite of SUITES) {
        for (const name of (await readdir(join(CORPUS, suite))).sort()) {
          const dir = join(CORPUS, suite, name);
          if (!existsSync(join(dir, 'model.onnx')) || !existsSync(join(dir, 'test_data_set_0'))) continue;
          const c = await loadCase(dir, name);
          const signature = await readOnnxSignature(join(dir, 'model.onnx')).catch(() => undefined);
          if (!signature || !(await ortRunsIt(c, signature))) {
            outOfScope.push(`${suite}/${name}`);
            continue;
          }
          const state = await server.host.load(dir);
          if (state.status !== 'ready') {
            failures.push(`${name}: not ready (${state.status === 'failed' ? state.reason : state.status})`);
            continue;
          }
          const request = {
            id: name,
            inputs: c.inputs.map((ref, i) => ({
              name: signature.inputs[i]!.name,
              shape: ref.shape,
              datatype: ref.datatype,
              data: ref.data,
            })),
          };
          const res = await postJson(`${server.url}/v2/models/${name}/infer`, request);
          if (res.status !== 200) {
            failures.push(`${name}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
            continue;
          }
          assertMatchesSchema('inference_response', res.body);
          const body = res.body as { id: string; outputs: ReferenceTensor[] };
          expect(body.id).toBe(name);
          // The same case again with the binary tensor extension, both ways.
          const binary = await postBinary(
            `${server.url}/v2/models/${name}/infer`,
            binaryRequest(
              request.inputs.map((input, i) => ({ ...input, datatype: c.inputs[i]!.datatype })),
              { id: name, parameters: { binary_data_output: true } },
            ),
          );
          if (binary.status !== 200 || !binary.response) {
            failures.push(`${name}: binary request: HTTP ${binary.status} ${binary.error}`);
            continue;
          }
          expect(binary.response.header.id).toBe(name);
          const check = (
            via: string,
            outputs: readonly { name: string; datatype: string; shape: number[]; data: unknown[] }[],
          ) =>
            c.outputs.forEach((ref, i) => {
              const out = outputs.find((o) => o.name === signature.outputs[i]?.name);
              if (!out) {
                failures.push(`${name} (${via}): output ${i} missing`);
                return;
              }
              const float = ['FP16', 'FP32', 'FP64'].includes(ref.datatype);
              const problem =
                out.datatype !== ref.datatype
                  ? `datatype ${out.datatype} != ${ref.datatype}`
                  : JSON.stringify(out.shape) !== JSON.stringify(ref.shape)
                    ? `shape ${JSON.stringify(out.shape)} != ${JSON.stringify(ref.shape)}`
                    : firstMismatch(out.data, ref.data, float);
              if (problem) failures.push(`${name} (${via}): output ${out.name}: ${problem}`);
            });
          check('JSON', body.outputs);
          check('binary', binary.response.outputs);
          if (!binary.response.outputs.every((o) => o.binary))
            failures.push(`${name}: an output came back as JSON`);
          served.push(`${suite}/${name}`);
        }
      }
      console.log(
        `conformance: ${served.length} cases served and matched (JSON and binary), ${outOfScope.length} out of scope (onnxruntime-node cannot run them): ${outOfScope.join(', ')}`,
      );
      expect(failures).toEqual([]);
      expect(served.length).toBeGreaterThanOrEqual(70);
    },
  );
});
