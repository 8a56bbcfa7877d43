// Acceptance of the local twin, driven as a user would: `slipway up` in an empty directory as a
// real child process, then `slipway deploy/status` and HTTP requests against the load balancer.
// One training run serves every test in this file (they run in order and share the twin).
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_S3_CREDENTIALS } from '../../src/local/s3-server.ts';
import { freePort } from '../../src/local/supervisor.ts';
import { loadGenerator } from '../helpers/load-generator.ts';
import { packModel } from '../../src/model/pack.ts';
import { unpackModel } from '../../src/model/unpack.ts';
import { createStore } from '../../src/store/create-store.ts';
import { readDigitsFile, TEST_FILE } from '../../src/train/examples/mnist/data-format.ts';

const bin = fileURLToPath(new URL('../../bin/slipway.js', import.meta.url));

let dir: string;
let twin: ChildProcess;
let url: string;
let output = '';
let exited: Promise<number | null>;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: dir }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface StatusJson {
  deployments: {
    id: string;
    rolloutState: string;
    rolloutStateReason: string;
    modelUri: string;
    status: string;
  }[];
  tasks: { pid: number; modelVersion?: string }[];
  twin: { s3Endpoint: string; buckets: { models: string } };
}

async function status(): Promise<StatusJson> {
  const res = await cli(['status', '--json']);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as StatusJson;
}

/** One JSON prediction request through the twin's load balancer. */
function invoke(body: string): Promise<Response> {
  return fetch(`${url}/invocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slipway-e2e-'));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  twin = spawn(process.execPath, [bin, 'up', '--port', String(port)], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  exited = new Promise((resolve) => twin.once('exit', (code) => resolve(code)));
  twin.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  twin.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 330_000;
  while (!output.includes('serving; get a prediction')) {
    if (Date.now() > deadline || twin.exitCode !== null)
      throw new Error(`the twin did not start serving:\n${output}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}, 360_000);

afterAll(async () => {
  if (twin.exitCode === null) {
    twin.kill('SIGINT');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

describe('slipway up from an empty directory', () => {
  it('trains, publishes, rolls out and serves predictions with at least 95% accuracy on held-out digits', async () => {
    expect(output).toMatch(/rollout: deploy .*model\.tar\.gz/);
    const test = await readDigitsFile(join(dir, '.slipway', 'staging', 'mnist', TEST_FILE));
    const n = Math.min(test.count, 1000);
    let correct = 0;
    for (let start = 0; start < n; start += 250) {
      const instances = Array.from({ length: Math.min(250, n - start) }, (_, k) =>
        Array.from(test.pixels.subarray((start + k) * 784, (start + k + 1) * 784), (p) => p / 255),
      );
      const res = await invoke(JSON.stringify({ instances }));
      expect(res.status).toBe(200);
      const { predictions } = (await res.json()) as { predictions: { label: string }[] };
      predictions.forEach((p, k) => {
        if (Number(p.label) === test.labels[start + k]) correct += 1;
      });
    }
    expect(correct / n).toBeGreaterThanOrEqual(0.95);
  });

  it('rolls a second model out under load: no request fails, and every response after the switch is the new version', async () => {
    const before = await status();
    const live = before.deployments.find((d) => d.status === 'PRIMARY')!;
    const store = createStore({ endpoint: before.twin.s3Endpoint, credentials: { ...LOCAL_S3_CREDENTIALS } });
    const model = await unpackModel(await store.get(live.modelUri));
    const manifestPath = join(model.dir, 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { version: string };
    await writeFile(manifestPath, JSON.stringify({ ...manifest, version: 'e2e-v2' }));
    const second = join(dir, 'second.tar.gz');
    await packModel(model.dir, second);
    await rm(model.dir, { recursive: true, force: true });

    const digit = await readFile(join(dir, '.slipway', 'sample-request.json'), 'utf8');
    const load = loadGenerator(() => invoke(digit));
    await new Promise((r) => setTimeout(r, 500));
    const deploy = await cli(['deploy', second, '--key', 'e2e-v2/output/model.tar.gz', '--wait']);
    const switched = load.count() + 3;
    await new Promise((r) => setTimeout(r, 1_000));
    const results = await load.stop();

    expect(deploy.code, deploy.stderr + deploy.stdout).toBe(0);
    expect(deploy.stdout).toMatch(/rollout completed/);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(results.some((r) => r.version === manifest.version)).toBe(true);
    const after = results.slice(switched);
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((r) => r.version !== 'e2e-v2')).toEqual([]);
  }, 150_000);

  it('rolls back a broken model: the rollout fails, no request fails, the old tasks keep serving, and status says why', async () => {
    const broken = join(dir, 'broken.tar.gz');
    await writeFile(broken, 'this is not a gzip tarball');
    const digit = await readFile(join(dir, '.slipway', 'sample-request.json'), 'utf8');
    const load = loadGenerator(() => invoke(digit));
    const deploy = await cli(['deploy', broken, '--key', 'broken/output/model.tar.gz', '--wait']);
    const results = await load.stop();

    expect(deploy.code).toBe(1);
    expect(deploy.stdout).toMatch(/rollout rolled-back/);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(new Set(results.map((r) => r.version))).toEqual(new Set(['e2e-v2']));
    const { deployments } = await status();
    const failed = deployments.find((d) => d.modelUri.endsWith('broken/output/model.tar.gz'))!;
    expect(failed.rolloutState).toBe('FAILED');
    expect(failed.rolloutStateReason).toMatch(/circuit breaker/);
    const text = await cli(['status']);
    expect(text.stdout).toMatch(/recent failed rollouts/);
  }, 150_000);

  it('stops every process on Ctrl-C, leaving no orphans', async () => {
    const { tasks } = await status();
    expect(tasks.length).toBe(2);
    twin.kill('SIGINT');
    expect(await exited).toBe(0);
    const alive = tasks
      .map((t) => t.pid)
      .filter((pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      });
    expect(alive).toEqual([]);
    expect(output).toMatch(/stopped/);
  }, 60_000);
});
