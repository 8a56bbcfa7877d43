import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TaskSpawner } from '../../src/local/supervisor.ts';
import { LOCAL_BUCKETS } from '../../src/local/twin.ts';

const fixture = fileURLToPath(new URL('./fixtures/fake-server.ts', import.meta.url));
const twinFixture = fileURLToPath(new URL('./fixtures/twin-process.ts', import.meta.url));

/** A spawner running the fake inference server; `env` picks its version and failure mode per model URI. */
export function fakeSpawner(envFor: (modelUri: string) => Record<string, string>): TaskSpawner {
  return ({ modelUri }) =>
    spawn(process.execPath, ['--import', 'tsx', fixture], {
      env: { ...process.env, PORT: '0', ...envFor(modelUri) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
}

/**
 * A twin's spawner where the fake server plays the model named by the first segment of its key in
 * the models bucket: v<N> serves version N; v<N>-broken dies at start, v<N>-stuck never gets ready,
 * v<N>-slow serves version N after a 4 s model load. Name a test's uploads in the order it makes them
 * (v1, then v2-broken): the rollout orders uploads made in one second by key.
 */
export const modelKeySpawner: TaskSpawner = fakeSpawner((uri): Record<string, string> => {
  const name = uri.replace(`s3://${LOCAL_BUCKETS.models}/`, '').split('/')[0] ?? '';
  const [, version = '', mode] = /^v(\d+)(?:-(\w+))?$/.exec(name) ?? [];
  if (mode === 'broken') return { FAKE_MODE: 'crash-on-start' };
  if (mode === 'stuck') return { FAKE_MODE: 'never-ready' };
  if (mode === 'slow') return { FAKE_VERSION: version, FAKE_READY_AFTER_MS: '4000' };
  return { FAKE_VERSION: version };
});

/** A twin running in a process of its own (so that a test can kill it), with {@link modelKeySpawner}. */
export interface TwinProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly s3Endpoint: string;
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;
}

/** Starts a twin process on `stateDir`; resolves once it serves its control API. */
export function startTwinProcess(stateDir: string, readinessTimeoutMs: number): Promise<TwinProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', twinFixture, stateDir, String(readinessTimeoutMs)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const ready = /^READY (\S+) (\S+)$/m.exec(output);
      if (ready) resolve({ child, url: ready[1]!, s3Endpoint: ready[2]!, exited });
    });
    void exited.then(() => reject(new Error(`the twin process exited before it was up:\n${output}`)));
  });
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls until `check` returns true or the timeout passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
