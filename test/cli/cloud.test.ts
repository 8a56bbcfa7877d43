import { readdir } from 'node:fs/promises';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

describe('RolloutLog', () => {
  it('leaves the CloudWatch Logs client out of what any command loads until it reads the log', async () => {
    const commands = (await readdir('src/cli/commands')).map((file) => `src/cli/commands/${file}`);
    const { metafile } = await build({
      entryPoints: commands,
      bundle: true,
      packages: 'external',
      platform: 'node',
      format: 'esm',
      outdir: 'unused',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });

    // Each command's static imports, transitively: what loading it loads.
    const loaded = new Set<string>();
    const visit = (path: string): void => {
      if (loaded.has(path)) return;
      loaded.add(path);
      for (const i of metafile.inputs[path]?.imports ?? []) if (i.kind === 'import-statement') visit(i.path);
    };
    for (const command of commands) visit(command);
    const logsClient = '@aws-sdk/client-cloudwatch-logs';

    expect(loaded).toContain('src/cli/cloud.ts');
    expect(loaded).not.toContain(logsClient);
    expect(metafile.inputs['src/cli/cloud.ts']?.imports).toContainEqual({
      path: logsClient,
      kind: 'dynamic-import',
      external: true,
    });
  });
});
