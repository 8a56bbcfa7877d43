import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { Transform } from 'node:stream';
import type { Readable, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { ARTIFACT } from '../names.ts';
import { UsageError, isSlipwayError } from '../errors.ts';
import { ArtifactError } from './errors.ts';
import { parseManifest } from './manifest.ts';
import { assertOnnxLoads } from './onnx-load.ts';
import { servedSignature } from './onnx-signature.ts';
import { readTarEntries } from './tar-stream.ts';
import type { Manifest, UnpackedModel } from './types.ts';

/** Caps applied while unpacking an untrusted artifact. */
export interface UnpackLimits {
  /** Maximum tar headers (files, directories and metadata entries). */
  readonly maxEntries: number;
  /** Maximum uncompressed bytes (the whole tar stream). */
  readonly maxTotalBytes: number;
  /** Maximum uncompressed/compressed ratio, measured on the bytes read so far. */
  readonly maxRatio: number;
  /** The ratio is checked only past this many uncompressed bytes: tiny archives compress well and harm nobody. */
  readonly ratioGraceBytes: number;
  /** Maximum size of `manifest.json`. */
  readonly maxManifestBytes: number;
}

/** Defaults sized for real models: 4 GiB, 10,000 entries, ratio 200, 16 MiB manifest. */
export const DEFAULT_UNPACK_LIMITS: Readonly<UnpackLimits> = Object.freeze({
  maxEntries: 10_000,
  maxTotalBytes: 4 * 1024 ** 3,
  maxRatio: 200,
  ratioGraceBytes: 1024 ** 2,
  maxManifestBytes: 16 * 1024 ** 2,
});

/** Options of {@link unpackModel}. */
export interface UnpackOptions {
  /** Where the private extraction directory is created. @default os.tmpdir() */
  readonly parentDir?: string;
  /** Overrides of {@link DEFAULT_UNPACK_LIMITS}. */
  readonly limits?: Partial<UnpackLimits>;
  /**
   * Also load `model.onnx` in onnxruntime before returning (costs a full model load).
   * @default false
   */
  readonly verifyLoads?: boolean;
}

const GZIP_MAGIC = [0x1f, 0x8b] as const;

/** Counts compressed bytes and rejects input that is empty or does not start with the gzip magic. */
class CompressedMeter extends Transform {
  bytes = 0;
  #head = Buffer.alloc(0);

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.bytes < GZIP_MAGIC.length) {
      this.#head = Buffer.concat([this.#head, chunk]).subarray(0, GZIP_MAGIC.length);
      if (this.#head.length === GZIP_MAGIC.length && !this.#isGzip()) {
        callback(notGzip());
        return;
      }
    }
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.bytes === 0) callback(new ArtifactError('ARTIFACT_EMPTY', 'artifact is empty (0 bytes)'));
    else if (this.bytes < GZIP_MAGIC.length) callback(notGzip());
    else callback();
  }

  #isGzip(): boolean {
    return this.#head[0] === GZIP_MAGIC[0] && this.#head[1] === GZIP_MAGIC[1];
  }
}

function notGzip(): ArtifactError {
  return new ArtifactError(
    'ARTIFACT_NOT_GZIP',
    'artifact is not gzip data (a model.tar.gz starts with 1f 8b)',
  );
}

/** Enforces the total-bytes and compression-ratio caps on the decompressed stream as it flows. */
class DecompressedMeter extends Transform {
  bytes = 0;

  constructor(
    private readonly compressed: CompressedMeter,
    private readonly limits: UnpackLimits,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limits.maxTotalBytes) {
      callback(
        new ArtifactError(
          'ARTIFACT_TOO_LARGE',
          `artifact expands to more than ${this.limits.maxTotalBytes} bytes (limit maxTotalBytes)`,
        ),
      );
      return;
    }
    const ratio = this.bytes / Math.max(1, this.compressed.bytes);
    if (this.bytes > this.limits.ratioGraceBytes && ratio > this.limits.maxRatio) {
      callback(
        new ArtifactError(
          'ARTIFACT_RATIO',
          `compression ratio ${ratio.toFixed(0)} exceeds ${this.limits.maxRatio} after ${this.bytes} bytes (gzip bomb?)`,
        ),
      );
      return;
    }
    callback(null, chunk);
  }
}

