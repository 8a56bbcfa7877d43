import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVE_NODE_FLAGS } from '../../src/serve/config.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const text = readFileSync(resolve(ROOT, 'docker/serve.Dockerfile'), 'utf8');

interface Instruction {
  readonly op: string;
  readonly args: string;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function instructions(source: string): Instruction[] {
  const joined = source
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [op, ...rest] = line.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

const all = instructions(text);
const args = new Map(all.filter((i) => i.op === 'ARG').map((i) => i.args.split('=') as [string, string]));
const stages: Instruction[][] = [];
for (const i of all) {
  if (i.op === 'FROM') stages.push([]);
  stages.at(-1)?.push(i);
}
const final = stages.at(-1) ?? [];
const has = (stage: Instruction[], op: string, pattern: RegExp) =>
  stage.some((i) => i.op === op && pattern.test(i.args));

describe('docker/serve.Dockerfile', () => {
  it('is multi-stage on a Node 22+ slim base', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) {
      const from = stage[0]!.args.split(/\s+/)[0]!;
      const image = from.replace(/^\$\{(\w+)\}$/, (_m, name: string) => args.get(name) ?? '');
      const major = Number(/^node:(\d+)/.exec(image)?.[1]);
      expect(major, `base image ${image}`).toBeGreaterThanOrEqual(22);
      expect(image).toMatch(/slim/);
    }
  });

  it('builds with npm ci + npm run build and ships only production dependencies and dist/', () => {
    const build = stages[0]!;
    expect(has(build, 'RUN', /\bnpm ci\b/)).toBe(true);
    expect(has(build, 'RUN', /\bnpm run build\b/)).toBe(true);
    expect(has(final, 'RUN', /\bnpm ci --omit=dev\b/)).toBe(true);
    expect(has(final, 'COPY', /--from=build \/app\/dist/)).toBe(true);
    expect(has(final, 'COPY', /\bsrc\b/)).toBe(false);
  });

  it('has an exec-form ENTRYPOINT that runs the compiled CLI and accepts `serve`', () => {
    const entry = final.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    const cmd = final.filter((i) => i.op === 'CMD').at(-1);
    const entryArgs = JSON.parse(entry!.args) as string[];
    expect(entryArgs).toEqual(['node', ...SERVE_NODE_FLAGS, 'dist/cli/main.js']);
    expect(JSON.parse(cmd!.args)).toEqual(['serve']);
    // dist/cli/main.js is compiled from src/cli/main.ts, which registers the serve command.
    expect(existsSync(resolve(ROOT, 'src/cli/main.ts'))).toBe(true);
    expect(readFileSync(resolve(ROOT, 'src/cli/registry.ts'), 'utf8')).toMatch(/registerServe/);
  });

  it('has a HEALTHCHECK on /ping and runs as a non-root user', () => {
    expect(has(final, 'HEALTHCHECK', /\/ping/)).toBe(true);
    const user = final.filter((i) => i.op === 'USER').at(-1);
    expect(user?.args).toBeDefined();
    expect(user!.args).not.toMatch(/^(root|0)(:|$)/);
  });

  it('copies only files that exist and that .dockerignore lets into the context', () => {
    const ignore = readFileSync(resolve(ROOT, '.dockerignore'), 'utf8');
    const allowed = ignore
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/\*\*$/, ''));
    for (const copy of all.filter((i) => i.op === 'COPY' && !i.args.includes('--from'))) {
      const parts = copy.args.split(/\s+/);
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(resolve(ROOT, source)), `${source} exists`).toBe(true);
        expect(allowed, `${source} is in the build context`).toContain(source);
      }
    }
  });
});
