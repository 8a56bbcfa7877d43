import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../helpers/conformance.ts';

const FIXTURE = fileURLToPath(new URL('../../train/fixtures/fake-train.ts', import.meta.url));
const BIN = join(REPO_ROOT, 'bin', 'slipway.js');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'slipway-cli-train-'));
  await mkdir(join(tmp, 'data'));
  await writeFile(join(tmp, 'data', 'digits.bin'), 'digits');
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function slipway(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: tmp,
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('slipway train', () => {
  it('trains locally, streams prefixed logs on stderr and prints only the model URI on stdout', async () => {
    const data = `${pathToFileURL(join(tmp, 'data')).href}/`;
    const run = await slipway([
      'train',
      '--entry',
      FIXTURE,
      '--data',
      data,
      '--hp',
      'epochs=3',
      '--job-name',
      'cli-1',
    ]);
    expect(run.code).toBe(0);
    const expected = `${pathToFileURL(join(tmp, '.slipway', 'models')).href}/cli-1/output/model.tar.gz`;
    expect(run.stdout).toBe(`${expected}\n`);
    expect(run.stderr).toContain('[cli-1] epoch 3/3');
    expect(run.stderr).toContain('copying channel train: 1/1 files');
    expect((await stat(fileURLToPath(expected))).size).toBeGreaterThan(0);
  });

  it('prints the failure reason in one line when the trainer fails', async () => {
    const data = `${pathToFileURL(join(tmp, 'data')).href}/`;
    const run = await slipway(['train', '--entry', FIXTURE, '--data', data, '--hp', 'epochs=lots', '--json']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(
      /slipway: training job slipway-mnist-[\d-]+ failed \(exit code 1\): HyperparameterError: hyperparameter "epochs" = "lots" is not an integer/,
    );
    // The trainer's own report of a user error is its message, without a stack.
    expect(run.stderr).toMatch(
      /^\[slipway-mnist-[\d-]+\] HyperparameterError: hyperparameter "epochs" = "lots"/m,
    );
    expect(run.stderr).not.toMatch(/^\[slipway-mnist-[\d-]+\]\s+at /m);
  });

  it('rejects a malformed --hp and an invalid job name without a stack trace', async () => {
    const hp = await slipway(['train', '--hp', 'epochs']);
    expect(hp.code).toBe(1);
    expect(hp.stderr).toBe('slipway: --hp expects key=value, got "epochs"\n');
    const name = await slipway(['train', '--job-name', 'x'.repeat(64)]);
    expect(name.code).toBe(1);
    expect(name.stderr).toContain('it has 64 characters (at most 63)');
  });
});
