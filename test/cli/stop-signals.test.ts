import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SAME_SIGNAL_MS, signalCounter } from '../../src/cli/stop-signals.ts';
import { spawnFromShell } from '../helpers/shell-child.ts';
import type { ShellChild } from '../helpers/shell-child.ts';
import { waitFor } from '../local/helpers.ts';

describe('signalCounter', () => {
  function counter(): { meaning: (signal: NodeJS.Signals) => string; advance: (ms: number) => void } {
    let now = 1_000;
    const meaning = signalCounter(() => now);
    return { meaning, advance: (ms) => (now += ms) };
  }

  it('counts the copy npm forwards of the first Ctrl-C once, and a second press after it as a force', () => {
    const { meaning, advance } = counter();
    expect(meaning('SIGINT')).toBe('stop');
    advance(5);
    expect(meaning('SIGINT')).toBe('copy');
    advance(SAME_SIGNAL_MS + 100);
    expect(meaning('SIGINT')).toBe('force');
  });

  it('forces on a second press well within a second of the first, once it is clearly not a copy', () => {
    const { meaning, advance } = counter();
    meaning('SIGINT');
    advance(SAME_SIGNAL_MS);
    expect(meaning('SIGINT')).toBe('force');
  });

  it('forces on a third signal even when it comes as soon as a copy would', () => {
    const { meaning, advance } = counter();
    meaning('SIGINT');
    advance(1);
    expect(meaning('SIGINT')).toBe('copy');
    advance(1);
    expect(meaning('SIGINT')).toBe('force');
  });

  it('forces on another signal than the first at once: npm forwards only the signal it got', () => {
    const { meaning, advance } = counter();
    meaning('SIGINT');
    advance(1);
    expect(meaning('SIGTERM')).toBe('force');
  });
});

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/slow-stop.ts', import.meta.url));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Runs `command` (which starts the slow-stop fixture) until the fixture is ready for signals. */
async function run(
  command: string,
  args: readonly string[],
  cwd: string,
  detached = false,
): Promise<ShellChild> {
  const running = spawnFromShell(command, args, { cwd, detached });
  const { child, output, exited } = running;
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      if (detached) process.kill(-child.pid!, 'SIGKILL');
      else child.kill('SIGKILL');
    }
    await exited;
  });
  await waitFor(() => /^READY$/m.test(output()) || child.exitCode !== null, 30_000);
  return running;
}

const count = (text: string, pattern: RegExp): number => text.match(new RegExp(pattern, 'gm'))?.length ?? 0;

describe('stopOnSignal in a real process', () => {
  const slowStop = ['--import', 'tsx', fixture, '60000'];

  it('forces the stop on a second Ctrl-C half a second after the first', async () => {
    const p = await run(process.execPath, slowStop, root);
    p.child.kill('SIGINT');
    await waitFor(() => p.output().includes('SIGINT: stopping'));
    await new Promise((r) => setTimeout(r, 500));
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(130);
    expect(p.output()).toMatch(/SIGINT again: killing/);
    expect(p.output()).not.toMatch(/STOPPED/);
  }, 60_000);

  it('still exits 130 when a process it would kill has already gone', async () => {
    // Above Linux's largest pid_max (2^22): no process has it, so kill() fails with ESRCH.
    const p = await run(process.execPath, [...slowStop, String(2 ** 22 + 1)], root);
    p.child.kill('SIGINT');
    await waitFor(() => p.output().includes('SIGINT: stopping'));
    await new Promise((r) => setTimeout(r, 500));
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(130);
    expect(p.output()).toMatch(/SIGINT again: killing/);
    expect(p.output()).not.toMatch(/ESRCH|Error/);
  }, 60_000);

  it('forces the stop on a SIGTERM right after a Ctrl-C', async () => {
    const p = await run(process.execPath, slowStop, root);
    p.child.kill('SIGINT');
    await waitFor(() => p.output().includes('SIGINT: stopping'));
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(130);
    expect(p.output()).toMatch(/SIGTERM again: killing/);
  }, 60_000);

  it('under npm start, counts one Ctrl-C (from the terminal and from npm) once, and forces on the next half a second later', async () => {
    // A package whose start script execs the fixture, as Slipway's execs `slipway up`.
    const dir = await mkdtemp(join(tmpdir(), 'slipway-signals-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const tsx = import.meta.resolve('tsx');
    await writeFile(
      join(dir, 'package.json'),
      JSON.stringify({
        name: 'signals',
        private: true,
        scripts: { start: `exec node --import ${tsx} ${fixture} 60000` },
      }),
    );
    const p = await run('npm', ['start'], dir, true);
    // The terminal sends Ctrl-C to its whole foreground process group: npm and the fixture.
    process.kill(-p.child.pid!, 'SIGINT');
    await waitFor(() => p.output().includes('SIGINT: stopping'));
    await new Promise((r) => setTimeout(r, 500));
    expect(count(p.output(), /^SIGINT: stopping/), p.output()).toBe(1);
    expect(p.output()).not.toMatch(/again: killing/);

    process.kill(-p.child.pid!, 'SIGINT');
    await p.exited;
    expect(count(p.output(), /^SIGINT again: killing/), p.output()).toBe(1);
    expect(p.output()).not.toMatch(/STOPPED/);
  }, 60_000);
});
