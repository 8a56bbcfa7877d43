import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { unpackModel } from '../../src/model/index.ts';
import { createStore } from '../../src/store/index.ts';
import { TrainingError } from '../../src/train/index.ts';
import { runLocalTrainingJob } from '../../src/train/local-runner.ts';
import type { LocalJobProgress, LocalTrainingJobOptions } from '../../src/train/local-runner.ts';
import { startS3rver, s3rverClient, S3RVER_CREDENTIALS } from '../helpers/s3rver.ts';
import type { RunningS3rver } from '../helpers/s3rver.ts';

const ENTRY = fileURLToPath(new URL('./fixtures/fake-train.ts', import.meta.url));

let tmp: string;
let dataUri: string;
let outputUri: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'slipway-local-runner-'));
  await mkdir(join(tmp, 'data', 'sub'), { recursive: true });
  await writeFile(join(tmp, 'data', 'a.bin'), 'aaaa');
  await writeFile(join(tmp, 'data', 'sub', 'b.bin'), 'bb');
  dataUri = `${pathToFileURL(join(tmp, 'data')).href}/`;
  outputUri = `${pathToFileURL(join(tmp, 'models')).href}/`;
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function options(extra: Partial<LocalTrainingJobOptions> = {}): LocalTrainingJobOptions & { logs: string[] } {
  const logs: string[] = [];
  return {
    entry: ENTRY,
    channels: { train: dataUri },
    output: outputUri,
    workDir: join(tmp, 'jobs'),
    onLog: (line) => logs.push(line),
    killGraceMs: 5000,
    logs,
    ...extra,
  };
}

async function rejection(promise: Promise<unknown>): Promise<TrainingError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TrainingError);
  return err as TrainingError;
}

