import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { availableCpus, parseCpuQuota, planThreads } from '../../src/serve/cpu.ts';
import { loadServeConfig } from '../../src/serve/config.ts';
import { UsageError } from '../../src/errors.ts';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('CPU quota', () => {
  it('parses cgroup quotas, rounding fractional CPUs up and treating "max" as unlimited', () => {
    expect(parseCpuQuota('150000', '100000')).toBe(2);
    expect(parseCpuQuota('50000', '100000')).toBe(1);
    expect(parseCpuQuota('max', '100000')).toBeUndefined();
    expect(parseCpuQuota('-1', '100000')).toBeUndefined();
  });

  it('reads cgroup v2 cpu.max, then v1, capped by the visible cores', async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipway-cpu-'));
    const v2Max = join(dir, 'cpu.max');
    const v1Quota = join(dir, 'quota');
    const v1Period = join(dir, 'period');
    await writeFile(v2Max, '100000 100000\n');
    expect(availableCpus({ v2Max, v1Quota, v1Period })).toBe(1);
    await rm(v2Max);
    await writeFile(v1Quota, '100000');
    await writeFile(v1Period, '100000');
    expect(availableCpus({ v2Max, v1Quota, v1Period })).toBe(1);
    await writeFile(v1Quota, '-1');
    expect(availableCpus({ v2Max, v1Quota, v1Period })).toBe(availableParallelism());
  });

  it('never plans more threads than CPUs by default', () => {
    expect(planThreads(8)).toEqual({ workers: 4, intraOpThreads: 2, idleIntraOpThreads: 8 });
    expect(planThreads(2)).toEqual({ workers: 2, intraOpThreads: 1, idleIntraOpThreads: 2 });
    expect(planThreads(1, 3)).toEqual({ workers: 3, intraOpThreads: 1, idleIntraOpThreads: 1 });
    // A lone run never gets fewer threads than a worker's share; 1 turns the wide session off.
    expect(planThreads(4, 2, 3, 1)).toEqual({ workers: 2, intraOpThreads: 3, idleIntraOpThreads: 3 });
    expect(planThreads(4, 4, 1, 1)).toEqual({ workers: 4, intraOpThreads: 1, idleIntraOpThreads: 1 });
  });
});

describe('loadServeConfig', () => {
  it('lets SAGEMAKER_BIND_TO_PORT win over PORT and flags win over both', () => {
    expect(loadServeConfig({ PORT: '9000', SAGEMAKER_BIND_TO_PORT: '9100' }).port).toBe(9100);
    expect(loadServeConfig({ PORT: '9000' }, { port: 9200 }).port).toBe(9200);
    expect(loadServeConfig({}).port).toBe(8080);
  });

  it('defaults MODEL_URI to the SageMaker model directory', () => {
    expect(loadServeConfig({}).modelUri).toBe('/opt/ml/model');
    expect(loadServeConfig({ MODEL_URI: 'none' }).modelUri).toBe('none');
  });

  it.each(['0x2', '1e0', '2.0', '-1', '+2', '2 workers'])(
    'takes only decimal whole numbers from the environment: SLIPWAY_WORKERS=%j is refused',
    (raw) => {
      expect(() => loadServeConfig({ SLIPWAY_WORKERS: raw })).toThrow(
        `SLIPWAY_WORKERS must be a whole number from 1 to 64, got ${JSON.stringify(raw)}`,
      );
    },
  );

  it('takes the queue limit from SLIPWAY_MAX_QUEUED_BYTES (256 MiB by default) and refuses a bad one', () => {
    expect(loadServeConfig({}).maxQueuedBytes).toBe(256 * 1024 * 1024);
    expect(loadServeConfig({ SLIPWAY_MAX_QUEUED_BYTES: '1048576' }).maxQueuedBytes).toBe(1048576);
    expect(() => loadServeConfig({ SLIPWAY_MAX_QUEUED_BYTES: '0' })).toThrow(
      'SLIPWAY_MAX_QUEUED_BYTES must be a whole number >= 1, got "0"',
    );
  });

  it.each([
    ['s3:/models/model.tar.gz', 'expected s3://bucket/key'],
    ['http://models.internal/model.tar.gz', 'unsupported scheme "http:"'],
    ['file://relative/model.tar.gz', 'file URIs must be absolute and local'],
  ])('refuses MODEL_URI=%s as a malformed URI rather than a local path', (uri, why) => {
    expect(() => loadServeConfig({ MODEL_URI: uri })).toThrow(UsageError);
    expect(() => loadServeConfig({ MODEL_URI: uri })).toThrow(`MODEL_URI: bad storage URI "${uri}": ${why}`);
    expect(() => loadServeConfig({}, { modelUri: uri })).toThrow(`--model: bad storage URI "${uri}": ${why}`);
  });

  it('takes local paths, prefixes and none as model locations', () => {
    for (const uri of [
      'none',
      './model',
      '/opt/ml/model',
      'models/model.onnx',
      's3://models/mnist/',
      'file:///m/',
    ]) {
      expect(loadServeConfig({ MODEL_URI: uri }).modelUri).toBe(uri);
    }
  });

  it('rejects a bad setting with a UsageError naming it', () => {
    expect(() => loadServeConfig({ SLIPWAY_WORKERS: 'two' })).toThrow(UsageError);
    expect(() => loadServeConfig({ SLIPWAY_MAX_BATCH_SIZE: '0' })).toThrow(
      /SLIPWAY_MAX_BATCH_SIZE must be a whole number from 1/,
    );
  });
});
