// Rollout latency of the local twin under load: time from the upload of a new model.tar.gz until
// 100% of traffic is answered by the new model version. Prints the figures of one run.
// Run: npm run bench:rollout
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReadStream } from 'node:fs';
import { MODEL_VERSION_HEADER } from '../src/local/load-balancer.ts';
import { LOCAL_S3_CREDENTIALS } from '../src/local/s3-server.ts';
import { LOCAL_BUCKETS, startTwin } from '../src/local/twin.ts';
import { packModel } from '../src/model/pack.ts';
import { createStore } from '../src/store/create-store.ts';
import { writeClassifierDir } from '../test/serve/fixtures/onnx-builder.ts';

const work = await mkdtemp(join(tmpdir(), 'slipway-bench-rollout-'));
const twin = await startTwin({ stateDir: join(work, 'state'), port: 0, tasks: 2 });
const store = createStore({ endpoint: twin.s3Endpoint, credentials: { ...LOCAL_S3_CREDENTIALS } });

async function publish(version: string): Promise<number> {
  const dir = await writeClassifierDir(join(work, `model-${version}`), { name: 'bench', version });
  const file = join(work, `model-${version}.tar.gz`);
  await packModel(dir, file);
  const started = performance.now();
  await store.put(
    `s3://${LOCAL_BUCKETS.models}/bench-${version}/output/model.tar.gz`,
    createReadStream(file),
  );
  return started;
}

async function servedVersion(): Promise<string | null> {
  const res = await fetch(`${twin.url}/invocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  await res.arrayBuffer();
  return res.status === 200 ? res.headers.get(MODEL_VERSION_HEADER) : null;
}

const body = JSON.stringify({ instances: [[0.1, 0.2, 0.3, 0.4]] });
try {
  await publish('1');
  while ((await servedVersion()) !== '1') await new Promise((r) => setTimeout(r, 200));

  const log: { done: number; status: number; version: string | null }[] = [];
  let running = true;
  const worker = async (): Promise<void> => {
    while (running) {
      try {
        const res = await fetch(`${twin.url}/invocations`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        await res.arrayBuffer();
        log.push({
          done: performance.now(),
          status: res.status,
          version: res.headers.get(MODEL_VERSION_HEADER),
        });
      } catch {
        log.push({ done: performance.now(), status: 0, version: null });
      }
    }
  };
  const workers = Array.from({ length: 4 }, () => worker());
  await new Promise((r) => setTimeout(r, 1_000));
  const uploadedAt = await publish('2');
  while (
    !twin.supervisor.deployments().some((d) => d.modelVersion === '2' && d.rolloutState === 'COMPLETED')
  ) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 1_000));
  running = false;
  await Promise.all(workers);

  const after = log.filter((r) => r.done >= uploadedAt);
  const firstNew = after.find((r) => r.version === '2');
  const lastOld = after.filter((r) => r.version !== '2').at(-1);
  const failures = log.filter((r) => r.status !== 200).length;
  const toAll = ((lastOld?.done ?? uploadedAt) - uploadedAt) / 1000;
  process.stdout.write(
    [
      `requests under load: ${log.length} (4 concurrent clients), failed: ${failures}`,
      `upload -> first response from the new model: ${firstNew ? ((firstNew.done - uploadedAt) / 1000).toFixed(2) : 'n/a'} s`,
      `upload -> 100% of traffic on the new model:  ${toAll.toFixed(2)} s (target < 10 s: ${toAll < 10 ? 'met' : 'MISSED'})`,
    ].join('\n') + '\n',
  );
} finally {
  await twin.stop();
  await rm(work, { recursive: true, force: true });
}
