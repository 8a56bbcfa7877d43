import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bannerLines, servingLines } from '../../../src/cli/commands/up.ts';

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
