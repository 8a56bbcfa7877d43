// Ctrl-C while `slipway up` is still training its first model: the twin stops cleanly and no
// process it started (the trainer, s3rver is in-process) is left running.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/supervisor.ts';

const bin = fileURLToPath(new URL('../../bin/slipway.js', import.meta.url));
let dir: string | undefined;

/** Every descendant of `pid`, read from ps (children first found, then theirs). */
function descendants(pid: number): number[] {
  const table = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number) as [number, number]);
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [child, ppid] of table) {
      if (ppid === parent && !found.includes(child)) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Ctrl-C during the first training run', () => {
  it('stops the twin and its trainer, leaving no orphan processes', async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipway-e2e-interrupt-'));
    const port = await freePort();
    const twin = spawn(process.execPath, [bin, 'up', '--port', String(port), '--epochs', '50'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    twin.stdout.on('data', (c: Buffer) => (output += c.toString()));
    twin.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => twin.once('exit', (code) => resolve(code)));

    // Wait until the trainer reports its first epoch: it is a running child process by then.
    const deadline = Date.now() + 120_000;
    while (!/epoch=1\b/.test(output)) {
      if (Date.now() > deadline || twin.exitCode !== null)
        throw new Error(`training never started:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const started = descendants(twin.pid!);
    expect(started.length, output).toBeGreaterThan(0);

    twin.kill('SIGINT');
    const code = await exited;
    // Processes the twin signalled on its way out may take a moment to go; an orphan never does.
    for (let i = 0; i < 50 && started.some(alive); i++) await new Promise((r) => setTimeout(r, 100));

    expect(code, output).toBe(0);
    expect(started.filter(alive), output).toEqual([]);
  }, 180_000);
});