describe('runLocalTrainingJob with file:// channels and output', () => {
  it('trains, then uploads model.tar.gz where SageMaker would and cleans the job directory', async () => {
    const progress: LocalJobProgress[] = [];
    const opts = options({
      jobName: 'job-1',
      hyperparameters: { epochs: 2 },
      onProgress: (p) => progress.push(p),
    });
    const result = await runLocalTrainingJob(opts);

    expect(result.modelUri).toBe(`${outputUri}job-1/output/model.tar.gz`);
    expect(opts.logs).toContain('[job-1] starting files=3 epochs=2 host=algo-1');
    expect(opts.logs).toContain('[job-1] epoch 2/2 loss=0.5 lr=0.1');
    expect(progress).toContainEqual({
      phase: 'download',
      channel: 'train',
      files: 2,
      totalFiles: 2,
      bytes: 6,
      totalBytes: 6,
    });
    expect(progress.at(-1)).toEqual({ phase: 'upload', bytes: result.bytes, totalBytes: result.bytes });
    const model = await unpackModel(fileURLToPath(result.modelUri));
    try {
      expect(model.manifest).toMatchObject({ name: 'fake', metrics: { epochs: 2 } });
    } finally {
      await rm(model.dir, { recursive: true, force: true });
    }
    expect(await readdir(join(tmp, 'jobs'))).toEqual([]);
  });

  it('sets TRAINING_JOB_NAME to the job name, as SageMaker does, over a value inherited from the parent', async () => {
    const inherited = process.env['TRAINING_JOB_NAME'];
    process.env['TRAINING_JOB_NAME'] = 'some-other-job';
    try {
      const result = await runLocalTrainingJob(options({ jobName: 'named-job' }));
      const model = await unpackModel(fileURLToPath(result.modelUri));
      try {
        // The fixture uses TRAINING_JOB_NAME as the model version.
        expect(model.manifest).toMatchObject({ version: 'named-job' });
      } finally {
        await rm(model.dir, { recursive: true, force: true });
      }
    } finally {
      if (inherited === undefined) delete process.env['TRAINING_JOB_NAME'];
      else process.env['TRAINING_JOB_NAME'] = inherited;
    }
  });

  it('surfaces the reason from the failure file when the trainer fails, keeping the job dir', async () => {
    const err = await rejection(
      runLocalTrainingJob(options({ jobName: 'bad-data', hyperparameters: { mode: 'throw' } })),
    );
    expect(err.code).toBe('TRAINING_FAILED');
    expect(err.message).toContain('training job bad-data failed (exit code 1): Error: corrupt data file');
    expect(await readFile(join(tmp, 'jobs', 'bad-data', 'output', 'failure'), 'utf8')).toContain(
      'corrupt data',
    );
  });

  it('reports only the first 1 KB of a huge failure file, as SageMaker does, naming the file', async () => {
    const err = await rejection(
      runLocalTrainingJob(
        options({ jobName: 'huge-failure', env: { FAKE_TRAIN_FAILURE_BYTES: String(8 * 1024 * 1024) } }),
      ),
    );
    expect(err.code).toBe('TRAINING_FAILED');
    expect(/\(exit code 1\): (x+) \[truncated/.exec(err.message)?.[1]).toHaveLength(1024);
    expect(err.message).toContain(
      `[truncated; the whole file is ${join(tmp, 'jobs', 'huge-failure', 'output', 'failure')}]`,
    );
    expect(err.message.length).toBeLessThan(2048);
  });

  it('surfaces an unknown hyperparameter as the failure reason', async () => {
    const err = await rejection(runLocalTrainingJob(options({ hyperparameters: { epoks: 3 } })));
    expect(err.message).toContain('unknown hyperparameter "epoks"; known: epochs, learning-rate, mode');
  });

  it('rejects an invalid job name before doing anything', async () => {
    const err = await rejection(runLocalTrainingJob(options({ jobName: 'my_job' })));
    expect(err.code).toBe('TRAINING_BAD_JOB_NAME');
    expect(err.message).toBe('invalid job name "my_job": it contains "_" (only letters, digits and hyphens)');
    await expect(readdir(join(tmp, 'jobs'))).rejects.toThrow();
  });

  it('rejects an empty channel before training', async () => {
    await mkdir(join(tmp, 'empty'));
    const err = await rejection(
      runLocalTrainingJob(options({ channels: { train: `${pathToFileURL(join(tmp, 'empty')).href}/` } })),
    );
    expect(err.code).toBe('TRAINING_EMPTY_CHANNEL');
    expect(err.message).toContain('channel "train" is empty');
  });

  it('rejects an output that cannot be written before training', async () => {
    await writeFile(join(tmp, 'a-file'), 'x');
    const err = await rejection(
      runLocalTrainingJob(options({ output: `${pathToFileURL(join(tmp, 'a-file')).href}/models/` })),
    );
    expect(err.code).toBe('TRAINING_OUTPUT_UNWRITABLE');
    expect(err.message).toContain('cannot write the model under');
    await expect(readdir(join(tmp, 'jobs'))).rejects.toThrow();
  });

  it('stops the trainer on abort: checkpoint saved, process gone, TRAINING_STOPPED', async () => {
    const controller = new AbortController();
    let pid = 0;
    const opts = options({
      jobName: 'stop-me',
      hyperparameters: { mode: 'hang' },
      signal: controller.signal,
      onLog: (line) => {
        const match = /waiting for a signal pid=(\d+)/.exec(line);
        if (match) {
          pid = Number(match[1]);
          controller.abort(new Error('Ctrl-C'));
        }
      },
    });
    const err = await rejection(runLocalTrainingJob(opts));
    expect(err.code).toBe('TRAINING_STOPPED');
    expect(err.message).toBe('training job stop-me was stopped (Ctrl-C)');
    expect(pid).toBeGreaterThan(0);
    expect(() => process.kill(pid, 0)).toThrow();
    const checkpoint = join(tmp, 'jobs', 'stop-me', 'checkpoints', 'checkpoint.json');
    expect(JSON.parse(await readFile(checkpoint, 'utf8'))).toEqual({ saved: 'on-terminate' });
  });

  it("reports the trainer's pid once it runs: the leader of its own process group", async () => {
    const controller = new AbortController();
    const started: number[] = [];
    let groupOfLogged = 0;
    const opts = options({
      hyperparameters: { mode: 'hang' },
      signal: controller.signal,
      onStart: (pid) => started.push(pid),
      onLog: (line) => {
        const match = /waiting for a signal pid=(\d+)/.exec(line);
        if (!match) return;
        // Field 5 of /proc/<pid>/stat, after the parenthesised command name, is the process group.
        const stat = readFileSync(`/proc/${match[1]}/stat`, 'utf8');
        groupOfLogged = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
        controller.abort(new Error('done'));
      },
    });
    await rejection(runLocalTrainingJob(opts));
    expect(started).toHaveLength(1);
    expect(groupOfLogged).toBe(started[0]);
  });

  describe('when the trainer leaves a helper running that holds its stdout and ignores SIGTERM', () => {
    let helper = 0;
    const helperOptions = (
      extra: Partial<LocalTrainingJobOptions>,
      mode = 'in-group',
    ): LocalTrainingJobOptions =>
      options({
        env: { FAKE_TRAIN_HELPER: mode },
        ...extra,
        onLog: (line) => {
          const match = /helper started helper_pid=(\d+)/.exec(line);
          if (match) helper = Number(match[1]);
          extra.onLog?.(line, 'stdout');
        },
      });
    // A killed helper is reaped by init, not by us: a zombie counts as gone (Linux /proc).
    const alive = (pid: number): boolean => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
      } catch {
        return false;
      }
    };
    // SIGKILL is delivered, and the process torn down, after kill() returns: the job can end (its pipes
    // closed by the helper's exit) a moment before the helper shows as a zombie. Wait that moment out.
    const expectGone = (pid: number): Promise<void> =>
      vi.waitFor(() => expect(alive(pid)).toBe(false), { timeout: 2000, interval: 10 });
    afterEach(() => {
      // Never leave the helper behind, even when an assertion failed.
      if (helper > 0 && alive(helper)) process.kill(helper, 'SIGKILL');
      helper = 0;
    });

    it('returns the failure once the trainer exits, and kills the helper', async () => {
      const err = await rejection(
        runLocalTrainingJob(helperOptions({ jobName: 'helper-fails', hyperparameters: { mode: 'throw' } })),
      );
      expect(err.code).toBe('TRAINING_FAILED');
      expect(err.message).toContain('corrupt data file');
      expect(helper).toBeGreaterThan(0);
      await expectGone(helper);
    });

    it('returns the failure even when the helper left the process group and keeps the pipe open', async () => {
      const err = await rejection(
        runLocalTrainingJob(
          helperOptions({ jobName: 'helper-escaped', hyperparameters: { mode: 'throw' } }, 'escaped'),
        ),
      );
      expect(err.code).toBe('TRAINING_FAILED');
      expect(err.message).toContain('corrupt data file');
    });

    it('stops the job on abort: the trainer saves its checkpoint, the helper is killed', async () => {
      const controller = new AbortController();
      let ready = 0;
      const err = await rejection(
        runLocalTrainingJob(
          helperOptions({
            jobName: 'helper-stop',
            hyperparameters: { mode: 'hang' },
            signal: controller.signal,
            onLog: (line) => {
              // Stop once the trainer waits and the helper has set its trap.
              if (/waiting for a signal|helper ignores SIGTERM/.test(line) && ++ready === 2) {
                controller.abort(new Error('Ctrl-C'));
              }
            },
          }),
        ),
      );
      expect(err.code).toBe('TRAINING_STOPPED');
      await expectGone(helper);
      const checkpoint = join(tmp, 'jobs', 'helper-stop', 'checkpoints', 'checkpoint.json');
      expect(JSON.parse(await readFile(checkpoint, 'utf8'))).toEqual({ saved: 'on-terminate' });
    });
  });
});

