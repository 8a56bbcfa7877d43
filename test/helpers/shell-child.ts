import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

/** A child process started as from a shell, with its stdout and stderr collected together. */
export interface ShellChild {
  readonly child: ChildProcess;
  /** Everything it wrote so far, stdout and stderr interleaved. */
  readonly output: () => string;
  /** Resolves with its exit code once it has exited (null when a signal ended it). */
  readonly exited: Promise<number | null>;
}

/**
 * Starts `command` as a shell would. npm run by npm (these tests under `npx vitest`) takes its
 * parent's npm_* settings from the environment, and with them did not deliver Ctrl-C twice as it
 * does from a terminal: they are left out. `detached` gives it a process group of its own, for a
 * test to signal as a terminal does (`process.kill(-pid, ...)`).
 */
export function spawnFromShell(
  command: string,
  args: readonly string[],
  options: { readonly cwd: string; readonly detached?: boolean },
): ShellChild {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key))),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}
