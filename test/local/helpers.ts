import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TaskSpawner } from '../../src/local/supervisor.ts';

const fixture = fileURLToPath(new URL('./fixtures/fake-server.ts', import.meta.url));

/** A spawner running the fake inference server; `env` picks its version and failure mode per model URI. */
export function fakeSpawner(envFor: (modelUri: string) => Record<string, string>): TaskSpawner {
  return ({ port, modelUri }) =>
    spawn(process.execPath, ['--import', 'tsx', fixture], {
      env: { ...process.env, PORT: String(port), ...envFor(modelUri) },
      stdio: ['ignore', 'pipe', 'pipe'],
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