interface Extracted {
  readonly entries: number;
  readonly files: ReadonlySet<string>;
  readonly onnxSha256: string | undefined;
}

function inside(root: string, relative: string): string {
  const full = resolve(root, relative);
  // safeEntryPath already forbids escaping; this guards against any future change to it.
  if (!full.startsWith(root + sep)) {
    throw new ArtifactError(
      'ARTIFACT_UNSAFE_ENTRY',
      `entry ${JSON.stringify(relative)} resolves outside the target`,
    );
  }
  return full;
}

async function extractInto(
  decompressed: AsyncIterable<Buffer>,
  root: string,
  limits: UnpackLimits,
): Promise<Extracted> {
  const files = new Set<string>();
  const dirs = new Set<string>();
  let entries = 0;
  let declaredBytes = 0;
  let onnxSha256: string | undefined;

  const ensureParents = async (path: string): Promise<void> => {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const ancestor = parts.slice(0, i).join('/');
      if (files.has(ancestor)) {
        throw new ArtifactError(
          'ARTIFACT_UNSAFE_ENTRY',
          `entry "${path}" lies inside the file "${ancestor}"`,
        );
      }
    }
    if (parts.length > 1) {
      await mkdir(inside(root, parts.slice(0, -1).join('/')), { recursive: true, mode: 0o700 });
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    }
  };

  for await (const entry of readTarEntries(decompressed, { maxEntries: limits.maxEntries })) {
    entries++;
    if (entry.kind === 'directory') {
      if (entry.path === '') continue;
      if (files.has(entry.path)) {
        throw new ArtifactError('ARTIFACT_UNSAFE_ENTRY', `directory "${entry.path}" repeats a file entry`);
      }
      await ensureParents(entry.path);
      await mkdir(inside(root, entry.path), { recursive: true, mode: 0o700 });
      dirs.add(entry.path);
      continue;
    }
    if (files.has(entry.path) || dirs.has(entry.path)) {
      throw new ArtifactError('ARTIFACT_UNSAFE_ENTRY', `entry "${entry.path}" appears twice in the archive`);
    }
    declaredBytes += entry.size;
    if (declaredBytes > limits.maxTotalBytes) {
      throw new ArtifactError(
        'ARTIFACT_TOO_LARGE',
        `entries declare more than ${limits.maxTotalBytes} bytes (limit maxTotalBytes)`,
      );
    }
    if (entry.path === ARTIFACT.manifest && entry.size > limits.maxManifestBytes) {
      throw new ArtifactError(
        'ARTIFACT_TOO_LARGE',
        `${ARTIFACT.manifest} is ${entry.size} bytes (limit maxManifestBytes ${limits.maxManifestBytes})`,
      );
    }
    await ensureParents(entry.path);
    files.add(entry.path);
    const hash = entry.path === ARTIFACT.onnx ? createHash('sha256') : undefined;
    // O_EXCL + O_NOFOLLOW: never write through anything that already exists in the fresh directory.
    const handle = await open(
      inside(root, entry.path),
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      for await (const piece of entry.body) {
        hash?.update(piece);
        let offset = 0;
        while (offset < piece.length) {
          const { bytesWritten } = await handle.write(piece, offset, piece.length - offset);
          offset += bytesWritten;
        }
      }
    } finally {
      await handle.close();
    }
    if (hash) onnxSha256 = hash.digest('hex');
  }
  return { entries, files, onnxSha256 };
}

function toArtifactError(err: unknown): Error {
  if (isSlipwayError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || code === 'ERR_STREAM_PREMATURE_CLOSE') {
    return new ArtifactError('ARTIFACT_TRUNCATED', `artifact is truncated or corrupt: ${message}`, {
      cause: err,
    });
  }
  return new ArtifactError('ARTIFACT_IO', `cannot unpack artifact: ${message}`, { cause: err });
}

