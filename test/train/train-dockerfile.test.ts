import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/conformance.ts';

const dockerfile = readFileSync(join(REPO_ROOT, 'docker', 'train.Dockerfile'), 'utf8');
const lines = dockerfile
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

describe('docker/train.Dockerfile', () => {
  it('builds and runs on Node 22 or newer in every stage', () => {
    const arg = /^ARG NODE_IMAGE=node:(\d+)/.exec(lines.find((l) => l.startsWith('ARG NODE_IMAGE=')) ?? '');
    expect(Number(arg?.[1])).toBeGreaterThanOrEqual(22);
    const froms = lines.filter((l) => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from).toMatch(/^FROM \$\{NODE_IMAGE\}/);
  });

  it('has an exec-form ENTRYPOINT that exists in the build output, with train as the command', () => {
    const entrypoint = lines.filter((l) => l.startsWith('ENTRYPOINT '));
    expect(entrypoint).toHaveLength(1);
    const argv = JSON.parse(entrypoint[0]!.slice('ENTRYPOINT '.length)) as string[];
    expect(argv[0]).toBe('node');
    // dist/train/container-entry.js is compiled from src/train/container-entry.ts.
    const source = argv[1]!.replace('/app/dist/', 'src/').replace(/\.js$/, '.ts');
    expect(existsSync(join(REPO_ROOT, source))).toBe(true);
    expect(lines).toContain('CMD ["train"]');
  });

  it('COPYs only files that exist in the repository', () => {
    const copies = lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from='));
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      const parts = copy.split(/\s+/).slice(1, -1);
      for (const source of parts) expect(existsSync(join(REPO_ROOT, source)), source).toBe(true);
    }
  });

  it('builds dist with npm run build and keeps the job root at /opt/ml', () => {
    expect(lines).toContainEqual(expect.stringMatching(/^RUN npm run build\b/));
    expect(dockerfile).toContain('SLIPWAY_JOB_ROOT=/opt/ml');
    const build = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(build.scripts.build).toContain('tsconfig.build.json');
  });
});

describe('container entry (the image ENTRYPOINT)', () => {
  const entry = join(REPO_ROOT, 'src', 'train', 'container-entry.ts');
  const fixture = fileURLToPath(new URL('./fixtures/fake-train.ts', import.meta.url));

  it('runs the configured trainer for `train` under the job root', async () => {
    const root = await mkdtemp(join(tmpdir(), 'slipway-container-'));
    try {
      await mkdir(join(root, 'input', 'data', 'train'), { recursive: true });
      await writeFile(join(root, 'input', 'data', 'train', 'x'), 'x');
      const run = spawnSync(process.execPath, ['--import', 'tsx', entry, 'train'], {
        env: { ...process.env, SLIPWAY_JOB_ROOT: root, SLIPWAY_TRAIN_ENTRY: fixture },
        encoding: 'utf8',
      });
      expect(run.status).toBe(0);
      expect(run.stdout).toContain('epoch 2/2');
      expect((await readFile(join(root, 'model', 'model.onnx'))).length).toBeGreaterThan(0);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('runs a trainer named through a symlink as the main module', async () => {
    const root = await mkdtemp(join(tmpdir(), 'slipway-container-'));
    try {
      await mkdir(join(root, 'input', 'data', 'train'), { recursive: true });
      await writeFile(join(root, 'input', 'data', 'train', 'x'), 'x');
      const link = join(root, 'train-link.ts');
      await symlink(fileURLToPath(new URL('./fixtures/main-only-train.ts', import.meta.url)), link);
      const run = spawnSync(process.execPath, ['--import', 'tsx', entry, 'train'], {
        env: { ...process.env, SLIPWAY_JOB_ROOT: root, SLIPWAY_TRAIN_ENTRY: link },
        encoding: 'utf8',
      });
      expect(run.stdout).toContain('trained as the main module');
      expect(run.status).toBe(0);
      expect(await readFile(join(root, 'model', 'model.onnx'), 'utf8')).toBe('stands in for a model');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('fails with a failure file, not exit 0, when the trainer ends without running a job', async () => {
    const root = await mkdtemp(join(tmpdir(), 'slipway-container-'));
    try {
      const trainer = fileURLToPath(new URL('./fixtures/no-job-train.ts', import.meta.url));
      const run = spawnSync(process.execPath, ['--import', 'tsx', entry, 'train'], {
        env: { ...process.env, SLIPWAY_JOB_ROOT: root, SLIPWAY_TRAIN_ENTRY: trainer },
        encoding: 'utf8',
      });
      expect(run.status).toBe(1);
      const failure = await readFile(join(root, 'output', 'failure'), 'utf8');
      expect(failure).toContain(`training entrypoint ${trainer} ended without writing a model`);
      expect(run.stderr).toContain(failure.trim());
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('refuses any other command with a usage line and exit code 64', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', entry, 'serve'], { encoding: 'utf8' });
    expect(run.status).toBe(64);
    expect(run.stderr).toContain('usage: <image> train');
  });
});
