import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import type { Readable, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { create } from 'tar';
import { ARTIFACT } from '../names.ts';
import { isSlipwayError } from '../errors.ts';
import { ArtifactError } from './errors.ts';

/** A fixed mtime keeps tarballs of identical directories byte-identical. */
const FIXED_MTIME = new Date(0);

/**
 * Lists the regular files under `root` as sorted POSIX relative paths; refuses links and special
 * files, since unpackModel would reject the archive anyway.
 */
async function listModelFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const full = join(dir, name);
      const rel = relative(root, full).split(sep).join('/');
      const info = await lstat(full);
      if (info.isSymbolicLink()) {
        throw new ArtifactError('ARTIFACT_LINK', `cannot pack symbolic link ${full}: copy the file instead`);
      } else if (info.isDirectory()) {
        await walk(full);
      } else if (info.isFile()) {
        files.push(rel);
      } else {
        throw new ArtifactError(
          'ARTIFACT_SPECIAL_FILE',
          `cannot pack ${full}: not a regular file or directory`,
        );
      }
    }
  };
  let rootInfo;
  try {
    rootInfo = await lstat(root);
  } catch (err) {
    throw new ArtifactError('ARTIFACT_IO', `cannot read model directory ${root}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!rootInfo.isDirectory()) throw new ArtifactError('ARTIFACT_IO', `${root} is not a directory`);
  await walk(root);
  // model.onnx first: readers that stop early (or humans running `tar tzf | head`) see the model.
  files.sort(
    (a, b) => Number(b === ARTIFACT.onnx) - Number(a === ARTIFACT.onnx) || (a < b ? -1 : a > b ? 1 : 0),
  );
  if (files[0] !== ARTIFACT.onnx) {
    throw new ArtifactError('ARTIFACT_NO_ONNX', `model directory ${root} has no ${ARTIFACT.onnx}`);
  }
  return files;
}

function tarStream(modelDir: string, files: string[]): Readable {
  const pack = create(
    { gzip: { level: 6 }, cwd: modelDir, portable: true, mtime: FIXED_MTIME, noDirRecurse: true },
    files,
  );
  const out = new PassThrough();
  pipeline(pack, out).catch((err: unknown) => out.destroy(err as Error));
  return out;
}

/**
 * Streams a model directory as a gzip tarball: `model.onnx` first, then every other regular file in
 * sorted order. Errors (no model.onnx, links) surface as a stream error carrying an ArtifactError.
 *
 * @example await store.put('s3://models/m/model.tar.gz', packModelStream('/opt/ml/model'));
 */
export function packModelStream(modelDir: string): Readable {
  const out = new PassThrough();
  listModelFiles(modelDir).then(
    (files) => {
      pipeline(tarStream(modelDir, files), out).catch((err: unknown) => out.destroy(err as Error));
    },
    (err: unknown) => out.destroy(err as Error),
  );
  return out;
}

class HashMeter extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/**
 * Packs a model directory into `destFile` (written atomically) and returns the tarball's SHA-256 and size.
 *
 * @example const { sha256, bytes } = await packModel('/opt/ml/model', '/tmp/out/model.tar.gz');
 */
export async function packModel(
  modelDir: string,
  destFile: string,
): Promise<{ sha256: string; bytes: number }> {
  const files = await listModelFiles(modelDir);
  const temp = join(dirname(destFile), `.${basename(destFile)}.${process.pid}.${Date.now()}.tmp`);
  const meter = new HashMeter();
  try {
    await pipeline(tarStream(modelDir, files), meter, createWriteStream(temp, { flags: 'wx' }));
    await rename(temp, destFile);
  } catch (err) {
    await rm(temp, { force: true });
    if (isSlipwayError(err)) throw err;
    throw new ArtifactError(
      'ARTIFACT_IO',
      `cannot pack ${modelDir} into ${destFile}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return { sha256: meter.hash.digest('hex'), bytes: meter.bytes };
}