async function readManifestFile(path: string): Promise<Manifest> {
  const text = await readFile(path, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ArtifactError(
      'ARTIFACT_BAD_MANIFEST',
      `${ARTIFACT.manifest} is not JSON: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return parseManifest(json);
}

/**
 * Safely extracts an untrusted `model.tar.gz` (path or stream) into a fresh private directory.
 *
 * Streams end to end (memory stays flat whatever the artifact size), accepts only regular files and
 * directories, enforces {@link UnpackLimits} while decompressing, then checks `model.onnx`, the
 * manifest and its SHA-256. On any failure the directory is removed and an ArtifactError thrown
 * (a SlipwayError from the source stream, e.g. a StoreError, is passed through unchanged).
 * The caller owns `dir` on success and removes it when done.
 *
 * @example const model = await unpackModel('/tmp/model.tar.gz'); console.log(model.signature.inputs);
 */
export async function unpackModel(
  source: string | NodeJS.ReadableStream,
  options: UnpackOptions = {},
): Promise<UnpackedModel> {
  const limits: UnpackLimits = { ...DEFAULT_UNPACK_LIMITS, ...options.limits };
  for (const [name, value] of Object.entries(limits)) {
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
      throw new UsageError(`unpack limit ${name} must be a non-negative number, got ${String(value)}`);
    }
  }
  const parent = resolve(options.parentDir ?? tmpdir());
  const ioError = (what: string, err: unknown): ArtifactError =>
    new ArtifactError('ARTIFACT_IO', `${what}: ${(err as Error).message}`, { cause: err });
  let input: NodeJS.ReadableStream;
  if (typeof source === 'string') {
    const info = await stat(source).catch((err: unknown) => {
      throw ioError(`cannot read artifact ${source}`, err);
    });
    if (!info.isFile()) throw new ArtifactError('ARTIFACT_IO', `artifact ${source} is not a regular file`);
    input = createReadStream(source, { highWaterMark: 1 << 16 });
  } else {
    input = source;
  }

  let dir: string;
  try {
    // mkdtemp creates the directory with mode 0700: private to this user.
    dir = await mkdtemp(join(parent, 'slipway-model-'));
  } catch (err) {
    // A stream we will never read (e.g. an S3 body) must be destroyed, or its socket leaks.
    (input as Partial<Readable>).destroy?.();
    throw ioError(`cannot create an extraction directory under ${parent}`, err);
  }
  try {
    const compressed = new CompressedMeter();
    const decompressed = new DecompressedMeter(compressed, limits);
    let extracted: Extracted | undefined;
    await pipeline(
      input,
      compressed,
      createGunzip({ chunkSize: 1 << 16 }),
      decompressed,
      async (stream: AsyncIterable<Buffer>) => {
        extracted = await extractInto(stream, dir, limits);
      },
    );
    if (!extracted || extracted.entries === 0) {
      throw new ArtifactError('ARTIFACT_EMPTY', 'artifact is a tarball with no entries');
    }
    const onnxPath = join(dir, ARTIFACT.onnx);
    if (!extracted.files.has(ARTIFACT.onnx) || extracted.onnxSha256 === undefined) {
      throw new ArtifactError(
        'ARTIFACT_NO_ONNX',
        `artifact has no ${ARTIFACT.onnx} at its root (found: ${[...extracted.files].slice(0, 10).join(', ') || 'no files'})`,
      );
    }
    const sha256 = extracted.onnxSha256;
    let manifest: Manifest | undefined;
    if (extracted.files.has(ARTIFACT.manifest)) {
      manifest = await readManifestFile(join(dir, ARTIFACT.manifest));
      if (manifest.sha256 !== sha256) {
        throw new ArtifactError(
          'ARTIFACT_CHECKSUM',
          `${ARTIFACT.onnx} has SHA-256 ${sha256} but ${ARTIFACT.manifest} says ${manifest.sha256}`,
        );
      }
    }
    // onnxruntime's own verdict first: it says more about a broken model than the graph reader.
    if (options.verifyLoads) await assertOnnxLoads(onnxPath);
    const signature = await servedSignature(onnxPath, manifest);
    return { dir, onnxPath, manifest, signature, sha256 };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw toArtifactError(err);
  }
}
