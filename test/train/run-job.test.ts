import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FAILURE_REASON_MAX_BYTES, formatLogLine, jobPaths, writeFailure } from '../../src/train/index.ts';
import type { JobPaths } from '../../src/train/index.ts';

const ENTRY = fileURLToPath(new URL('./fixtures/fake-train.ts', import.meta.url));

let paths: JobPaths;
beforeEach(async () => {
  paths = jobPaths(await mkdtemp(join(tmpdir(), 'slipway-run-job-')));
});
afterEach(async () => {
  await rm(paths.root, { recursive: true, force: true });
});

async function layout(hyperparameters: Record<string, string>, withData = true): Promise<void> {
  await mkdir(paths.configDir, { recursive: true });
  await writeFile(paths.hyperparameters, JSON.stringify(hyperparameters));
  await writeFile(paths.inputDataConfig, JSON.stringify({ train: { TrainingInputMode: 'File' } }));
  if (withData) {
    await mkdir(paths.channel('train'), { recursive: true });
    await writeFile(join(paths.channel('train'), 'digits.bin'), 'data');
  }
}

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the fixture entrypoint as SageMaker would; `onStdout` may signal the child. */
function runEntry(onStdout?: (text: string, kill: (s: NodeJS.Signals) => void) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY], {
      env: { ...process.env, SLIPWAY_JOB_ROOT: paths.root },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      onStdout?.(stdout, (s) => child.kill(s));
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

async function failureText(): Promise<string | undefined> {
  return readFile(paths.failure, 'utf8').catch(() => undefined);
}

describe('runTrainingJob in a real child process', () => {
  it('exits 0, writes the model and logs one line per event, with no failure file', async () => {
    await layout({ epochs: '3', 'learning-rate': '0.5' });
    const run = await runEntry();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('starting files=1 epochs=3 host=algo-1\n');
    expect(run.stdout).toContain('epoch 3/3 loss=0.3333333333333333 lr=0.5\n');
    expect((await readFile(join(paths.model, 'model.onnx'))).length).toBeGreaterThan(0);
    expect(JSON.parse(await readFile(join(paths.model, 'manifest.json'), 'utf8'))).toMatchObject({
      name: 'fake',
    });
    expect(await failureText()).toBeUndefined();
  });

  it('writes the failure file and exits 1 for an unknown hyperparameter', async () => {
    await layout({ epoch: '3' });
    const run = await runEntry();
    expect(run.code).toBe(1);
    expect(await failureText()).toBe(
      'HyperparameterError: unknown hyperparameter "epoch"; known: epochs, learning-rate, mode\n',
    );
  });

  it('writes the failure file for a non-numeric number', async () => {
    await layout({ epochs: 'many' });
    expect((await runEntry()).code).toBe(1);
    expect(await failureText()).toContain('"epochs" = "many" is not an integer');
  });

  it('prints a user error such as a bad hyperparameter as one line, without a stack', async () => {
    await layout({ epochs: 'many' });
    const run = await runEntry();
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(await failureText());
    expect(run.stderr).toMatch(/^HyperparameterError: .*"epochs" = "many" is not an integer.*\n$/);
  });

  it('writes the failure file when a configured channel is missing', async () => {
    await layout({}, false);
    expect((await runEntry()).code).toBe(1);
    expect(await failureText()).toContain('TrainingError: channel "train" is configured but');
  });

  it('writes the reason of an error thrown by the trainer', async () => {
    await layout({ mode: 'throw' });
    const run = await runEntry();
    expect(run.code).toBe(1);
    expect(await failureText()).toBe('Error: corrupt data file: digits.bin has 3 bytes\n');
    expect(run.stderr).toContain('corrupt data file');
    // Not raised on purpose: maybe a bug, so the stack stays.
    expect(run.stderr).toMatch(/\n\s+at .*fake-train\.ts/);
  });

  it('on SIGTERM runs the checkpoint handler, writes the failure file and exits 143', async () => {
    await layout({ mode: 'hang' });
    let sent = false;
    const run = await runEntry((text, kill) => {
      if (!sent && text.includes('waiting for a signal')) {
        sent = true;
        kill('SIGTERM');
      }
    });
    expect(run.code).toBe(143);
    expect(run.stdout).toContain('received SIGTERM, stopping handlers=1');
    expect(JSON.parse(await readFile(join(paths.checkpoints, 'checkpoint.json'), 'utf8'))).toEqual({
      saved: 'on-terminate',
    });
    expect(await failureText()).toBe('stopped by SIGTERM\n');
  });
});

describe('writeFailure', () => {
  it('writes a short reason as it is, with a newline', async () => {
    await writeFailure(paths, 'channel "train" is empty');
    expect(await failureText()).toBe('channel "train" is empty\n');
  });

  it('cuts a long reason to the 1 KB SageMaker shows, on a character boundary, marked as truncated', async () => {
    await writeFailure(paths, `${'é'.repeat(100_000)} the end`);
    const bytes = await readFile(paths.failure);
    expect(bytes.length).toBeLessThanOrEqual(FAILURE_REASON_MAX_BYTES);
    const text = bytes.toString('utf8');
    expect(text).toMatch(/^é+ \[truncated\]\n$/);
    expect(text).not.toContain('\uFFFD');
  });
});

describe('formatLogLine', () => {
  it('appends key=value pairs and quotes values with spaces', () => {
    expect(formatLogLine('epoch 1', { loss: 0.5, note: 'a b', ok: true })).toBe(
      'epoch 1 loss=0.5 note="a b" ok=true',
    );
  });
});
