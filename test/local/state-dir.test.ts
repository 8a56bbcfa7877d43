import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StateDirError } from '../../src/local/errors.ts';
import { claimStateDir, statePaths } from '../../src/local/state-dir.ts';
import type { TwinRuntimeFile } from '../../src/local/state-dir.ts';
import { isAlive, waitFor } from './helpers.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slipway-state-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** An idle node process with `args` on its command line, and `env` added to its environment. */
function idleNode(args: readonly string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', ...args], {
    env: { ...process.env, ...env },
    detached: true,
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return child;
}

/** A detached process (the leader of its own group) that runs with `jobName` in TRAINING_JOB_NAME. */
function trainerLike(jobName: string): ChildProcess {
  return idleNode([], { TRAINING_JOB_NAME: jobName });
}

/** A twin.json left by a twin that died (its pid no longer runs). */
async function staleRuntime(stateDir: string, extra: Partial<TwinRuntimeFile>): Promise<void> {
  const runtime: TwinRuntimeFile = {
    pid: 999_999_9,
    startedAt: new Date().toISOString(),
    url: 'http://127.0.0.1:1',
    port: 1,
    s3Endpoint: 'http://127.0.0.1:2',
    buckets: { data: 'slipway-data', models: 'slipway-models' },
    taskPids: [],
    ...extra,
  };
  await writeFile(join(stateDir, 'twin.json'), JSON.stringify(runtime));
}

describe('claimStateDir after a twin that died', () => {
  it('stops the training job it left running (its whole process group)', async () => {
    const stateDir = await tempDir();
    const trainer = trainerLike('slipway-mnist-20260102-030405');
    await staleRuntime(stateDir, {
      trainer: { pgid: trainer.pid!, jobName: 'slipway-mnist-20260102-030405' },
    });
    const claim = await claimStateDir(statePaths(stateDir));
    await waitFor(() => !isAlive(trainer.pid!));
    expect(claim.notes.join('\n')).toMatch(
      `stopped its training job slipway-mnist-20260102-030405 (process group ${trainer.pid})`,
    );
  });

  it('leaves alone a process group that is not that job (a pid used again)', async () => {
    const stateDir = await tempDir();
    const other = trainerLike('another-job');
    await staleRuntime(stateDir, { trainer: { pgid: other.pid!, jobName: 'slipway-mnist-20260102-030405' } });
    const claim = await claimStateDir(statePaths(stateDir));
    await new Promise((r) => setTimeout(r, 300));
    expect(isAlive(other.pid!)).toBe(true);
    expect(claim.notes.join('\n')).not.toMatch(/training job/);
  });
});

describe('claimStateDir with a twin.json whose pid runs', () => {
  it('takes the directory over when that process is not a twin (a pid used again by another node process)', async () => {
    const stateDir = await tempDir();
    const other = idleNode([]);
    await staleRuntime(stateDir, { pid: other.pid! });
    const claim = await claimStateDir(statePaths(stateDir));
    expect(claim.notes.join('\n')).toMatch(
      `recovered from a twin that did not stop cleanly (pid ${other.pid})`,
    );
    expect(isAlive(other.pid!)).toBe(true);
  });

  it('refuses when that process is `slipway up`, even if it does not answer, and names the file to delete', async () => {
    const stateDir = await tempDir();
    const busy = idleNode(['bin/slipway.js', 'up']);
    await staleRuntime(stateDir, { pid: busy.pid! });
    const err = await claimStateDir(statePaths(stateDir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDirError);
    expect((err as Error).message).toMatch(/another local twin .* is running/);
    expect((err as Error).message).toContain(`if no twin runs there, delete ${join(stateDir, 'twin.json')}`);
  });
});
