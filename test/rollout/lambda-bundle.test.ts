import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Bundled the way the CDK app's NodejsFunction does it (esbuild, CommonJS output, Node target).
const entry = fileURLToPath(new URL('../../src/rollout/lambda.ts', import.meta.url));
let dir: string;
let metafile: Metafile;
let bundle: { handler: (event: unknown) => Promise<unknown> };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slipway-rollout-bundle-'));
  const outfile = join(dir, 'index.js');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile,
    metafile: true,
    logLevel: 'silent',
  });
  metafile = result.metafile;
  bundle = createRequire(import.meta.url)(outfile) as typeof bundle;
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the rollout Lambda bundle', () => {
  it('leaves the model runtime, the web server and the trainer out', () => {
    const heavy = Object.keys(metafile.inputs).filter((input) =>
      /node_modules\/(onnxruntime|fastify|@tensorflow|pino|tar|@aws-sdk\/client-s3)\b/.test(input),
    );

    expect(heavy).toEqual([]);
    expect(Object.keys(metafile.inputs)).toContain('src/rollout/lambda.ts');
  });

  it('exports a handler that fails clearly when its environment is not configured', async () => {
    const names = ['SLIPWAY_CLUSTER', 'SLIPWAY_SERVICE', 'SLIPWAY_MODELS_BUCKET'];
    const saved = names.map((name) => [name, process.env[name]] as const);
    for (const name of names) delete process.env[name];
    try {
      await expect(bundle.handler({})).rejects.toMatchObject({
        code: 'ROLLOUT_CONFIG',
        message: 'missing environment variable(s) SLIPWAY_CLUSTER, SLIPWAY_SERVICE, SLIPWAY_MODELS_BUCKET',
      });
    } finally {
      for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
    }
  });
});
