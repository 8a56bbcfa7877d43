import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type BuildOptions, type Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Bundled the way the CDK app's RolloutTrigger does it (src/infra/rollout-trigger.ts): esbuild,
// ESM output, module-first main fields, and a require() shim for dependencies that still call it.
// (NodejsFunction's default, CommonJS, bundles the same inputs.)
const entry = fileURLToPath(new URL('../../src/rollout/lambda.ts', import.meta.url));
const FORMATS: Record<string, BuildOptions> = {
  esm: {
    format: 'esm',
    outfile: 'index.mjs',
    mainFields: ['module', 'main'],
    banner: {
      js: "import { createRequire as __createRequire } from 'node:module';const require = __createRequire(import.meta.url);",
    },
  },
};
type Handler = (event: unknown) => Promise<unknown>;
let dir: string;
const bundles = new Map<string, { metafile: Metafile; handler: Handler }>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slipway-rollout-bundle-'));
  for (const [name, options] of Object.entries(FORMATS)) {
    const outfile = join(dir, options.outfile!);
    const result = await build({
      ...options,
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      target: 'node20',
      outfile,
      metafile: true,
      logLevel: 'silent',
    });
    const mod = (await import(pathToFileURL(outfile).href)) as { handler: Handler };
    bundles.set(name, { metafile: result.metafile, handler: mod.handler });
  }
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each(Object.keys(FORMATS))('the rollout Lambda bundled as %s', (format) => {
  it('leaves the model runtime, the web server, the trainer and the object store out', () => {
    const inputs = Object.keys(bundles.get(format)!.metafile.inputs);
    // The S3 client is in, for one HEAD (src/rollout/event-key.ts); the store's uploads are not.
    const heavy = inputs.filter(
      (input) =>
        /node_modules\/(onnxruntime|fastify|@tensorflow|pino|tar|@aws-sdk\/lib-storage)\b/.test(input) ||
        input.startsWith('src/store/'),
    );

    expect(heavy).toEqual([]);
    expect(inputs).toContain('src/rollout/lambda.ts');
  });

  it('loads and fails clearly when its environment is not configured', async () => {
    const names = ['SLIPWAY_CLUSTER', 'SLIPWAY_SERVICE', 'SLIPWAY_MODELS_BUCKET'];
    const saved = names.map((name) => [name, process.env[name]] as const);
    for (const name of names) delete process.env[name];
    try {
      await expect(bundles.get(format)!.handler({})).rejects.toMatchObject({
        code: 'ROLLOUT_CONFIG',
        message: 'missing environment variable(s) SLIPWAY_CLUSTER, SLIPWAY_SERVICE, SLIPWAY_MODELS_BUCKET',
      });
    } finally {
      for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
    }
  });
});
