import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The image installs `npm ci --omit=dev` and runs `dist/cli/main.js serve`: every package the
// files of that path import must be a production dependency, or the container dies at start-up
// with ERR_MODULE_NOT_FOUND, which nothing else here would show (there is no Docker engine).
const ROOT = resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
};

const IMPORT =
  /^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

/** Packages imported by the files reachable from `roots`, with one importing file each. */
function reachablePackages(roots: readonly string[], notFollowedDynamically: readonly string[]) {
  const seen = new Set<string>();
  const packages = new Map<string, string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      if (m[2]) continue; // `import type` / `export type`: erased by the compiler
      const dynamic = m[5] !== undefined;
      const spec = m[3] ?? m[4] ?? m[5]!;
      if (spec.startsWith('.')) {
        if (!(dynamic && notFollowedDynamically.includes(relative(ROOT, file))))
          visit(resolve(dirname(file), spec));
        continue;
      }
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      if (name.startsWith('node:') || builtinModules.includes(name)) continue;
      packages.set(name, relative(ROOT, file));
    }
  };
  for (const root of roots) visit(join(ROOT, root));
  return { files: seen.size, packages };
}

describe('the inference image', () => {
  it('runs `serve` with production dependencies only', () => {
    const { files, packages } = reachablePackages(
      [
        'src/cli/main.ts',
        'src/cli/commands/serve.ts',
        // Started by path (worker_threads), not imported.
        'src/serve/inference-worker.ts',
        'src/serve/json-parse-worker.ts',
      ],
      // The registry loads only the command being run.
      ['src/cli/registry.ts'],
    );
    expect(files).toBeGreaterThan(20);
    expect(packages.has('fastify') && packages.has('onnxruntime-node')).toBe(true);
    const notShipped = [...packages].filter(([name]) => pkg.dependencies[name] === undefined);
    expect(notShipped).toEqual([]);
  });
});
