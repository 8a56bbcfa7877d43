import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { list } from 'tar';
import {
  ArtifactError,
  createManifest,
  packModel,
  packModelStream,
  readOnnxSignature,
  sha256File,
  unpackModel,
} from '../../src/model/index.ts';
import { conformanceModel } from '../helpers/conformance.ts';

let work: string;
let modelDir: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'slipway-pack-'));
  modelDir = join(work, 'model');
  await mkdir(modelDir);
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

async function tarNames(file: string): Promise<string[]> {
  const names: string[] = [];
  await list({ file, onReadEntry: (entry) => names.push(entry.path) });
  return names;
}

async function writeModelWithManifest(source: string): Promise<void> {
  await copyFile(source, join(modelDir, 'model.onnx'));
  const signature = await readOnnxSignature(source);
  const manifest = createManifest({
    name: 'expand',
    version: '1',
    sha256: await sha256File(source),
    // One label per class of the first output (the manifest must describe the graph).
    labels: Array.from({ length: Math.max(1, signature.outputs[0]!.shape.at(-1)!) }, (_, i) => `class-${i}`),
    metrics: { loss: 0.1 },
    ...signature,
  });
  await writeFile(join(modelDir, 'manifest.json'), JSON.stringify(manifest, null, 2));
}

describe('packModel then unpackModel', () => {
  it('round-trips bytes, manifest and checksum', async () => {
    const source = conformanceModel('simple/test_expand_shape_model1/model.onnx');
    await writeModelWithManifest(source);
    await mkdir(join(modelDir, 'assets'));
    const vocab = randomBytes(3000);
    await writeFile(join(modelDir, 'assets', 'vocab.bin'), vocab);
    const tarball = join(work, 'model.tar.gz');

    const packed = await packModel(modelDir, tarball);
    expect(packed.bytes).toBe((await stat(tarball)).size);
    expect(packed.sha256).toBe(await sha256File(tarball));
    expect(await tarNames(tarball)).toEqual(['model.onnx', 'assets/vocab.bin', 'manifest.json']);

    const unpacked = await unpackModel(tarball, { parentDir: work, verifyLoads: true });
    try {
      expect(await readFile(unpacked.onnxPath)).toEqual(await readFile(source));
      expect(await readFile(join(unpacked.dir, 'assets', 'vocab.bin'))).toEqual(vocab);
      expect(unpacked.sha256).toBe(await sha256File(source));
      expect(unpacked.manifest).toEqual(JSON.parse(await readFile(join(modelDir, 'manifest.json'), 'utf8')));
      expect(unpacked.signature).toEqual(await readOnnxSignature(source));
      // Private: only the owner can enter the directory or read the files.
      expect((await stat(unpacked.dir)).mode & 0o777).toBe(0o700);
      expect((await stat(unpacked.onnxPath)).mode & 0o777).toBe(0o600);
    } finally {
      await rm(unpacked.dir, { recursive: true, force: true });
    }
  });

  it('reads the signature from the ONNX graph when there is no manifest', async () => {
    const source = conformanceModel('pytorch-converted/test_Conv2d/model.onnx');
    await copyFile(source, join(modelDir, 'model.onnx'));
    const tarball = join(work, 'model.tar.gz');
    await packModel(modelDir, tarball);
    const unpacked = await unpackModel(tarball, { parentDir: work });
    expect(unpacked.manifest).toBeUndefined();
    expect(unpacked.signature.inputs).toEqual([{ name: '0', datatype: 'FP32', shape: [2, 3, 7, 5] }]);
    await rm(unpacked.dir, { recursive: true });
  });

  it('produces byte-identical tarballs for identical directories', async () => {
    await writeModelWithManifest(conformanceModel('simple/test_single_relu_model/model.onnx'));
    const first = await packModel(modelDir, join(work, 'a.tar.gz'));
    const copy = join(work, 'copy');
    await mkdir(copy);
    for (const name of await readdir(modelDir)) await copyFile(join(modelDir, name), join(copy, name));
    const second = await packModel(copy, join(work, 'b.tar.gz'));
    expect(second.sha256).toBe(first.sha256);
  });

  it('accepts an archive streamed in by packModelStream', async () => {
    await writeModelWithManifest(conformanceModel('simple/test_single_relu_model/model.onnx'));
    const unpacked = await unpackModel(packModelStream(modelDir), { parentDir: work });
    expect(unpacked.manifest?.name).toBe('expand');
    await rm(unpacked.dir, { recursive: true });
  });

  it('accepts archives made by GNU tar, including a ./ root entry', async () => {
    // SageMaker and users pack with `tar czf model.tar.gz -C dir .`, which adds "./" and "./model.onnx".
    const { execFileSync } = await import('node:child_process');
    await writeModelWithManifest(conformanceModel('simple/test_single_relu_model/model.onnx'));
    const tarball = join(work, 'gnu.tar.gz');
    execFileSync('tar', ['czf', tarball, '-C', modelDir, '.']);
    const unpacked = await unpackModel(tarball, { parentDir: work });
    expect((await readdir(unpacked.dir)).sort()).toEqual(['manifest.json', 'model.onnx']);
    await rm(unpacked.dir, { recursive: true });
  });
});

describe('packModel refuses what unpackModel would reject', () => {
  it('refuses a directory without model.onnx', async () => {
    await writeFile(join(modelDir, 'weights.bin'), 'x');
    await expect(packModel(modelDir, join(work, 'model.tar.gz'))).rejects.toMatchObject({
      code: 'ARTIFACT_NO_ONNX',
    });
    expect(await readdir(work)).toEqual(['model']);
  });

  it('refuses a symbolic link in the model directory', async () => {
    await writeFile(join(modelDir, 'model.onnx'), 'x');
    await symlink('/etc/passwd', join(modelDir, 'passwd'));
    const error: unknown = await packModel(modelDir, join(work, 'model.tar.gz')).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ArtifactError);
    expect((error as ArtifactError).code).toBe('ARTIFACT_LINK');
  });

  it('refuses a model directory that does not exist', async () => {
    await expect(packModel(join(work, 'nope'), join(work, 'model.tar.gz'))).rejects.toMatchObject({
      code: 'ARTIFACT_IO',
    });
  });

  it('reports packModelStream failures as a stream error', async () => {
    const stream = packModelStream(join(work, 'nope'));
    const error: unknown = await new Promise((resolve) => {
      stream.on('error', resolve);
      stream.resume();
    });
    expect(error).toBeInstanceOf(ArtifactError);
  });
});
