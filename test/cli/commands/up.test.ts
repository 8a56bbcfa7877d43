import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { bannerLines, servingLines } from '../../../src/cli/commands/up.ts';
import { spawnFromShell } from '../../helpers/shell-child.ts';
import { isAlive, waitFor } from '../../local/helpers.ts';

const cwd = join('/', 'work', 'project');
const info = { url: 'http://127.0.0.1:8080', s3Endpoint: 'http://127.0.0.1:4568', tasks: 2 };

/** The shell commands among printed lines: what a user would paste. */
function commands(lines: readonly string[]): string[] {
  return lines.map((l) => l.trim()).flatMap((l) => /(?:^|\s{2,})((?:npx )?slipway \S.*)$/.exec(l)?.[1] ?? []);
}

describe('the banner of slipway up', () => {
  it('prints runnable npx commands, without --state-dir for the default state directory', () => {
    const lines = [
      ...bannerLines({ ...info, stateRoot: join(cwd, '.slipway') }, cwd),
      ...servingLines(info.url, join(cwd, '.slipway'), join(cwd, '.slipway', 'sample-request.json'), cwd),
    ];
    expect(commands(lines)).toEqual([
      'npx slipway status',
      'npx slipway rollback',
      'npx slipway predict my-digit.png',
    ]);
    expect(lines.join('\n')).toContain('--data @.slipway/sample-request.json');
  });

  it('passes --state-dir to status and rollback as well as predict when the state lives elsewhere', () => {
    const stateRoot = join(cwd, 'twins', 'a');
    const lines = [
      ...bannerLines({ ...info, stateRoot }, cwd),
      ...servingLines(info.url, stateRoot, join(stateRoot, 'sample-request.json'), cwd),
    ];
    expect(commands(lines)).toEqual([
      'npx slipway status --state-dir twins/a',
      'npx slipway rollback --state-dir twins/a',
      'npx slipway predict my-digit.png --state-dir twins/a',
    ]);
  });

  it('quotes a state directory the shell would split', () => {
    const stateRoot = join(cwd, 'my twin');
    expect(commands(bannerLines({ ...info, stateRoot }, cwd))[0]).toBe(
      "npx slipway status --state-dir 'my twin'",
    );
  });
});

const root = fileURLToPath(new URL('../../..', import.meta.url));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface RunningUp {
  readonly child: ChildProcess;
  readonly stateDir: string;
  /** Pid of the twin (the `slipway up` process, which may be a child of `child`). */
  readonly twinPid: number;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

/** Runs `command` (which starts `slipway up --no-train` on a fresh state directory) until the twin is up. */
async function runUp(command: string, args: readonly string[], detached = false): Promise<RunningUp> {
  const stateDir = await mkdtemp(join(tmpdir(), 'slipway-up-'));
  const { child, output, exited } = spawnFromShell(
    command,
    [...args, '--no-train', '--port', '0', '--state-dir', stateDir],
    { cwd: root, detached },
  );
  const twin: { pid?: number } = {};
  cleanups.push(async () => {
    if (twin.pid !== undefined && isAlive(twin.pid)) process.kill(twin.pid, 'SIGKILL');
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    await rm(stateDir, { recursive: true, force: true });
  });
  await waitFor(() => output().includes('Slipway local twin is up') || child.exitCode !== null, 60_000);
  const runtime = JSON.parse(await readFile(join(stateDir, 'twin.json'), 'utf8')) as { pid: number };
  twin.pid = runtime.pid;
  return { child, stateDir, twinPid: runtime.pid, output, exited };
}

describe('npm start', () => {
  it('stops the twin when npm gets SIGTERM: it exits and removes twin.json', async () => {
    const up = await runUp('npm', ['start', '--']);
    up.child.kill('SIGTERM');
    await up.exited;
    await waitFor(() => !isAlive(up.twinPid));
    expect(existsSync(join(up.stateDir, 'twin.json')), up.output()).toBe(false);
  }, 90_000);

  it('stops the twin cleanly on Ctrl-C, which reaches it from the terminal and again from npm', async () => {
    const up = await runUp('npm', ['start', '--'], true);
    // The terminal sends Ctrl-C to its whole foreground process group: npm and the twin.
    process.kill(-up.child.pid!, 'SIGINT');
    await up.exited;
    await waitFor(() => !isAlive(up.twinPid));
    expect(up.output()).not.toMatch(/again: killing/);
    expect(existsSync(join(up.stateDir, 'twin.json')), up.output()).toBe(false);
  }, 90_000);
});

describe('npx slipway up', () => {
  it('stops cleanly when npx goes and the shell between them does not pass the signal on', async () => {
    // What npx runs: a shell that waits for the command, and dies of npm's SIGTERM alone.
    const up = await runUp('sh', [
      '-c',
      'npm_command=exec node bin/slipway.js up "$@"; echo shell done',
      'sh',
    ]);
    up.child.kill('SIGTERM');
    await up.exited;
    await waitFor(() => !isAlive(up.twinPid), 20_000);
    expect(existsSync(join(up.stateDir, 'twin.json')), up.output()).toBe(false);
  }, 90_000);

  it('keeps running after its parent goes when npm did not start it (nohup, a service manager)', async () => {
    const up = await runUp('sh', ['-c', 'node bin/slipway.js up "$@"; echo shell done', 'sh']);
    up.child.kill('SIGTERM');
    await up.exited;
    await new Promise((r) => setTimeout(r, 2_500));
    expect(isAlive(up.twinPid)).toBe(true);
    expect(existsSync(join(up.stateDir, 'twin.json'))).toBe(true);
  }, 90_000);
});

describe('slipway up', () => {
  it('stops cleanly when its terminal is closed (SIGHUP), removing twin.json', async () => {
    const up = await runUp(process.execPath, [join(root, 'bin', 'slipway.js'), 'up']);
    up.child.kill('SIGHUP');
    await up.exited;
    expect(up.child.exitCode, up.output()).toBe(0);
    expect(up.output()).toMatch(/SIGHUP: stopping/);
    expect(existsSync(join(up.stateDir, 'twin.json'))).toBe(false);
  }, 90_000);
});
