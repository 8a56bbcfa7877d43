import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const bin = fileURLToPath(new URL('../../bin/slipway.js', import.meta.url));

describe('slipway CLI entry point', () => {
  it('prints usage for --help and exits 0', async () => {
    const { stdout } = await run(process.execPath, [bin, '--help']);
    expect(stdout).toContain('Usage: slipway');
  });

  it('rejects an unknown command with a non-zero exit and a hint', async () => {
    const err = await run(process.execPath, [bin, 'no-such-command']).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).not.toBe(0);
    expect(err?.stderr).toMatch(/unknown command|too many arguments/);
  });
});