describe('runLocalTrainingJob against s3rver', () => {
  let s3: RunningS3rver;
  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ['data', 'models'] });
    const client = s3rverClient(s3.endpoint);
    await client.send(new PutObjectCommand({ Bucket: 'data', Key: 'mnist/train/x.bin', Body: 'xyz' }));
    client.destroy();
  });
  afterAll(async () => {
    await s3.stop();
  });

  const s3Store = () =>
    createStore({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { ...S3RVER_CREDENTIALS },
    });

  it('copies an s3:// channel and uploads the model to the models bucket', async () => {
    const store = s3Store();
    const result = await runLocalTrainingJob(
      options({
        jobName: 's3-job',
        store,
        channels: { train: 's3://data/mnist/' },
        output: 's3://models/runs/',
      }),
    );
    expect(result.modelUri).toBe('s3://models/runs/s3-job/output/model.tar.gz');
    const info = await store.head(result.modelUri);
    expect(info.size).toBe(result.bytes);
  });

  it("skips the S3 console's folder objects (empty keys ending in /) when copying a channel", async () => {
    const client = s3rverClient(s3.endpoint);
    for (const [Key, Body] of [
      ['folders/', ''],
      ['folders/sub/', ''],
      ['folders/sub/y.bin', 'yy'],
    ] as const) {
      await client.send(new PutObjectCommand({ Bucket: 'data', Key, Body }));
    }
    client.destroy();
    const opts = options({
      jobName: 'folder-markers',
      store: s3Store(),
      channels: { train: 's3://data/folders/' },
      output: 's3://models/runs/',
    });
    await runLocalTrainingJob(opts);
    // sub/ and sub/y.bin
    expect(opts.logs).toContain('[folder-markers] starting files=2 epochs=2 host=algo-1');
  });

  it('calls a channel of folder objects alone empty', async () => {
    const client = s3rverClient(s3.endpoint);
    await client.send(new PutObjectCommand({ Bucket: 'data', Key: 'only-folders/a/', Body: '' }));
    client.destroy();
    const err = await rejection(
      runLocalTrainingJob(
        options({
          store: s3Store(),
          channels: { train: 's3://data/only-folders/' },
          output: 's3://models/runs/',
        }),
      ),
    );
    expect(err.code).toBe('TRAINING_EMPTY_CHANNEL');
  });

  it('refuses a job name already used under the output prefix', async () => {
    const store = s3Store();
    await store.put('s3://models/runs/taken/output/model.tar.gz', 'x');
    const err = await rejection(
      runLocalTrainingJob(options({ jobName: 'taken', store, output: 's3://models/runs/' })),
    );
    expect(err.message).toContain('job name taken was used before');
  });

  it('rejects an output bucket that does not exist before training', async () => {
    const err = await rejection(
      runLocalTrainingJob(options({ store: s3Store(), output: 's3://no-such-bucket/m/' })),
    );
    expect(err.code).toBe('TRAINING_OUTPUT_UNWRITABLE');
    expect(err.message).toContain('no-such-bucket');
  });
});
